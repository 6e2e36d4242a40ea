// The filesystem core without a kernel: the Vfs over the drive client and the
// in-process emulator, time on a ManualClock. Covers the metadata cache (TTL,
// negative entries, read-your-writes), ranged reads (sequential read-ahead vs
// touched chunks only), and write-back (nothing uploaded before the delay,
// temp-then-rename lands as one upload under the final name, unlink of a waiting
// file cancels it, fsync uploads at once).
import t from 'tap'
import { constants } from 'node:fs'
import { cp, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger, ManualClock } from '../../src/common/index.js'
import { createGraphDriveClient, type DriveClient } from '../../src/graph/index.js'
import { CHUNK, conflictName, errnoFor, Vfs } from '../../src/vfs/index.js'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'

let emu: TestEmulator
let client: DriveClient
let dir: string

t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0 })
  const token = await tokenFor(emu, 'user1')
  client = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher })
  dir = await mkdtemp(join(tmpdir(), 'odfs-vfs-'))
})
t.teardown(async () => {
  await emu?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

let n = 0
async function newVfs(t: { teardown(f: () => unknown): void }, opts: Partial<ConstructorParameters<typeof Vfs>[0]> = {}) {
  const clock = new ManualClock(Date.now())
  const vfs = new Vfs({ client, clock, spoolDir: join(dir, `spool${n++}`), dirCacheTimeMs: 10_000, negativeTtlMs: 1_000, writeBackMs: 5_000, ...opts })
  await vfs.init()
  t.teardown(() => vfs.close())
  return { vfs, clock }
}

function api(): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(emu.stats.routes)) if (/ \/(me|drives)\b/.test(k)) out[k] = v
  return out
}
const calls = () => Object.values(api()).reduce((a, b) => a + b, 0)

async function writeAll(vfs: Vfs, fh: number, data: Buffer, at = 0) {
  await vfs.write(fh, data, data.length, at)
}

t.test('metadata cache: listing fills attributes, TTL, negative entries', async (t) => {
  await emu.store.writeFile('user1', 'cache/a.txt', 'aaa')
  await emu.store.writeFile('user1', 'cache/b.txt', 'bbbb')
  const { vfs, clock } = await newVfs(t)
  await vfs.getattr('/My files/cache')
  emu.resetStats()
  const r = await vfs.readdir('/My files/cache')
  t.same(r.names.slice(2).sort(), ['a.txt', 'b.txt'])
  t.equal(calls(), 1, 'one listing page')
  t.equal((await vfs.getattr('/My files/cache/b.txt')).size, 4)
  t.equal((await vfs.getattr('/My files/CACHE/B.TXT')).size, 4, 'case-insensitive')
  await t.rejects(vfs.getattr('/My files/cache/missing'), { code: 'notFound' })
  t.equal(calls(), 1, 'attributes and misses inside a fresh listing cost nothing')
  await clock.advance(11_000)
  await t.rejects(vfs.getattr('/My files/cache/missing'), { code: 'notFound' })
  t.equal(calls(), 3, 'after the TTL lookups ask the service (the folder and the name)')
  await t.rejects(vfs.getattr('/My files/cache/missing'), { code: 'notFound' })
  t.equal(calls(), 3, 'the miss is remembered')
  await clock.advance(1_500)
  await t.rejects(vfs.getattr('/My files/cache/missing'), { code: 'notFound' })
  t.equal(calls(), 4, 'for the negative TTL only')
})

t.test('read-your-writes; nothing uploaded before the write-back delay; fsync uploads at once', async (t) => {
  const { vfs, clock } = await newVfs(t)
  await vfs.mkdir('/My files/ryw', 0o755)
  const fh = await vfs.create('/My files/ryw/new.txt', 0o644)
  await writeAll(vfs, fh, Buffer.from('fresh bytes'))
  await vfs.release(fh)
  const names = (await vfs.readdir('/My files/ryw')).names
  t.ok(names.includes('new.txt'), 'listed at once')
  t.equal((await vfs.getattr('/My files/ryw/new.txt')).size, 11)
  const rfh = await vfs.open('/My files/ryw/new.txt', constants.O_RDONLY)
  const buf = Buffer.alloc(64)
  t.equal(await vfs.read(rfh, buf, 64, 0), 11)
  t.equal(buf.subarray(0, 11).toString(), 'fresh bytes')
  await vfs.release(rfh)
  const drive = await client.getMyDrive()
  const missing = await client.getItemByPath(drive.id, 'ryw/new.txt').then(() => undefined, (e: { status?: number }) => e)
  t.equal(missing?.status, 404, 'not on OneDrive yet')
  t.equal(vfs.pending().length, 1)
  await clock.advance(5_000)
  await vfs.sync()
  t.equal((await client.getItemByPath(drive.id, 'ryw/new.txt')).size, 11, 'uploaded after the delay')

  const f2 = await vfs.create('/My files/ryw/synced.txt', 0o644)
  await writeAll(vfs, f2, Buffer.from('fsync me'))
  await vfs.fsync(f2)
  t.equal((await client.getItemByPath(drive.id, 'ryw/synced.txt')).size, 8, 'fsync returned after the upload')
  await vfs.release(f2)
})

t.test('temp file renamed over a file lands as one upload under the final name; unlink cancels', async (t) => {
  await emu.store.writeFile('user1', 'edit/target.txt', 'old contents')
  const { vfs, clock } = await newVfs(t)
  t.equal((await vfs.getattr('/My files/edit/target.txt')).size, 12)
  const fh = await vfs.create('/My files/edit/.target.txt.swp', 0o644)
  await writeAll(vfs, fh, Buffer.from('new contents!'))
  await vfs.release(fh)
  await vfs.rename('/My files/edit/.target.txt.swp', '/My files/edit/target.txt')
  t.equal((await vfs.getattr('/My files/edit/target.txt')).size, 13, 'the new size at once')
  const gone = await vfs.create('/My files/edit/scratch', 0o644)
  await writeAll(vfs, gone, Buffer.from('never uploaded'))
  await vfs.release(gone)
  await vfs.unlink('/My files/edit/scratch')
  emu.resetStats()
  await clock.advance(5_000)
  await vfs.sync()
  const r = api()
  const uploads = Object.entries(r).filter(([k]) => /createUploadSession|\/content$/.test(k)).reduce((a, [, v]) => a + v, 0)
  t.equal(uploads, 1, `one upload: ${JSON.stringify(r)}`)
  const drive = await client.getMyDrive()
  const names = (await client.listChildren({ driveId: drive.id, itemId: (await client.getItemByPath(drive.id, 'edit')).id })).map((i) => i.name)
  t.same(names, ['target.txt'], 'no temp file, no scratch file on OneDrive')
  t.equal((await client.getItemByPath(drive.id, 'edit/target.txt')).size, 13)
})

t.test('reads: sequential reads fetch ahead, random reads fetch only touched chunks', async (t) => {
  await emu.store.writeFile('user1', 'big/seq.bin', { size: 8 * CHUNK, pattern: 'ramp' })
  await emu.store.writeFile('user1', 'big/rnd.bin', { size: 8 * CHUNK, pattern: 'ramp' })
  const { vfs } = await newVfs(t, { readAhead: 4 * CHUNK })
  const fh = await vfs.open('/My files/big/seq.bin', constants.O_RDONLY)
  const buf = Buffer.alloc(128 * 1024)
  let total = 0
  for (let off = 0; ; off += buf.length) {
    const got = await vfs.read(fh, buf, buf.length, off)
    if (got === 0) break
    total += got
  }
  t.equal(total, 8 * CHUNK)
  t.equal(vfs.reader.requests, 8, 'each chunk fetched once')
  await vfs.release(fh)
  const before = vfs.reader.requests
  const r = await vfs.open('/My files/big/rnd.bin', constants.O_RDONLY)
  const small = Buffer.alloc(4096)
  for (const off of [5 * CHUNK + 10, 1 * CHUNK + 7, 7 * CHUNK]) await vfs.read(r, small, 4096, off)
  t.equal(vfs.reader.requests - before, 3, 'three scattered reads, three chunks')
  await vfs.release(r)
})

t.test('writing into a file copies the version the metadata names, not one a cached download URL serves', async (t) => {
  await emu.store.writeFile('user1', 'stale/f.bin', Buffer.alloc(3000, 'a'))
  const { vfs, clock } = await newVfs(t)
  const read = async (fh: number, len: number) => {
    const b = Buffer.alloc(len + 10)
    return b.subarray(0, await vfs.read(fh, b, len + 10, 0))
  }
  const r = await vfs.open('/My files/stale/f.bin', constants.O_RDONLY)
  t.same(await read(r, 3000), Buffer.alloc(3000, 'a'), 'read once: the download URL of this version is cached')
  await vfs.release(r)
  await emu.store.writeFile('user1', 'stale/f.bin', Buffer.alloc(5000, 'b')) // another client
  await clock.advance(11_000) // the folder's listing expires: the mount now knows the new version
  t.equal((await vfs.getattr('/My files/stale/f.bin')).size, 5000)
  const w = await vfs.open('/My files/stale/f.bin', constants.O_RDWR)
  t.same(await read(w, 5000), Buffer.alloc(5000, 'b'), 'the local copy holds the version the mount showed')
  await vfs.release(w)
})

t.test('a file changed on OneDrive while the local copy waited: the local one goes up beside it', async (t) => {
  await emu.store.writeFile('user1', 'conf/report.txt', 'base version\n')
  const { vfs, clock } = await newVfs(t)
  const fh = await vfs.open('/My files/conf/report.txt', constants.O_RDWR)
  await writeAll(vfs, fh, Buffer.from('LOCAL'))
  await vfs.release(fh)
  await emu.store.writeFile('user1', 'conf/report.txt', 'changed remotely\n')
  await clock.advance(5_000)
  await vfs.sync()
  const drive = await client.getMyDrive()
  const folder = await client.getItemByPath(drive.id, 'conf')
  const names = (await client.listChildren({ driveId: drive.id, itemId: folder.id })).map((i) => i.name!).sort().reverse()
  t.equal(names.length, 2, names.join(' | '))
  t.equal(names[0], 'report.txt')
  t.match(names[1], /^report \(conflict \d{4}-\d\d-\d\d \d{6} [^)]+\)\.txt$/)
  const conflicts = vfs.conflicts()
  t.equal(conflicts.length, 1)
  t.equal(conflicts[0]!.name, 'report.txt')
  const read = async (p: string) => {
    const h = await vfs.open(p, constants.O_RDONLY)
    const b = Buffer.alloc(100)
    const n = await vfs.read(h, b, 100, 0)
    await vfs.release(h)
    return b.subarray(0, n).toString()
  }
  t.equal(await read('/My files/conf/report.txt'), 'changed remotely\n', 'the remote change is kept')
  t.equal(await read(`/My files/conf/${names[1]}`), 'LOCALversion\n', 'and the local one (its first 5 bytes overwritten) beside it')
})

t.test('conflict names', async (t) => {
  const at = new Date('2026-03-04T05:06:07Z')
  t.equal(conflictName('a.txt', at, 'node1.example.org'), 'a (conflict 2026-03-04 050607 node1).txt')
  t.equal(conflictName('Makefile', at, 'h'), 'Makefile (conflict 2026-03-04 050607 h)')
  t.equal(conflictName('.bashrc', at, 'h'), '.bashrc (conflict 2026-03-04 050607 h)')
})

t.test('a record left by an upload that committed (crash, bounded stop) is recognised: no conflict copy', async (t) => {
  await emu.store.writeFile('user1', 'held/doc.txt', 'first version\n')
  const { vfs, clock } = await newVfs(t)
  const fh = await vfs.open('/My files/held/doc.txt', constants.O_RDWR | constants.O_TRUNC)
  await writeAll(vfs, fh, Buffer.from('second version\n'))
  await vfs.release(fh)
  // What the daemon's own upload would have left had it died right after the commit:
  // OneDrive holds the new bytes under a new cTag, the journal still holds the record.
  await emu.store.writeFile('user1', 'held/doc.txt', 'second version\n')
  await clock.advance(5_000)
  await vfs.sync()
  t.same(vfs.conflicts(), [], 'not taken for a change made elsewhere')
  const drive = await client.getMyDrive()
  const folder = await client.getItemByPath(drive.id, 'held')
  const kids = await client.listChildren({ driveId: drive.id, itemId: folder.id })
  t.same(kids.map((i) => i.name), ['doc.txt'], 'one file, no conflict copy')
  t.same(vfs.pending(), [])
})

t.test('a bounded stop leaves a slow upload journaled, and the next mount delivers it', async (t) => {
  const spoolDir = join(dir, `spool-bounded`)
  const { vfs, clock } = await newVfs(t, { spoolDir })
  await vfs.mkdir('/My files/bounded', 0o755)
  const fh = await vfs.create('/My files/bounded/slow.bin', 0o644)
  await writeAll(vfs, fh, Buffer.alloc(100_000, 7))
  await vfs.release(fh)
  emu.setFaults({ latencyMs: 4_000 })
  t.teardown(() => emu.setFaults({ latencyMs: 0 }))
  const closing = vfs.close({ waitMs: 2_000 })
  await new Promise((r) => setTimeout(r, 200))
  await clock.advance(2_000)
  const left = await closing
  t.same(left.map((p) => p.name), ['slow.bin'], 'the stop did not wait for the slow upload and says what is left')
  emu.setFaults({ latencyMs: 0 })
  const again = new Vfs({ client, clock: new ManualClock(Date.now()), spoolDir, writeBackMs: 5_000 })
  const r = await again.init()
  t.teardown(() => again.close())
  t.equal(r.recovered, 1, 'the next mount finds it in the journal')
  t.equal(r.failed, 0)
  const drive = await client.getMyDrive()
  const item = await client.getItemByPath(drive.id, 'bounded/slow.bin')
  t.equal(item.size, 100_000, 'and uploads it')
})

t.test('a file open at a crash is recovered as of its last close or fsync, never half-written', async (t) => {
  const spoolDir = join(dir, 'spool-snap')
  const { vfs } = await newVfs(t, { spoolDir })
  await vfs.mkdir('/My files/snap', 0o755)
  // closed, then opened again and half rewritten
  const a = await vfs.create('/My files/snap/closed.txt', 0o644)
  await writeAll(vfs, a, Buffer.from('the closed version\n'))
  await vfs.flush(a)
  await vfs.release(a)
  const a2 = await vfs.open('/My files/snap/closed.txt', constants.O_RDWR)
  await writeAll(vfs, a2, Buffer.from('HALF WRITTEN'))
  await vfs.ftruncate(a2, 40)
  // fsync'd, then written again
  const b = await vfs.create('/My files/snap/synced.txt', 0o644)
  await writeAll(vfs, b, Buffer.from('the fsync version\n'))
  await vfs.fsync(b)
  await writeAll(vfs, b, Buffer.from('UNSYNCED'))
  // a rename while the rewrite is open: the crash must not bring back the old name
  await vfs.rename('/My files/snap/closed.txt', '/My files/snap/renamed.txt')
  // The crash: the spool as it is on disk now, taken over by the next mount.
  const after = join(dir, 'spool-snap-after-crash')
  await cp(spoolDir, after, { recursive: true })
  const next = new Vfs({ client, clock: new ManualClock(Date.now()), spoolDir: after, writeBackMs: 5_000 })
  const r = await next.init()
  t.teardown(() => next.close())
  t.equal(r.recovered, 1, 'one journaled version: the last close of renamed.txt')
  const drive = await client.getMyDrive()
  const get = async (p: string) => {
    const item = await client.getItemByPath(drive.id, p)
    const parts: Buffer[] = []
    await client.download({ driveId: drive.id, itemId: item.id }, (c) => void parts.push(Buffer.from(c)))
    return Buffer.concat(parts).toString()
  }
  t.equal(await get('snap/renamed.txt'), 'the closed version\n', 'the last close, under the name it has now')
  await t.rejects(client.getItemByPath(drive.id, 'snap/closed.txt'), { code: 'itemNotFound' }, 'nothing under the old name')
  t.equal(await get('snap/synced.txt'), 'the fsync version\n', 'the fsync version')
  await vfs.release(a2)
  await vfs.release(b)
})

t.test('a permanent upload failure keeps the data, is logged once with its fix, and goes up once fixed', async (t) => {
  const lines: Array<{ level: number; msg: string; fix?: string }> = []
  const log = createLogger({ level: 'debug', destination: { write: (l: string) => void lines.push(JSON.parse(l)) } })
  const { vfs, clock } = await newVfs(t, { log })
  await vfs.mkdir('/My files/full', 0o755)
  const drive = emu.store.driveOf('user1')
  const total = drive.quotaTotal
  drive.quotaTotal = 1 // OneDrive is full
  t.teardown(() => {
    drive.quotaTotal = total
  })
  const fh = await vfs.create('/My files/full/data.bin', 0o644)
  await writeAll(vfs, fh, Buffer.alloc(50_000, 9))
  await vfs.release(fh)
  for (let i = 0; i < 3; i++) {
    await clock.advance(700_000) // past the write-back delay, then past each retry's delay
    await vfs.sync()
  }
  const failed = lines.filter((l) => l.msg.startsWith('upload failed'))
  t.ok(failed.length >= 3, `retried (${failed.length} attempts)`)
  t.equal(failed.filter((l) => l.level >= 50).length, 1, 'logged once at error level')
  t.match(failed[0]!.fix, /OneDrive is full: free space there/, 'with what fixes it')
  t.same(vfs.pending().map((p) => [p.name, p.state]), [['data.bin', 'failed']], 'the data stays in the spool')
  drive.quotaTotal = total // space freed
  await clock.advance(700_000)
  t.same(await vfs.sync(), [], 'uploaded once the cause is gone')
  t.equal((await client.getItemByPath(emu.store.driveOf('user1').id, 'full/data.bin')).size, 50_000)
})

t.test('a file the service says is longer than the bytes it serves reads as EIO, not short', async (t) => {
  await emu.store.writeFile('user1', 'hostile-size/f.bin', Buffer.alloc(10_000, 5))
  emu.setFaults({ hostileSize: 'hostile-size/f.bin' })
  t.teardown(() => emu.setFaults({ hostileSize: '' }))
  const { vfs } = await newVfs(t)
  t.equal((await vfs.getattr('/My files/hostile-size/f.bin')).size, 10_001, 'the size as reported')
  const fh = await vfs.open('/My files/hostile-size/f.bin', constants.O_RDONLY)
  const buf = Buffer.alloc(20_000)
  const err = await vfs.read(fh, buf, 20_000, 0).then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof Error, 'the read fails')
  t.equal(errnoFor(err), 'EIO', 'with EIO')
  t.match(String((err as Error)?.message), /serves 10000 bytes of a file it says holds 10001/)
  await vfs.release(fh)
})

t.test('names the service sends that no Linux name can hold are hidden, the rest of the folder listed', async (t) => {
  for (const n of ['ok.txt', 'slash.txt', 'zero.txt', 'dots.txt', 'long.txt']) await emu.store.writeFile('user1', `hostile-names/${n}`, n)
  emu.setFaults({ hostileNameSlash: 'hostile-names/slash.txt', hostileNameNul: 'hostile-names/zero.txt', hostileNameDotDot: 'hostile-names/dots.txt', hostileNameLong: 'hostile-names/long.txt' })
  t.teardown(() => emu.setFaults({ hostileNameSlash: '', hostileNameNul: '', hostileNameDotDot: '', hostileNameLong: '' }))
  const lines: Array<{ msg: string; why?: string }> = []
  const log = createLogger({ level: 'warn', destination: { write: (l: string) => void lines.push(JSON.parse(l)) } })
  const { vfs } = await newVfs(t, { log })
  const names = (await vfs.readdir('/My files/hostile-names')).names.slice(2)
  t.same(names, ['ok.txt'], 'only the name that can be shown')
  const hidden = lines.filter((l) => l.msg.startsWith('an item the service listed is hidden'))
  t.equal(hidden.length, 4, 'each hidden item is logged')
  t.match(hidden.map((l) => l.why).sort(), [/"\.\." is not a name/, /"\/"/, /NUL/, /300 bytes long/])
})
