/**
 * Per-user throttling as the service does it (docs/emulator/throttling.md): every
 * Graph request costs resource units, a user has a budget of units per time
 * window, and requests answered 429 still count against it. Usage drains
 * continuously at the budget's rate, so a client that waits out Retry-After and
 * then stays under the rate gets through, while one that keeps sending while
 * throttled keeps its debt growing (and its Retry-After with it).
 */
import type { Clock } from '../../common/index.js'

export interface ThrottleLimits {
  /** Resource units per second per user; 0 = no throttling. */
  rate: number
  /** Length of the budget window in seconds: the budget is rate × window units. */
  windowSec: number
}

export interface Charge {
  /** Seconds to wait (integer) when the request is throttled. */
  retryAfter?: number
  /** RateLimit-* headers once 80 % of the budget is used (docs/emulator/throttling.md). */
  headers?: Record<string, string>
}

/** The longest Retry-After the emulator answers (the service was seen answering 300 s and more). */
export const MAX_RETRY_AFTER_SEC = 300

interface Bucket { used: number; at: number }

/**
 * Resource units a request costs (SharePoint's published Graph costs): 1 for a
 * single item, a delta with a token or a download; 2 for a listing, a delta
 * without a token and any create, update, delete or upload; 5 for permission
 * operations, `$expand=permissions` included.
 */
export function costOf(method: string, url: URL): number {
  const p = url.pathname
  const expand = (url.searchParams.get('$expand') ?? url.searchParams.get('expand') ?? '').toLowerCase()
  if (/\/(permissions|invite|createLink)(\/|$)/.test(p) || expand.includes('permissions')) return 5
  if (method !== 'GET' && method !== 'HEAD') return 2
  if (/\/delta(\(|$)/.test(p)) return url.searchParams.has('token') || /delta\(token=/.test(p) ? 1 : 2
  if (/\/(children|versions|sharedWithMe|drives|followedSites)$/.test(p) || expand.includes('children')) return 2
  return 1
}

export class Throttle {
  readonly #buckets = new Map<string, Bucket>()

  constructor(private readonly clock: Clock, private readonly limits: () => ThrottleLimits) {}

  /** Forget every user's usage (the limits changed). */
  clear(): void {
    this.#buckets.clear()
  }

  /** Charge `cost` units to `user`; throttled requests are charged too. */
  charge(user: string, cost: number): Charge {
    const { rate, windowSec } = this.limits()
    if (!rate) return {}
    const budget = Math.max(1, rate * Math.max(windowSec, 0.001))
    const now = this.clock.now()
    let b = this.#buckets.get(user)
    if (!b) this.#buckets.set(user, (b = { used: 0, at: now }))
    b.used = Math.max(0, b.used - ((now - b.at) / 1000) * rate)
    b.at = now
    // usage at or below which this request fits (a request dearer than the whole budget needs it all)
    const room = Math.max(0, budget - cost)
    const admitted = b.used <= room
    // Debt is capped so that a client that stops at once waits no longer than the cap.
    b.used = Math.min(b.used + cost, room + MAX_RETRY_AFTER_SEC * rate)
    if (!admitted) {
      // Time until this user's usage has drained far enough for one more request like this one.
      return { retryAfter: Math.max(1, Math.ceil((b.used - room) / rate)) }
    }
    if (b.used < 0.8 * budget) return {}
    return {
      headers: {
        'RateLimit-Limit': String(Math.round(budget)),
        'RateLimit-Remaining': String(Math.max(0, Math.floor(budget - b.used))),
        'RateLimit-Reset': String(Math.max(1, Math.ceil(b.used / rate))),
      },
    }
  }
}
