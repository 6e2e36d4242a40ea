/**
 * The per-user request budget: one RateLimiter per signed-in user, shared by every
 * caller in the process (listing, transfers, the mount), so the whole user backs
 * off together when the service throttles (docs/graph-service.md §9: "pause all threads").
 *
 * Design: a FIFO of waiters drained by a single pump, spacing grants 1/rate apart
 * (GCRA). Before any throttling a burst of up to one second's worth is allowed;
 * after a 429/503 the burst drops to one and:
 *  - everything pauses until Retry-After has passed (the pause is global);
 *  - the budget is estimated as the answers that were not throttled in the last
 *    second (85% of it becomes a ceiling; each later throttle lowers it by 10%), and
 *    the rate restarts at half the ceiling;
 *  - every quiet second the rate climbs back by 25% up to the ceiling; only after a
 *    quiet minute does it probe above it, by 2% a second.
 * A 503 (the service struggling, not our budget) pauses for its Retry-After and eases
 * the rate by 20% without touching the ceiling.
 * Because the waiters are not pre-scheduled, a rate cut applies to every request
 * still queued, not only to new ones.
 */
import { systemClock, type Clock } from '../common/index.js'

export interface RateLimiterOptions {
  /** Operations per second (the policy's user_api_rate_limit). */
  rate: number
  clock?: Clock
  /** Never go below this many operations per second (default 0.2). */
  minRate?: number
}

export interface RateLimiterStats {
  granted: number
  throttleEvents: number
  currentRate: number
  ceiling: number | undefined
  pausedUntil: number
}

interface Waiter {
  resolve: () => void
  reject: (e: unknown) => void
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
}

const HISTORY = 4096

export class RateLimiter {
  readonly #clock: Clock
  readonly #maxRate: number
  readonly #minRate: number
  #rate: number
  #ceiling: number | undefined
  #throttledOnce = false
  #tat = 0 // theoretical arrival time of the next grant
  #pausedUntil = 0
  #lastCut = -Infinity
  #lastRaise = 0
  #queue: Waiter[] = []
  #pumping = false
  #granted = 0
  #throttleEvents = 0
  /** Ring of the times of answers that were not throttled (ms): the rate the service let through. */
  readonly #okTimes = new Float64Array(HISTORY)
  #okN = 0
  #listeners: ((at: number) => void)[] = []

  constructor(opts: RateLimiterOptions) {
    if (!(opts.rate > 0)) throw new RangeError(`rate must be positive, got ${opts.rate}`)
    this.#clock = opts.clock ?? systemClock
    this.#maxRate = opts.rate
    this.#minRate = Math.min(opts.minRate ?? 0.2, opts.rate)
    this.#rate = opts.rate
  }

  get rate(): number {
    return this.#rate
  }

  stats(): RateLimiterStats {
    return {
      granted: this.#granted,
      throttleEvents: this.#throttleEvents,
      currentRate: this.#rate,
      ceiling: this.#ceiling,
      pausedUntil: this.#pausedUntil,
    }
  }

  /** Called with the clock time of every grant (tests and benchmarks record request timestamps). */
  onGrant(listener: (at: number) => void): () => void {
    this.#listeners.push(listener)
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener)
    }
  }

  /** Wait for permission to send one request. */
  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason)
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject, signal, onAbort: undefined }
      if (signal) {
        w.onAbort = () => {
          const i = this.#queue.indexOf(w)
          if (i >= 0) this.#queue.splice(i, 1)
          reject(signal.reason)
        }
        signal.addEventListener('abort', w.onAbort, { once: true })
      }
      this.#queue.push(w)
      void this.#pump()
    })
  }

  /**
   * Wait only for a global pause (a 429/503 Retry-After) to end, taking no token.
   * For transfers on pre-authenticated content URLs (upload fragments, downloads):
   * they are not Graph API operations and are bounded by the transfer concurrency
   * cap instead, but when the service throttles the user, they stop too.
   */
  async whenUnpaused(signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (signal?.aborted) throw signal.reason
      const wait = this.#pausedUntil - this.#clock.now()
      if (wait <= 0) return
      await this.#clock.sleep(Math.min(wait, 1000), signal)
    }
  }

  /**
   * The service throttled us (429, or 503 with Retry-After). Pause every caller for
   * `retryAfterMs` and lower the rate (at most one cut per second: a burst of 429s
   * answering one burst of requests is one signal).
   */
  throttled(retryAfterMs: number, kind: 'throttled' | 'unavailable' = 'throttled'): void {
    const now = this.#clock.now()
    this.#throttleEvents++
    this.#throttledOnce = true
    this.#pausedUntil = Math.max(this.#pausedUntil, now + Math.max(0, retryAfterMs))
    if (kind === 'unavailable') {
      // 503: the service is struggling, not counting our budget: pause and ease off a little.
      if (now - this.#lastCut >= 1000) {
        this.#rate = Math.max(this.#minRate, this.#rate * 0.8)
        this.#lastCut = now
      }
    } else if (now - this.#lastCut >= 1000) {
      // What the service let through in the last second is the best estimate of its budget.
      const ok = this.#countSince(this.#okTimes, this.#okN, now - 1000)
      const seen = Math.min(this.#rate, ok > 0 ? ok : this.#rate / 2)
      this.#ceiling = this.#ceiling === undefined ? seen * 0.85 : Math.min(this.#ceiling, seen) * 0.9
      this.#ceiling = Math.max(this.#ceiling, this.#minRate)
      this.#rate = Math.max(this.#minRate, this.#ceiling / 2)
      this.#lastCut = now
    }
    this.#lastRaise = Math.max(this.#lastRaise, this.#pausedUntil)
  }

  /** A request got an answer that was not a throttle (feeds the budget estimate). */
  succeeded(): void {
    this.#okTimes[this.#okN % HISTORY] = this.#clock.now()
    this.#okN++
  }

  #countSince(ring: Float64Array, n: number, since: number): number {
    let count = 0
    for (let i = 0; i < Math.min(n, HISTORY); i++) {
      if (ring[(n - 1 - i) % HISTORY]! < since) break
      count++
    }
    return count
  }

  #maybeRaise(now: number): void {
    if (this.#rate >= this.#maxRate) return
    const ceiling = this.#ceiling ?? this.#maxRate
    if (now - this.#lastRaise > 600_000) this.#lastRaise = now - 600_000 // bound the catch-up loop
    while (now - this.#lastRaise >= 1000) {
      this.#lastRaise += 1000
      if (this.#rate < ceiling) {
        // Quick recovery up to the estimated budget...
        this.#rate = Math.min(ceiling, this.#rate * 1.25)
      } else if (this.#ceiling !== undefined && this.#lastRaise - this.#lastCut >= 60_000) {
        // ...and a slow probe above it only after a quiet minute (budgets change).
        this.#ceiling = Math.min(this.#maxRate, this.#ceiling * 1.02)
        this.#rate = this.#ceiling
      }
    }
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return
    this.#pumping = true
    try {
      while (this.#queue.length > 0) {
        const now = this.#clock.now()
        this.#maybeRaise(now)
        const interval = 1000 / this.#rate
        const burst = this.#throttledOnce ? 1 : Math.max(1, Math.floor(this.#maxRate))
        const tolerance = (burst - 1) * interval
        const at = Math.max(this.#pausedUntil, this.#tat - tolerance)
        if (at > now) {
          // Sleep, then re-evaluate: a throttle or a rate cut may have happened meanwhile.
          await this.#clock.sleep(Math.min(at - now, 1000))
          continue
        }
        const w = this.#queue.shift()!
        if (w.signal && w.onAbort) w.signal.removeEventListener('abort', w.onAbort)
        this.#tat = Math.max(now, this.#tat) + interval
        this.#granted++
        for (const l of this.#listeners) l(now)
        w.resolve()
      }
    } finally {
      this.#pumping = false
    }
  }
}
