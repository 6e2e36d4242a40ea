/**
 * Composition helper for every command that talks to Graph as the signed-in
 * user (odfs ls/put/get/hash, mount) and for login/logout/status.
 *
 *   import { sessionOptions, openUserSession, type SessionArgv } from '../session.js'
 *   builder: (y) => y.options(sessionOptions) ...
 *   handler: async (argv) => {
 *     const s = await openUserSession(argv)
 *     try { ... s.tokenProvider.getAccessToken() ... s.config.graphBaseUrl ... s.dispatcher ... }
 *     finally { await s.close() }
 *   }
 *
 * `openUserSession(argv)` loads the gateway configuration (files + --ms-*
 * options), opens the token store (keychain, or the 0600 file), finds the
 * signed-in account and checks that a token can be had now, so a command fails
 * at once with "run `odfs login`" instead of at its first Graph call. It returns:
 *   - config: GatewayConfig (graphBaseUrl, userApiRateLimit, caFile ...)
 *   - tokenProvider: MsalTokenProvider, graph's TokenProvider shape
 *     (`getAccessToken({ forceRefresh?, signal? })`); a long-running mount
 *     passes `{ keepAlive: onFatal }` as the second argument (or calls
 *     `tokenProvider.startKeepAlive(onFatal)`) so the refresh token is used
 *     at least daily and never expires while the mount runs
 *   - account: { username, oid, tenantId, kind: 'business' | 'personal' }
 *   - dispatcher: the undici dispatcher trusting ca_file; pass it to fetch and Graph
 *   - log: pino logger (stderr, level from ODFS_LOG_LEVEL)
 *   - close(): stops keep-alive and closes the dispatcher
 */
import { createDispatcher, createLogger, type Dispatcher, type Logger } from '../common/index.js'
import { gatewayOverridesFromArgv, loadGatewayConfig, type GatewayConfig } from '../config/index.js'
import type { SessionArgv } from './options.js'
import {
  accountKind, createMsalApp, findSignedInAccount, lookupUser, MsalTokenProvider, resolveTokenStore,
  type AuthError, type MsalApp, type TokenStore, type TokenStoreMode,
} from '../auth/index.js'

// The options live in options.ts (cheap to load); re-exported for existing importers.
export { sessionOptions, userOption, type SessionArgv } from './options.js'

export interface GatewayContext {
  config: GatewayConfig
  store: TokenStore
  app: MsalApp
  dispatcher: Dispatcher
  log: Logger
}

export interface SessionDeps {
  env?: NodeJS.ProcessEnv
  log?: Logger
  stdin?: NodeJS.ReadableStream
  /** Where the one-time token store warning goes (default stderr). */
  warn?: (m: string) => void
  /** Keychain service (tests). */
  keychainService?: string
  /**
   * Long-running callers (the mount): refresh at least daily so the refresh
   * token never dies of inactivity. The callback hears a permanent failure
   * (AuthError NEEDS_LOGIN / REVOKED: tell the user to run `odfs login`).
   */
  keepAlive?: (err: AuthError) => void
}

/** Config, token store, msal app, dispatcher and logger: what login/logout/status need. */
export async function openGateway(argv: SessionArgv, deps: SessionDeps = {}): Promise<GatewayContext> {
  const env = deps.env ?? process.env
  const log = deps.log ?? createLogger()
  const overrides = await gatewayOverridesFromArgv(argv, deps.stdin)
  const config = await loadGatewayConfig({ configFile: argv.config, overrides, env })
  const user = await lookupUser(argv.user)
  const store = await resolveTokenStore({
    mode: (argv['token-store'] ?? 'auto') as TokenStoreMode,
    config,
    user,
    env,
    ...(deps.keychainService ? { service: deps.keychainService } : {}),
    warn: deps.warn ?? ((m) => process.stderr.write(`odfs: ${m}\n`)),
  })
  const dispatcher = createDispatcher(config.caFile ? { caFile: config.caFile } : {})
  const app = createMsalApp({ config, store, dispatcher, log })
  return { config, store, app, dispatcher, log }
}

export interface UserAccount {
  username: string
  oid: string
  tenantId: string
  kind: 'business' | 'personal'
}

export interface UserSession {
  config: GatewayConfig
  tokenProvider: MsalTokenProvider
  account: UserAccount
  dispatcher: Dispatcher
  log: Logger
  store: TokenStore
  close(): Promise<void>
}

export async function openUserSession(argv: SessionArgv, deps: SessionDeps = {}): Promise<UserSession> {
  const g = await openGateway(argv, deps)
  try {
    const acc = await findSignedInAccount(g.app, g.config)
    const tokenProvider = new MsalTokenProvider({ app: g.app, config: g.config, account: acc, log: g.log })
    await tokenProvider.getAccessToken()
    if (deps.keepAlive) tokenProvider.startKeepAlive(deps.keepAlive)
    const a = tokenProvider.account
    return {
      config: g.config,
      tokenProvider,
      account: { username: a.username, oid: a.localAccountId, tenantId: a.tenantId, kind: accountKind(a) },
      dispatcher: g.dispatcher,
      log: g.log,
      store: g.store,
      async close() {
        tokenProvider.stopKeepAlive()
        await g.dispatcher.close()
      },
    }
  } catch (e) {
    await g.dispatcher.close()
    throw e
  }
}
