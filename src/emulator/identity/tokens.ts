/**
 * Token minting and the grant store. id_tokens and business access tokens are
 * RS256 JWTs signed with a key published at `/{tenant}/discovery/v2.0/keys`;
 * personal-account access tokens are opaque (`EwB...`) like the real MSA ones.
 * Every token, code and device code is kept only as its SHA-256 hash.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto'
import { PERSONAL_TENANT_ID, type Account, type RedirectPlatform } from '../directory.js'

export const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url')
export const hashOf = (s: string): string => createHash('sha256').update(s).digest('hex')
export const randomToken = (bytes: number): string => randomBytes(bytes).toString('base64url')

export class SigningKey {
  readonly kid: string
  readonly #privateKey: KeyObject
  readonly #publicKey: KeyObject

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    this.#privateKey = privateKey
    this.#publicKey = publicKey
    this.kid = b64url(createHash('sha1').update(publicKey.export({ type: 'spki', format: 'der' })).digest())
  }

  jwt(payload: Record<string, unknown>, typ = 'JWT'): string {
    const head = b64url(JSON.stringify({ typ, alg: 'RS256', kid: this.kid }))
    const body = b64url(JSON.stringify(payload))
    const sig = sign('sha256', Buffer.from(`${head}.${body}`), this.#privateKey)
    return `${head}.${body}.${b64url(sig)}`
  }

  /** True if the JWT carries a valid signature of this key. */
  verifies(token: string): boolean {
    const parts = token.split('.')
    if (parts.length !== 3) return false
    try {
      return verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), this.#publicKey, Buffer.from(parts[2]!, 'base64url'))
    } catch {
      return false
    }
  }

  jwk(issuer: string): Record<string, unknown> {
    const j = this.#publicKey.export({ format: 'jwk' }) as { n: string; e: string }
    return { kty: 'RSA', use: 'sig', kid: this.kid, x5t: this.kid, n: j.n, e: j.e, issuer }
  }
}

/** A stable, pairwise-looking `sub` claim per (app, user). */
export function pairwiseSub(clientId: string, acc: Account): string {
  return b64url(createHash('sha256').update(`odfs-emulator-sub|${clientId}|${acc.oid}`).digest()).slice(0, 43)
}

export function clientInfo(acc: Account): string {
  return b64url(JSON.stringify({ uid: acc.oid, utid: acc.tenantId }))
}

/** A user's grant: what a refresh token stands for. */
export interface Grant {
  handle: string
  clientId: string
  /** Consented Graph scopes. */
  scopes: string[]
  /** The authority segment the grant was issued through. */
  authoritySegment: string
  issuedAt: number
  lastUsedAt: number
  revoked: boolean
  /** The platform of the redirect URI the sign-in went through (the app's default for device code). */
  platform: RedirectPlatform
  /** SPA refresh tokens only: the fixed end of their life, which rotation does not extend. */
  expiresAt?: number
}

export interface AccessRecord {
  /** Undefined for app-only (client credentials) tokens. */
  handle?: string
  clientId: string
  scopes: string[]
  expiresAt: number
  revoked: boolean
}

export interface CodeRecord {
  clientId: string
  handle: string
  redirectUri: string
  scopes: string[]
  offline: boolean
  openid: boolean
  nonce?: string
  codeChallenge?: string
  codeChallengeMethod?: 'S256' | 'plain'
  /** The platform `redirectUri` is registered under. */
  platform: RedirectPlatform
  authoritySegment: string
  expiresAt: number
  redeemed: boolean
}

export type DeviceState = 'pending' | 'approved' | 'declined' | 'rejected' | 'redeemed'

export interface DeviceRecord {
  userCode: string
  clientId: string
  scopes: string[]
  offline: boolean
  openid: boolean
  authoritySegment: string
  expiresAt: number
  intervalSec: number
  lastPollAt?: number
  state: DeviceState
  handle?: string
  /** Why sign-in was refused (state `rejected`). */
  rejection?: { error: string; code: number; description: string }
}

export const PERSONAL_TID = PERSONAL_TENANT_ID
