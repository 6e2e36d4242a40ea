/**
 * Time is injected everywhere it matters (caches, retries, token expiry) so tests
 * drive a ManualClock instead of sleeping for real.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
  /** Resolves after `ms`; rejects with the signal's reason if aborted first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep(ms, signal) {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason)
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }, Math.max(0, ms))
      const onAbort = () => {
        clearTimeout(timer)
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  },
}

/** A clock that only moves when told to; sleepers wake when their deadline passes. */
export class ManualClock implements Clock {
  #now: number
  #sleepers: { at: number; resolve: () => void }[] = []

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start
  }

  now(): number {
    return this.#now
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (ms <= 0) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason)
      const onAbort = () => {
        this.#sleepers = this.#sleepers.filter((s) => s !== entry)
        reject(signal?.reason)
      }
      const entry = {
        at: this.#now + ms,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
      }
      this.#sleepers.push(entry)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Move time forward and wake every sleeper whose deadline has passed. */
  async advance(ms: number): Promise<void> {
    this.#now += ms
    const due = this.#sleepers.filter((s) => s.at <= this.#now)
    this.#sleepers = this.#sleepers.filter((s) => s.at > this.#now)
    for (const s of due) s.resolve()
    // let the woken continuations run
    await new Promise((r) => setImmediate(r))
  }

  get pendingSleepers(): number {
    return this.#sleepers.length
  }
}
