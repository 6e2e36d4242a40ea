/**
 * The token provider the Graph layer calls for every request. It implements
 * graph's `TokenProvider` shape structurally
 * (`getAccessToken(opts?: { forceRefresh?; signal? }): Promise<string>`).
 *
 * - Returns the cached access token while it has more than `refreshMarginMs`
 *   left (by the injected clock), otherwise refreshes through msal with the
 *   refresh token. Concurrent callers share one refresh; other processes are
 *   kept out by the token cache lock, and a process that waited for it takes the
 *   token the holder just obtained instead of rotating the refresh token again.
 * - A transient failure (network, 5xx) while the current token is still valid
 *   returns the current token; otherwise it raises AuthError AUTH_NETWORK.
 * - A permanent failure (revoked, expired, consent withdrawn) raises AuthError
 *   NEEDS_LOGIN / REVOKED whose message says to run `odfs login` again.
 * - Given a token read from the cache without msal (`cached`, see
 *   cached-token.ts), it starts with that one, and msal (`app`, then a loader) is
 *   loaded only when a refresh is due.
 * - `startKeepAlive()` refreshes at least every `keepAliveMs` (default 24 h) so a
 *   long-running, idle mount never lets its refresh token die of inactivity
 *   (they expire after about 90 days unused); each refresh rotates it.
 */
import type { AccountInfo, AuthenticationResult } from '@azure/msal-node'
import { systemClock, silentLogger, type Clock, type Logger } from '../common/index.js'
import type { GatewayConfig } from '../config/index.js'
import { AuthError, RELOGIN_HINT } from './errors.js'
import type { CachedAccessToken } from './cached-token.js'
import { isPermanentAuthError, toAuthError, type MsalApp } from './msal.js'

/** How long before its expiry a token is refreshed, unless told otherwise. */
export const REFRESH_MARGIN_MS = 5 * 60_000

export interface GetAccessTokenOptions {
  forceRefresh?: boolean
  signal?: AbortSignal
}

export interface MsalTokenProviderOptions {
  /** The msal application, or its loader (called on the first refresh). */
  app: MsalApp | (() => Promise<MsalApp>)
  config: GatewayConfig
  /** The signed-in account (see `findSignedInAccount`); taken from `cached` when that is given. */
  account?: AccountInfo
  /** The access token read from the cache without msal (cachedAccessToken). */
  cached?: CachedAccessToken
  clock?: Clock
  log?: Logger
  /** Refresh this long before expiry (default 5 min). */
  refreshMarginMs?: number
  /** Refresh at least this often while keep-alive runs (default 24 h). */
  keepAliveMs?: number
}

export class MsalTokenProvider {
  #app: MsalApp | (() => Promise<MsalApp>)
  readonly #config: GatewayConfig
  #account: AccountInfo
  readonly #clock: Clock
  readonly #log: Logger
  readonly #margin: number
  readonly #keepAliveMs: number
  #token?: string
  #expiresAt = 0
  #scopes: string[] = []
  #lastRefresh = 0
  #inflight?: Promise<string>
  #keepAlive?: AbortController
  /** The account came from the cache read without msal: take msal's own on its first use. */
  #accountFromCache = false
  /** Number of refreshes that went to msal (for tests and metrics). */
  refreshCount = 0

  constructor(opts: MsalTokenProviderOptions) {
    this.#app = opts.app
    this.#config = opts.config
    this.#clock = opts.clock ?? systemClock
    this.#log = opts.log ?? silentLogger
    this.#margin = opts.refreshMarginMs ?? REFRESH_MARGIN_MS
    this.#keepAliveMs = opts.keepAliveMs ?? 24 * 3600_000
    const account = opts.cached?.account ?? opts.account
    if (!account) throw new TypeError('MsalTokenProvider needs an account or a cached token')
    this.#account = account
    if (opts.cached) {
      this.#accountFromCache = true
      this.#use(opts.cached.accessToken, opts.cached.expiresOn, opts.cached.scopes)
    }
  }

  /** Take `token` as the current one (its expiry in wall-clock time, kept as remaining lifetime on our clock). */
  #use(token: string, expiresOn: Date | null, scopes: string[]): void {
    const remaining = expiresOn ? expiresOn.getTime() - Date.now() : 3600_000
    this.#token = token
    this.#expiresAt = this.#clock.now() + remaining
    this.#scopes = scopes
    this.#lastRefresh = this.#clock.now()
  }

  /** The msal application, loaded on first use; the account then becomes msal's own. */
  async #msal(): Promise<MsalApp> {
    if (typeof this.#app === 'function') this.#app = await this.#app()
    const app = this.#app
    if (this.#accountFromCache) {
      const home = this.#account.homeAccountId
      const mine = (await app.getTokenCache().getAllAccounts()).find((a) => a.homeAccountId === home)
      if (mine) this.#account = mine
      this.#accountFromCache = false
    }
    return app
  }

  get account(): AccountInfo {
    return this.#account
  }

  /** Expiry of the current access token (ms since epoch), 0 if none yet. */
  get expiresAt(): number {
    return this.#expiresAt
  }

  get scopes(): string[] {
    return [...this.#scopes]
  }

  async getAccessToken(opts: GetAccessTokenOptions = {}): Promise<string> {
    opts.signal?.throwIfAborted()
    if (!opts.forceRefresh && this.#token && this.#clock.now() < this.#expiresAt - this.#margin) return this.#token
    const p = this.#inflight ?? this.#startRefresh(opts.forceRefresh === true || this.#token !== undefined)
    if (!opts.signal) return p
    // The caller may give up; the shared refresh carries on for the others.
    return new Promise<string>((resolve, reject) => {
      const onAbort = () => reject(opts.signal!.reason)
      opts.signal!.addEventListener('abort', onAbort, { once: true })
      p.then(resolve, reject).finally(() => opts.signal!.removeEventListener('abort', onAbort))
    })
  }

  /** The full msal result of the most recent acquisition (for `odfs status`). */
  async acquire(forceRefresh = false): Promise<AuthenticationResult> {
    return this.#acquire(forceRefresh)
  }

  #startRefresh(force: boolean): Promise<string> {
    const p = (async () => {
      try {
        const r = await this.#acquire(force)
        return r.accessToken
      } catch (e) {
        const err = toAuthError(e, this.#config, 'token refresh')
        if (!isPermanentAuthError(err) && this.#token && this.#clock.now() < this.#expiresAt) {
          this.#log.warn({ code: err.code }, `token refresh failed, using the current token until it expires: ${err.message}`)
          return this.#token
        }
        this.#log[err.level]({ code: err.code }, err.message)
        throw err
      } finally {
        this.#inflight = undefined
      }
    })()
    this.#inflight = p
    return p
  }

  async #acquire(force: boolean): Promise<AuthenticationResult> {
    this.refreshCount++
    let r: AuthenticationResult | null
    try {
      const app = await this.#msal()
      const lock = app.withCacheLock
      const request = { account: this.#account, scopes: this.#config.scopes }
      if (lock && force && this.#token) {
        // The cache is shared with other processes: one of them may have refreshed
        // while we waited for the lock; take its token rather than rotate again.
        r = await lock(async () => {
          const cached = await app.acquireTokenSilent({ ...request, forceRefresh: false }).catch(() => null)
          if (cached?.accessToken && cached.accessToken !== this.#token) return cached
          return app.acquireTokenSilent({ ...request, forceRefresh: true })
        })
      } else {
        r = await app.acquireTokenSilent({ ...request, forceRefresh: force })
      }
    } catch (e) {
      throw toAuthError(e, this.#config, 'token refresh')
    }
    if (!r?.accessToken) throw new AuthError('NEEDS_LOGIN', `no access token could be obtained; ${RELOGIN_HINT}`)
    this.#use(r.accessToken, r.expiresOn, r.scopes)
    if (r.account) this.#account = r.account
    this.#log.debug({ expiresInSec: Math.round((this.#expiresAt - this.#clock.now()) / 1000) }, 'access token acquired')
    return r
  }

  /**
   * Refresh at least every keepAliveMs until stopKeepAlive(). `onFatal` hears a
   * permanent failure (the mount should tell the user to sign in again).
   */
  startKeepAlive(onFatal?: (e: AuthError) => void): void {
    if (this.#keepAlive) return
    const ac = new AbortController()
    this.#keepAlive = ac
    void (async () => {
      while (!ac.signal.aborted) {
        const due = this.#lastRefresh + this.#keepAliveMs - this.#clock.now()
        try {
          await this.#clock.sleep(Math.max(due, 1000), ac.signal)
        } catch {
          return
        }
        if (this.#clock.now() - this.#lastRefresh < this.#keepAliveMs) continue
        try {
          await this.getAccessToken({ forceRefresh: true })
          this.#log.info('refresh token renewed (keep-alive)')
        } catch (e) {
          const err = e as AuthError
          if (err instanceof AuthError && isPermanentAuthError(err)) {
            onFatal?.(err)
            return
          }
          // transient: try again after a short while
          this.#lastRefresh = this.#clock.now() - this.#keepAliveMs + 10 * 60_000
        }
      }
    })()
  }

  stopKeepAlive(): void {
    this.#keepAlive?.abort()
    this.#keepAlive = undefined
  }
}

/** The account signed in for this gateway, or AuthError NEEDS_LOGIN. */
export async function findSignedInAccount(app: MsalApp, config: Pick<GatewayConfig, 'clientId' | 'source' | 'accountTypes' | 'tenant'>): Promise<AccountInfo> {
  let accounts: AccountInfo[]
  try {
    accounts = await app.getTokenCache().getAllAccounts()
  } catch (e) {
    throw toAuthError(e, { ...config, secret: undefined }, 'token refresh')
  }
  const a = accounts[0]
  if (!a) throw new AuthError('NEEDS_LOGIN', `not signed in to OneDrive (client ${config.clientId}): run \`odfs login\``)
  return a
}

export const CREDENTIAL_DATA_TYPE = 'onedrive_user_credential_policies#1.0.0'

/** The seed's OneDriveUserCredentialPolicies document, with the tokens redacted. */
export interface UserCredentialDocument {
  DATA_TYPE: typeof CREDENTIAL_DATA_TYPE
  sub: string
  email: string
  access_token: '<redacted>'
  refresh_token: '<redacted>'
  scopes: string[]
  token_expiry: string
}

export function credentialDocument(account: AccountInfo, scopes: string[], expiresAt: Date): UserCredentialDocument {
  const claims = (account.idTokenClaims ?? {}) as Record<string, unknown>
  const email = typeof claims.email === 'string' ? claims.email : account.username
  return {
    DATA_TYPE: CREDENTIAL_DATA_TYPE,
    sub: String(claims.sub ?? account.localAccountId),
    email,
    access_token: '<redacted>',
    refresh_token: '<redacted>',
    scopes,
    token_expiry: expiresAt.toISOString().replace(/\.\d{3}Z$/, 'Z'),
  }
}

export const PERSONAL_ACCOUNT_TENANT = '9188040d-6c67-4c5b-b112-36a304b66dad'

export function accountKind(account: AccountInfo): 'business' | 'personal' {
  return account.tenantId === PERSONAL_ACCOUNT_TENANT ? 'personal' : 'business'
}
