/**
 * What every Graph handler shares: the store, the server's base URL, URL signing
 * for pre-authenticated download/upload URLs, upload sessions and copy jobs.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Account } from '../directory.js'
import type { QuickXorHash } from '../quickxor.js'
import type { ConflictBehavior, IdentitySet, Store } from '../store/index.js'

export interface UploadSession {
  id: string
  driveId: string
  parentId: string
  name: string
  targetId?: string
  conflict: ConflictBehavior
  fs?: { createdDateTime?: string; lastModifiedDateTime?: string }
  total?: number
  received: number
  file: string
  hash: QuickXorHash
  expiresAt: number
  deferCommit: boolean
  by: IdentitySet
  user: Account
  busy: boolean
  /** The transient 404 of a fresh session was already served. */
  flaked?: boolean
}

export interface CopyJob {
  id: string
  status: 'notStarted' | 'inProgress' | 'completed' | 'failed'
  percentageComplete: number
  resourceId?: string
  error?: { code: string; message: string }
}

export interface EnvOptions {
  driveIdQuirks: boolean
  freshSessionNotFoundRate: number
  uploadSessionTtlSec: number
  downloadUrlTtlSec: number
  sharedWithMeRetired: boolean
  corruptHashes: boolean
}

/** Fault and accounting hooks the server plugs in for content transfers. */
export interface TransferHooks {
  /** Bytes per second per body; 0 = unlimited. */
  bandwidth(): number
  /** Fraction of content transfers whose connection is cut mid-body. */
  resetRate(): number
  bytesIn(n: number): void
  bytesOut(n: number): void
  reset(): void
}

export class Env {
  hooks: TransferHooks = { bandwidth: () => 0, resetRate: () => 0, bytesIn: () => {}, bytesOut: () => {}, reset: () => {} }
  readonly sessions = new Map<string, UploadSession>()
  readonly jobs = new Map<string, CopyJob>()
  readonly #key = randomBytes(32)

  /**
   * Download, upload and monitor URLs live on another host name (localhost, same
   * server) like the service's separate content hosts, so clients that attach the
   * Graph bearer by host (the Graph SDK's customHosts) do not send it there.
   */
  contentHost = 'localhost'

  constructor(readonly store: Store, readonly baseUrl: () => string, readonly opts: EnvOptions) {}

  get contentBase(): string {
    const u = new URL(this.baseUrl())
    u.hostname = this.contentHost
    return u.origin
  }

  sign(payload: string): string {
    return createHmac('sha256', this.#key).update(payload).digest('base64url')
  }

  /** token = base64url(payload) + '.' + signature */
  makeToken(payload: object): string {
    const p = Buffer.from(JSON.stringify(payload)).toString('base64url')
    return `${p}.${this.sign(p)}`
  }

  readToken<T>(token: string | null | undefined): T | undefined {
    if (!token) return undefined
    const [p, s] = token.split('.')
    if (!p || !s) return undefined
    const want = Buffer.from(this.sign(p))
    const got = Buffer.from(s)
    if (want.length !== got.length || !timingSafeEqual(want, got)) return undefined
    try {
      return JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as T
    } catch {
      return undefined
    }
  }

  downloadUrl(itemId: string, blobPath: string): string {
    const exp = this.store.now() + this.opts.downloadUrlTtlSec * 1000
    const blob = blobPath.slice(blobPath.lastIndexOf('/') + 1)
    return `${this.contentBase}/_download/${encodeURIComponent(itemId)}?tempauth=${this.makeToken({ i: itemId, b: blob, e: exp })}`
  }

  uploadUrl(s: UploadSession): string {
    return `${this.contentBase}/_upload/${s.id}?tempauth=${this.makeToken({ s: s.id })}`
  }
}
