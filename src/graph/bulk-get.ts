/**
 * A streamed GET on a connection of its own, for bulk downloads (a read to the end
 * of a file from its pre-authenticated download URL: `odfs get`, a resumed one, the
 * write-back's fetch of a whole file). Everything else, the mount's ranged reads and
 * the parts of a download over several connections included, goes through the
 * undici dispatcher and its pooled connections.
 *
 * Why: undici parses every byte of a body with llhttp compiled to wasm (each chunk
 * is copied into wasm memory first) and hands it on through two streams. Measured
 * per GiB from the emulator (docs/performance.md): 0.85 s more CPU than reading the
 * TLS socket directly in a stand-alone client, 0.28 s more inside odfs's downloader;
 * CPU a busy transfer node's other transfers, and here the service, go without.
 * Here the socket's chunks are the body's chunks: only the head is parsed.
 *
 * What it speaks: HTTP/1.1, a GET with no body, `Connection: close` (the connection
 * is never reused, so no keep-alive state exists), and answers framed by
 * Content-Length, by chunked transfer coding, or by the end of the connection.
 * Interim 1xx answers are skipped. Timeouts are those of the dispatcher
 * (common/http.ts ConnectOptions): connecting, waiting for the head, and the body
 * going idle while its reader is not holding it back.
 *
 * Errors carry the codes undici's would, so the pipeline classifies them the same
 * way (reachability.ts): a connect timeout is UND_ERR_CONNECT_TIMEOUT, a head or
 * body timeout UND_ERR_HEADERS_TIMEOUT / UND_ERR_BODY_TIMEOUT, a connection that
 * ends before the answer is complete UND_ERR_SOCKET; socket errors keep their own.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { Readable } from 'node:stream'
import type { ConnectOptions } from '../common/index.js'

export interface BulkGetRequest {
  url: URL
  headers: Record<string, string>
  signal?: AbortSignal
  connect: ConnectOptions
}

export interface BulkGetAnswer {
  status: number
  statusText: string
  /** Header lines in order, names in lower case. */
  headers: [string, string][]
  /** The body (null for answers that have none). Destroying it closes the connection. */
  body: Readable | null
}

/** The largest head accepted (status line and headers). */
const MAX_HEAD = 64 * 1024

function failure(message: string, code: string): Error {
  return Object.assign(new Error(message), { code })
}

/** A header name or value that would let a request be split or smuggled is refused. */
function checkHeader(name: string, value: string): void {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n\0]/.test(value)) {
    throw new TypeError(`invalid request header ${JSON.stringify(name)}`)
  }
}

function requestHead(url: URL, headers: Record<string, string>): string {
  let head = `GET ${url.pathname || '/'}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n`
  for (const [k, v] of Object.entries(headers)) {
    const name = k.toLowerCase()
    // Framing and the connection are this module's to say.
    if (name === 'host' || name === 'connection' || name === 'content-length' || name === 'transfer-encoding') continue
    checkHeader(k, v)
    head += `${k}: ${v}\r\n`
  }
  return head + 'Connection: close\r\n\r\n'
}

interface Head {
  status: number
  statusText: string
  headers: [string, string][]
}

/** Parse a head (without its final blank line); undefined if it is not HTTP/1.x. */
function parseHead(text: string): Head | undefined {
  const lines = text.split('\r\n')
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '')
  if (!m) return undefined
  const headers: [string, string][] = []
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!
    const colon = line.indexOf(':')
    // No folded lines, no header without a name (RFC 9112 §5).
    if (colon <= 0 || line[0] === ' ' || line[0] === '\t') return undefined
    headers.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()])
  }
  return { status: Number(m[1]), statusText: m[2] ?? '', headers }
}

/** How the body of an answer ends. */
type Framing = { kind: 'none' } | { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' }

function framingOf(head: Head): Framing | undefined {
  const { status, headers } = head
  if (status === 204 || status === 304) return { kind: 'none' }
  const te = headers.filter(([k]) => k === 'transfer-encoding').map(([, v]) => v)
  if (te.length > 0) {
    // Only chunked alone frames a body this client can read (no compression was asked for).
    const codings = te.join(',').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)
    return codings.length === 1 && codings[0] === 'chunked' ? { kind: 'chunked' } : undefined
  }
  const cl = [...new Set(headers.filter(([k]) => k === 'content-length').map(([, v]) => v))]
  if (cl.length > 1 || (cl.length === 1 && !/^\d{1,15}$/.test(cl[0]!))) return undefined
  if (cl.length === 1) return Number(cl[0]) === 0 ? { kind: 'none' } : { kind: 'length', left: Number(cl[0]) }
  return { kind: 'close' }
}

/** The body, fed by the socket; holding it back (push returning false) pauses the socket. */
class BulkBody extends Readable {
  constructor(private readonly socket: Socket, private readonly idleMs: number) {
    super({ highWaterMark: 1 << 20 })
  }
  override _read(): void {
    if (this.socket.isPaused()) {
      this.socket.setTimeout(this.idleMs)
      this.socket.resume()
    }
  }
  hold(): void {
    // A reader that is busy (a slow disk) is not the connection going idle.
    this.socket.setTimeout(0)
    this.socket.pause()
  }
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.socket.destroy()
    cb(err)
  }
}

/** Decodes chunked transfer coding (RFC 9112 §7.1); extensions and trailers are read and dropped. */
class Dechunker {
  #state: 'size' | 'data' | 'dataEnd' | 'trailer' | 'done' = 'size'
  #line = ''
  #left = 0

  get done(): boolean {
    return this.#state === 'done'
  }

  /** Feed bytes; `out` gets each piece of data (subarrays of `b`, never copies). */
  feed(b: Buffer, out: (piece: Buffer) => void): void {
    let i = 0
    while (i < b.length && this.#state !== 'done') {
      if (this.#state === 'data') {
        const n = Math.min(this.#left, b.length - i)
        out(b.subarray(i, i + n))
        i += n
        this.#left -= n
        if (this.#left === 0) this.#state = 'dataEnd'
        continue
      }
      const nl = b.indexOf(10, i)
      const end = nl < 0 ? b.length : nl + 1
      this.#line += b.toString('latin1', i, end)
      i = end
      if (this.#line.length > 8192) throw failure('chunked body: a line longer than 8 KiB', 'UND_ERR_SOCKET')
      if (nl < 0) return
      const line = this.#line.replace(/\r?\n$/, '')
      this.#line = ''
      if (this.#state === 'dataEnd') {
        if (line !== '') throw failure('chunked body: no line end after a chunk', 'UND_ERR_SOCKET')
        this.#state = 'size'
      } else if (this.#state === 'size') {
        const m = /^([0-9A-Fa-f]{1,12})(?:[ \t]*;.*)?$/.exec(line)
        if (!m) throw failure('chunked body: bad chunk size line', 'UND_ERR_SOCKET')
        this.#left = parseInt(m[1]!, 16)
        this.#state = this.#left === 0 ? 'trailer' : 'data'
      } else if (line === '') {
        this.#state = 'done' // the blank line after the trailers
      }
    }
  }
}

/**
 * Send a GET and resolve with the answer once its head has arrived; the body
 * follows as a stream. Rejects with a network error (codes as undici's) when the
 * connection fails before the head, or with the signal's reason when it aborts.
 */
export function bulkGet(req: BulkGetRequest): Promise<BulkGetAnswer> {
  const { url, signal, connect } = req
  if (signal?.aborted) return Promise.reject(signal.reason)
  let head: string
  try {
    head = requestHead(url, req.headers)
  } catch (e) {
    return Promise.reject(e)
  }
  const tls = url.protocol === 'https:'
  if (!tls && url.protocol !== 'http:') return Promise.reject(new TypeError(`unsupported protocol ${url.protocol}`))
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  const port = Number(url.port) || (tls ? 443 : 80)

  return new Promise<BulkGetAnswer>((resolve, reject) => {
    const socket: Socket = tls
      ? tlsConnect({
          host,
          port,
          servername: isIP(host) ? undefined : host,
          ALPNProtocols: ['http/1.1'],
          ...(connect.secureContext ? { secureContext: connect.secureContext } : {}),
        })
      : netConnect({ host, port })
    let answered = false
    /** The exchange is over (body complete, or failed): nothing the socket does matters any more. */
    let over = false
    let body: BulkBody | undefined
    let framing: Framing | undefined
    let dechunker: Dechunker | undefined
    /** Bytes of the head received so far. */
    let pending: Buffer | undefined

    const fail = (e: unknown) => {
      if (over) return
      over = true
      cleanup()
      socket.destroy()
      if (!answered) {
        answered = true
        reject(e)
      } else if (body && !body.destroyed) {
        body.destroy(e as Error)
      }
    }
    const onAbort = () => fail(signal!.reason)
    signal?.addEventListener('abort', onAbort, { once: true })
    const cleanup = () => {
      clearTimeout(connectTimer)
      signal?.removeEventListener('abort', onAbort)
    }
    const connectTimer = setTimeout(
      () => fail(failure(`connect to ${url.host} timed out after ${connect.connectTimeoutMs} ms`, 'UND_ERR_CONNECT_TIMEOUT')),
      connect.connectTimeoutMs,
    )
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(connectTimer)
      socket.setTimeout(connect.headersTimeoutMs)
      socket.write(head)
    })
    socket.on('timeout', () => {
      fail(answered
        ? failure(`download from ${url.host} idle for ${connect.bodyTimeoutMs} ms`, 'UND_ERR_BODY_TIMEOUT')
        : failure(`no answer from ${url.host} within ${connect.headersTimeoutMs} ms`, 'UND_ERR_HEADERS_TIMEOUT'))
    })
    socket.on('error', fail)

    /** Hand body bytes to the reader; true when the body is complete. */
    const deliver = (b: Buffer): boolean => {
      const f = framing!
      if (f.kind === 'length') {
        const piece = b.length > f.left ? b.subarray(0, f.left) : b
        f.left -= piece.length
        if (piece.length > 0 && !body!.push(piece)) body!.hold()
        return f.left === 0
      }
      if (f.kind === 'chunked') {
        dechunker!.feed(b, (piece) => {
          if (!body!.push(piece)) body!.hold()
        })
        return dechunker!.done
      }
      if (b.length > 0 && !body!.push(b)) body!.hold()
      return false
    }
    const finish = () => {
      if (over) return
      over = true
      cleanup()
      body!.push(null)
      // Connection: close; nothing more is read from it.
      socket.removeAllListeners('data')
      socket.destroy()
    }
    const feed = (b: Buffer) => {
      try {
        if (deliver(b)) finish()
      } catch (e) {
        fail(e)
      }
    }

    socket.on('data', (chunk: Buffer) => {
      if (body) return feed(chunk)
      if (answered) return
      // Still reading the head.
      pending = pending ? Buffer.concat([pending, chunk]) : chunk
      for (;;) {
        const all: Buffer = pending
        const end = all.indexOf('\r\n\r\n')
        if (end < 0) {
          if (all.length > MAX_HEAD) fail(failure(`answer head larger than ${MAX_HEAD} bytes`, 'UND_ERR_HEADERS_OVERFLOW'))
          return
        }
        const h = parseHead(all.toString('latin1', 0, end))
        const rest = all.subarray(end + 4)
        if (!h) return fail(failure(`malformed answer from ${url.host}`, 'HPE_INVALID_CONSTANT'))
        if (h.status >= 100 && h.status < 200) {
          // An interim answer (100, 103): the real one follows.
          pending = rest
          if (rest.length === 0) return
          continue
        }
        const f = framingOf(h)
        if (!f) return fail(failure(`answer from ${url.host} with a body framing this client does not read`, 'HPE_UNEXPECTED_CONTENT_LENGTH'))
        answered = true
        pending = undefined
        framing = f
        if (f.kind === 'none') {
          over = true
          cleanup()
          socket.removeAllListeners('data')
          socket.destroy()
          resolve({ status: h.status, statusText: h.statusText, headers: h.headers, body: null })
          return
        }
        if (f.kind === 'chunked') dechunker = new Dechunker()
        body = new BulkBody(socket, connect.bodyTimeoutMs)
        socket.setTimeout(connect.bodyTimeoutMs)
        // The signal still stops the body, as it does a body undici streams.
        resolve({ status: h.status, statusText: h.statusText, headers: h.headers, body })
        if (rest.length > 0) feed(rest)
        return
      }
    })
    socket.on('end', () => {
      if (body && framing?.kind === 'close') return finish()
      fail(failure(answered ? `download from ${url.host} cut short` : `${url.host} closed the connection before answering`, 'UND_ERR_SOCKET'))
    })
    socket.on('close', () => {
      // After 'end' or 'error' this changes nothing; alone, the connection was lost.
      if (body && framing?.kind === 'close') finish()
      else fail(failure(`download from ${url.host} cut short`, 'UND_ERR_SOCKET'))
    })
  })
}
