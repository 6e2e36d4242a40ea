/**
 * Structured logging through pino. Redaction is decided once, here, for every
 * logger odfs creates, by what is secret rather than by where it sits: every
 * logged object (and child binding) is copied with
 *
 * - the value of a credential-named field replaced at any depth: tokens (access,
 *   refresh, id), client secrets and assertions, passwords, Authorization and
 *   Cookie headers, device codes, PKCE verifiers, pre-authenticated URLs
 *   (`@microsoft.graph.downloadUrl`, `downloadUrl`, `uploadUrl`);
 * - `code` replaced only where it is an OAuth authorization code (an object that
 *   also carries grant_type, redirect_uri, code_verifier, state or client_id),
 *   so error codes such as `itemNotFound` stay readable;
 * - every string, the message and error messages and stacks included, passed
 *   through `scrubSecrets`: bearer tokens, JWTs, credential query and form
 *   parameters (`tempauth=`, `sig=`, `token=`, `access_token=`, `?code=`...) and
 *   the path of personal OneDrive content URLs (their credential is in the path).
 *
 * Errors are logged as {type, message, code, stack, cause, ...own fields},
 * scrubbed the same way. The finished line is parsed and redacted once more, which
 * covers child bindings and the message.
 */
import pino, { type Logger, type DestinationStream } from 'pino'

export type { Logger } from 'pino'

export const REDACTED = '<redacted>'

/** Field names (compared lower-case, without `_`, `-`, `.`, `@`) whose values are never written. */
const SECRET_KEYS = new Set([
  'accesstoken', 'refreshtoken', 'idtoken', 'token', 'bearertoken',
  'secret', 'clientsecret', 'clientassertion', 'assertion', 'password', 'passwd',
  'authorization', 'proxyauthorization', 'cookie', 'setcookie',
  'devicecode', 'codeverifier',
  'microsoftgraphdownloadurl', 'contentdownloadurl', 'downloadurl', 'uploadurl', 'tempauth', 'sig',
])

/** Sibling fields that make a `code` field an OAuth authorization code. */
const OAUTH_CONTEXT = ['grant_type', 'redirect_uri', 'code_verifier', 'state', 'client_id']

function normalizeKey(key: string): string {
  return key.toLowerCase().replace(/[-_.@]/g, '')
}

/** True when the field `key` of `holder` holds a credential. */
export function isSecretField(key: string, holder?: Record<string, unknown>): boolean {
  const k = normalizeKey(key)
  if (SECRET_KEYS.has(k)) return true
  if (k === 'code' && holder) return OAUTH_CONTEXT.some((c) => c in holder)
  return false
}

const CREDENTIAL_PARAMS = 'access_token|refresh_token|id_token|client_secret|client_assertion|device_code|code_verifier|password|tempauth|token|sig'

const SECRET_PATTERNS: [RegExp, string][] = [
  // bearer tokens and JWT-shaped strings
  [/\b(Bearer\s+)[A-Za-z0-9\-._~+/]+=*/gi, `$1${REDACTED}`],
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, '<redacted-jwt>'],
  // personal OneDrive content hosts (download *.files.1drv.com, upload *.up.1drv.com) carry the credential in the path
  [/(\bhttps?:\/\/[A-Za-z0-9.-]*\.1drv\.com)\/[^\s"'<>]+/gi, `$1/${REDACTED}`],
  // query and form parameters that carry credentials
  [new RegExp(`((?:^|[?&#\\s"'])(?:${CREDENTIAL_PARAMS})=)[^&#\\s"'<>]+`, 'gi'), `$1${REDACTED}`],
  // an authorization code: only as a query or form parameter
  [/([?&#]code=)[^&#\s"'<>]+/gi, `$1${REDACTED}`],
  // JSON fields in text (a response body quoted in a message)
  [/("(?:access_token|refresh_token|id_token|client_secret|secret|device_code|@microsoft\.graph\.downloadUrl|@content\.downloadUrl|downloadUrl|uploadUrl)"\s*:\s*")[^"]*"/gi, `$1${REDACTED}"`],
]

/** Remove anything credential-shaped from free text (URLs, bodies, error messages). */
export function scrubSecrets(text: string): string {
  let out = text
  for (const [re, rep] of SECRET_PATTERNS) out = out.replace(re, rep)
  return out
}

const MAX_DEPTH = 10

/** A copy of `value` fit for a log: credential fields replaced, strings scrubbed, errors made plain. */
export function redactForLog(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return scrubSecrets(value)
  if (value === null || typeof value !== 'object') return value
  if (seen.has(value)) return '[Circular]'
  if (depth >= MAX_DEPTH) return '[Object]'
  seen.add(value)
  try {
    if (value instanceof URL) return scrubSecrets(value.href)
    if (value instanceof Date) return value
    if (ArrayBuffer.isView(value)) return `<${value.byteLength} bytes>`
    if (Array.isArray(value)) return value.map((v) => redactForLog(v, depth + 1, seen))
    if (value instanceof Error) return redactError(value, depth, seen)
    let entries: [string, unknown][]
    if (value instanceof Map) entries = [...value.entries()].map(([k, v]) => [String(k), v])
    else if (typeof (value as { entries?: unknown }).entries === 'function' && typeof (value as Headers).get === 'function') {
      entries = [...(value as Headers).entries()]
    } else entries = Object.entries(value)
    const holder = Object.fromEntries(entries)
    const out: Record<string, unknown> = {}
    for (const [k, v] of entries) out[k] = isSecretField(k, holder) && v !== undefined && v !== null && v !== '' ? REDACTED : redactForLog(v, depth + 1, seen)
    return out
  } finally {
    seen.delete(value)
  }
}

function redactError(e: Error, depth: number, seen: WeakSet<object>): Record<string, unknown> {
  const out: Record<string, unknown> = { type: e.name, message: scrubSecrets(e.message) }
  const own = redactForLog(Object.fromEntries(Object.entries(e)), depth + 1, seen) as Record<string, unknown>
  for (const [k, v] of Object.entries(own)) if (k !== 'name' && k !== 'message' && k !== 'stack') out[k] = v
  if (e.stack) out.stack = scrubSecrets(e.stack)
  if (e.cause !== undefined) out.cause = redactForLog(e.cause, depth + 1, seen)
  return out
}

/** Redact one serialized log line (JSON and a newline). */
function redactLine(line: string): string {
  try {
    return JSON.stringify(redactForLog(JSON.parse(line))) + '\n'
  } catch {
    return scrubSecrets(line)
  }
}

export interface LogOptions {
  level?: string
  name?: string
  destination?: DestinationStream
}

export function createLogger(opts: LogOptions = {}): Logger {
  return pino(
    {
      name: opts.name ?? 'odfs',
      level: opts.level ?? process.env.ODFS_LOG_LEVEL ?? 'info',
      base: { pid: process.pid },
      // Errors, headers and forms become plain, redacted objects before pino serializes them...
      formatters: { log: (obj) => redactForLog(obj) as Record<string, unknown> },
      serializers: { err: (e: unknown) => e },
      // ...and the finished line (child bindings and the message included) is redacted once more.
      hooks: { streamWrite: redactLine },
    },
    opts.destination ?? pino.destination({ dest: 2, sync: true }),
  )
}

/** A logger that drops everything: the default for library code used without one. */
export const silentLogger: Logger = pino({ level: 'silent' })
