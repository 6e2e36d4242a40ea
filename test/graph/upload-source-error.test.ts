// A source that fails while a fragment is being sent (a read error, a file that
// shrank) stops the upload with the source's own error, not a network error and not
// after retries; no read of the source outlives the call; what the service
// acknowledged is kept for a later call to resume.
import t from 'tap'
import { mkdtemp, open, rm, truncate } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, fileSource, FileUploadSessionStore, GraphError, type UploadSource } from '../../src/graph/index.js'
import { UPLOAD_PIECE } from '../../src/graph/upload.js'

let emu: TestEmulator
let dir: string
t.teardown(async () => {
  await emu?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const frag = 327_680 * 4

t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty' })
  dir = await mkdtemp(join(tmpdir(), 'odfs-source-error-'))
})

async function client() {
  const token = await tokenFor(emu, 'user1')
  const c = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, fragmentSize: frag })
  return { c, parent: { driveId: (await c.getMyDrive()).id, itemId: 'root' } }
}

t.test('a read that fails in the middle of a fragment stops the upload with that error', async (t) => {
  const { c, parent } = await client()
  const size = frag * 4
  const failAt = frag * 2 + UPLOAD_PIECE * 2 // the third piece of the third fragment
  let pending = 0
  let readsAfterEnd = 0
  let ended = false
  const src: UploadSource = {
    size,
    async read(o, n, into) {
      if (ended) readsAfterEnd++
      pending++
      try {
        await new Promise((r) => setTimeout(r, 2))
        if (o <= failAt && failAt < o + n) throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' })
        const b = into && into.length >= n ? into.subarray(0, n) : Buffer.allocUnsafe(n)
        b.fill(o & 0xff)
        return b
      } finally {
        pending--
      }
    },
  }
  const store = new FileUploadSessionStore(join(dir, 'sessions-1'))
  emu.resetStats()
  const e = await c.upload(parent, 'fails.bin', src, { sessionStore: store }).catch((x: unknown) => x)
  ended = true
  t.match(e, { code: 'EIO' }, 'the source\'s error, as it was thrown')
  t.notOk(e instanceof GraphError && e.code === 'networkError', 'not reported as a network failure')
  t.equal(pending, 0, 'no read of the source is still running when the call returns')
  await new Promise((r) => setTimeout(r, 50))
  t.equal(readsAfterEnd, 0, 'and none begins after it')
  const puts = Object.entries(emu.stats.routes).filter(([r]) => r.startsWith('PUT /_upload')).reduce((a, [, n]) => a + n, 0)
  t.ok(puts <= 3, `two fragments acknowledged, the third not sent again (${puts} fragment requests)`)
  const saved = await store.list()
  t.equal(saved.length, 1, 'the session is kept for a later call')
  t.equal(saved[0]!.session.offset, frag * 2, 'at the last acknowledged byte')
})

t.test('a file that shrinks while it is uploaded stops the upload with sourceChanged', async (t) => {
  const { c, parent } = await client()
  const path = join(dir, 'shrinks.bin')
  const size = frag * 3
  const fh = await open(path, 'w', 0o600)
  await fh.write(Buffer.alloc(size, 7), 0, size, 0)
  await fh.close()
  const src = await fileSource(path)
  const e = await c.upload(parent, 'shrinks.bin', src, {
    onProgress: (n) => {
      if (n === frag) void truncate(path, frag + 1000) // after the first fragment: most of the file is gone
    },
  }).catch((x: unknown) => x)
  await src.close()
  t.match(e, { code: 'sourceChanged' }, 'a clear local error')
  t.ok(e instanceof GraphError && e.local, 'classified as local, not retried as a network error')
  const there = await c.getItemByPath(parent.driveId, 'shrinks.bin').catch(() => undefined)
  t.equal(there, undefined, 'nothing was committed')
})
