// A children listing streams its pages, and one interrupted after its retries
// resumes from the nextLink of the page that failed, not from page 1
// (src/graph/client.ts iterateChildren). Requests per page are counted with
// /_emulator/stats; the failure is the emulator's own (5xx on every request).
import t from 'tap'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, type DriveItem, type ItemRef } from '../../src/graph/index.js'
import { systemClock, type Clock } from '../../src/common/index.js'

let emu: TestEmulator
t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0 })
  await emu.store.createMany('user1', 'many', 500)
})
t.teardown(async () => {
  await emu?.close()
})

const TOP = 100 // 5 pages
const faults = (f: Record<string, unknown>) => emu.fetch('/_emulator/faults', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(f) })
const childrenCalls = async () => {
  const s = (await (await emu.fetch('/_emulator/stats')).json()) as { routes: Record<string, number> }
  return Object.entries(s.routes).filter(([k]) => /^GET .*\/children/.test(k)).reduce((a, [, v]) => a + v, 0)
}

async function setup() {
  const token = await tokenFor(emu, 'user1')
  // Retries sleep for real (a few ms); the time the resume window is read against can be moved.
  let offset = 0
  const clock: Clock & { advance(ms: number): void } = { now: () => Date.now() + offset, sleep: systemClock.sleep, advance: (ms) => (offset += ms) }
  const c = createGraphDriveClient({
    baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, clock, rateLimit: 1000,
    retry: { baseDelayMs: 1, maxDelayMs: 5, maxAttempts: 3 },
  })
  const drive = await c.getMyDrive()
  const folder = await c.getItemByPath(drive.id, 'many')
  return { c, clock, ref: { driveId: drive.id, itemId: folder.id } }
}

/** Enumerate; from page `failFrom` on the service fails every request. */
async function enumerate(c: Awaited<ReturnType<typeof setup>>['c'], ref: ItemRef, failFrom = 0): Promise<{ items: DriveItem[]; err?: unknown }> {
  const items: DriveItem[] = []
  let n = 0
  try {
    for await (const page of c.iterateChildren(ref, { top: TOP })) {
      items.push(...page)
      if (++n === failFrom - 1) await faults({ serverErrorRate: 1 })
    }
    return { items }
  } catch (err) {
    return { items, err }
  } finally {
    await faults({ serverErrorRate: 0 })
  }
}

t.test('a listing interrupted after its retries resumes from the page that failed', async (t) => {
  const { c, clock, ref } = await setup()
  await emu.fetch('/_emulator/stats/reset', { method: 'POST' })
  const full = await enumerate(c, ref)
  t.equal(full.items.length, 500)
  t.equal(await childrenCalls(), 5, 'five pages, one request each')

  await emu.fetch('/_emulator/stats/reset', { method: 'POST' })
  const cut = await enumerate(c, ref, 3)
  t.ok(cut.err, 'the first enumeration failed')
  t.equal(cut.items.length, 200, 'after two pages')
  t.equal(await childrenCalls(), 5, 'two pages, then page 3 three times')

  await emu.fetch('/_emulator/stats/reset', { method: 'POST' })
  const again = await enumerate(c, ref)
  t.equal(again.items.length, 500, 'the next enumeration gives every child')
  t.equal(new Set(again.items.map((i) => i.id)).size, 500, 'once each')
  t.equal(await childrenCalls(), 3, 'pages 3 to 5 only: pages 1 and 2 were not asked again')

  // Interrupted again, but resumed too late: the nextLink is not trusted, it starts over.
  t.ok((await enumerate(c, ref, 2)).err)
  clock.advance(61_000)
  await emu.fetch('/_emulator/stats/reset', { method: 'POST' })
  t.equal((await enumerate(c, ref)).items.length, 500)
  t.equal(await childrenCalls(), 5, 'after LISTING_RESUME_MS, from page 1')
})
