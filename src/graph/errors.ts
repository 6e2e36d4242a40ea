/**
 * GraphError: the one error type the graph layer raises. It carries what a caller
 * needs to decide (HTTP status, Graph code, the deepest inner code, request id,
 * Retry-After) and is classified by code, never by message (docs/graph-service.md §9).
 * The errno chosen for the mount is decided in src/vfs/errors.ts, not here.
 */
import { OdfsError, type LogLevelName } from '../common/index.js'

export type GraphErrorKind =
  | 'notFound'
  | 'nameConflict'
  | 'modified' // eTag/If-Match mismatch or resourceModified
  | 'throttled'
  | 'unavailable'
  | 'unauthenticated'
  | 'accessDenied'
  | 'quotaExceeded'
  | 'invalidName'
  | 'pathTooLong'
  | 'resyncRequired'
  | 'invalidRange'
  | 'tooLarge'
  | 'locked'
  | 'hashMismatch'
  | 'network'
  | 'timeout' // the call's deadline passed before an answer
  | 'local' // a condition on this machine or in the request itself: no retry can help
  | 'serverError'
  | 'badRequest'
  | 'other'

/** Codes (outer or inner, case-insensitive) and the kind each means. Inner codes are checked first. */
const CODE_KINDS: Record<string, GraphErrorKind> = {
  itemnotfound: 'notFound',
  uploadsessionnotfound: 'notFound',
  namealreadyexists: 'nameConflict',
  similarrelationshipnamealreadyexists: 'nameConflict',
  upload_name_conflict: 'nameConflict',
  resourcemodified: 'modified',
  entitytagdoesnotmatch: 'modified',
  changedduringread: 'modified',
  activitylimitreached: 'throttled',
  throttledrequest: 'throttled',
  toomanyrequests: 'throttled',
  servicenotavailable: 'unavailable',
  invalidauthenticationtoken: 'unauthenticated',
  unauthenticated: 'unauthenticated',
  expiredtoken: 'unauthenticated',
  accessdenied: 'accessDenied',
  notallowed: 'accessDenied',
  quotalimitreached: 'quotaExceeded',
  insufficientstorage: 'quotaExceeded',
  invalidpath: 'invalidName',
  invalidname: 'invalidName',
  pathistoolong: 'pathTooLong',
  pathtoodeep: 'pathTooLong',
  resyncrequired: 'resyncRequired',
  resyncchangesapplydifferences: 'resyncRequired',
  resyncchangesuploaddifferences: 'resyncRequired',
  resyncapplydifferences: 'resyncRequired',
  resyncuploaddifferences: 'resyncRequired',
  syncstatenotfound: 'resyncRequired',
  invalidrange: 'invalidRange',
  fragmentoverlap: 'invalidRange',
  fragmentoutoforder: 'invalidRange',
  maxfilesizeexceeded: 'tooLarge',
  maxfragmentlengthexceeded: 'tooLarge',
  hashmismatch: 'hashMismatch',
  networkerror: 'network',
  deadlineexceeded: 'timeout',
  generalexception: 'serverError',
}

const STATUS_KINDS: Record<number, GraphErrorKind> = {
  400: 'badRequest', 401: 'unauthenticated', 403: 'accessDenied', 404: 'notFound', 409: 'nameConflict',
  410: 'resyncRequired', 412: 'modified', 413: 'tooLarge', 416: 'invalidRange', 423: 'locked', 429: 'throttled',
  503: 'unavailable', 507: 'quotaExceeded',
}

export interface GraphErrorInit {
  status: number
  code: string
  message: string
  innerCodes?: string[]
  requestId?: string
  retryAfterMs?: number
  method?: string
  /** Where the request went, without query string (never an upload/download URL's secrets). */
  route?: string
  attempts?: number
  exhausted?: boolean
  cause?: unknown
  details?: Record<string, unknown>
  level?: LogLevelName
  /**
   * The failure is local (not a file, the source changed, an invalid base URL), not
   * the network's: status 0 then does not mean "no answer arrived", and it is never retried.
   */
  local?: boolean
}

export class GraphError extends OdfsError {
  /** HTTP status; 0 when no response arrived (network failure). */
  readonly status: number
  /** Inner codes from outermost to deepest. */
  readonly innerCodes: string[]
  readonly requestId: string | undefined
  readonly retryAfterMs: number | undefined
  readonly method: string | undefined
  readonly route: string | undefined
  /** Attempts made (1 = no retry). */
  readonly attempts: number
  /** True when the request was retryable but the retry budget ran out. */
  readonly exhausted: boolean
  /** A local condition, not a failure of the service or the network (see GraphErrorInit.local). */
  readonly local: boolean

  constructor(init: GraphErrorInit) {
    super(init.code, init.message, {
      cause: init.cause,
      details: init.details,
      level: init.level ?? (init.status === 404 ? 'debug' : 'warn'),
    })
    this.status = init.status
    this.innerCodes = init.innerCodes ?? []
    this.requestId = init.requestId
    this.retryAfterMs = init.retryAfterMs
    this.method = init.method
    this.route = init.route
    this.attempts = init.attempts ?? 1
    this.exhausted = init.exhausted ?? false
    this.local = init.local ?? false
  }

  /** The deepest inner code, or undefined when the error had none. */
  get innerCode(): string | undefined {
    return this.innerCodes[this.innerCodes.length - 1]
  }

  /** What this error means, decided from the deepest known code, then the outer code, then the status. */
  classify(): GraphErrorKind {
    for (let i = this.innerCodes.length - 1; i >= 0; i--) {
      const k = CODE_KINDS[this.innerCodes[i]!.toLowerCase()]
      if (k) return k
    }
    const k = CODE_KINDS[this.code.toLowerCase()]
    if (k) return k
    if (this.local) return 'local'
    if (this.status === 0) return 'network'
    if (STATUS_KINDS[this.status]) return STATUS_KINDS[this.status]!
    if (this.status >= 500) return 'serverError'
    return 'other'
  }

  /** True when this error (or any of its codes) is of kind `kind`. */
  is(kind: GraphErrorKind): boolean {
    return this.classify() === kind
  }
}

export function isGraphError(e: unknown): e is GraphError {
  return e instanceof GraphError
}

/** A network failure (no answer, or an answer cut short) that a retry may cure; never a local condition. */
export function isNetworkError(e: unknown): e is GraphError {
  return e instanceof GraphError && e.classify() === 'network'
}

/** Collect the nested inner codes of a Graph error body (`innerError` or `innererror`, any depth). */
export function innerCodesOf(error: unknown): string[] {
  const codes: string[] = []
  let cur: unknown = error
  for (let depth = 0; depth < 16 && cur && typeof cur === 'object'; depth++) {
    const obj = cur as Record<string, unknown>
    const key = Object.keys(obj).find((k) => k.toLowerCase() === 'innererror')
    if (!key) break
    const inner = obj[key]
    if (inner && typeof inner === 'object') {
      const code = (inner as Record<string, unknown>).code
      if (typeof code === 'string' && code) codes.push(code)
    }
    cur = inner
  }
  return codes
}

/**
 * Parse Retry-After (integer seconds or an HTTP date) into milliseconds from `now`.
 * Undefined when absent or unparsable.
 */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (value == null) return undefined
  const v = value.trim()
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000)
  const at = Date.parse(v)
  if (Number.isNaN(at)) return undefined
  return Math.max(0, at - now)
}

/** Build a GraphError from a non-2xx response (reads the body; never puts URLs with secrets in the message). */
export async function graphErrorFromResponse(
  res: Response,
  ctx: { method: string; route: string; now: number; attempts?: number; exhausted?: boolean },
): Promise<GraphError> {
  let text = ''
  try {
    text = await res.text()
  } catch {
    // body lost: the status still classifies the error
  }
  let code = `http${res.status}`
  // Route labels normally start with their method already ("PUT {uploadUrl}").
  const where = ctx.route.startsWith(`${ctx.method} `) ? ctx.route : `${ctx.method} ${ctx.route}`
  let message = `${where} failed with HTTP ${res.status}`
  let innerCodes: string[] = []
  let requestId = res.headers.get('request-id') ?? res.headers.get('x-ms-request-id') ?? undefined
  try {
    const body = JSON.parse(text) as Record<string, unknown>
    const errKey = Object.keys(body).find((k) => k.toLowerCase() === 'error')
    const err = errKey ? body[errKey] : undefined
    if (err && typeof err === 'object') {
      const e = err as Record<string, unknown>
      if (typeof e.code === 'string' && e.code) code = e.code
      if (typeof e.message === 'string' && e.message) message = `${e.message} (${where}: HTTP ${res.status})`
      innerCodes = innerCodesOf(e)
      const ie = Object.entries(e).find(([k]) => k.toLowerCase() === 'innererror')?.[1] as Record<string, unknown> | undefined
      if (!requestId && ie && typeof ie['request-id'] === 'string') requestId = ie['request-id'] as string
    } else if (typeof err === 'string') {
      // OAuth-style or legacy error bodies
      code = err
    }
  } catch {
    // not JSON
  }
  const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), ctx.now)
  if ((res.status === 429 || res.status === 503) && retryAfterMs !== undefined) {
    message += `; throttled for ${Math.ceil(retryAfterMs / 1000)} s`
  }
  return new GraphError({
    status: res.status,
    code,
    message,
    innerCodes,
    requestId,
    retryAfterMs,
    method: ctx.method,
    route: ctx.route,
    attempts: ctx.attempts,
    exhausted: ctx.exhausted,
  })
}
