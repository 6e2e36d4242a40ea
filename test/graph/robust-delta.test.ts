// A delta enumeration streams its pages (nothing accumulated by pages()) and, when
// interrupted by an error, resumes from the page that failed instead of starting over.
import t from 'tap'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient } from '../../src/graph/index.js'
import { faultDispatcher } from './fault-support.js'

let emu: TestEmulator
t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty' })
})
t.teardown(async () => {
  await emu?.close()
})

t.test('a delta enumeration streams its pages', async (t) => {
  const fd = faultDispatcher(emu.dispatcher)
  const token = await tokenFor(emu, 'user1')
  const c = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: fd.dispatcher, retry: { baseDelayMs: 1, maxDelayMs: 5 } })
  const drive = await c.getMyDrive()
  await emu.store.createMany('user1', 'delta-many', 700)
  const deltaCalls = () => fd.seen.filter((s) => /\/root\/delta$/.test(s.path)).length

  // Streamed: pages arrive one by one, none larger than the service's page.
  const counting = c.delta(drive.id)
  let pages = 0
  let total = 0
  for await (const p of counting.pages()) {
    pages++
    total += p.items.length
    t.ok(p.items.length <= 200, `page ${pages}: ${p.items.length} items`)
  }
  t.ok(pages >= 4, `${pages} pages`)
  t.ok(counting.state, 'the round ended with a deltaLink')

})

t.test('an interrupted delta enumeration resumes where it stopped', async (t) => {
  const fd = faultDispatcher(emu.dispatcher)
  const token = await tokenFor(emu, 'user1')
  const c = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: fd.dispatcher, retry: { baseDelayMs: 1, maxDelayMs: 5 } })
  const drive = await c.getMyDrive()
  const deltaCalls = () => fd.seen.filter((s) => /\/root\/delta$/.test(s.path)).length
  const full = await c.delta(drive.id).next()
  const pages = full.pages
  const total = full.items.length
  t.ok(pages >= 4, `${pages} pages`)
  // Interrupted: the third page fails (sent as DELETE, the service refuses it).
  const cur = c.delta(drive.id)
  const before = deltaCalls()
  fd.add({ method: 'GET', path: /\/root\/delta$/, skip: 2, asMethod: 'DELETE' })
  const failed = await cur.next().catch((e: unknown) => e)
  t.type(failed, Error, 'the first call failed')
  t.match(cur.position ?? '', /skiptoken/, 'the cursor kept the nextLink of the page that failed')
  const batch = await cur.next()
  t.equal(batch.items.length, total, 'every item, once, across the interruption')
  t.equal(batch.pages, pages)
  t.equal(deltaCalls() - before, pages + 1, `the failed page was asked again, the pages before it were not (${deltaCalls() - before} calls for ${pages} pages)`)
})
