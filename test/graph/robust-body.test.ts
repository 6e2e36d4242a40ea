// A connection that breaks in the middle of an answer's body is a network failure
// of that request: a listing page cut mid-body is fetched again (not a bare
// "TypeError: terminated"), and an upload whose fragment answer is cut resumes
// from the session's status instead of aborting.
import t from 'tap'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, type UploadSource } from '../../src/graph/index.js'
import { cutProxy, faultDispatcher } from './fault-support.js'

let emu: TestEmulator
t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty' })
})
t.teardown(async () => {
  await emu?.close()
})

const fastRetry = { baseDelayMs: 1, maxDelayMs: 5 }

t.test('a listing page cut mid-body is fetched again', async (t) => {
  const proxy = await cutProxy(emu.port)
  t.teardown(() => proxy.close())
  const token = await tokenFor(emu, 'user1')
  const c = createGraphDriveClient({ baseUrl: proxy.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, retry: fastRetry })
  const drive = await c.getMyDrive()
  await emu.store.createMany('user1', 'cutlist', 1000)
  const folder = emu.store.itemByPath('user1', 'cutlist')!
  emu.resetStats()
  // One page (1000 items, far more than 64 KiB): the emulator's nextLinks name its own
  // address, not the proxy's, so this test stays on the first page.
  proxy.arm(64 * 1024)
  const kids = await c.listChildren({ driveId: drive.id, itemId: folder.id })
  t.equal(proxy.cuts, 1, 'the connection was cut once')
  t.equal(kids.length, 1000, 'every child listed')
  t.equal(new Set(kids.map((k) => k.id)).size, 1000, 'no duplicates')
  t.equal(emu.stats.routes['GET /drives/{id}/items/{id}/children'], 2, 'the cut page was asked for again')
  t.equal(c.stats().networkErrors, 1, 'counted as one network error of the pipeline')
})

t.test('an upload whose fragment answer breaks resumes from the session status', async (t) => {
  const fd = faultDispatcher(emu.dispatcher)
  const token = await tokenFor(emu, 'user1')
  const c = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: fd.dispatcher, retry: fastRetry })
  const drive = await c.getMyDrive()
  const unit = 327_680
  const data = Buffer.alloc(3 * unit, 7)
  const src: UploadSource = { size: data.length, read: async (o, n) => data.subarray(o, o + n) }
  // The answer (202) to the first fragment is lost after its headers.
  fd.add({ method: 'PUT', path: /^\/_upload\//, breakBody: true })
  const r = await c.upload({ driveId: drive.id, itemId: 'root' }, 'cut-answer.bin', src, { fragmentSize: unit })
  t.equal(r.item.size, data.length)
  t.equal(r.verified, true)
  t.equal(fd.count('GET', /^\/_upload\//), 1, 'the session was asked where to resume')
  t.equal(fd.count('PUT', /^\/_upload\//), 3, 'no fragment was sent twice (the first one had arrived)')
})
