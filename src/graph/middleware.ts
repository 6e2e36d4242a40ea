/**
 * The request pipeline, as a @microsoft/microsoft-graph-client middleware chain:
 *
 *   RetryMiddleware -> RateLimitMiddleware -> AuthMiddleware -> FetchHandler
 *
 * Graph API calls enter it through the SDK's Client (client.api(...)); absolute
 * URLs that must be used verbatim (nextLink/deltaLink, pre-authenticated upload and
 * download URLs) enter it directly through `head.execute(context)`. Every attempt,
 * retries included, takes a token from the shared per-user RateLimiter. The SDK's
 * own RetryHandler is not in the chain (its 15 s of 503 retries outlast FUSE's
 * timeout and it ignores the shared budget).
 *
 * Per-request settings travel in the fetch options under the REQUEST_POLICY symbol.
 */
import type { Context, Middleware } from '@microsoft/microsoft-graph-client'
import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { connectOptionsOf, loadUndici, type Clock, type Logger } from '../common/index.js'
import { bulkGet } from './bulk-get.js'
import { GraphError, parseRetryAfter } from './errors.js'
import type { RateLimiter } from './ratelimit.js'
import type { Reachability } from './reachability.js'

export interface TokenProvider {
  getAccessToken(opts?: { forceRefresh?: boolean; signal?: AbortSignal }): Promise<string>
}

export const REQUEST_POLICY = Symbol.for('odfs.graph.requestPolicy')

/** Settings and results of one logical request (all its attempts). */
export interface RequestPolicy {
  /** Safe to resend after a timeout or a connection reset. */
  idempotent: boolean
  /** Send the bearer token (Graph API); false for pre-authenticated URLs. */
  auth: boolean
  /** Per-attempt timeout for receiving the response headers (ms). */
  timeoutMs?: number
  /**
   * The whole request (time queued for the rate limiter, every attempt, every wait
   * between attempts) ends within this many ms of entering the pipeline: no retry is
   * begun whose wait would pass it, and whatever is still pending then is aborted with
   * a GraphError `deadlineExceeded` (the mount passes ~12 s: fuse-native times an
   * operation out at 15 s by default). Undefined: no deadline. A streamed
   * answer (download) counts until its headers; its body is not bounded by it.
   */
  deadlineMs?: number
  /** Clock time at which the deadline passes (set by the RetryMiddleware). */
  deadlineAt?: number
  /** The caller's signal; the RetryMiddleware adds the deadline to it. */
  signal?: AbortSignal
  /** A short label for logs (route template, never a URL with secrets). */
  label: string
  /** Bulk transfer: bypass fetch, use the dispatcher's request() (body also as a Node stream). */
  raw?: boolean
  /**
   * The caller streams the body (downloads). Every other answer is read whole inside
   * the retried unit, so a connection that breaks in the middle of a body is retried
   * (idempotent requests) or reported as a network GraphError, like one that breaks
   * before the headers.
   */
  stream?: boolean
  /**
   * A transfer on a pre-authenticated content URL (upload fragment, download). It
   * is not a Graph API operation, so it takes no token of the per-second budget
   * (a 10 MiB fragment per token would cap a 20/s user at 200 MiB/s); the
   * client's transfer concurrency cap bounds it instead. It still waits out a
   * global pause, and a 429/503 it receives still pauses the whole user.
   */
  content?: boolean
  /**
   * A streamed GET with no body that reads to the end of a file: sent on
   * a connection of its own by bulk-get.ts, when the dispatcher is one whose way of
   * connecting is known (common/http.ts connectOptionsOf); otherwise as `raw`.
   */
  bulk?: boolean
  // results
  /** What the pipeline threw (kept here: the SDK replaces thrown errors with its own). */
  error?: unknown
  attempts: number
  retries: number
  exhausted: boolean
  tokenRefreshed: boolean
}

export function newPolicy(p: Partial<RequestPolicy> & { label: string }): RequestPolicy {
  return { idempotent: false, auth: true, attempts: 0, retries: 0, exhausted: false, tokenRefreshed: false, ...p }
}

export function policyOf(ctx: Context): RequestPolicy {
  const p = (ctx.options as Record<symbol, unknown> | undefined)?.[REQUEST_POLICY] as RequestPolicy | undefined
  return p ?? newPolicy({ label: 'graph', idempotent: false })
}

export interface RetryOptions {
  /** Attempts for network errors and 5xx (default 5). */
  maxAttempts: number
  /** Attempts when throttled (429/503); each waits for Retry-After (default 30). */
  maxThrottledAttempts: number
  /** First backoff (ms) when no Retry-After is given (default 500). */
  baseDelayMs: number
  /** Backoff cap (ms) (default 30 s). */
  maxDelayMs: number
  /**
   * Longest Retry-After waited out (ms, default 120 s; the service has been seen to
   * ask for 41 s, then 315 s under continued pressure). A longer one is not slept
   * through: the request fails at once with a GraphError saying for how long the
   * service throttles (the whole user still pauses for it).
   */
  maxRetryAfterMs: number
  /** Uniform random in [0,1) (injectable for tests). */
  random: () => number
}

export const DEFAULT_RETRY: RetryOptions = {
  maxAttempts: 5,
  maxThrottledAttempts: 30,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  maxRetryAfterMs: 120_000,
  random: Math.random,
}

/** Full-jitter exponential backoff: random in [d/2, d] with d = base * 2^(attempt-1), capped. */
export function backoffDelay(attempt: number, opts: Pick<RetryOptions, 'baseDelayMs' | 'maxDelayMs' | 'random'>): number {
  const d = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(d / 2 + (d / 2) * opts.random())
}

export interface PipelineCounters {
  requests: number
  retries: number
  throttled: number
  networkErrors: number
  tokenRefreshes: number
}

function normaliseHeaders(h: unknown): Record<string, string> {
  const out: Record<string, string> = {}
  if (!h) return out
  if (typeof (h as Headers).forEach === 'function' && !(Array.isArray(h))) {
    ;(h as Headers).forEach((v, k) => (out[k] = v))
    return out
  }
  if (Array.isArray(h)) {
    for (const [k, v] of h as [string, string][]) out[k] = v
    return out
  }
  Object.assign(out, h as Record<string, string>)
  return out
}

/** Statuses whose answers have no body (a Response cannot be built with one). */
function nullBodyStatus(status: number): boolean {
  return status === 101 || status === 204 || status === 205 || status === 304
}

/**
 * fetch, Response and Headers of the undici module the dispatcher comes from. Node's
 * own (the globals) are another copy of undici, loaded on first use at every
 * command's start (~50 ms, docs/performance.md); the SDK only reads the answers.
 */
interface WebApi {
  fetch: typeof fetch
  Response: typeof Response
  Headers: typeof Headers
}
let webApi: Promise<WebApi> | undefined
function web(): Promise<WebApi> {
  return (webApi ??= loadUndici().then((u) => ({ fetch: u.fetch, Response: u.Response, Headers: u.Headers }) as unknown as WebApi))
}

/** Answers whose body is in memory already (the raw path reads a body nobody streams at once). */
const inMemory = new WeakSet<Response>()

/** The same answer with its body read into memory (throws if the connection breaks while reading). */
async function buffered(res: Response): Promise<Response> {
  if (res.body === null || inMemory.has(res)) return res
  const bytes = await res.arrayBuffer()
  const { Response } = await web()
  return new Response(nullBodyStatus(res.status) ? null : bytes, { status: res.status, statusText: res.statusText, headers: res.headers })
}

async function drain(res: Response | undefined): Promise<void> {
  try {
    await res?.body?.cancel()
  } catch {
    // already consumed or broken
  }
}

abstract class Base implements Middleware {
  protected next: Middleware | undefined
  setNext(m: Middleware): void {
    this.next = m
  }
  abstract execute(ctx: Context): Promise<void>
}

export class RetryMiddleware extends Base {
  constructor(
    private readonly limiter: RateLimiter,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly counters: PipelineCounters,
    private readonly opts: RetryOptions = DEFAULT_RETRY,
    private readonly reach?: Reachability,
  ) {
    super()
  }

  async execute(ctx: Context): Promise<void> {
    const policy = policyOf(ctx)
    try {
      await this.#withDeadline(ctx, policy)
    } catch (e) {
      policy.error = e
      throw e
    }
  }

  async #withDeadline(ctx: Context, policy: RequestPolicy): Promise<void> {
    if (policy.deadlineMs === undefined) return this.#run(ctx, policy)
    // The deadline runs on the injected clock and aborts whatever is pending then
    // (a wait in the limiter's queue, an attempt, a backoff sleep).
    policy.deadlineAt = this.clock.now() + policy.deadlineMs
    const expired = new AbortController()
    const done = new AbortController()
    const caller = policy.signal
    policy.signal = caller ? AbortSignal.any([caller, expired.signal]) : expired.signal
    this.clock.sleep(policy.deadlineMs, done.signal).then(
      () => expired.abort(new GraphError({
        status: 0,
        code: 'deadlineExceeded',
        message: `${policy.label}: no answer within the deadline of ${policy.deadlineMs} ms (${policy.attempts} attempt(s))`,
        route: policy.label,
        attempts: policy.attempts,
      })),
      () => {},
    )
    try {
      await this.#run(ctx, policy)
    } finally {
      done.abort()
    }
  }

  async #run(ctx: Context, policy: RequestPolicy): Promise<void> {
    let failures = 0 // network + 5xx
    let throttles = 0
    const pastDeadline = (wait: number) => policy.deadlineAt !== undefined && this.clock.now() + wait > policy.deadlineAt
    for (;;) {
      policy.attempts++
      this.counters.requests++
      const attempt: Context = { ...ctx, options: { ...ctx.options, headers: normaliseHeaders(ctx.options?.headers) } }
      let res: Response | undefined
      let netErr: unknown
      try {
        await this.next!.execute(attempt)
        res = attempt.response
        // The body of an answer that will not be retried is read here, inside the attempt.
        if (res && !policy.stream && !this.#retriable(res.status, policy)) res = await buffered(res)
      } catch (e) {
        if (policy.signal?.aborted) throw policy.signal.reason ?? e
        if (e instanceof GraphError) throw e // decided below this middleware (e.g. throttled past the deadline)
        netErr = e
      }
      if (netErr !== undefined) {
        this.reach?.failed(netErr)
        this.counters.networkErrors++
        failures++
        const delay = backoffDelay(failures, this.opts)
        if (!policy.idempotent || failures >= this.opts.maxAttempts || pastDeadline(delay)) {
          policy.exhausted = policy.idempotent
          throw netErr
        }
        this.#retrying(policy, 0, undefined, delay, netErr)
        await this.#sleep(delay, policy)
        continue
      }
      this.reach?.answered()
      const status = res!.status
      if (status === 429 || status === 503) {
        throttles++
        this.counters.throttled++
        const ra = parseRetryAfter(res!.headers.get('retry-after'), this.clock.now())
        const wait = ra ?? backoffDelay(throttles, this.opts)
        // The whole user backs off: the shared limiter pauses and slows down.
        this.limiter.throttled(wait, status === 429 ? 'throttled' : 'unavailable')
        // A Retry-After past the cap or the deadline is reported (the error says for
        // how long the service throttles), never slept through silently.
        if (throttles >= this.opts.maxThrottledAttempts || wait > this.opts.maxRetryAfterMs || pastDeadline(wait)) {
          policy.exhausted = true
          ctx.response = res
          return
        }
        await drain(res)
        this.#retrying(policy, status, res!.headers.get('request-id'), wait)
        continue // the rate limiter holds the next attempt until the pause is over
      }
      if ((status === 500 || status === 502 || status === 504 || status === 509) && policy.idempotent) {
        failures++
        const delay = backoffDelay(failures, this.opts)
        if (failures >= this.opts.maxAttempts || pastDeadline(delay)) {
          policy.exhausted = true
          ctx.response = res
          return
        }
        await drain(res)
        this.#retrying(policy, status, res!.headers.get('request-id'), delay)
        await this.#sleep(delay, policy)
        continue
      }
      this.limiter.succeeded()
      ctx.response = res
      return
    }
  }

  async #sleep(ms: number, policy: RequestPolicy): Promise<void> {
    try {
      await this.clock.sleep(ms, policy.signal)
    } catch (e) {
      throw policy.signal?.aborted ? (policy.signal.reason ?? e) : e
    }
  }

  /** Answers the loop below retries (their bodies are drained, not read). */
  #retriable(status: number, policy: RequestPolicy): boolean {
    return status === 429 || status === 503 || ((status === 500 || status === 502 || status === 504 || status === 509) && policy.idempotent)
  }

  #retrying(policy: RequestPolicy, status: number, requestId: string | null | undefined, delayMs: number, err?: unknown): void {
    policy.retries++
    this.counters.retries++
    this.log.debug(
      {
        route: policy.label,
        status,
        requestId: requestId ?? undefined,
        attempt: policy.attempts,
        delayMs,
        error: err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : undefined,
      },
      'graph request retried',
    )
  }
}

export class RateLimitMiddleware extends Base {
  constructor(private readonly limiter: RateLimiter, private readonly clock: Clock) {
    super()
  }
  async execute(ctx: Context): Promise<void> {
    const policy = policyOf(ctx)
    const pausedUntil = this.limiter.stats().pausedUntil
    if (policy.deadlineAt !== undefined && pausedUntil > policy.deadlineAt) {
      // The service paused this user past the deadline: say so now instead of queueing.
      const now = this.clock.now()
      throw new GraphError({
        status: 429,
        code: 'activityLimitReached',
        message: `${policy.label}: throttled for ${Math.ceil((pausedUntil - now) / 1000)} s (the service paused this user's requests past the call's deadline)`,
        route: policy.label,
        attempts: policy.attempts,
        retryAfterMs: pausedUntil - now,
        exhausted: true,
      })
    }
    try {
      if (policy.content) await this.limiter.whenUnpaused(policy.signal)
      else await this.limiter.acquire(policy.signal)
    } catch (e) {
      throw policy.signal?.aborted ? (policy.signal.reason ?? e) : e
    }
    await this.next!.execute(ctx)
  }
}

export class AuthMiddleware extends Base {
  constructor(
    private readonly tokens: TokenProvider,
    private readonly counters: PipelineCounters,
    private readonly graphPrefix: string,
  ) {
    super()
  }

  async execute(ctx: Context): Promise<void> {
    const policy = policyOf(ctx)
    const url = typeof ctx.request === 'string' ? ctx.request : ctx.request.url
    // The bearer goes to the Graph API only: never to upload or download URLs.
    const wantsAuth = policy.auth && url.startsWith(this.graphPrefix)
    const headers = ctx.options!.headers as Record<string, string>
    for (const k of Object.keys(headers)) if (k.toLowerCase() === 'authorization') delete headers[k]
    if (!wantsAuth) return this.next!.execute(ctx)
    headers.Authorization = `Bearer ${await this.tokens.getAccessToken({ signal: policy.signal })}`
    await this.next!.execute(ctx)
    if (ctx.response?.status === 401 && !policy.tokenRefreshed) {
      // One silent refresh and one retry.
      policy.tokenRefreshed = true
      this.counters.tokenRefreshes++
      await drain(ctx.response)
      headers.Authorization = `Bearer ${await this.tokens.getAccessToken({ forceRefresh: true, signal: policy.signal })}`
      await this.next!.execute(ctx)
    }
  }
}

/** A Response built by the raw path also carries its body as a Node stream under this key. */
export const NODE_BODY = Symbol.for('odfs.graph.nodeBody')

/** The Node stream of a response's body when it came through the raw path (else undefined). */
export function nodeBodyOf(res: Response): Readable | undefined {
  return (res as unknown as Record<symbol, Readable | undefined>)[NODE_BODY]
}

async function webHeaders(lines: [string, string][]): Promise<Headers> {
  const { Headers } = await web()
  const headers = new Headers()
  for (const [k, v] of lines) headers.append(k, v)
  return headers
}

/**
 * A Response for an answer whose body is a Node stream: the stream stays readable
 * directly (nodeBodyOf), and the web body reads from it only if someone pulls.
 */
async function answer(status: number, headerLines: [string, string][], body: Readable | null): Promise<Response> {
  const { Response } = await web()
  const headers = await webHeaders(headerLines)
  const nullBody = body === null || nullBodyStatus(status) || status < 200
  if (body) {
    // Cancelling (destroy) makes the stream emit 'error'; without a listener that would
    // crash the process. Readers still see errors through their own iterator/listeners.
    body.on('error', () => {})
    if (nullBody) body.resume()
  }
  const res = new Response(nullBody ? null : lazyWebStream(body!), { status, headers })
  if (!nullBody) Object.defineProperty(res, NODE_BODY, { value: body })
  return res
}

/** A web stream over a Node stream that reads nothing until it is pulled (so the Node stream can be used directly instead). */
function lazyWebStream(body: Readable): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        for (;;) {
          const chunk = body.read() as Buffer | null
          if (chunk !== null) return c.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length))
          if (body.readableEnded || body.destroyed) {
            if (body.errored) return c.error(body.errored)
            return c.close()
          }
          await new Promise<void>((resolve) => {
            const done = () => {
              body.off('readable', done)
              body.off('end', done)
              body.off('error', done)
              body.off('close', done)
              resolve()
            }
            body.on('readable', done)
            body.on('end', done)
            body.on('error', done)
            body.on('close', done)
          })
        }
      },
      cancel() {
        body.destroy()
      },
    },
    { highWaterMark: 0 },
  )
}

/** Bytes per write of a large request body (see FetchHandler.#raw). */
export const BODY_PIECE = 256 << 10

/**
 * A byte body made piece by piece while it is sent (an upload fragment, read from
 * its file just before each piece goes out): `length` bytes in all, iterated afresh
 * on every attempt.
 */
export interface PiecedBody {
  readonly length: number
  [Symbol.asyncIterator](): AsyncIterator<Buffer>
}

export function isPiecedBody(v: unknown): v is PiecedBody {
  return typeof v === 'object' && v !== null && typeof (v as PiecedBody).length === 'number' && typeof (v as PiecedBody)[Symbol.asyncIterator] === 'function'
}

/** `body` as views of at most BODY_PIECE bytes (no copies); a fresh iterator per attempt. */
function* pieces(body: Buffer): Generator<Buffer> {
  for (let at = 0; at < body.length; at += BODY_PIECE) yield body.subarray(at, Math.min(body.length, at + BODY_PIECE))
}

/**
 * The end of the chain. Graph API calls go through undici's fetch over the shared
 * dispatcher; transfers (`policy.raw`: upload fragments and downloads) go
 * through the dispatcher's request() directly, which moves bulk bytes with less CPU
 * than fetch's web streams (measured: upload throughput ratio 0.65 -> see bench);
 * a download that reads to the end of the file (`policy.bulk`) goes through
 * bulk-get.ts on a connection of its own. Redirects are never followed.
 */
export class FetchHandler implements Middleware {
  constructor(private readonly dispatcher: Dispatcher | undefined, private readonly defaultTimeoutMs: number) {}

  async execute(ctx: Context): Promise<void> {
    const policy = policyOf(ctx)
    if (policy.raw && this.dispatcher) return this.#raw(ctx, policy)
    return this.#fetch(ctx)
  }

  /** The caller's signal with the per-attempt timeout (timeoutMs 0: none; idle sockets still time out). */
  #signal(policy: RequestPolicy): AbortSignal | undefined {
    const ms = policy.timeoutMs ?? this.defaultTimeoutMs
    const timeout = ms > 0 ? AbortSignal.timeout(ms) : undefined
    const signals = [policy.signal, timeout].filter((s): s is AbortSignal => s !== undefined)
    return signals.length > 1 ? AbortSignal.any(signals) : signals[0]
  }

  async #raw(ctx: Context, policy: RequestPolicy): Promise<void> {
    const url = new URL(typeof ctx.request === 'string' ? ctx.request : ctx.request.url)
    const o = ctx.options ?? {}
    const signal = this.#signal(policy)
    const method = (o.method ?? 'GET').toUpperCase()
    const connect = policy.bulk && method === 'GET' && o.body == null ? connectOptionsOf(this.dispatcher) : undefined
    if (connect) {
      const a = await bulkGet({ url, headers: o.headers as Record<string, string>, signal, connect })
      ctx.response = await answer(a.status, a.headers, a.body)
      return
    }
    let sendHeaders = o.headers as Record<string, string>
    let sendBody = o.body as Buffer | PiecedBody | undefined
    let pieced: Iterable<Buffer> | AsyncIterable<Buffer> | undefined
    const withLength = (n: number) => {
      sendHeaders = Object.fromEntries(Object.entries(sendHeaders).filter(([k]) => k.toLowerCase() !== 'content-length'))
      sendHeaders['content-length'] = String(n)
    }
    if (isPiecedBody(sendBody)) {
      withLength(sendBody.length)
      pieced = sendBody
      sendBody = undefined
    } else if (sendBody instanceof Uint8Array && sendBody.length > BODY_PIECE) {
      // A large body given whole goes out in pieces too, each written when the socket
      // has room: written whole, all of it is encrypted before its first byte leaves,
      // and the service waits meanwhile (measured: 10 MiB fragments at 0.65x the
      // throughput of the same bytes in 256 KiB pieces, docs/performance.md).
      withLength(sendBody.length)
      pieced = pieces(sendBody)
      sendBody = undefined
    }
    const r = await this.dispatcher!.request({
      origin: url.origin,
      path: url.pathname + url.search,
      method: method as Dispatcher.HttpMethod,
      headers: sendHeaders,
      // undici writes an iterable body piece by piece, waiting for 'drain' (its typings omit iterables).
      body: pieced ? (pieced as unknown as Readable) : sendBody,
      signal,
      highWaterMark: 1 << 20, // fewer, larger chunks for bulk bodies
    })
    const headers: [string, string][] = []
    for (const [k, v] of Object.entries(r.headers)) {
      if (Array.isArray(v)) for (const x of v) headers.push([k, x])
      else if (v !== undefined) headers.push([k, String(v)])
    }
    if (policy.stream) {
      ctx.response = await answer(r.statusCode, headers, r.body as unknown as Readable)
      return
    }
    // Nobody streams this body (an upload fragment's answer): read it here, into one
    // Response, instead of a web stream over the Node stream that buffered() would then
    // read into a second Response (a fragment's answer waited ~0.5 ms for that).
    const bytes = Buffer.from(await r.body.arrayBuffer())
    const { Response } = await web()
    const res = new Response(nullBodyStatus(r.statusCode) || r.statusCode < 200 ? null : bytes, { status: r.statusCode, headers: await webHeaders(headers) })
    inMemory.add(res)
    ctx.response = res
  }

  async #fetch(ctx: Context): Promise<void> {
    const url = typeof ctx.request === 'string' ? ctx.request : ctx.request.url
    const o = ctx.options ?? {}
    const signal = this.#signal(policyOf(ctx))
    let body = o.body as unknown
    if (isPiecedBody(body)) {
      // Without a dispatcher of its own (fetch alone): gathered first.
      const all: Buffer[] = []
      for await (const piece of body) all.push(piece) // views into distinct regions: concat copies them once
      body = Buffer.concat(all)
    }
    const init: Record<string, unknown> = {
      method: o.method ?? 'GET',
      headers: o.headers,
      body,
      redirect: 'manual',
      signal,
    }
    if (this.dispatcher) init.dispatcher = this.dispatcher
    ctx.response = await (await web()).fetch(url, init as RequestInit)
  }
}
