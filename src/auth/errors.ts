/**
 * Typed sign-in errors. Classify by `code`, never by message. Messages never
 * carry a token, a code or a secret: they name the setting to fix or the command
 * to run.
 */
import { OdfsError, type OdfsErrorOptions } from '../common/index.js'

export type AuthErrorCode =
  /** No usable sign-in (never logged in, logged out, or the refresh token expired). */
  | 'NEEDS_LOGIN'
  /** The grant was revoked (password change, admin or user revocation, consent withdrawn). */
  | 'REVOKED'
  /** The client secret (or client id) was rejected by the identity platform. */
  | 'INVALID_CLIENT'
  /** The account may not use this app registration (wrong tenant, personal vs work). */
  | 'ACCOUNT_NOT_ALLOWED'
  /** The user declined, or the device code expired, during `odfs login`. */
  | 'LOGIN_FAILED'
  /** The identity platform could not be reached. */
  | 'AUTH_NETWORK'
  /** The token store (keychain or file) refused or is unsafe. */
  | 'TOKEN_STORE'

export class AuthError extends OdfsError {
  declare readonly code: AuthErrorCode
  constructor(code: AuthErrorCode, message: string, opts: OdfsErrorOptions = {}) {
    super(code, message, opts)
  }
}

export const RELOGIN_HINT = 'run `odfs login` again'
