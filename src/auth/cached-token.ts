/**
 * The access token in the token cache, read without msal-node.
 *
 * Most commands run while the access token of the last one is still valid (an
 * hour, as the identity platform issues them). msal would then answer from its
 * cache without a request, but loading msal-node costs a command ~80 ms of its
 * start (it brings jsonwebtoken and semver). This reads the cache msal wrote (its
 * documented serialization, shared by every MSAL library) and returns the access
 * token only when there is no doubt which one msal itself would return:
 *
 * - exactly one account, on this login host, of a tenant the authority admits
 *   (`common`: any; `organizations`: not the personal-account tenant; `consumers`:
 *   that one; a tenant of its own: that tenant, by id);
 * - exactly one access token of this client for that account, host and tenant,
 *   of type Bearer, bound to no key and no claims request, whose scopes hold
 *   every scope the gateway asks for;
 * - valid for longer than the margin by the wall clock, not marked for an early
 *   refresh (`refresh_on`), and not cached in the future.
 *
 * Anything else (no cache, a cache that does not parse, two accounts, an expiring
 * token) gives undefined, and the command goes through msal as before. A token
 * the service refuses anyway (revoked early) is answered with 401, on which the
 * Graph layer asks for a forced refresh, which goes through msal too.
 */
import type { AccountInfo } from '@azure/msal-node'
import type { GatewayConfig } from '../config/index.js'
import { PERSONAL_ACCOUNT_TENANT } from './token-provider.js'

export interface CachedAccessToken {
  accessToken: string
  /** Wall-clock expiry. */
  expiresOn: Date
  /** The token's scopes, as the cache lists them. */
  scopes: string[]
  /** The signed-in account, as msal's getAllAccounts would give it (without the ID token's claims). */
  account: AccountInfo
}

/** Scopes msal leaves out of a cached token's target and of the match (OIDC scopes). */
const OIDC_SCOPES = new Set(['openid', 'profile', 'offline_access', 'email'])

/** msal's margin for a token cached "in the future" (clock skew), in seconds. */
const SKEW_S = 300

type Entry = Record<string, unknown>

/** A field msal leaves out (or empty) on a plain bearer token of a user. */
const absent = (v: unknown): boolean => v === undefined || v === null || v === '' || (typeof v === 'object' && Object.keys(v).length === 0)

function entries(doc: Record<string, unknown>, kind: string): Entry[] {
  const v = doc[kind]
  if (!v || typeof v !== 'object') return []
  return Object.values(v as Record<string, unknown>).filter((e): e is Entry => !!e && typeof e === 'object')
}

const str = (e: Entry, k: string): string | undefined => (typeof e[k] === 'string' ? (e[k] as string) : undefined)
const seconds = (e: Entry, k: string): number | undefined => {
  const v = e[k]
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : typeof v === 'number' ? v : NaN
  return Number.isFinite(n) ? n : undefined
}

/** Whether a token of tenant `realm` serves `authority` (its last path segment names the tenants it admits). */
function admits(authority: string, realm: string): boolean {
  const segment = (new URL(authority).pathname.split('/').filter(Boolean).pop() ?? '').toLowerCase()
  const r = realm.toLowerCase()
  if (segment === 'common') return true
  if (segment === 'organizations') return r !== PERSONAL_ACCOUNT_TENANT
  if (segment === 'consumers') return r === PERSONAL_ACCOUNT_TENANT
  return r === segment
}

/**
 * The access token msal would return from `serialized` (the token store's content)
 * for `config`, if it is valid for more than `marginMs` at `nowMs`; else undefined.
 */
export function cachedAccessToken(
  serialized: string | null | undefined,
  config: Pick<GatewayConfig, 'clientId' | 'loginEndpoint' | 'authority' | 'scopes'>,
  nowMs: number,
  marginMs: number,
): CachedAccessToken | undefined {
  if (!serialized) return undefined
  let doc: unknown
  try {
    doc = JSON.parse(serialized)
  } catch {
    return undefined
  }
  if (!doc || typeof doc !== 'object') return undefined
  const d = doc as Record<string, unknown>
  const environment = new URL(config.loginEndpoint).host

  const accounts = entries(d, 'Account')
  if (accounts.length !== 1) return undefined
  const a = accounts[0]!
  const homeAccountId = str(a, 'home_account_id')
  const realm = str(a, 'realm')
  const username = str(a, 'username')
  const localAccountId = str(a, 'local_account_id')
  if (!homeAccountId || !realm || !username || !localAccountId || str(a, 'environment') !== environment) return undefined
  if (!admits(config.authority, realm)) return undefined

  const wanted = config.scopes.map((s) => s.toLowerCase()).filter((s) => !OIDC_SCOPES.has(s))
  const matches = entries(d, 'AccessToken').filter((t) =>
    str(t, 'credential_type') === 'AccessToken'
    && str(t, 'client_id') === config.clientId
    && str(t, 'home_account_id') === homeAccountId
    && str(t, 'environment') === environment
    && str(t, 'realm') === realm
    && (str(t, 'token_type') ?? 'Bearer').toLowerCase() === 'bearer'
    && [t.key_id, t.userAssertionHash, t.resource, t.additionalCacheKeyComponents].every(absent))
  if (matches.length !== 1) return undefined
  const t = matches[0]!
  const secret = str(t, 'secret')
  const target = (str(t, 'target') ?? '').split(' ').filter(Boolean)
  const have = new Set(target.map((s) => s.toLowerCase()))
  if (!secret || !wanted.every((s) => have.has(s))) return undefined

  const now = nowMs / 1000
  const expiresOn = seconds(t, 'expires_on')
  const cachedAt = seconds(t, 'cached_at')
  const refreshOn = seconds(t, 'refresh_on')
  if (expiresOn === undefined || cachedAt === undefined) return undefined
  if (expiresOn * 1000 <= nowMs + marginMs || cachedAt > now + SKEW_S) return undefined
  if (refreshOn !== undefined && refreshOn <= now) return undefined

  return {
    accessToken: secret,
    expiresOn: new Date(expiresOn * 1000),
    scopes: target,
    account: {
      homeAccountId,
      environment,
      tenantId: realm,
      username,
      localAccountId,
      ...(str(a, 'name') ? { name: str(a, 'name') } : {}),
    },
  }
}
