/**
 * GraphTransport: builds the middleware chain once and sends requests through it,
 * Graph API paths via the SDK Client, absolute URLs (nextLink, deltaLink, upload and
 * download URLs) directly into the same chain. Everything returns a raw Response;
 * `json()` turns non-2xx answers into GraphError.
 */
import { Client, ResponseType, type Context } from '@microsoft/microsoft-graph-client'
import type { Dispatcher } from 'undici'
import { systemClock, silentLogger, type Clock, type Logger } from '../common/index.js'
import { GraphError, graphErrorFromResponse } from './errors.js'
import {
  AuthMiddleware, DEFAULT_RETRY, FetchHandler, isPiecedBody, newPolicy, RateLimitMiddleware, REQUEST_POLICY, RetryMiddleware,
  type PipelineCounters, type RequestPolicy, type RetryOptions, type TokenProvider,
} from './middleware.js'
import { RateLimiter } from './ratelimit.js'
import { Reachability } from './reachability.js'

export interface TransportOptions {
  /** Graph root including the version, e.g. https://graph.microsoft.com/v1.0 */
  baseUrl: string
  tokenProvider: TokenProvider
  dispatcher?: Dispatcher
  /** Operations per second for this user (policy user_api_rate_limit; default 20). */
  rateLimit?: number
  /** Share one limiter between several clients of the same user. */
  limiter?: RateLimiter
  clock?: Clock
  log?: Logger
  retry?: Partial<RetryOptions>
  /** Per-attempt timeout for API calls (ms, default 30 s). */
  requestTimeoutMs?: number
  /**
   * Default deadline of every Graph API call (ms, default 5 min, for batch commands
   * riding out throttling; the mount passes its own, below fuse-native's timeout; see
   * RequestPolicy.deadlineMs): queueing, attempts and retries included. Content
   * transfers (download and upload-fragment URLs) are bounded by their per-attempt
   * timeout instead unless a call passes its own deadline. A caller bounds one call
   * further with its AbortSignal (e.g. AbortSignal.timeout(12_000) in the mount).
   */
  deadlineMs?: number
  userAgent?: string
}

export interface SendOptions {
  headers?: Record<string, string>
  /**
   * JSON-serialisable object, or raw bytes (sent as application/octet-stream unless
   * Content-Type is given); sendUrl() also takes a PiecedBody.
   */
  body?: unknown
  idempotent?: boolean
  auth?: boolean
  timeoutMs?: number
  signal?: AbortSignal
  /** Route template for logs and errors. */
  label?: string
  /** Bulk transfer (upload fragment, download): sent through the dispatcher's request(). */
  raw?: boolean
  /** The caller streams the answer's body (downloads); otherwise it is read whole inside the retried unit. */
  stream?: boolean
  /** A transfer on a pre-authenticated content URL: no token of the API budget (see RequestPolicy.content). */
  content?: boolean
  /** A streamed GET that reads to the end of a file, on a connection of its own (see RequestPolicy.bulk). */
  bulk?: boolean
  /** Deadline of this request (ms; see TransportOptions.deadlineMs). */
  deadlineMs?: number
}

export interface SendResult {
  res: Response
  policy: RequestPolicy
}

/** A route template from a URL: ids and names replaced, no query (safe to log). */
export function routeOf(method: string, url: string): string {
  try {
    const u = new URL(url)
    const path = u.pathname
      .replace(/\/(drives|items|sites|shares|users|groups)\/[^/:]+/g, '/$1/{id}')
      .replace(/:[^:]*:?/g, ':{path}:')
    return `${method} ${path.length > 120 ? path.slice(0, 120) + '…' : path}`
  } catch {
    return method
  }
}

export class GraphTransport {
  readonly limiter: RateLimiter
  readonly counters: PipelineCounters = { requests: 0, retries: 0, throttled: 0, networkErrors: 0, tokenRefreshes: 0 }
  readonly clock: Clock
  readonly log: Logger
  readonly baseUrl: string
  /** The retry settings of the pipeline (transfers that resume on their own use them too). */
  readonly retry: RetryOptions
  /** Whether the service answers at all (every attempt reports to it). */
  readonly reachability: Reachability
  readonly #head: RetryMiddleware
  readonly #sdk: Client
  readonly #timeoutMs: number
  readonly #userAgent: string
  readonly #deadlineMs: number

  constructor(opts: TransportOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '')
    const m = /^(https?:\/\/[^/]+(?:\/.*)?)\/([^/]+)$/.exec(this.baseUrl)
    if (!m) throw new GraphError({ status: 0, code: 'invalidBaseUrl', message: `graph base URL must end in /VERSION: ${this.baseUrl}`, local: true })
    this.clock = opts.clock ?? systemClock
    this.log = opts.log ?? silentLogger
    this.limiter = opts.limiter ?? new RateLimiter({ rate: opts.rateLimit ?? 20, clock: this.clock })
    this.#timeoutMs = opts.requestTimeoutMs ?? 30_000
    this.#userAgent = opts.userAgent ?? 'ISV|odfs|odfs/0.1'
    this.#deadlineMs = opts.deadlineMs ?? 300_000
    this.retry = { ...DEFAULT_RETRY, ...opts.retry }
    this.reachability = new Reachability(this.clock)
    const retry = new RetryMiddleware(this.limiter, this.clock, this.log, this.counters, this.retry, this.reachability)
    const rate = new RateLimitMiddleware(this.limiter, this.clock)
    const auth = new AuthMiddleware(opts.tokenProvider, this.counters, this.baseUrl + '/')
    const fetcher = new FetchHandler(opts.dispatcher, this.#timeoutMs)
    retry.setNext(rate)
    rate.setNext(auth)
    auth.setNext(fetcher)
    this.#head = retry
    this.#sdk = Client.initWithMiddleware({ middleware: retry, baseUrl: m[1]!, defaultVersion: m[2]! })
  }

  #policy(method: string, url: string, o: SendOptions): RequestPolicy {
    return newPolicy({
      label: o.label ?? routeOf(method, url),
      idempotent: o.idempotent ?? (method === 'GET' || method === 'HEAD' || method === 'DELETE'),
      auth: o.auth ?? true,
      timeoutMs: o.timeoutMs,
      signal: o.signal,
      raw: o.raw,
      stream: o.stream,
      content: o.content ?? false,
      bulk: o.bulk,
      deadlineMs: o.deadlineMs ?? (o.content ? undefined : this.#deadlineMs),
    })
  }

  #headers(o: SendOptions, bodyIsBytes: boolean): Record<string, string> {
    const h: Record<string, string> = { 'User-Agent': this.#userAgent, ...o.headers }
    if (bodyIsBytes && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) {
      // Without this the Graph SDK labels a Buffer as JSON.
      h['Content-Type'] = 'application/octet-stream'
    }
    return h
  }

  /** A Graph API call by path relative to the base (`/me/drive`, `/drives/x/items/y?$select=...`). */
  async send(method: string, path: string, o: SendOptions = {}): Promise<SendResult> {
    if (/^https?:\/\//.test(path)) return this.sendUrl(method, path, o)
    const url = this.baseUrl + path
    const policy = this.#policy(method, url, o)
    const bytes = o.body instanceof Uint8Array
    let req = this.#sdk.api(path).responseType(ResponseType.RAW).option(REQUEST_POLICY as unknown as string, policy)
    req = req.headers(this.#headers(o, bytes))
    try {
      let res: Response
      switch (method) {
        case 'GET': res = await req.get(); break
        case 'POST': res = await req.post(o.body ?? {}); break
        case 'PUT': res = await req.put(o.body ?? Buffer.alloc(0)); break
        case 'PATCH': res = await req.patch(o.body ?? {}); break
        case 'DELETE': res = await req.delete(); break
        default: throw new GraphError({ status: 0, code: 'unsupportedMethod', message: `unsupported method ${method}`, local: true })
      }
      return { res, policy }
    } catch (e) {
      throw this.#networkError(e, method, policy)
    }
  }

  /** A request to an absolute URL, used verbatim (nextLink/deltaLink, upload and download URLs). */
  async sendUrl(method: string, url: string, o: SendOptions = {}): Promise<SendResult> {
    const policy = this.#policy(method, url, o)
    const bytes = o.body instanceof Uint8Array || isPiecedBody(o.body)
    let body: unknown
    if (o.body === undefined || o.body === null) body = undefined
    else if (bytes || typeof o.body === 'string') body = o.body
    else body = JSON.stringify(o.body)
    const headers = this.#headers(o, bytes)
    if (body !== undefined && !bytes && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) {
      headers['Content-Type'] = 'application/json'
    }
    const ctx: Context = { request: url, options: { method, headers, body: body as never } }
    ;(ctx.options as Record<symbol, unknown>)[REQUEST_POLICY] = policy
    try {
      await this.#head.execute(ctx)
    } catch (e) {
      throw this.#networkError(e, method, policy)
    }
    return { res: ctx.response!, policy }
  }

  #networkError(e: unknown, method: string, policy: RequestPolicy): unknown {
    if (e instanceof GraphError) return e
    if (policy.error instanceof GraphError) return policy.error
    if (policy.signal?.aborted) return policy.signal.reason ?? e
    // The SDK wraps thrown errors in its own GraphError; dig out what happened.
    const inner = (e as { body?: unknown })?.body
    const cause = inner instanceof Error ? inner : e
    const detail = cause instanceof Error ? (cause.cause instanceof Error ? `${cause.message}: ${cause.cause.message}` : cause.message) : String(cause)
    return new GraphError({
      status: 0,
      code: 'networkError',
      message: `${policy.label}: ${detail}`,
      method,
      route: policy.label,
      attempts: policy.attempts,
      exhausted: policy.exhausted,
      cause,
    })
  }

  /** Turn a non-2xx response into a GraphError (consumes the body). */
  async errorOf(r: SendResult, method: string): Promise<GraphError> {
    return graphErrorFromResponse(r.res, {
      method,
      route: r.policy.label,
      now: this.clock.now(),
      attempts: r.policy.attempts,
      exhausted: r.policy.exhausted,
    })
  }

  /** Send and parse a JSON answer; non-2xx becomes GraphError. 204 gives undefined. */
  async json<T>(method: string, path: string, o: SendOptions = {}): Promise<T> {
    const r = await this.send(method, path, o)
    if (!r.res.ok) throw await this.errorOf(r, method)
    if (r.res.status === 204) return undefined as T
    const text = await r.res.text()
    return (text ? JSON.parse(text) : undefined) as T
  }
}
