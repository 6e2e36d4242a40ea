// Every call is bounded in time: time queued for the per-user rate limiter counts
// towards the call's deadline (on the injected clock), and a Retry-After longer
// than the cap is reported at once as a GraphError saying for how long the
// service throttles, not slept through.
import t from 'tap'
import { ManualClock } from '../../src/common/index.js'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, GraphError } from '../../src/graph/index.js'

let emu: TestEmulator
t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty' })
})
t.teardown(async () => {
  await emu?.close()
})

/** Whether `p` settles while only the event loop runs (no clock moves). */
async function settles(p: Promise<unknown>): Promise<boolean> {
  let done = false
  void p.then(() => (done = true), () => (done = true))
  for (let i = 0; i < 50 && !done; i++) await new Promise((r) => setImmediate(r))
  return done
}

t.test('time queued for the rate limiter counts towards the deadline', async (t) => {
  const clock = new ManualClock()
  const token = await tokenFor(emu, 'user1')
  // One call per 2 s; a deadline of 1 s per call.
  const c = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, clock, rateLimit: 0.5, deadlineMs: 1000 })
  const drive = await c.getMyDrive() // takes the only token of this 2 s window
  emu.resetStats()
  const second = c.getDrive(drive.id).catch((e: unknown) => e)
  await clock.advance(999)
  t.equal(await settles(second), false, 'still queued before the deadline')
  await clock.advance(1)
  if (!t.equal(await settles(second), true, 'given up when the deadline passed, not when the limiter would have let it through')) return
  const e = await second
  t.type(e, GraphError)
  t.equal((e as GraphError).code, 'deadlineExceeded')
  t.equal((e as GraphError).classify(), 'timeout')
  t.equal(emu.stats.total, 0, 'nothing was sent')
})

t.test('a Retry-After longer than the cap is reported, not slept through', async (t) => {
  const clock = new ManualClock()
  const token = await tokenFor(emu, 'user2')
  const c = createGraphDriveClient({
    baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, clock,
    retry: { maxRetryAfterMs: 500 },
  })
  emu.setFaults({ rateLimit: 1 }) // the second call in a second is throttled with Retry-After: 1
  t.teardown(() => emu.setFaults({ rateLimit: 100 }))
  emu.resetStats()
  const drive = await c.getMyDrive()
  const p = c.getDrive(drive.id).catch((e: unknown) => e)
  if (!t.equal(await settles(p), true, 'answered without waiting on the clock')) return
  const e = (await p) as GraphError
  t.type(e, GraphError)
  t.equal(e.status, 429)
  t.equal(e.classify(), 'throttled')
  t.match(e.message, /throttled for \d+ s/, 'the error says for how long')
  t.equal(e.attempts, 1, 'not retried')
  t.equal(emu.stats.throttled429, 1)
  t.ok(c.limiter.stats().pausedUntil > clock.now(), 'the whole user still pauses for the Retry-After')
})

t.test('a call whose deadline falls inside a throttling pause fails at once', async (t) => {
  const clock = new ManualClock()
  const token = await tokenFor(emu, 'user1')
  const c = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, clock, deadlineMs: 5_000 })
  c.limiter.throttled(30_000) // as after a 429 with Retry-After: 30
  emu.resetStats()
  const p = c.getMyDrive().catch((e: unknown) => e)
  if (!t.equal(await settles(p), true, 'no wait on the clock')) return
  const e = (await p) as GraphError
  t.equal(e.classify(), 'throttled')
  t.match(e.message, /throttled for 30 s/)
  t.equal(emu.stats.total, 0, 'nothing was sent')
})
