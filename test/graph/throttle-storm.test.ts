// A 429 storm: emulator budget 5 units/s per user, 200 operations issued at once.
// Everything completes without an error, and after the first 429 the client's own
// request rate (timestamps of every request it sent, retries included) never
// exceeds 5.5/s over any 2-second window. Client and emulator share a manual clock,
// moved forward in 20 ms steps, each taken only once every request sent has been
// answered: an exchange takes no service time, however slow the machine is.
import t from 'tap'
import type { Dispatcher } from 'undici'
import { ManualClock } from '../../src/common/index.js'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient } from '../../src/graph/index.js'

let emu: TestEmulator
t.teardown(async () => {
  await emu?.close()
})

/** `inner`, counting the requests on their way; `answered()` resolves when the next one ends. */
function inFlight(inner: Dispatcher): { dispatcher: Dispatcher; open(): number; answered(): Promise<void> } {
  let open = 0
  let waiters: (() => void)[] = []
  const end = () => {
    open--
    const w = waiters
    waiters = []
    for (const f of w) f()
  }
  const dispatcher = inner.compose((dispatch) => (opts, handler) => {
    open++
    return dispatch(opts, {
      onConnect: (abort) => handler.onConnect?.(abort),
      onHeaders: (status, headers, resume, text) => handler.onHeaders!(status, headers, resume, text),
      onData: (chunk) => handler.onData!(chunk),
      onComplete: (trailers) => {
        end()
        handler.onComplete?.(trailers)
      },
      onError: (e) => {
        end()
        handler.onError?.(e)
      },
      onUpgrade: handler.onUpgrade?.bind(handler),
      onBodySent: handler.onBodySent?.bind(handler),
    })
  })
  return { dispatcher, open: () => open, answered: () => new Promise<void>((r) => waiters.push(r)) }
}

/** A few turns of the event loop: what an answer set off (a throttle, the next grant) runs first. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r))
}

t.test('200 operations against a budget of 5/s', async (t) => {
  const clock = new ManualClock()
  emu = await startTestEmulator({ seed: 'empty', clock })
  const token = await tokenFor(emu, 'user1')
  const net = inFlight(emu.dispatcher as unknown as Dispatcher)
  const client = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: net.dispatcher, rateLimit: 20, clock })
  const drive = await client.getMyDrive()
  const folder = emu.store.mkdirp('user1', 'storm')
  emu.setFaults({ rateLimit: 5 })
  emu.resetStats()

  const sent: number[] = []
  // Grants from the first one made after the client heard its first 429 (answers
  // take no service time here, so the burst that drew the 429 shares its clock time).
  let firstAfter429: number | undefined
  client.limiter.onGrant((at) => {
    if (firstAfter429 === undefined && client.limiter.stats().throttleEvents > 0) firstAfter429 = sent.length
    sent.push(at)
  })
  let done = false
  const all = Promise.all(Array.from({ length: 200 }, async () => {
    const item = await client.getItem({ driveId: drive.id, itemId: folder.id })
    return item.id
  })).finally(() => {
    done = true
  })
  // 20 ms of service time per step, taken when no request is in flight.
  for (let steps = 0; !done && steps < 60_000; ) {
    await settle()
    if (net.open() > 0) {
      await Promise.race([net.answered(), all.catch(() => undefined)])
      continue
    }
    await clock.advance(20)
    steps++
  }
  const results = await all
  t.equal(results.length, 200, 'every operation completed')
  t.ok(results.every((id) => id === folder.id))
  const stats = client.stats()
  t.ok(stats.throttled >= 1, `the service throttled (${stats.throttled} × 429)`)
  t.equal(emu.stats.throttled429, stats.throttled, 'client counted every 429 the emulator sent')
  t.ok(firstAfter429 !== undefined, 'requests were sent after the first 429')

  // Client-side rate after the first 429, over 2 s windows starting at each request.
  const after = sent.slice(firstAfter429)
  let worst = 0
  for (let i = 0, j = 0; j < after.length; j++) {
    // window [after[i], after[i] + 2000)
    while (after[j]! - after[i]! >= 2000) i++
    worst = Math.max(worst, (j - i + 1) / 2)
  }
  t.ok(worst <= 5.5, `worst client rate after the first 429: ${worst}/s (budget 5/s)`)
  t.comment(`requests sent ${sent.length}, 429s ${stats.throttled}, retries ${stats.retries}, final rate ${client.limiter.rate.toFixed(2)}/s, worst 2 s rate after first 429 ${worst}/s, service time ${((sent.at(-1)! - sent[0]!) / 1000).toFixed(1)} s`)
})
