// Calls retried after a lost answer recognise their own success: a rename with
// If-Match whose answer was lost (the retry meets 412: the eTag moved on), and an
// empty file created with conflictBehavior=fail (the retry meets 409).
import t from 'tap'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, type DriveClient } from '../../src/graph/index.js'
import { cutProxy, type CutProxy } from './fault-support.js'

let emu: TestEmulator
let proxy: CutProxy
t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty' })
  proxy = await cutProxy(emu.port)
})
t.teardown(async () => {
  await proxy?.close()
  await emu?.close()
})

async function client(): Promise<DriveClient> {
  const token = await tokenFor(emu, 'user1')
  return createGraphDriveClient({ baseUrl: proxy.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, retry: { baseDelayMs: 1, maxDelayMs: 5 } })
}

t.test('a rename with If-Match whose answer is lost succeeds', async (t) => {
  const c = await client()
  const drive = await c.getMyDrive()
  const folder = await c.createFolder({ driveId: drive.id, itemId: 'root' }, 'before-rename')
  const ref = { driveId: drive.id, itemId: folder.id }
  const cuts = proxy.cuts
  proxy.arm(64) // the PATCH is carried out, its answer cut after a few bytes
  const item = await c.move(ref, { name: 'after-rename', ifMatch: folder.eTag })
  t.equal(proxy.cuts, cuts + 1, 'the answer was lost once')
  t.equal(item.name, 'after-rename')
  t.equal(emu.stats.status['412'] ?? 0, 1, 'the resent PATCH met its own change (412)')
})

t.test('an empty file created with conflictBehavior=fail whose answer is lost succeeds', async (t) => {
  const c = await client()
  const drive = await c.getMyDrive()
  const before = emu.stats.status['409'] ?? 0
  const cuts = proxy.cuts
  proxy.arm(64)
  const r = await c.upload({ driveId: drive.id, itemId: 'root' }, 'empty-fail.txt', { size: 0, read: async () => Buffer.alloc(0) }, { conflictBehavior: 'fail' })
  t.equal(proxy.cuts, cuts + 1, 'the answer was lost once')
  t.equal(r.item.name, 'empty-fail.txt')
  t.equal(r.item.size, 0)
  t.equal((emu.stats.status['409'] ?? 0) - before, 1, 'the resent PUT met its own file (409)')
})
