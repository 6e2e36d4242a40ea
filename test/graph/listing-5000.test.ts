// Listing a folder of 5,000 items takes ceil(5000 / page size) calls, counted by
// the emulator, with the largest page the service allows (1000).
import t from 'tap'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, MAX_PAGE_SIZE } from '../../src/graph/index.js'

let emu: TestEmulator
t.teardown(async () => {
  await emu?.close()
})

t.test('5,000 children in ceil(5000/1000) calls', async (t) => {
  emu = await startTestEmulator({ seed: 'empty' })
  const token = await tokenFor(emu, 'user1')
  const client = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher })
  const drive = await client.getMyDrive()
  await emu.store.createMany('user1', 'many', 5000)
  const folder = emu.store.itemByPath('user1', 'many')!
  emu.resetStats()
  const kids = await client.listChildren({ driveId: drive.id, itemId: folder.id })
  t.equal(kids.length, 5000)
  t.equal(new Set(kids.map((k) => k.id)).size, 5000, 'no duplicates across pages')
  const listCalls = Object.entries(emu.stats.routes).filter(([r]) => r.startsWith('GET ') && r.endsWith('/children')).reduce((a, [, n]) => a + n, 0)
  t.equal(listCalls, Math.ceil(5000 / MAX_PAGE_SIZE), `children calls: ${JSON.stringify(emu.stats.routes)}`)
  t.equal(emu.stats.total, listCalls, 'no other call was made')
  // only the selected fields come back
  t.notOk('createdBy' in kids[0]!, '$select applied')
  t.comment(`calls per listing of 5000: ${listCalls}`)
})
