/**
 * Structured logging through pino. Redaction is configured once, here, for every
 * logger odfs creates: anything that looks like a token, a secret or an
 * Authorization header is replaced before it is written. Secrets must still never
 * be put into log messages (redaction works on fields, not on free text), and
 * `scrubSecrets` is there for the rare text that has to carry a URL or a body.
 */
import pino, { type Logger, type DestinationStream } from 'pino'

export type { Logger } from 'pino'

/** Field paths whose values are never written. */
export const REDACT_PATHS = [
  'secret', '*.secret', 'clientSecret', '*.clientSecret', 'client_secret', '*.client_secret',
  'access_token', '*.access_token', 'accessToken', '*.accessToken',
  'refresh_token', '*.refresh_token', 'refreshToken', '*.refreshToken',
  'id_token', '*.id_token', 'idToken', '*.idToken', 'token', '*.token',
  'password', '*.password', 'code', '*.code_verifier', 'device_code', '*.device_code',
  'authorization', '*.authorization', 'Authorization', '*.Authorization',
  'headers.authorization', '*.headers.authorization', 'req.headers.authorization',
  'uploadUrl', '*.uploadUrl', 'downloadUrl', '*.downloadUrl',
]

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
      redact: { paths: REDACT_PATHS, censor: '<redacted>' },
      base: { pid: process.pid },
    },
    opts.destination ?? pino.destination({ dest: 2, sync: true }),
  )
}

/** A logger that drops everything: the default for library code used without one. */
export const silentLogger: Logger = pino({ level: 'silent' })

const SECRET_PATTERNS: [RegExp, string][] = [
  // bearer tokens and JWT-shaped strings
  [/\b(Bearer\s+)[A-Za-z0-9\-._~+/]+=*/gi, '$1<redacted>'],
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, '<redacted-jwt>'],
  // query parameters and form fields that carry credentials
  [/((?:^|[?&\s"'])(?:access_token|refresh_token|id_token|client_secret|code|device_code|tempauth|token|sig)=)[^&\s"']+/gi, '$1<redacted>'],
  // JSON fields
  [/("(?:access_token|refresh_token|id_token|client_secret|secret|device_code)"\s*:\s*")[^"]*"/gi, '$1<redacted>"'],
]

/** Remove anything credential-shaped from free text (URLs, bodies, error messages). */
export function scrubSecrets(text: string): string {
  let out = text
  for (const [re, rep] of SECRET_PATTERNS) out = out.replace(re, rep)
  return out
}
