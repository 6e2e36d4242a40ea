/**
 * The request/response shapes the Graph handlers work with. Handlers return a
 * `Resp` instead of writing to the socket so that JSON batching can run them too;
 * only content transfers carry streams.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import type { Account } from '../directory.js'
import { EmuError } from '../store/index.js'

export interface Resp {
  status: number
  headers?: Record<string, string>
  json?: unknown
  /** A content body (download); length goes to Content-Length. */
  stream?: { body: Readable; length: number }
  /** A hostile-answer fault to apply to the body on the wire (graph/hostile.ts). */
  damage?: 'malformed' | 'truncated'
}

export interface Ctx {
  method: string
  /**
   * The full request URL, on the origin the request named (`requestOrigin()`):
   * https://127.0.0.1:PORT/v1.0/..., https://localhost:PORT/..., https://graph.microsoft.com/...
   */
  url: URL
  /** Raw (still percent-encoded) path below /v1.0. */
  path: string
  headers: IncomingHttpHeaders
  user: Account
  /** The request body, read whole (JSON endpoints only; capped). */
  body(): Promise<Buffer>
  /** The live request, for content uploads; absent inside $batch. */
  req?: IncomingMessage
  /** Route template for stats, set by the router. */
  route?: string
  /** Delegated permissions of the access token (canonical names, e.g. Files.ReadWrite.All). */
  scopes?: string[]
}

/** The Graph base (`https://host/v1.0`) that links in a response to `ctx` start with. */
export function graphBaseOf(ctx: Ctx): string {
  return `${ctx.url.origin}/v1.0`
}

/**
 * The origin a request named in its Host header, for the links of its response, as the
 * service writes them (docs/emulator/request-host.md); `fallback` (the emulator's own
 * address) unless it is a plain `name[:port]` whose name is one the emulator answers for.
 */
export function requestOrigin(host: string | undefined, names: ReadonlySet<string>, fallback: string): string {
  if (host === undefined || !/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(host)) return fallback
  try {
    const u = new URL(`https://${host}`)
    return names.has(u.hostname) ? u.origin : fallback
  } catch {
    return fallback
  }
}

export function json(status: number, body: unknown, headers?: Record<string, string>): Resp {
  return { status, json: body, headers }
}

export function empty(status: number, headers?: Record<string, string>): Resp {
  return { status, headers }
}

export async function readJson(ctx: Ctx): Promise<Record<string, any>> {
  const b = await ctx.body()
  if (b.length === 0) return {}
  try {
    const v = JSON.parse(b.toString('utf8'))
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object')
    return v
  } catch {
    throw new EmuError(400, 'BadRequest', 'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.')
  }
}

/** The Graph error body (docs/graph-service.md §9). */
export function errorBody(e: EmuError, requestId: string, clientRequestId: string | undefined, now = new Date()): unknown {
  const innerError: Record<string, unknown> = { date: now.toISOString().replace(/\.\d{3}Z$/, ''), 'request-id': requestId, 'client-request-id': clientRequestId ?? requestId }
  if (e.inner) innerError.code = e.inner
  return { error: { code: e.code, message: e.message, innerError } }
}

export function header(ctx: { headers: IncomingHttpHeaders }, name: string): string | undefined {
  const v = ctx.headers[name.toLowerCase()]
  return Array.isArray(v) ? v.join(', ') : v
}

/** Values of `Prefer` headers, lower-cased. */
export function prefers(ctx: { headers: IncomingHttpHeaders }): string[] {
  const v = header(ctx, 'prefer') ?? ''
  return v.split(/[,;]/).map((s) => s.trim().toLowerCase()).filter(Boolean)
}

const ODATA_OPTIONS = new Set(['select', 'expand', 'top', 'skip', 'skiptoken', 'orderby', 'filter', 'count', 'search', 'format'])

/**
 * OneDrive accepts query options with or without `$` but not mixed in one request
 * (docs/graph-service.md §1.2). Returns the request's style ('$' or ''), throws 400 when mixed.
 */
export function optionPrefix(url: URL): '$' | '' {
  let dollar = false
  let bare = false
  for (const k of url.searchParams.keys()) {
    if (k.startsWith('$') && ODATA_OPTIONS.has(k.slice(1).toLowerCase())) dollar = true
    else if (ODATA_OPTIONS.has(k)) bare = true
  }
  if (dollar && bare) throw new EmuError(400, 'invalidRequest', 'Query options must either all have the "$" prefix or none of them.')
  return bare ? '' : '$'
}
