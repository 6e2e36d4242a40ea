import t from 'tap'
import { ManualClock } from '../../src/common/index.js'
import { RateLimiter } from '../../src/graph/ratelimit.js'

async function settle() {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
}

/** Advance a manual clock in small steps, letting the pump run. */
async function run(clock: ManualClock, ms: number, step = 10) {
  for (let t = 0; t < ms; t += step) {
    await clock.advance(step)
    await settle()
  }
}

function maxInWindow(times: number[], windowMs: number): number {
  let best = 0
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= windowMs) j++
    best = Math.max(best, i - j + 1)
  }
  return best
}

t.test('grants at the configured rate after a one-second burst', async (t) => {
  const clock = new ManualClock(0)
  const rl = new RateLimiter({ rate: 10, clock })
  const times: number[] = []
  rl.onGrant((at) => times.push(at))
  const all = Array.from({ length: 40 }, () => rl.acquire())
  await settle()
  t.equal(times.length, 10, 'burst of one second worth')
  await run(clock, 3000)
  await Promise.all(all)
  t.equal(times.length, 40)
  // after the burst, spacing is 100 ms
  const later = times.slice(10)
  t.ok(maxInWindow(later, 1000) <= 10, 'at most 10 in any second after the burst')
})

t.test('a throttle pauses everyone, cuts the rate, and recovery stays below the observed ceiling', async (t) => {
  const clock = new ManualClock(0)
  const rl = new RateLimiter({ rate: 20, clock })
  const times: number[] = []
  rl.onGrant((at) => times.push(at))
  const waiters = Array.from({ length: 100 }, () => rl.acquire())
  await settle()
  await run(clock, 1000)
  const before = times.length
  t.ok(before >= 20, 'ran at full speed before')
  // the service says: wait 2 s
  rl.throttled(2000)
  const throttleAt = clock.now()
  const s = rl.stats()
  t.ok(s.currentRate <= 10, `rate cut (now ${s.currentRate})`)
  t.ok(s.ceiling !== undefined && s.ceiling <= 20)
  await run(clock, 1990)
  t.equal(times.filter((x) => x > throttleAt && x < throttleAt + 2000).length, 0, 'nothing granted during Retry-After')
  await run(clock, 20_000)
  await Promise.all(waiters)
  t.equal(times.length, 100)
  const after = times.filter((x) => x >= throttleAt)
  t.ok(maxInWindow(after, 1000) <= Math.ceil(s.ceiling!) , 'after the throttle never above the observed ceiling per second')
  t.ok(rl.stats().currentRate > s.currentRate, 'rate recovers over quiet seconds')
})

t.test('abort removes a waiter', async (t) => {
  const clock = new ManualClock(0)
  const rl = new RateLimiter({ rate: 1, clock })
  await rl.acquire()
  rl.throttled(10_000)
  const ac = new AbortController()
  const p = rl.acquire(ac.signal)
  ac.abort(new Error('stop'))
  await t.rejects(p, /stop/)
  t.throws(() => new RateLimiter({ rate: 0 }))
})

t.test('content transfers take no token but wait out a global pause', async (t) => {
  const clock = new ManualClock(0)
  const rl = new RateLimiter({ rate: 2, clock })
  // Far more than the budget, all at once: none of them waits for a token.
  for (let i = 0; i < 50; i++) await rl.whenUnpaused()
  t.equal(rl.stats().granted, 0, 'no API token was taken')
  rl.throttled(3000)
  let passed = false
  const p = rl.whenUnpaused().then(() => (passed = true))
  await clock.advance(2000)
  t.equal(passed, false, 'held while the user is paused')
  await clock.advance(1000)
  await p
  t.equal(passed, true, 'released when the pause ends')
  const ac = new AbortController()
  rl.throttled(5000)
  const q = rl.whenUnpaused(ac.signal)
  ac.abort(new Error('cancelled'))
  await t.rejects(q, /cancelled/)
})
