/**
 * The identity platform's metadata for a gateway's authority (its OpenID
 * configuration: the token and authorization endpoints), kept between commands.
 *
 * msal-node keeps it in memory only, so every command fetched it again before its
 * first token: one more HTTPS exchange with the login host, which on the real
 * service is a host of its own (DNS, TCP and TLS handshakes) before any Graph call.
 * msal's browser library keeps the same metadata for 24 hours; so does this file.
 *
 * The file sits beside the token cache in the user's state directory, named after
 * the gateway like it (`authority-<client id>@<login host>.json`), and is written
 * and read as a private file (src/common/private-file.ts: 0600 in a 0700
 * directory the user owns, never through a symlink). It is used only if it names
 * this authority, is less than a day old, and its endpoints are on the
 * authority's own origin, so a stale or altered file cannot send a refresh token
 * anywhere else; anything else is ignored, and msal fetches the metadata again.
 */
import { join } from 'node:path'
import { ensurePrivateDir, readPrivateFile, silentLogger, systemClock, writePrivateFile, type Clock, type Logger } from '../common/index.js'
import { odfsDirs, type GatewayConfig, type OsUser } from '../config/index.js'
import { gatewayKey } from './token-store.js'

/** How long fetched metadata is used (msal-browser's expiry for the same data). */
export const AUTHORITY_METADATA_MAX_AGE_MS = 24 * 3600_000

interface Stored {
  authority: string
  fetchedAt: number
  metadata: Record<string, unknown>
}

/** Is `url` the OpenID configuration document of `authority`? */
export function isAuthorityMetadataUrl(authority: string, url: string): boolean {
  const base = authority.replace(/\/+$/, '') + '/'
  return url.startsWith(base) && new URL(url).pathname.endsWith('/.well-known/openid-configuration')
}

/**
 * The metadata object if `text` is one msal can use for `authority` and whose
 * endpoints stay on the authority's origin; otherwise undefined.
 */
export function checkAuthorityMetadata(authority: string, text: string): Record<string, unknown> | undefined {
  let m: unknown
  try {
    m = JSON.parse(text)
  } catch {
    return undefined
  }
  return usableMetadata(authority, m)
}

/** `m` as metadata of `authority` (see checkAuthorityMetadata), or undefined. */
function usableMetadata(authority: string, m: unknown): Record<string, unknown> | undefined {
  if (!m || typeof m !== 'object' || Array.isArray(m)) return undefined
  const o = m as Record<string, unknown>
  const origin = new URL(authority).origin
  for (const k of ['authorization_endpoint', 'token_endpoint']) {
    const v = o[k]
    if (typeof v !== 'string') return undefined
    try {
      if (new URL(v).origin !== origin) return undefined
    } catch {
      return undefined
    }
  }
  // msal also requires these two (isOpenIdConfigResponse).
  if (typeof o.issuer !== 'string' || typeof o.jwks_uri !== 'string') return undefined
  return o
}

export interface AuthorityMetadataFileOptions {
  clock?: Clock
  log?: Logger
}

export class AuthorityMetadataFile {
  readonly dir: string
  readonly name: string
  readonly #user: OsUser
  readonly #clock: Clock
  readonly #log: Logger

  constructor(config: Pick<GatewayConfig, 'clientId' | 'loginEndpoint'>, user: OsUser, env: NodeJS.ProcessEnv = process.env, o: AuthorityMetadataFileOptions = {}) {
    this.dir = odfsDirs(user, env).state
    this.name = `authority-${gatewayKey(config)}.json`
    this.#user = user
    this.#clock = o.clock ?? systemClock
    this.#log = o.log ?? silentLogger
  }

  get path(): string {
    return join(this.dir, this.name)
  }

  /** The kept metadata of `authority` (a JSON string for msal's `authorityMetadata`), or undefined. */
  async load(authority: string): Promise<string | undefined> {
    let text: string | null
    try {
      text = await readPrivateFile(this.dir, this.name, { uid: this.#user.uid, gid: this.#user.gid, what: 'authority metadata file' })
    } catch (e) {
      // Not private, not ours, a symlink: not used (msal fetches the metadata again), and said.
      this.#log.warn({ file: this.path, error: (e as Error).message }, 'ignoring the kept authority metadata')
      return undefined
    }
    if (text === null) return undefined
    let s: Partial<Stored>
    try {
      s = JSON.parse(text) as Partial<Stored>
    } catch {
      return undefined
    }
    const age = this.#clock.now() - (typeof s.fetchedAt === 'number' ? s.fetchedAt : -Infinity)
    if (s.authority !== authority || !(age >= 0 && age < AUTHORITY_METADATA_MAX_AGE_MS)) return undefined
    const metadata = usableMetadata(authority, s.metadata)
    return metadata ? JSON.stringify(metadata) : undefined
  }

  /** Keep the metadata msal fetched for `authority` (not kept when unusable; failures only logged). */
  async save(authority: string, text: string): Promise<void> {
    const metadata = checkAuthorityMetadata(authority, text)
    if (!metadata) return
    const owner = this.#user.other ? { uid: this.#user.uid, gid: this.#user.gid } : {}
    const stored: Stored = { authority, fetchedAt: this.#clock.now(), metadata }
    try {
      await ensurePrivateDir(this.dir, owner)
      await writePrivateFile(this.dir, this.name, JSON.stringify(stored) + '\n', owner)
    } catch (e) {
      this.#log.debug({ file: this.path, error: (e as Error).message }, 'could not keep the authority metadata')
    }
  }
}
