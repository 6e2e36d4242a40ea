// A 429 storm: emulator budget 5 requests/s per user, 200 operations issued at once.
// Everything completes without an error, and after the first 429 the client's own
// request rate (timestamps of every request it sent, retries included) never
// exceeds 5.5/s over any 2-second window.
import t from 'tap'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient } from '../../src/graph/index.js'

let emu: TestEmulator
t.teardown(async () => {
  await emu?.close()
})

t.test('200 operations against a budget of 5/s', async (t) => {
  emu = await startTestEmulator({ seed: 'empty' })
  const token = await tokenFor(emu, 'user1')
  const client = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, rateLimit: 20 })
  const drive = await client.getMyDrive()
  const folder = emu.store.mkdirp('user1', 'storm')
  emu.setFaults({ rateLimit: 5 })
  emu.resetStats()

  const sent: number[] = []
  client.limiter.onGrant(() => sent.push(Date.now()))
  let first429: number | undefined
  const ops = Array.from({ length: 200 }, async () => {
    const item = await client.getItem({ driveId: drive.id, itemId: folder.id })
    return item.id
  })
  const watch = setInterval(() => {
    if (first429 === undefined && client.stats().throttled > 0) first429 = Date.now()
  }, 5)
  let results: string[]
  try {
    results = await Promise.all(ops)
  } finally {
    clearInterval(watch)
  }
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
  t.comment(`requests sent ${sent.length}, 429s ${stats.throttled}, retries ${stats.retries}, final rate ${client.limiter.rate.toFixed(2)}/s, worst 2 s rate after first 429 ${worst}/s`)
})
