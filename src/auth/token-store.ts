/**
 * Where a user's msal token cache (refresh token included) lives between runs.
 *
 * - keychain: the OS keychain through keytar (Secret Service on Linux), service
 *   `odfs`, one entry per OS user and gateway.
 * - file: `$XDG_STATE_HOME/odfs/tokens-<gateway>.json`, mode 0600, owned by the
 *   user; a file that group or others can read, or that another user owns, is
 *   refused.
 * - auto (default): the keychain when a Secret Service answers, otherwise the
 *   file store, announced once per process as a warning. A login made with the
 *   file store is still found when a keychain appears later.
 *
 * The cache plugin reads the store before every msal cache access and writes it
 * back when msal changed it (a rotated refresh token is saved at once).
 *
 * Every process of the user (a mount, CLI commands) shares the cache, so each
 * read-refresh-write runs under one lock, `<state dir>/tokens-<gateway>.lock`,
 * for the file store and the keychain alike (src/common/file-lock.ts): without
 * it two refreshes at once each rotate the refresh token from a stale copy and
 * the later write wins over whatever the other one stored (a sign-in included).
 */
import { stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import type { ICachePlugin, TokenCacheContext } from '@azure/msal-node'
import {
  ensurePrivateDir, OdfsError, readPrivateFile, removePrivateFile, UnsafePathError, withFileLock, writePrivateFile, type FileLockOptions,
} from '../common/index.js'
import { currentUser, odfsDirs, type GatewayConfig, type OsUser } from '../config/index.js'
import { AuthError } from './errors.js'

export type TokenStoreKind = 'keychain' | 'file'
export type TokenStoreMode = 'auto' | TokenStoreKind

export interface TokenStore {
  readonly kind: TokenStoreKind
  /** Human-readable location (no secret): a file path or keychain service/account. */
  readonly location: string
  load(): Promise<string | null>
  save(data: string): Promise<void>
  /** Delete the stored tokens; resolves true if something was deleted. */
  clear(): Promise<boolean>
  exists(): Promise<boolean>
  /**
   * Run `fn` holding the token cache lock shared by every process of this user
   * and gateway (read, refresh and write back as one step).
   */
  lock<T>(fn: () => Promise<T>): Promise<T>
}

/**
 * The lock beside the cache: `<state dir>/tokens-<gateway>.lock`, for the file
 * store and the keychain alike (both are shared by every odfs process of the user).
 */
export class TokenCacheLock {
  constructor(
    readonly file: string,
    private readonly user: StoreUser,
    private readonly opts: Pick<FileLockOptions, 'clock' | 'timeoutMs' | 'log'> = {},
  ) {}

  run<T>(fn: () => Promise<T>): Promise<T> {
    const owner = this.user.other ? { uid: this.user.uid, gid: this.user.gid } : {}
    return withFileLock(dirname(this.file), basename(this.file), fn, { ...owner, ...this.opts, what: 'token cache lock' }).catch((e) => {
      if (e instanceof UnsafePathError || (e instanceof OdfsError && e.code === 'LOCK_TIMEOUT')) throw new AuthError('TOKEN_STORE', e.message, { cause: e })
      throw e
    })
  }
}

/** The OS user whose tokens are stored (the caller, or `--user NAME`). */
export type StoreUser = OsUser

/** A stable, file-name-safe key for one gateway: client id and login host. */
export function gatewayKey(config: Pick<GatewayConfig, 'clientId' | 'loginEndpoint'>): string {
  const host = new URL(config.loginEndpoint).host
  return `${config.clientId}@${host}`.replace(/[^A-Za-z0-9._@-]/g, '_')
}

export class FileTokenStore implements TokenStore {
  readonly kind = 'file' as const
  readonly #lock: TokenCacheLock
  constructor(
    readonly location: string,
    private readonly user: StoreUser,
    lock?: TokenCacheLock,
  ) {
    this.#lock = lock ?? new TokenCacheLock(location.replace(/\.json$/, '') + '.lock', user)
  }

  lock<T>(fn: () => Promise<T>): Promise<T> {
    return this.#lock.run(fn)
  }

  async exists(): Promise<boolean> {
    try {
      await stat(this.location)
      return true
    } catch {
      return false
    }
  }

  async load(): Promise<string | null> {
    try {
      return await readPrivateFile(dirname(this.location), basename(this.location), { uid: this.user.uid, gid: this.user.gid, what: 'token file' })
    } catch (e) {
      if (e instanceof UnsafePathError) throw new AuthError('TOKEN_STORE', e.message, { cause: e })
      throw new AuthError('TOKEN_STORE', `cannot read token file ${this.location}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e })
    }
  }

  async save(data: string): Promise<void> {
    const owner = this.user.other ? { uid: this.user.uid, gid: this.user.gid } : {}
    try {
      await ensurePrivateDir(dirname(this.location), owner)
      await writePrivateFile(dirname(this.location), basename(this.location), data, owner)
    } catch (e) {
      if (e instanceof UnsafePathError) throw new AuthError('TOKEN_STORE', e.message, { cause: e })
      throw e
    }
  }

  async clear(): Promise<boolean> {
    const owner = this.user.other ? { uid: this.user.uid, gid: this.user.gid } : {}
    try {
      return await removePrivateFile(dirname(this.location), basename(this.location), owner)
    } catch (e) {
      if (e instanceof UnsafePathError) throw new AuthError('TOKEN_STORE', e.message, { cause: e })
      throw e
    }
  }
}

type Keytar = typeof import('keytar')

export class KeychainTokenStore implements TokenStore {
  readonly kind = 'keychain' as const
  readonly location: string
  constructor(
    private readonly keytar: Keytar,
    readonly service: string,
    readonly account: string,
    private readonly cacheLock: TokenCacheLock,
  ) {
    this.location = `keychain (service ${service}, account ${account})`
  }
  lock<T>(fn: () => Promise<T>): Promise<T> {
    return this.cacheLock.run(fn)
  }
  async load(): Promise<string | null> {
    return this.keytar.getPassword(this.service, this.account)
  }
  async save(data: string): Promise<void> {
    await this.keytar.setPassword(this.service, this.account, data)
  }
  async clear(): Promise<boolean> {
    return this.keytar.deletePassword(this.service, this.account)
  }
  async exists(): Promise<boolean> {
    return (await this.load()) !== null
  }
}

const PROBE_TIMEOUT_MS = 15_000

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms)
    timer.unref()
  })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}

/**
 * Check that a Secret Service is there and unlocked: a locked keyring answers
 * `getPassword` with null, so only a write proves it works.
 */
export async function probeKeychain(service: string): Promise<{ ok: true; keytar: Keytar } | { ok: false; reason: string }> {
  let keytar: Keytar
  try {
    keytar = ((await import('keytar')) as unknown as { default: Keytar }).default
  } catch (e) {
    return { ok: false, reason: `keytar cannot load: ${(e as Error).message.split('\n')[0]}` }
  }
  const probe = `odfs-probe-${process.pid}`
  try {
    await withTimeout(keytar.setPassword(service, probe, 'probe'), PROBE_TIMEOUT_MS, 'the Secret Service')
    await withTimeout(keytar.deletePassword(service, probe), PROBE_TIMEOUT_MS, 'the Secret Service')
    return { ok: true, keytar }
  } catch (e) {
    return { ok: false, reason: (e as Error).message.split('\n')[0] ?? 'unknown error' }
  }
}

export interface ResolveStoreOptions {
  mode?: TokenStoreMode
  config: Pick<GatewayConfig, 'clientId' | 'loginEndpoint'>
  user?: StoreUser
  env?: NodeJS.ProcessEnv
  /** Keychain service name (tests use a unique one). */
  service?: string
  /** Where the one-time fallback warning goes. */
  warn?: (message: string) => void
  /** Clock, wait limit and logger of the token cache lock. */
  lock?: Pick<FileLockOptions, 'clock' | 'timeoutMs' | 'log'>
}

let fallbackAnnounced = false

/** Pick the token store for this user and gateway (see the module comment). */
export async function resolveTokenStore(opts: ResolveStoreOptions): Promise<TokenStore> {
  const mode = opts.mode ?? 'auto'
  const user = opts.user ?? currentUser()
  const key = gatewayKey(opts.config)
  const dir = odfsDirs(user, opts.env).state
  const lock = new TokenCacheLock(join(dir, `tokens-${key}.lock`), user, opts.lock)
  const file = new FileTokenStore(join(dir, `tokens-${key}.json`), user, lock)
  if (mode === 'file') return file
  if (user.other) {
    if (mode === 'keychain') {
      throw new AuthError('TOKEN_STORE', `--user ${user.name} cannot use the keychain (it belongs to the session running odfs); use --token-store file`)
    }
    return file
  }
  const service = opts.service ?? 'odfs'
  const probe = await probeKeychain(service)
  if (!probe.ok) {
    if (mode === 'keychain') {
      throw new AuthError('TOKEN_STORE', `the OS keychain is not usable (${probe.reason}); use --token-store file on a machine without a Secret Service`)
    }
    if (!fallbackAnnounced) {
      fallbackAnnounced = true
      const msg = `warning: no usable OS keychain (${probe.reason}); keeping tokens in ${file.location} (mode 0600) instead. Pass --token-store file to choose this explicitly.`
      ;(opts.warn ?? ((m: string) => process.stderr.write(m + '\n')))(msg)
    }
    return file
  }
  const keychain = new KeychainTokenStore(probe.keytar, service, `${user.name}/${key}`, lock)
  if (mode === 'auto' && !(await keychain.exists()) && (await file.exists())) return file
  return keychain
}

/** For tests: let the next fallback be announced again. */
export function resetFallbackAnnouncement(): void {
  fallbackAnnounced = false
}

const EMPTY_CACHE = JSON.stringify({ Account: {}, IdToken: {}, AccessToken: {}, RefreshToken: {}, AppMetadata: {} })

/** msal cache plugin over a TokenStore. */
export function storeCachePlugin(store: TokenStore): ICachePlugin {
  return {
    async beforeCacheAccess(ctx: TokenCacheContext) {
      const data = await store.load()
      // An empty store (logged out elsewhere) empties msal's in-memory copy too.
      ctx.tokenCache.deserialize(data || EMPTY_CACHE)
    },
    async afterCacheAccess(ctx: TokenCacheContext) {
      if (ctx.cacheHasChanged) await store.save(ctx.tokenCache.serialize())
    },
  }
}
