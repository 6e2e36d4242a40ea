// The write-back spool's space rules (src/vfs/spool.ts): a copy's bytes are
// accepted only under --cache-max-size and only while the disk keeps the reserve
// the bookkeeping of copies already accepted needs (records, upload sessions); a
// refusal is ENOSPC for the writer with one log line per copy, and the space of a
// copy comes back when it leaves the spool.
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger } from '../../src/common/index.js'
import { BOOKKEEPING_RESERVE, errnoFor, Spool, type JournalRecord } from '../../src/vfs/index.js'

let dir: string
t.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'odfs-spool-space-'))
})
t.teardown(() => rm(dir, { recursive: true, force: true }))

const K = 4096
let n = 0
async function spool(t: { teardown(f: () => unknown): void }, o: { maxBytes?: number; free?: () => number } = {}) {
  const lines: string[] = []
  const log = createLogger({ level: 'warn', destination: { write: (l: string) => lines.push(l) } as never })
  const free = o.free ?? (() => 2 ** 40)
  const s = new Spool(join(dir, `s${n++}`), { maxBytes: o.maxBytes, log, freeBytes: async () => ({ free: free(), blockSize: K }) })
  await s.open()
  t.teardown(() => s.close())
  return { s, lines }
}

const record = (id: string, size: number): JournalRecord => ({
  v: 1, id, driveId: 'd', parentId: 'p', name: `${id}.bin`, size, mtimeMs: 0, state: 'waiting', sessionKey: id, journaledAt: 0,
})

async function refused(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(() => undefined, (e: unknown) => errnoFor(e))
}

t.test('--cache-max-size: copies and their records fit under it; past it ENOSPC with one log line', async (t) => {
  const { s, lines } = await spool(t, { maxBytes: 10 * K })
  const a = s.newId()
  await (await s.create(a)).close()
  await s.claim(a, 4 * K) // 4 blocks of data + 1 for its record
  const b = s.newId()
  await (await s.create(b)).close()
  await s.claim(b, 3 * K)
  t.equal(s.usedBytes, 9 * K)
  t.equal(await refused(s.claim(b, 4 * K + 1)), 'ENOSPC', 'one block more than the limit allows')
  t.equal(await refused(s.claim(b, 5 * K)), 'ENOSPC')
  t.equal(lines.filter((l) => l.includes('write refused: the write-back spool holds')).length, 1, 'one log line for the copy')
  t.equal(await refused(s.claim(b, 4 * K)), undefined, 'up to the limit is fine')
  await s.remove(a) // a reached OneDrive
  t.equal(s.usedBytes, 5 * K, 'its space came back')
  t.equal(await refused(s.claim(b, 8 * K)), undefined, 'and b may grow into it')
})

t.test('a nearly full disk: data may not use the bookkeeping reserve; records still fit', async (t) => {
  // The disk: what the spool's copies take is gone from it (record pages counted from the start).
  let disk = BOOKKEEPING_RESERVE + 9 * K
  const box: { s?: Spool } = {}
  const { s, lines } = await spool(t, { free: () => disk - (box.s?.usedBytes ?? 0) })
  box.s = s
  const a = s.newId()
  await (await s.create(a)).close()
  // The disk keeps the reserve plus a page for a's record (not journaled yet).
  t.equal(await refused(s.claim(a, 7 * K)), undefined, '7 blocks fit')
  t.equal(await refused(s.claim(a, 8 * K)), 'ENOSPC', 'the 8th would take the reserve')
  t.match(lines.join(''), /write refused: the disk of the write-back spool has \d+ bytes free/)
  await s.writeRecord(record(a, 7 * K)) // closed: its record is written (the page was kept for it)
  const b = s.newId()
  await (await s.create(b)).close()
  t.equal(await refused(s.claim(b, 1)), 'ENOSPC', 'a new copy gets nothing: what is left is reserve')
  disk += 64 * K // another process freed space, and a reached OneDrive
  await s.remove(a)
  t.equal(await refused(s.claim(b, 16 * K)), undefined, 'the next check of the disk sees the space')
})
