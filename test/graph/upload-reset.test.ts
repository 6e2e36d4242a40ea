// A 100 MiB upload by session survives a connection reset in the middle of a
// fragment and resumes without resending completed fragments (bytes counted by
// the emulator). The content is a position-dependent pattern generated on the fly.
import t from 'tap'
import { createHash } from 'node:crypto'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, quickXorHash, type UploadSource } from '../../src/graph/index.js'

let emu: TestEmulator
t.teardown(async () => {
  await emu?.close()
})

/** Byte i = low byte of (i * 2654435761 >> 13) ^ i: never periodic in 256 or 160. */
export function patternAt(offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length)
  for (let k = 0; k < length; k++) {
    const i = offset + k
    b[k] = ((Math.imul(i, 2654435761) >>> 13) ^ i) & 0xff
  }
  return b
}

t.test('100 MiB by session with a reset mid-fragment', async (t) => {
  emu = await startTestEmulator({ seed: 'empty' })
  const token = await tokenFor(emu, 'user1')
  const client = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher })
  const drive = await client.getMyDrive()
  const size = 100 * 1024 * 1024
  const frag = 10 * 1024 * 1024 // the default, a multiple of 320 KiB
  const breakAt = 5 * frag // the sixth fragment is cut half-way
  // Armed once fragment 5 is the next to go (fragments are sent one at a time),
  // disarmed once it was cut: the source is read again for the resent fragment
  // before that reaches the emulator.
  let armed = false
  const source: UploadSource = {
    size,
    async read(offset, length) {
      if (armed && emu.stats.resets > 0) {
        armed = false
        emu.setFaults({ resetRate: 0 })
      }
      return patternAt(offset, length)
    },
  }
  const onProgress = (acknowledged: number) => {
    if (acknowledged === breakAt && !armed && emu.stats.resets === 0) {
      armed = true
      emu.setFaults({ resetRate: 1 })
    }
  }
  emu.resetStats()
  const res = await client.upload({ driveId: drive.id, itemId: 'root' }, 'big100.bin', source, { fragmentSize: frag, onProgress })
  emu.setFaults({ resetRate: 0 })
  t.equal(res.item.size, size)
  t.equal(res.verified, true, 'quickXorHash verified')
  t.equal(emu.stats.resets, 1, 'exactly one reset happened')
  const putFragments = Object.entries(emu.stats.routes).filter(([r]) => r.startsWith('PUT /_upload')).reduce((a, [, n]) => a + n, 0)
  t.equal(putFragments, 11, `10 fragments + the one resent (${JSON.stringify(emu.stats.routes)})`)
  // Bytes: everything once, plus the half fragment that was cut, plus the resent fragment's... nothing more.
  t.ok(emu.stats.bytesIn <= size + frag, `bytes received ${emu.stats.bytesIn} <= size + one fragment`)
  t.ok(emu.stats.bytesIn >= size + frag / 2 - 1, 'the cut half-fragment was counted')
  t.equal(res.resumedFrom, 0)
  // the server holds exactly these bytes
  const h = createHash('sha256')
  const want = createHash('sha256')
  await client.download({ driveId: drive.id, itemId: res.item.id }, (c) => void h.update(c))
  for (let o = 0; o < size; o += frag) want.update(patternAt(o, Math.min(frag, size - o)))
  t.equal(h.digest('hex'), want.digest('hex'), 'downloaded sha256 matches')
  t.equal(res.localHash, quickXorHash(...Array.from({ length: 10 }, (_, i) => patternAt(i * frag, frag))))
})
