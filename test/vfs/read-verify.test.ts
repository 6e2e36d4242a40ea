// A remote file read through the mount from start to end is checked against the
// quickXorHash OneDrive reports for the version read: a mismatch gives EIO (badData)
// with an error, never a silent wrong copy; a whole file that matches reads clean,
// and a file read only in part is not judged (its hash covers the whole).
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { constants } from 'node:fs'
import { createGraphDriveClient } from '../../src/graph/index.js'
import { Vfs } from '../../src/vfs/index.js'
import { CHUNK } from '../../src/vfs/reader.js'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'

let emu: TestEmulator
let dir: string
t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0 })
  dir = await mkdtemp(join(tmpdir(), 'odfs-read-verify-'))
})
t.teardown(async () => {
  await emu?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

/** Read a whole file with 128 KiB reads, as the kernel sends them; the error of the first failing read, if any. */
async function readAll(vfs: Vfs, path: string): Promise<{ bytes: number; error?: unknown }> {
  const fh = await vfs.open(path, constants.O_RDONLY)
  const buf = Buffer.alloc(128 << 10)
  let off = 0
  try {
    for (;;) {
      const n = await vfs.read(fh, buf, buf.length, off)
      if (n === 0) return { bytes: off }
      off += n
    }
  } catch (error) {
    return { bytes: off, error }
  } finally {
    await vfs.release(fh)
  }
}

t.test('whole-file reads are verified against the reported quickXorHash', async (t) => {
  const size = 3 * CHUNK + 12_345
  await emu.store.writeFile('user1', 'v/good.bin', { size, pattern: 'ramp' })
  await emu.store.writeFile('user1', 'v/bad.bin', { size, pattern: 'ramp' })
  emu.setFaults({ hostileHash: 'v/bad.bin' })
  t.teardown(() => emu.setFaults({ hostileHash: '' }))
  const token = await tokenFor(emu, 'user1')
  const client = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher })
  const vfs = new Vfs({ client, spoolDir: join(dir, 'spool') })
  await vfs.init()
  t.teardown(() => vfs.close())

  const good = await readAll(vfs, '/My files/v/good.bin')
  t.equal(good.error, undefined, 'a file whose bytes match its hash reads without error')
  t.equal(good.bytes, size, 'to its end')

  const fh = await vfs.open('/My files/v/bad.bin', constants.O_RDONLY)
  const part = Buffer.alloc(4096)
  t.equal(await vfs.read(fh, part, part.length, CHUNK), 4096, 'a read of a part of the damaged file is not judged')
  await vfs.release(fh)

  const bad = await readAll(vfs, '/My files/v/bad.bin')
  t.match(bad.error, { code: 'badData', message: /do not match the quickXorHash/ }, 'reading the damaged file to its end fails with badData (EIO)')
  t.ok(bad.bytes > size - (2 * CHUNK) && bad.bytes <= size, `at the end of the file (after ${bad.bytes} of ${size} bytes)`)
  const again = await readAll(vfs, '/My files/v/bad.bin')
  t.match(again.error, { code: 'badData' }, 'and again on the next read of that version')
})
