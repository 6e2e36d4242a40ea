// The daemon's download destination (src/vfs/handle-sink.ts): two buffers, one filled
// while the other is written; the download waits only when both are busy; every byte
// lands at its offset; a failed write is reported, never lost.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtemp, open, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HandleSink } from '../../src/vfs/handle-sink.js'

async function tempFile(t: any) {
  const dir = await mkdtemp(join(tmpdir(), 'odfs-hsink-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'out.bin')
  return { path, fh: await open(path, 'w+') }
}

t.test('bytes land at their offsets; the download waits only when both buffers are being written', async (t) => {
  const { path, fh } = await tempFile(t)
  const write = fh.write.bind(fh)
  let inflight = 0
  let most = 0
  fh.write = (async (...a: Parameters<typeof fh.write>) => {
    most = Math.max(most, ++inflight)
    await new Promise((r) => setTimeout(r, 5)) // a slow disk
    try {
      return await write(...a)
    } finally {
      inflight--
    }
  }) as typeof fh.write
  const data = randomBytes(20_000)
  const sink = new HandleSink(fh, 1024)
  let waits = 0
  const put = async (from: number, to: number) => {
    for (let at = from; at < to; ) {
      const m = sink.space(at)
      t.ok(m.length > 0, 'lends memory')
      const n = Math.min(m.length, to - at, 1 + (at % 500))
      data.copy(m, 0, at, at + n)
      at += n
      const r = sink.filled(n)
      if (r) {
        waits++
        await r
      }
    }
  }
  await put(0, 12_000)
  await put(15_000, 20_000) // a jump: a reopen that resumed elsewhere
  await put(12_000, 15_000)
  await sink.end()
  await fh.close()
  t.ok((await readFile(path)).equals(data), 'every byte at its offset')
  t.ok(waits > 0, `waited for the disk (${waits} times)`)
  t.ok(most <= 4, `at most the two buffers, and one more per jump (two here), on their way (${most})`)
})

t.test('a failed write (a full disk) is reported by the wait, the next call and end()', async (t) => {
  const { fh } = await tempFile(t)
  t.teardown(() => fh.close())
  fh.write = (async () => {
    throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })
  }) as typeof fh.write
  const sink = new HandleSink(fh, 16)
  sink.space(0).fill(1)
  t.equal(sink.filled(16), undefined, 'the first buffer goes out; the second is free')
  sink.space(16).fill(2)
  const r = sink.filled(16)
  t.ok(r, 'both busy: wait')
  await t.rejects(r!, { code: 'ENOSPC' })
  t.throws(() => sink.space(32), { code: 'ENOSPC' }, 'the next call throws it')
  await t.rejects(sink.end(), { code: 'ENOSPC' }, 'and end() rejects with it')
})
