// Resumable uploads across processes: a session persisted by one client (stopped
// half-way) is resumed by a fresh client that shares nothing with it but the
// session store on disk; completed fragments are not sent again. An expired
// persisted session is cancelled and the upload restarts cleanly.
import t from 'tap'
import { mkdtemp, rm, readdir, readFile, writeFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, FileUploadSessionStore, GraphError, type PersistedUploadSession, type UploadSource } from '../../src/graph/index.js'
import { SAVE_EVERY_MS, UPLOAD_PIECE } from '../../src/graph/upload.js'
import { systemClock } from '../../src/common/index.js'

let emu: TestEmulator
let dir: string
t.teardown(async () => {
  await emu?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

function pattern(offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length)
  for (let k = 0; k < length; k++) b[k] = ((offset + k) * 31 + ((offset + k) >> 9)) & 0xff
  return b
}

t.test('a later process resumes a persisted session; an expired one restarts', async (t) => {
  emu = await startTestEmulator({ seed: 'empty' })
  dir = await mkdtemp(join(tmpdir(), 'odfs-resume-'))
  const token = await tokenFor(emu, 'user1')
  const mk = () => createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, fragmentSize: 327_680 * 4 })
  const frag = 327_680 * 4
  const size = frag * 8 + 12345
  const parent = { driveId: (await mk().getMyDrive()).id, itemId: 'root' }

  // Process 1: stops (aborts) once the service has acknowledged four fragments.
  const ac = new AbortController()
  const src1: UploadSource = { size, read: async (o, n) => pattern(o, n) }
  const c1 = mk()
  const stopAt4 = (n: number) => {
    if (n >= 4 * frag) ac.abort(new Error('process killed'))
  }
  const err = await c1.upload(parent, 'resume.bin', src1, { sessionStore: new FileUploadSessionStore(dir), sourceId: 'v1', signal: ac.signal, onProgress: stopAt4 }).catch((e: unknown) => e)
  t.match(String(err), /process killed/)
  const files = await readdir(dir)
  t.equal(files.length, 1, 'one persisted session')
  t.equal((await stat(join(dir, files[0]!))).mode & 0o777, 0o600, 'persisted session is private (uploadUrl is a credential)')
  const persisted = JSON.parse(await readFile(join(dir, files[0]!), 'utf8'))
  t.equal(persisted.session.offset, 4 * frag)

  // Process 2: a fresh client and store object; only the directory is shared.
  emu.resetStats()
  const c2 = mk()
  const src2: UploadSource = { size, read: async (o, n) => pattern(o, n) }
  const res = await c2.upload(parent, 'resume.bin', src2, { sessionStore: new FileUploadSessionStore(dir), sourceId: 'v1' })
  t.equal(res.resumedFrom, 4 * frag, 'resumed where the first process stopped')
  t.equal(res.verified, true, 'hash verified (the prefix was re-hashed from the source)')
  t.equal(res.item.size, size)
  t.equal(res.bytesSent, size - 4 * frag, 'completed fragments not resent')
  t.ok(emu.stats.bytesIn <= size - 4 * frag + 4096, `bytes received ${emu.stats.bytesIn}`)
  t.same(await readdir(dir), [], 'session forgotten after completion')

  // An expired persisted session: cancelled, then a clean restart.
  const ac3 = new AbortController()
  const src3: UploadSource = {
    size,
    async read(o, n) {
      if (o === 2 * frag) ac3.abort(new Error('stop'))
      return pattern(o, n)
    },
  }
  await mk().upload(parent, 'expire.bin', src3, { sessionStore: new FileUploadSessionStore(dir), sourceId: 'v2', signal: ac3.signal }).catch(() => undefined)
  const [f] = await readdir(dir)
  const saved = JSON.parse(await readFile(join(dir, f!), 'utf8'))
  saved.session.expiresAt = Date.now() - 1000
  await writeFile(join(dir, f!), JSON.stringify(saved), { mode: 0o600 })
  emu.resetStats()
  const res3 = await mk().upload(parent, 'expire.bin', { size, read: async (o, n) => pattern(o, n) }, { sessionStore: new FileUploadSessionStore(dir), sourceId: 'v2' })
  t.equal(res3.resumedFrom, 0, 'restarted from zero')
  t.equal(res3.verified, true)
  t.ok(Object.keys(emu.stats.routes).some((r) => r.startsWith('DELETE /_upload')), 'the expired session was cancelled')
  t.type(GraphError, 'function')
})

t.test('a fragment is read piece by piece as it is sent, each byte once, into buffers whose fragment was acknowledged', async (t) => {
  const token = await tokenFor(emu, 'user1')
  const frag = 327_680 * 2
  const c = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, fragmentSize: frag })
  const parent = { driveId: (await c.getMyDrive()).id, itemId: 'root' }
  const size = frag * 5 + 999
  type Ev = { read: number; n: number; buf: ArrayBufferLike } | { ack: number }
  const events: Ev[] = []
  const src: UploadSource = {
    size,
    async read(o, n, into) {
      const b = into && into.length >= n ? into.subarray(0, n) : Buffer.allocUnsafe(n)
      events.push({ read: o, n, buf: b.buffer })
      pattern(o, n).copy(b)
      return b
    },
  }
  const res = await c.upload(parent, 'read-ahead.bin', src, { sessionStore: new FileUploadSessionStore(dir), onProgress: (n) => void events.push({ ack: n }) })
  t.equal(res.verified, true, 'every fragment arrived intact although its buffers are refilled')
  t.equal(res.item.size, size)

  const reads = events.filter((e): e is Extract<Ev, { read: number }> => 'read' in e)
  t.ok(reads.every((r) => r.n <= UPLOAD_PIECE), `read in pieces of at most ${UPLOAD_PIECE} bytes`)
  const sorted = [...reads].sort((a, b) => a.read - b.read)
  t.ok(sorted.every((r, i) => r.read === (i === 0 ? 0 : sorted[i - 1]!.read + sorted[i - 1]!.n)) && sorted.at(-1)!.read + sorted.at(-1)!.n === size,
    'each byte read once: the hash is taken from the pieces sent, nothing is read again')
  const acked = (upTo: number) => events.findIndex((e) => 'ack' in e && e.ack >= upTo)
  for (let k = 1; k <= 5; k++) {
    t.ok(events.findIndex((e) => 'read' in e && e.read === k * frag) < acked(k * frag), `the first piece of fragment ${k} is read before fragment ${k - 1} is acknowledged`)
  }
  // A buffer is refilled only after the service acknowledged the fragment it held.
  const held = new Map<ArrayBufferLike, number>()
  events.forEach((e, i) => {
    if (!('read' in e)) return
    const k = Math.floor(e.read / frag)
    const before = held.get(e.buf)
    if (before !== undefined && before !== k) {
      t.ok(acked((before + 1) * frag) < i, `the buffer of fragment ${before} is refilled for fragment ${k} after its acknowledgement`)
    }
    held.set(e.buf, k)
  })
  t.equal(new Set(reads.map((r) => r.buf)).size, 3, 'one fragment buffer and two buffers for first pieces, reused')
})

t.test('the session is saved when it starts, at most every SAVE_EVERY_MS, and when the upload stops', async (t) => {
  const token = await tokenFor(emu, 'user1')
  const frag = 327_680
  // Time moves only when the test says (sleeps are real: no retry waits here).
  let now = Date.now()
  const clock = { now: () => now, sleep: (ms: number, signal?: AbortSignal) => systemClock.sleep(ms, signal) }
  const mk = () => createGraphDriveClient({
    baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, fragmentSize: frag, clock, rateLimit: 1000,
  })
  const saves: number[] = []
  class CountingStore extends FileUploadSessionStore {
    override async put(key: string, s: PersistedUploadSession): Promise<void> {
      saves.push(s.offset / frag)
      await super.put(key, s)
    }
  }
  const sdir = await mkdtemp(join(tmpdir(), 'odfs-saves-'))
  t.teardown(() => rm(sdir, { recursive: true, force: true }))
  const size = frag * 8 + 5
  const c = mk()
  const parent = { driveId: (await c.getMyDrive()).id, itemId: 'root' }
  const ac = new AbortController()
  const err = await c.upload(parent, 'saves.bin', { size, read: async (o, n) => pattern(o, n) }, {
    sessionStore: new CountingStore(sdir), sourceId: 'v1', signal: ac.signal,
    onProgress: (n) => {
      if (n === 3 * frag) now += SAVE_EVERY_MS
      if (n === 6 * frag) ac.abort(new Error('stopped'))
    },
  }).catch((e: unknown) => e)
  t.match(String(err), /stopped/)
  t.same(saves, [0, 4, 6], 'saved at the start, at the first acknowledgement SAVE_EVERY_MS later, and where it stopped')
  const res = await mk().upload(parent, 'saves.bin', { size, read: async (o, n) => pattern(o, n) }, { sessionStore: new FileUploadSessionStore(sdir), sourceId: 'v1' })
  t.equal(res.resumedFrom, 6 * frag, 'a later call resumes where it stopped')
  t.equal(res.verified, true)
})
