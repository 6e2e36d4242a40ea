/**
 * Is the service reachable? The request pipeline reports every attempt here: an
 * attempt that could not even connect (refused, no route, name not resolved, connect
 * timeout) marks the service unreachable; any HTTP answer at all, even a 5xx, marks
 * it reachable again. A connection cut in the middle of a body is not counted: the
 * host answered, and the retry loop deals with it.
 *
 * The mount reads this to answer from its cache while OneDrive cannot be reached,
 * instead of making every `stat` wait out the retries, and to resume waiting uploads
 * the moment the service answers again (onBack).
 */
import type { Clock } from '../common/index.js'

/** Error codes (of the error or any of its causes) that mean no connection was made. */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'ENOTFOUND', 'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT',
])

/** Did `e` (or one of its causes) fail before any connection was made? */
export function isUnreachable(e: unknown): boolean {
  let cur: unknown = e
  for (let depth = 0; depth < 8 && cur && typeof cur === 'object'; depth++) {
    const code = (cur as { code?: unknown }).code
    if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) return true
    const errors = (cur as { errors?: unknown }).errors // AggregateError of happy-eyeballs attempts
    if (Array.isArray(errors) && errors.some((x) => isUnreachable(x))) return true
    cur = (cur as { cause?: unknown }).cause
  }
  return false
}

export class Reachability {
  readonly #clock: Clock
  #since: number | undefined
  readonly #down = new Set<(since: number) => void>()
  readonly #back = new Set<(downForMs: number) => void>()

  constructor(clock: Clock) {
    this.#clock = clock
  }

  /** Clock time since which no attempt could connect (undefined: reachable). */
  get unreachableSince(): number | undefined {
    return this.#since
  }

  /** An attempt failed; counted only if it could not connect. */
  failed(e: unknown): void {
    if (this.#since !== undefined || !isUnreachable(e)) return
    this.#since = this.#clock.now()
    for (const f of this.#down) f(this.#since)
  }

  /** The service answered (any status). */
  answered(): void {
    if (this.#since === undefined) return
    const downFor = this.#clock.now() - this.#since
    this.#since = undefined
    for (const f of this.#back) f(downFor)
  }

  /** Called when the service becomes unreachable; returns an unsubscribe. */
  onDown(f: (since: number) => void): () => void {
    this.#down.add(f)
    return () => this.#down.delete(f)
  }

  /** Called when it answers again; returns an unsubscribe. */
  onBack(f: (downForMs: number) => void): () => void {
    this.#back.add(f)
    return () => this.#back.delete(f)
  }
}
