// A wrong quickXorHash from the server is caught: an upload is retried once and
// then fails with hashMismatch (the source is untouched); a download fails too.
import t from 'tap'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, GraphError } from '../../src/graph/index.js'
import { errnoFor } from '../../src/vfs/index.js'

let emu: TestEmulator
t.teardown(async () => {
  await emu?.close()
})

t.test('corrupt hashes are caught on upload and download', async (t) => {
  emu = await startTestEmulator({ seed: 'empty' })
  const token = await tokenFor(emu, 'user1')
  const client = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher })
  const drive = await client.getMyDrive()
  const data = Buffer.from('precious bytes '.repeat(50_000))
  const copy = Buffer.from(data)
  const src = { size: data.length, read: async (o: number, n: number) => data.subarray(o, o + n) }
  const ok = await client.upload({ driveId: drive.id, itemId: 'root' }, 'h.bin', src)
  t.equal(ok.verified, true, 'verified while the server is honest')

  emu.setFaults({ corruptHashes: true })
  emu.resetStats()
  const err = await client.upload({ driveId: drive.id, itemId: 'root' }, 'h2.bin', src).catch((e: unknown) => e)
  t.type(err, GraphError)
  const g = err as GraphError
  t.equal(g.code, 'hashMismatch')
  t.equal(g.classify(), 'hashMismatch')
  t.equal(errnoFor(g), 'EIO')
  t.ok(g.details.serverHash && g.details.localHash && g.details.serverHash !== g.details.localHash)
  t.ok(data.equals(copy), 'source untouched')
  const sessions = Object.entries(emu.stats.routes).filter(([r]) => r.includes('createUploadSession')).reduce((a, [, n]) => a + n, 0)
  t.equal(sessions, 2, 'retried exactly once, then reported')

  const dl = await client.download({ driveId: drive.id, itemId: ok.item.id }, () => {}).catch((e: unknown) => e)
  t.type(dl, GraphError)
  t.equal((dl as GraphError).code, 'hashMismatch', 'download verification catches it too')
})
