/**
 * The base of every odfs error. Each error has a stable `code` (classify by code,
 * never by message), an optional `cause`, structured `details` and the log level
 * it deserves, decided where it is created (an ENOENT from a lookup is debug, a
 * failed upload is a warning).
 */
export type LogLevelName = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'

export interface OdfsErrorOptions {
  cause?: unknown
  details?: Record<string, unknown>
  level?: LogLevelName
}

export class OdfsError extends Error {
  readonly code: string
  readonly details: Record<string, unknown>
  readonly level: LogLevelName

  constructor(code: string, message: string, opts: OdfsErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = new.target.name
    this.code = code
    this.details = opts.details ?? {}
    this.level = opts.level ?? 'error'
  }
}

export function isOdfsError(e: unknown): e is OdfsError {
  return e instanceof OdfsError
}

/** The message of anything thrown, for one-line reports. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message
  return String(e)
}
