// Fault injection for the graph client's robustness tests, on top of the real
// emulator over real HTTPS:
//  - cutProxy(): a TCP proxy in front of the emulator that, when armed, cuts the
//    next connection that carries more than N further bytes towards the client (a
//    genuine connection reset in the middle of a TLS-encrypted response body);
//  - faultDispatcher(): wraps the test dispatcher to count requests, rewrite the
//    URL of chosen requests (so the emulator itself answers e.g. 401 to a spoilt
//    tempauth) or break the answer of chosen requests after their headers.
import net from 'node:net'
import type { Dispatcher } from 'undici'

export interface CutProxy {
  /** `https://127.0.0.1:<proxy port>/v1.0`: use as the client's baseUrl. */
  graph: string
  /** Cut the next connection that passes `afterBytes` more bytes to the client (once). */
  arm(afterBytes: number): void
  /** Connections cut so far. */
  cuts: number
  close(): Promise<void>
}

export async function cutProxy(targetPort: number): Promise<CutProxy> {
  let armed: number | undefined
  let passed = 0
  const sockets = new Set<net.Socket>()
  const state = { cuts: 0 }
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    client.pipe(upstream)
    upstream.on('data', (d: Buffer) => {
      if (armed !== undefined) {
        if (passed + d.length > armed) {
          // Half of this chunk, then the connection is gone mid-answer.
          armed = undefined
          state.cuts++
          client.write(d.subarray(0, d.length >> 1))
          client.destroy()
          upstream.destroy()
          return
        }
        passed += d.length
      }
      client.write(d)
    })
    const end = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', end)
    upstream.on('error', end)
    client.on('close', end)
    upstream.on('close', end)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as net.AddressInfo).port
  return {
    graph: `https://127.0.0.1:${port}/v1.0`,
    arm(afterBytes) {
      armed = afterBytes
      passed = 0
    },
    get cuts() {
      return state.cuts
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

export interface SeenRequest {
  /** scheme://host:port the request went to. */
  origin: string
  method: string
  /** Path without the query (no tempauth in test output). */
  path: string
}

export interface FaultRule {
  /** Which requests: method and a test on the path (query excluded). */
  method?: string
  path: RegExp
  /** How many matching requests to spoil (default 1). */
  times?: number
  /** Let this many matching requests through first (default 0). */
  skip?: number
  /** Rewrite the request's path+query before it is sent (e.g. spoil a tempauth). */
  rewrite?: (pathAndQuery: string) => string
  /** Send it with this method instead (the service then answers with an error of its own). */
  asMethod?: string
  /** Break the answer after its headers: the body never arrives, as after a reset (raw requests). */
  breakBody?: boolean
  /** Break the answer after this many bytes of its body (implies breakBody). */
  breakAfter?: number
}

export interface FaultDispatcher {
  dispatcher: Dispatcher
  seen: SeenRequest[]
  add(rule: FaultRule): void
  count(method: string, path: RegExp): number
}

type Handler = Dispatcher.DispatchHandlers

export function faultDispatcher(inner: Dispatcher): FaultDispatcher {
  const rules: (FaultRule & { left: number; skipLeft: number })[] = []
  const seen: SeenRequest[] = []
  const interceptor = (dispatch: Dispatcher['dispatch']): Dispatcher['dispatch'] => (opts, handler) => {
    const full = String(opts.path)
    const path = full.split('?')[0]!
    const method = String(opts.method)
    seen.push({ origin: String(opts.origin), method, path })
    const rule = rules.find((r) => r.left > 0 && (r.method === undefined || r.method === method) && r.path.test(path))
    if (!rule) return dispatch(opts, handler)
    if (rule.skipLeft > 0) {
      rule.skipLeft--
      return dispatch(opts, handler)
    }
    rule.left--
    let o = rule.rewrite ? { ...opts, path: rule.rewrite(full) } : opts
    if (rule.asMethod) o = { ...o, method: rule.asMethod as Dispatcher.HttpMethod }
    if (!rule.breakBody && rule.breakAfter === undefined) return dispatch(o, handler)
    let abort: ((e: Error) => void) | undefined
    let left = rule.breakAfter ?? 0
    let broken = false
    const h: Handler = {
      onConnect: (a) => {
        abort = a
        handler.onConnect?.(a)
      },
      onHeaders: (status, headers, resume, text) => handler.onHeaders!(status, headers, resume, text),
      onData: (chunk) => {
        if (broken) return false
        if (chunk.length <= left) {
          left -= chunk.length
          return handler.onData!(chunk)
        }
        if (left > 0) handler.onData!(chunk.subarray(0, left))
        broken = true
        // The answer ends here for the caller, as when the peer resets the connection.
        const e = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' })
        handler.onError?.(e)
        abort?.(e)
        return false
      },
      onComplete: (trailers) => {
        if (!broken) handler.onComplete?.(trailers)
      },
      onError: (e) => {
        if (!broken) handler.onError?.(e)
      },
      onUpgrade: handler.onUpgrade?.bind(handler),
      onBodySent: handler.onBodySent?.bind(handler),
    }
    return dispatch(o, h)
  }
  return {
    dispatcher: inner.compose(interceptor),
    seen,
    add(rule) {
      rules.push({ ...rule, left: rule.times ?? 1, skipLeft: rule.skip ?? 0 })
    },
    count(method, path) {
      return seen.filter((s) => s.method === method && path.test(s.path)).length
    },
  }
}
