// Ranged downloads of a 1 GiB file (emulator ramp pattern, byte i = i & 0xff) match
// its sha256, streamed in 64 MiB ranges (no 1 GiB buffer). Each range's first and
// last bytes are checked against the pattern, and the concatenation's quickXorHash
// (position-sensitive with period 160, so it also catches shifts by multiples of 256)
// must equal the server's.
import t from 'tap'
import { createHash } from 'node:crypto'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, QuickXorHash } from '../../src/graph/index.js'

let emu: TestEmulator
t.teardown(async () => {
  await emu?.close()
})

t.test('1 GiB in 64 MiB ranges', async (t) => {
  emu = await startTestEmulator({ seed: 'empty' })
  const token = await tokenFor(emu, 'user1')
  const client = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher })
  const drive = await client.getMyDrive()
  const size = 1024 * 1024 * 1024
  const item = await emu.store.writeFile('user1', 'big/1g.bin', { size, pattern: 'ramp' })
  const ref = { driveId: drive.id, itemId: item.id }
  const server = await client.getItem(ref)
  t.equal(server.size, size)

  const range = 64 * 1024 * 1024
  const sha = createHash('sha256')
  const qx = new QuickXorHash()
  emu.resetStats()
  for (let start = 0; start < size; start += range) {
    const end = Math.min(size, start + range)
    const rs = await client.openRange(ref, start, end)
    let pos = start
    let first = true
    let last = -1
    for await (const c of rs.body as AsyncIterable<Buffer>) {
      if (first) {
        if (c[0] !== (start & 0xff)) t.fail(`range ${start}: first byte ${c[0]}`)
        first = false
      }
      sha.update(c)
      qx.update(c)
      pos += c.length
      last = c[c.length - 1]!
    }
    if (pos !== end) t.fail(`range ${start}-${end} delivered ${pos - start} bytes`)
    if (last !== ((end - 1) & 0xff)) t.fail(`range ${start}: last byte ${last}`)
  }
  const want = createHash('sha256')
  const mib = Buffer.alloc(1 << 20)
  for (let i = 0; i < mib.length; i++) mib[i] = i & 0xff
  for (let i = 0; i < 1024; i++) want.update(mib)
  t.equal(sha.digest('hex'), want.digest('hex'), 'sha256 of the ranges equals the file')
  t.equal(qx.digest(), server.file?.hashes?.quickXorHash, "quickXorHash equals the server's")
  t.equal(emu.stats.routes['GET /_download/{id}'] ?? Object.entries(emu.stats.routes).filter(([r]) => r.startsWith('GET /_download')).reduce((a, [, n]) => a + n, 0), 16, 'one request per range')
  t.ok(emu.stats.bytesOut >= size && emu.stats.bytesOut < size + 1024 * 1024, `bytes out ${emu.stats.bytesOut}`)
})
