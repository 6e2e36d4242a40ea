/**
 * The composition root of every command that acts for a user (ls, put, get, hash,
 * shared, mount, demo, login, logout, status): each builds what it needs here, in
 * one order, and nowhere else.
 *
 *   argv ─▶ gateway config ─▶ OS user (--user) and its paths ─▶ token store ─▶ msal app
 *        ─▶ token provider (signed-in account) ─▶ Graph drive client ─▶ virtual tree
 *
 *   openContext(argv)      config, user, paths, log: no sign-in (shared list/remove)
 *   openGateway(argv)      + token store, msal app, dispatcher (login, logout, status)
 *   openUserSession(argv)  + token provider and account, checked now: a command fails at
 *                          once with "run `odfs login`" instead of at its first Graph call;
 *                          msal is loaded only if the cached access token is not valid
 *   session.driveClient()  the Graph drive client of the session
 *   withDrive(argv, fn)    session, client and virtual tree for one command; Ctrl-C aborts
 *
 * Everything the environment decides (XDG directories, ODFS_LOG_LEVEL) is read from
 * `deps.env` (default process.env): `odfs demo` hands its own, nothing mutates
 * process.env. A long-running mount passes `keepAlive` so the refresh token is used
 * at least daily and never expires while the mount runs.
 *
 * Command modules load this lazily (in their handler, or from a module that is itself
 * loaded only to run the command): it loads msal, keytar and undici.
 */
import { dirname, resolve } from 'node:path'
import { createDispatcher, createLogger, ensurePrivateDir, type Dispatcher, type Logger } from '../common/index.js'
import { gatewayOverridesFromArgv, loadGatewayConfig, odfsDirs, type GatewayConfig, type OdfsDirs, type OsUser } from '../config/index.js'
import {
  accountKind, AuthorityMetadataFile, cachedAccessToken, createMsalApp, findSignedInAccount, lookupUser, MsalTokenProvider, REFRESH_MARGIN_MS, resolveTokenStore,
  type AuthError, type MsalApp, type TokenStore, type TokenStoreMode,
} from '../auth/index.js'
import { createGraphDriveClient, type DriveClient, type GraphDriveClientOptions } from '../graph/index.js'
import { TreeResolver } from '../vfs/index.js'
import type { SessionArgv } from './options.js'
import { openLinkStore, type LinkStore } from './shared-links.js'

export type { SessionArgv } from './options.js'

export interface SessionDeps {
  /** The environment (XDG directories, ODFS_LOG_LEVEL); default process.env. */
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

export interface UserContext {
  config: GatewayConfig
  /** The OS user acted for (the caller, or --user). */
  user: OsUser
  /** Where odfs keeps this user's files. */
  paths: OdfsDirs
  env: NodeJS.ProcessEnv
  log: Logger
  /** The sharing links this user added with `odfs shared add`, at this gateway. */
  linkStore(): LinkStore
}

/** The OS user a command acts for (the caller, or --user) and where odfs keeps their files. */
export async function actingUser(argv: Pick<SessionArgv, 'user'>, env: NodeJS.ProcessEnv = process.env): Promise<Pick<UserContext, 'user' | 'paths'>> {
  const user = await lookupUser(argv.user)
  return { user, paths: odfsDirs(user, env) }
}

/** Gateway configuration, the user acted for and their paths: no token store, no sign-in. */
export async function openContext(argv: SessionArgv, deps: SessionDeps = {}): Promise<UserContext> {
  const env = deps.env ?? process.env
  const log = deps.log ?? createLogger({ level: env.ODFS_LOG_LEVEL ?? 'info' })
  const overrides = await gatewayOverridesFromArgv(argv, deps.stdin)
  const config = await loadGatewayConfig({ configFile: argv.config, overrides, env })
  const { user, paths } = await actingUser(argv, env)
  return { config, user, paths, env, log, linkStore: () => openLinkStore(config, user, paths.state) }
}

/**
 * A mount's --cache-dir, created 0700: `given`, or the user's default
 * ($XDG_CACHE_HOME/odfs/<user>). For another user (root's --user) the folders
 * above the default are created safely as theirs, never as root's in their home.
 */
export async function mountCacheDir(given: string | undefined, ctx: Pick<UserContext, 'user' | 'paths'>): Promise<string> {
  const dir = resolve(given ?? ctx.paths.mountCache)
  if (given === undefined && ctx.user.other) await ensurePrivateDir(dirname(dir), { uid: ctx.user.uid, gid: ctx.user.gid })
  await ensurePrivateDir(dir)
  return dir
}

export interface GatewayContext extends StoreContext {
  app: MsalApp
}

interface StoreContext extends UserContext {
  store: TokenStore
  dispatcher: Dispatcher
}

/** The context's token store and the process's dispatcher. */
async function openStore(argv: SessionArgv, deps: SessionDeps): Promise<StoreContext> {
  const ctx = await openContext(argv, deps)
  const store = await resolveTokenStore({
    mode: (argv['token-store'] ?? 'auto') as TokenStoreMode,
    config: ctx.config,
    user: ctx.user,
    env: ctx.env,
    ...(deps.keychainService ? { service: deps.keychainService } : {}),
    warn: deps.warn ?? ((m) => process.stderr.write(`odfs: ${m}\n`)),
  })
  const dispatcher = await createDispatcher(ctx.config.caFile ? { caFile: ctx.config.caFile } : {})
  return { ...ctx, store, dispatcher }
}

/** The msal application over the context's store, with the authority's metadata kept between commands. */
async function msalApp(s: StoreContext): Promise<MsalApp> {
  const metadata = new AuthorityMetadataFile(s.config, s.user, s.env, { log: s.log })
  const authorityMetadata = { file: metadata, loaded: await metadata.load(s.config.authority) }
  return createMsalApp({ config: s.config, store: s.store, dispatcher: s.dispatcher, log: s.log, authorityMetadata })
}

/** Config, token store, msal app, dispatcher and logger: what login/logout/status need. */
export async function openGateway(argv: SessionArgv, deps: SessionDeps = {}): Promise<GatewayContext> {
  const s = await openStore(argv, deps)
  try {
    return { ...s, app: await msalApp(s) }
  } catch (e) {
    await s.dispatcher.close()
    throw e
  }
}

export interface UserAccount {
  username: string
  oid: string
  tenantId: string
  kind: 'business' | 'personal'
}

export interface UserSession extends StoreContext {
  tokenProvider: MsalTokenProvider
  account: UserAccount
  /** A Graph drive client of this session (the user's rate limit, the session's dispatcher and log). */
  driveClient(extra?: Partial<GraphDriveClientOptions>): DriveClient
  /** The virtual tree over `client`, with the user's remembered sharing links. */
  tree(client: DriveClient, signal?: AbortSignal): Promise<TreeResolver>
  /** Stops keep-alive and closes the dispatcher. */
  close(): Promise<void>
}

/**
 * The signed-in user's session. While the access token in the cache is valid
 * (most commands), it is read from the store and msal is not loaded: that is most
 * of what msal would cost a brief command; it is loaded when a refresh is due.
 */
export async function openUserSession(argv: SessionArgv, deps: SessionDeps = {}): Promise<UserSession> {
  const g = await openStore(argv, deps)
  try {
    // A store that cannot be read here is read again by msal, which reports it.
    const cached = await g.store.load().then((s) => cachedAccessToken(s, g.config, Date.now(), REFRESH_MARGIN_MS), () => undefined)
    let tokenProvider: MsalTokenProvider
    if (cached) {
      tokenProvider = new MsalTokenProvider({ app: () => msalApp(g), config: g.config, cached, log: g.log })
    } else {
      const app = await msalApp(g)
      tokenProvider = new MsalTokenProvider({ app, config: g.config, account: await findSignedInAccount(app, g.config), log: g.log })
    }
    await tokenProvider.getAccessToken()
    if (deps.keepAlive) tokenProvider.startKeepAlive(deps.keepAlive)
    const a = tokenProvider.account
    return {
      ...g,
      tokenProvider,
      account: { username: a.username, oid: a.localAccountId, tenantId: a.tenantId, kind: accountKind(a) },
      driveClient: (extra = {}) => createGraphDriveClient({
        baseUrl: g.config.graphBaseUrl,
        tokenProvider,
        dispatcher: g.dispatcher,
        rateLimit: g.config.userApiRateLimit,
        log: g.log,
        ...extra,
      }),
      async tree(client, signal) {
        const links = (await g.linkStore().load()).map((l) => l.link)
        return new TreeResolver(client, { links, ...(signal ? { signal } : {}) })
      },
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

export interface DriveSession {
  session: UserSession
  client: DriveClient
  tree: TreeResolver
  signal: AbortSignal
}

/** Open the user's session and a drive client; close both afterwards; Ctrl-C aborts cleanly. */
export async function withDrive<T>(argv: SessionArgv, fn: (d: DriveSession) => Promise<T>, deps: SessionDeps = {}): Promise<T> {
  const session = await openUserSession(argv, deps)
  const ac = new AbortController()
  const onSig = () => ac.abort(new Error('interrupted'))
  process.once('SIGINT', onSig)
  process.once('SIGTERM', onSig)
  try {
    const client = session.driveClient()
    return await fn({ session, client, tree: await session.tree(client, ac.signal), signal: ac.signal })
  } finally {
    process.off('SIGINT', onSig)
    process.off('SIGTERM', onSig)
    await session.close()
  }
}
