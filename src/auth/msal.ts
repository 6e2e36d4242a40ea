/**
 * The msal-node application for a gateway: confidential when a secret is
 * configured, public otherwise. Every request goes through identityExchange
 * (src/auth/http.ts) with the shared undici dispatcher (so `ca_file` is trusted
 * without NODE_EXTRA_CA_CERTS, and redirects are refused),
 * the login host is a known authority (host:port, so msal makes no instance
 * discovery call to Microsoft for a non-Microsoft host), msal's log goes to ours
 * with PII off, and the token cache lives in a TokenStore.
 *
 * msal-node (with jsonwebtoken and semver, ~80 ms of a command's start) is loaded
 * by createMsalApp, on first use: a command whose access token in the cache is
 * still valid never needs it (src/auth/cached-token.ts).
 *
 * Also here: turning msal and identity-platform errors into AuthError with a
 * message that names the setting to fix or says to run `odfs login` again.
 */
import type {
  ConfidentialClientApplication, PublicClientApplication,
  INetworkModule, NetworkRequestOptions, NetworkResponse, Configuration,
  AuthenticationResult, AuthorizationCodePayload, AuthorizationCodeRequest, RefreshTokenRequest, SilentFlowRequest,
} from '@azure/msal-node'
import type { Dispatcher, Logger } from '../common/index.js'
import { scrubSecrets } from '../common/index.js'
import type { GatewayConfig } from '../config/index.js'
import { AuthError, RELOGIN_HINT } from './errors.js'
import { identityExchange } from './http.js'
import { isAuthorityMetadataUrl, type AuthorityMetadataFile } from './authority-metadata.js'
import { storeCachePlugin, type TokenStore } from './token-store.js'

/** Runs `fn` holding the token cache lock (TokenStore.lock). */
export type CacheLock = <T>(fn: () => Promise<T>) => Promise<T>

/**
 * An msal application. Ours (createMsalApp) hold the token cache lock across
 * every acquisition: msal reads the cache, asks the identity platform and writes
 * the cache back, and another process doing the same in between would lose one
 * of the two writes (a rotated refresh token, a sign-in, a sign-out).
 */
export type MsalApp = (PublicClientApplication | ConfidentialClientApplication) & { withCacheLock?: CacheLock }

/** The acquisitions that read and write the token cache. */
interface Acquirer {
  acquireTokenSilent(r: SilentFlowRequest): Promise<AuthenticationResult>
  acquireTokenByRefreshToken(r: RefreshTokenRequest): Promise<AuthenticationResult | null>
  acquireTokenByCode(r: AuthorizationCodeRequest, p?: AuthorizationCodePayload): Promise<AuthenticationResult>
}

/** `Base` with every cache-writing acquisition run under `withCacheLock` (set right after construction). */
function lockingAcquisitions<B extends new (...args: any[]) => Acquirer>(Base: B) {
  return class extends Base {
    declare withCacheLock: CacheLock
    override acquireTokenSilent(r: SilentFlowRequest): Promise<AuthenticationResult> {
      return this.withCacheLock(() => super.acquireTokenSilent(r))
    }
    override acquireTokenByRefreshToken(r: RefreshTokenRequest): Promise<AuthenticationResult | null> {
      return this.withCacheLock(() => super.acquireTokenByRefreshToken(r))
    }
    override acquireTokenByCode(r: AuthorizationCodeRequest, p?: AuthorizationCodePayload): Promise<AuthenticationResult> {
      return this.withCacheLock(() => super.acquireTokenByCode(r, p))
    }
  }
}

/** msal-node and our locking subclasses of its two applications, loaded once, on first use. */
let msalNode: Promise<{
  msal: typeof import('@azure/msal-node')
  Public: ReturnType<typeof lockingAcquisitions<typeof PublicClientApplication>>
  Confidential: ReturnType<typeof lockingAcquisitions<typeof ConfidentialClientApplication>>
}> | undefined
function loadMsal() {
  return (msalNode ??= import('@azure/msal-node').then((msal) => ({
    msal,
    Public: lockingAcquisitions(msal.PublicClientApplication),
    Confidential: lockingAcquisitions(msal.ConfidentialClientApplication),
  })))
}

/**
 * Token requests are never redirected (src/auth/http.ts). msal hears a refused
 * redirect as an error response with the code REDIRECT_REFUSED (msal replaces
 * errors its network module throws by a bare network_error).
 */
export const REDIRECT_REFUSED = 'odfs_redirect_refused'

/**
 * msal's network module: every request through identityExchange, with the given
 * dispatcher. `onGet` sees every successful GET (the authority's metadata, which
 * createMsalApp keeps between commands) before msal does.
 */
export function identityNetworkModule(dispatcher: Dispatcher | undefined, onGet?: (url: string, text: string) => Promise<void>): INetworkModule {
  async function send<T>(url: string, method: 'GET' | 'POST', options?: NetworkRequestOptions, timeout?: number): Promise<NetworkResponse<T>> {
    const res = await identityExchange(url, { method, headers: options?.headers, body: options?.body, timeoutMs: timeout }, dispatcher)
    if (res.refused) return { headers: {}, body: { error: REDIRECT_REFUSED, error_description: res.refused, error_codes: [] } as T, status: 400 }
    if (method === 'GET' && res.status === 200 && onGet) await onGet(url, res.text)
    let body: unknown
    try {
      body = res.text === '' ? {} : JSON.parse(res.text)
    } catch {
      throw new AuthError('AUTH_NETWORK', `the identity platform at ${new URL(url).origin} answered HTTP ${res.status} with a body that is not JSON`, { level: 'warn' })
    }
    return { headers: res.headers, body: body as T, status: res.status }
  }
  return {
    sendGetRequestAsync: (url, options, timeout) => send(url, 'GET', options, timeout),
    sendPostRequestAsync: (url, options) => send(url, 'POST', options),
  }
}

export interface MsalAppOptions {
  config: GatewayConfig
  store: TokenStore
  dispatcher?: Dispatcher
  log: Logger
  /**
   * Where the authority's metadata is kept between commands, with what was loaded
   * from it (`loaded`, from AuthorityMetadataFile.load): msal then makes no request
   * for it, and what msal fetches otherwise is kept there for the next command.
   */
  authorityMetadata?: { file: AuthorityMetadataFile; loaded: string | undefined }
}

export async function createMsalApp(opts: MsalAppOptions): Promise<MsalApp> {
  const { msal: { LogLevel }, Public, Confidential } = await loadMsal()
  const { config, log } = opts
  const kept = opts.authorityMetadata
  const msalLog = log.child({ component: 'msal' })
  const cfg: Configuration = {
    auth: {
      clientId: config.clientId,
      authority: config.authority,
      knownAuthorities: [new URL(config.loginEndpoint).host],
      ...(kept?.loaded ? { authorityMetadata: kept.loaded } : {}),
      ...(config.secret ? { clientSecret: config.secret } : {}),
    },
    cache: { cachePlugin: storeCachePlugin(opts.store) },
    system: {
      networkClient: identityNetworkModule(opts.dispatcher, kept
        ? async (url, text) => {
            if (isAuthorityMetadataUrl(config.authority, url)) await kept.file.save(config.authority, text)
          }
        : undefined),
      loggerOptions: {
        piiLoggingEnabled: false,
        logLevel: LogLevel.Warning,
        loggerCallback: (level, message) => {
          const m = scrubSecrets(message)
          if (level === LogLevel.Error) msalLog.error(m)
          else if (level === LogLevel.Warning) msalLog.warn(m)
          else msalLog.debug(m)
        },
      },
    },
  }
  const lock: CacheLock = (fn) => opts.store.lock(fn)
  return Object.assign(config.secret ? new Confidential(cfg) : new Public(cfg), { withCacheLock: lock })
}

/** Pieces of an identity platform error response, from msal errors or raw JSON. */
export interface ServerErrorInfo {
  error: string
  description: string
  suberror?: string
  codes: number[]
}

export function serverErrorInfo(e: unknown): ServerErrorInfo | undefined {
  if (!e || typeof e !== 'object') return undefined
  const o = e as Record<string, unknown>
  const error = (o.errorCode ?? o.error) as string | undefined
  if (typeof error !== 'string' || error === '') return undefined
  const description = String(o.errorMessage ?? o.error_description ?? o.message ?? '')
  const codes: number[] = []
  for (const m of description.matchAll(/AADSTS(\d+)/g)) codes.push(Number(m[1]))
  if (Array.isArray(o.error_codes)) for (const c of o.error_codes) if (typeof c === 'number') codes.push(c)
  const suberror = (o.subError ?? o.suberror) as string | undefined
  return { error, description, ...(suberror ? { suberror } : {}), codes }
}

/** The first line of a server description, scrubbed, for a one-line message. */
function brief(desc: string): string {
  const line = scrubSecrets(desc.split(/\r?\n/)[0] ?? '').trim()
  return line.length > 240 ? line.slice(0, 240) + '…' : line
}

const SECRET_CODES = new Set([7000215, 7000222, 7000218, 7000216])
const EXPIRED_CODES = new Set([70008, 700082, 700084, 50089, 50133])
const REVOKED_CODES = new Set([50173, 700009, 65001, 65004, 54005, 50076, 50079])
const WRONG_ACCOUNT_CODES = new Set([50020, 50194, 9002331, 90072, 500200, 500201, 50177, 700054, 50034])
const APP_CODES = new Set([700016, 90002, 90023])

/**
 * Map any error from msal or the identity platform to AuthError. `during`
 * says what was attempted ("sign-in" or "token refresh").
 */
export function toAuthError(e: unknown, config: Pick<GatewayConfig, 'clientId' | 'source' | 'secret' | 'accountTypes' | 'tenant'>, during: 'sign-in' | 'token refresh'): AuthError {
  if (e instanceof AuthError) return e
  const info = serverErrorInfo(e)
  const where = config.source.length ? config.source.at(-1) : 'the gateway configuration'
  if (!info) {
    return new AuthError('AUTH_NETWORK', `${during} failed: ${brief(e instanceof Error ? e.message : String(e))}`, { cause: e, level: 'warn' })
  }
  const { error, codes, description } = info
  if (error === REDIRECT_REFUSED) {
    // msal wraps the description in "Error(s): - Timestamp: … - Description: … - Correlation ID: …"
    const d = /Description: (.*?)(?: - Correlation ID:|$)/s.exec(description)?.[1] ?? description
    return new AuthError('AUTH_NETWORK', `${during} failed: ${d.trim()}`, { cause: e })
  }
  const has = (set: Set<number>) => codes.some((c) => set.has(c))
  // endpoints_resolution_error: msal could not fetch the authority's metadata,
  // which in practice means the login host is unreachable (or not trusted).
  if (error === 'network_error' || error === 'request_timeout' || error === 'endpoints_resolution_error' || (e as Error)?.name === 'AbortError') {
    const cause = (e as { cause?: unknown }).cause
    return new AuthError('AUTH_NETWORK', `${during} failed: cannot reach the identity platform (${brief(description)})`, { cause: cause ?? e, level: 'warn' })
  }
  if (error === 'invalid_client' || has(SECRET_CODES)) {
    const setting = config.secret
      ? `the client secret (setting "secret" in ${where}, or --ms-client-secret) was rejected for client_id ${config.clientId}; create a new secret in the Azure portal (Certificates & secrets) and run odfs gateway update`
      : `the app registration ${config.clientId} requires a client secret: set "secret" (odfs gateway update --ms-client-secret -)`
    return new AuthError('INVALID_CLIENT', `${during} failed: ${setting} (${brief(description)})`, { cause: e })
  }
  if (error === 'unauthorized_client' || has(APP_CODES)) {
    return new AuthError('INVALID_CLIENT', `${during} failed: the identity platform does not accept client_id ${config.clientId} (setting "client_id" in ${where}, or --ms-client-id) for this authority: ${brief(description)}`, { cause: e })
  }
  if (has(WRONG_ACCOUNT_CODES) || error === 'access_denied' && /tenant|account type|personal|organization/i.test(description)) {
    return new AuthError('ACCOUNT_NOT_ALLOWED', `${during} failed: this account may not use the app registration (account_types ${config.accountTypes}${config.tenant ? `, tenant ${config.tenant}` : ''}): ${brief(description)}`, { cause: e })
  }
  if (error === 'authorization_declined' || error === 'access_denied') {
    return new AuthError('LOGIN_FAILED', `${during} failed: the sign-in was declined: ${brief(description)}`, { cause: e })
  }
  if (error === 'expired_token' || error === 'bad_verification_code') {
    return new AuthError('LOGIN_FAILED', `${during} failed: the device code ${error === 'expired_token' ? 'expired before it was used' : 'was not accepted'}; ${RELOGIN_HINT}`, { cause: e })
  }
  if (error === 'invalid_grant' || error === 'interaction_required' || error === 'consent_required' || error === 'login_required') {
    const expired = has(EXPIRED_CODES) || info.suberror === 'bad_token' && /expired|inactiv/i.test(description)
    if (expired && !has(REVOKED_CODES)) {
      return new AuthError('NEEDS_LOGIN', `${during} failed: the sign-in has expired; ${RELOGIN_HINT} (${brief(description)})`, { cause: e })
    }
    return new AuthError('REVOKED', `${during} failed: the grant was revoked or consent withdrawn; ${RELOGIN_HINT} (${brief(description)})`, { cause: e })
  }
  if (error === 'no_tokens_found' || error === 'no_account_in_silent_request' || error === 'no_account_found' || error === 'refresh_token_expired') {
    return new AuthError('NEEDS_LOGIN', `not signed in: ${RELOGIN_HINT}`, { cause: e })
  }
  if (error === 'temporarily_unavailable' || error === 'server_error' || /^5\d\d$/.test(String((e as { status?: number }).status ?? ''))) {
    return new AuthError('AUTH_NETWORK', `${during} failed: the identity platform is unavailable (${brief(description)})`, { cause: e, level: 'warn' })
  }
  return new AuthError('LOGIN_FAILED', `${during} failed: ${error}: ${brief(description)}`, { cause: e })
}

/** True for errors that a retry will not fix (the user has to sign in again or fix config). */
export function isPermanentAuthError(e: AuthError): boolean {
  return e.code === 'NEEDS_LOGIN' || e.code === 'REVOKED' || e.code === 'INVALID_CLIENT' || e.code === 'ACCOUNT_NOT_ALLOWED' || e.code === 'TOKEN_STORE'
}
