// odfs get's BatchWriter: chunks of several connections, interleaved, each written
// at its offset in batches that end on multiples of the batch size; a failed write
// is reported, never lost.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtemp, open, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BatchWriter, FileSink } from '../../src/cli/commands/get.js'

t.test('interleaved parts land at their offsets in aligned batches', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'odfs-batch-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const batch = 64 * 1024
  const part = 4 * batch
  const data = randomBytes(3 * part + 12_345)
  const fh = await open(join(dir, 'out.bin'), 'w')
  const writes: { pos: number; bytes: number }[] = []
  const writev = fh.writev.bind(fh)
  fh.writev = (async (bufs: Buffer[], pos: number) => {
    writes.push({ pos, bytes: bufs.reduce((a, b) => a + b.length, 0) })
    return writev(bufs, pos)
  }) as typeof fh.writev
  const w = new BatchWriter(fh, batch, 2)
  // Four connections, one per part, each sending uneven chunks; round robin between them.
  const cursors = [0, 1, 2, 3].map((p) => ({ at: p * part, end: Math.min(data.length, (p + 1) * part) }))
  let waited = 0
  for (let step = 1; cursors.some((c) => c.at < c.end); step = (step * 7 + 5) % 20_011 || 1) {
    for (const c of cursors) {
      if (c.at >= c.end) continue
      const n = Math.min(c.end - c.at, 1000 + step)
      const r = w.write(data.subarray(c.at, c.at + n), c.at)
      c.at += n
      if (r) {
        waited++
        await r
      }
    }
  }
  await w.end()
  await fh.close()
  t.ok((await readFile(join(dir, 'out.bin'))).equals(data), 'every byte at its offset')
  t.ok(writes.every((x) => Math.floor(x.pos / batch) === Math.floor((x.pos + x.bytes - 1) / batch)), 'no write crosses a batch boundary')
  t.equal(writes.filter((x) => x.bytes < batch).length, 1, 'only the tail of the file is a short batch')
  t.ok(waited > 0, 'the caller was asked to wait while batches were on their way')
})

t.test('a failed write is reported by the next write or by end()', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'odfs-batch-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const fh = await open(join(dir, 'out.bin'), 'w')
  fh.writev = (async () => {
    throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })
  }) as typeof fh.writev
  const w = new BatchWriter(fh, 1024, 1)
  const first = w.write(Buffer.alloc(1024), 0)
  await Promise.resolve(first).catch(() => {})
  await new Promise((res) => setImmediate(res))
  t.throws(() => w.write(Buffer.alloc(10), 1024), { code: 'ENOSPC' }, 'the next write throws it')
  await t.rejects(w.end(), { code: 'ENOSPC' }, 'and end() rejects with it')
  await fh.close()
})

t.test('FileSink: lends its buffer, writes it at its offset when full, follows a jump to another offset', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'odfs-sink-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const data = randomBytes(10_000)
  const fh = await open(join(dir, 'out.bin'), 'w')
  const sink = new FileSink(fh.fd, 1024)
  // 0..6000 in uneven pieces, then 8000..10000 (a reopen elsewhere), then 6000..8000.
  const put = (from: number, to: number) => {
    for (let at = from; at < to; ) {
      const m = sink.space(at)
      t.ok(m.length > 0 && m.length <= 1024, 'lends at most its buffer')
      const n = Math.min(m.length, to - at, 1 + (at % 700))
      data.copy(m, 0, at, at + n)
      sink.filled(n)
      at += n
    }
  }
  put(0, 6000)
  put(8000, 10_000)
  put(6000, 8000)
  sink.flush()
  await fh.close()
  t.ok((await readFile(join(dir, 'out.bin'))).equals(data), 'every byte at its offset')
})

t.test('FileSink: a failed write is thrown from filled()', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'odfs-sink-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'ro.bin')
  await (await open(path, 'w')).close()
  const fh = await open(path, 'r') // not writable: every write fails (EBADF), as a full disk would (ENOSPC)
  t.teardown(() => fh.close())
  const sink = new FileSink(fh.fd, 16)
  sink.space(0).fill(1)
  t.throws(() => sink.filled(16), { code: 'EBADF' })
})
