// Per-user throttling (docs/emulator/throttling.md) driven by a manual clock: a budget of
// resource units per window that throttled requests still spend, so a client that waits
// out Retry-After and slows down gets through, while one that keeps hammering stays throttled.
import t from 'tap'
import { ManualClock } from '../../src/common/index.js'
import { startTestEmulator, tokenFor, graphCaller, type TestEmulator } from '../support/emulator.js'

let emu: TestEmulator
let g: ReturnType<typeof graphCaller>
const clock = new ManualClock()

t.before(async () => {
  emu = await startTestEmulator({ seed: 'demo', rateLimit: 0, clock })
  g = graphCaller(emu, await tokenFor(emu, 'user1'))
})
t.teardown(() => emu.close())

/** A fresh budget of `rate` units per second (one-second window). */
function limit(rate: number, windowSec = 1): void {
  emu.setFaults({ rateLimit: rate, rateWindowSec: windowSec })
}

t.test('a client that honours Retry-After and slows down gets through', async (t) => {
  limit(5)
  t.teardown(() => limit(0))
  for (let i = 0; i < 5; i++) t.equal((await g('GET', '/me')).status, 200, `request ${i + 1} within the budget`)
  const over = await g('GET', '/me')
  t.equal(over.status, 429)
  t.equal(over.body.error.code, 'activityLimitReached')
  t.equal(over.body.error.innerError.code, 'throttledRequest')
  const wait = Number(over.headers.get('retry-after'))
  t.ok(Number.isInteger(wait) && wait >= 1, `integer Retry-After (${wait})`)
  await clock.advance(wait * 1000)
  // 4 requests a second against a budget of 5 a second, for a minute
  const statuses = new Set<number>()
  for (let i = 0; i < 240; i++) {
    statuses.add((await g('GET', '/me')).status)
    await clock.advance(250)
  }
  t.same([...statuses], [200], 'never throttled again')
})

t.test('requests sent while throttled count: a hammering client stays throttled', async (t) => {
  limit(5)
  t.teardown(() => limit(0))
  for (let i = 0; i < 5; i++) await g('GET', '/me')
  const first = await g('GET', '/me')
  t.equal(first.status, 429)
  let last = Number(first.headers.get('retry-after'))
  // 10 requests a second, twice the budget, for 20 seconds
  let ok = 0
  for (let i = 0; i < 200; i++) {
    await clock.advance(100)
    const r = await g('GET', '/me')
    if (r.status === 200) ok++
    else {
      const ra = Number(r.headers.get('retry-after'))
      t.ok(ra >= last - 1, 'Retry-After does not shrink under pressure')
      last = Math.max(last, ra)
    }
  }
  t.equal(ok, 0, 'every request while hammering was refused')
  t.ok(last > 5, `Retry-After escalated to ${last} s`)
  t.ok(last <= 300, 'within the service-like cap')
  // waiting out the last Retry-After clears it
  await clock.advance(last * 1000)
  t.equal((await g('GET', '/me')).status, 200)
})

t.test('one poll a minute is never kept out', async (t) => {
  limit(5)
  t.teardown(() => limit(0))
  // the budget is gone and the user kept going for a while
  for (let i = 0; i < 50; i++) await g('GET', '/me')
  const statuses: number[] = []
  for (let i = 0; i < 10; i++) {
    await clock.advance(60_000)
    statuses.push((await g('GET', '/me')).status)
  }
  t.same(statuses, Array(10).fill(200), 'a well-behaved poller is not blocked forever')
})

t.test('requests cost resource units: a listing 2, an item 1', async (t) => {
  limit(4)
  t.teardown(() => limit(0))
  t.equal((await g('GET', '/me/drive/root/children')).status, 200)
  t.equal((await g('GET', '/me/drive/root/children')).status, 200)
  t.equal((await g('GET', '/me/drive/root/children')).status, 429, 'three listings exceed 4 units')
  await clock.advance(60_000)
  for (let i = 0; i < 3; i++) t.equal((await g('GET', '/me/drive/root')).status, 200)
  const near = await g('GET', '/me/drive/root')
  t.equal(near.status, 200, 'four single items fit')
  t.equal(near.headers.get('ratelimit-limit'), '4', 'RateLimit-* headers near the budget')
  t.equal(near.headers.get('ratelimit-remaining'), '0')
  t.match(near.headers.get('ratelimit-reset'), /^\d+$/)
})

t.test('a request dearer than the whole budget still passes once nothing else is used', async (t) => {
  limit(1)
  t.teardown(() => limit(0))
  await clock.advance(60_000)
  t.equal((await g('GET', '/me/drive/root/children')).status, 200, 'a 2-unit listing on a 1-unit budget')
  const r = await g('GET', '/me/drive/root/children')
  t.equal(r.status, 429)
  await clock.advance(Number(r.headers.get('retry-after')) * 1000)
  t.equal((await g('GET', '/me/drive/root/children')).status, 200, 'after Retry-After')
})

t.test('a longer window allows a larger burst at the same rate', async (t) => {
  limit(1, 60)
  t.teardown(() => limit(0))
  const statuses: number[] = []
  for (let i = 0; i < 61; i++) statuses.push((await g('GET', '/me')).status)
  t.equal(statuses.filter((s) => s === 200).length, 60, '60 units in a 60-second window')
  t.equal(statuses[60], 429)
})

t.test('$batch sub-requests are charged one by one', async (t) => {
  limit(3)
  t.teardown(() => limit(0))
  const r = await g('POST', '/$batch', { requests: Array.from({ length: 6 }, (_, i) => ({ id: String(i), method: 'GET', url: '/me' })) })
  t.equal(r.status, 200)
  t.equal(r.body.responses.filter((x: any) => x.status === 200).length, 3)
  t.equal(r.body.responses.filter((x: any) => x.status === 429).length, 3)
})
