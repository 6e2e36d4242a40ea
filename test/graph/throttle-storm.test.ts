// A 429 storm: emulator budget 5 units/s per user, 200 operations issued at once.
// Everything completes without an error, and after the first 429 the client's own
// request rate (timestamps of every request it sent, retries included) never
// exceeds 5.5/s over any 2-second window. Client and emulator share a manual clock,
// moved forward in small steps while real time lets the HTTP exchanges run.
import t from 'tap'
import { ManualClock } from '../../src/common/index.js'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient } from '../../src/graph/index.js'

let emu: TestEmulator
t.teardown(async () => {
  await emu?.close()
})

const tick = () => new Promise((r) => setTimeout(r, 1))

t.test('200 operations against a budget of 5/s', async (t) => {
  const clock = new ManualClock()
  emu = await startTestEmulator({ seed: 'empty', clock })
  const token = await tokenFor(emu, 'user1')
  const client = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, rateLimit: 20, clock })
  const drive = await client.getMyDrive()
  const folder = emu.store.mkdirp('user1', 'storm')
  emu.setFaults({ rateLimit: 5 })
  emu.resetStats()

  const sent: number[] = []
  client.limiter.onGrant((at) => sent.push(at))
  let first429: number | undefined
  let done = false
  const all = Promise.all(Array.from({ length: 200 }, async () => {
    const item = await client.getItem({ driveId: drive.id, itemId: folder.id })
    return item.id
  })).finally(() => {
    done = true
  })
  // 20 ms of service time per step; a real millisecond or so for the requests in flight
  for (let steps = 0; !done && steps < 60_000; steps++) {
    await tick()
    if (first429 === undefined && client.stats().throttled > 0) first429 = clock.now()
    await clock.advance(20)
  }
  const results = await all
  t.equal(results.length, 200, 'every operation completed')
  t.ok(results.every((id) => id === folder.id))
  const stats = client.stats()
  t.ok(stats.throttled >= 1, `the service throttled (${stats.throttled} × 429)`)
  t.equal(emu.stats.throttled429, stats.throttled, 'client counted every 429 the emulator sent')
  t.ok(first429 !== undefined)

  // Client-side rate after the first 429, over 2 s windows starting at each request.
  const after = sent.filter((x) => x >= first429!)
  let worst = 0
  for (let i = 0, j = 0; j < after.length; j++) {
    // window [after[i], after[i] + 2000)
    while (after[j]! - after[i]! >= 2000) i++
    worst = Math.max(worst, (j - i + 1) / 2)
  }
  t.ok(worst <= 5.5, `worst client rate after the first 429: ${worst}/s (budget 5/s)`)
  t.comment(`requests sent ${sent.length}, 429s ${stats.throttled}, retries ${stats.retries}, final rate ${client.limiter.rate.toFixed(2)}/s, worst 2 s rate after first 429 ${worst}/s, service time ${((sent.at(-1)! - sent[0]!) / 1000).toFixed(1)} s`)
})
