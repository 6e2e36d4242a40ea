// Downloads under faults: local conditions are not retried as network errors; a
// slow, flaky link that keeps making progress does not exhaust the retry budget.
import t from 'tap'
import { createHash } from 'node:crypto'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, GraphError, type DownloadSink, type DriveClient } from '../../src/graph/index.js'
import { faultDispatcher } from './fault-support.js'

let emu: TestEmulator
t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty' })
})
t.teardown(async () => {
  await emu?.close()
})

const fastRetry = { baseDelayMs: 1, maxDelayMs: 5, maxAttempts: 5 }

async function client(extra: Record<string, unknown> = {}): Promise<DriveClient> {
  const token = await tokenFor(emu, 'user1')
  return createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, retry: fastRetry, ...extra })
}

/** An upload source over bytes in memory. */
const source = (b: Buffer) => ({ size: b.length, read: async (o: number, n: number) => b.subarray(o, o + n) })

function pattern(size: number): Buffer {
  const b = Buffer.alloc(size)
  for (let i = 0; i < size; i++) b[i] = (i * 131 + (i >> 8)) & 0xff
  return b
}

t.test('downloading a folder is a local error, asked once and not retried', async (t) => {
  const c = await client()
  const drive = await c.getMyDrive()
  const folder = await c.createFolder({ driveId: drive.id, itemId: 'root' }, 'not-a-file')
  emu.resetStats()
  const e = await c.download({ driveId: drive.id, itemId: folder.id }, () => {}).catch((x: unknown) => x)
  t.type(e, GraphError)
  t.equal((e as GraphError).code, 'notAFile')
  t.equal((e as GraphError).classify(), 'local', 'classified local, not network')
  t.equal(emu.stats.total, 1, `one request, no retries (${JSON.stringify(emu.stats.routes)})`)
})

t.test('a link that breaks every transfer but keeps advancing finishes the file', async (t) => {
  const fd = faultDispatcher(emu.dispatcher)
  const c = await client({ dispatcher: fd.dispatcher })
  const drive = await c.getMyDrive()
  const data = pattern(256 * 1024)
  const up = await c.upload({ driveId: drive.id, itemId: 'root' }, 'flaky-link.bin', source(data))
  // Every download answer breaks after 32 KiB of its body.
  fd.add({ method: 'GET', path: /^\/_download\//, breakAfter: 32 * 1024, times: Infinity })
  const got: Buffer[] = []
  const r = await c.download({ driveId: drive.id, itemId: up.item.id }, (b) => void got.push(b))
  t.equal(r.reopened, 7, `reopened after each of the 7 cuts, more than the ${fastRetry.maxAttempts} attempts a stalled link gets`)
  t.equal(fd.count('GET', /^\/_download\//), 8, '8 ranged GETs of 32 KiB')
  t.equal(createHash('sha256').update(Buffer.concat(got)).digest('hex'), createHash('sha256').update(data).digest('hex'), 'every byte, once')
  t.equal(r.verified, true)
})

t.test('a file replaced in the middle of a read fails with changedDuringRead, never mixes versions', async (t) => {
  const fd = faultDispatcher(emu.dispatcher)
  const c = await client({ dispatcher: fd.dispatcher })
  const drive = await c.getMyDrive()
  const root = { driveId: drive.id, itemId: 'root' }
  const v1 = Buffer.alloc(200_000, 1)
  const v2 = Buffer.alloc(200_000, 2)
  const up = await c.upload(root, 'replaced.bin', { size: v1.length, read: async (o, n) => v1.subarray(o, o + n) })
  fd.add({ method: 'GET', path: /^\/_download\//, breakAfter: 32 * 1024 })
  const got: Buffer[] = []
  let replaced = false
  const e = await c
    .download({ driveId: drive.id, itemId: up.item.id }, async (b) => {
      got.push(b)
      if (!replaced) {
        replaced = true
        await c.upload(root, 'replaced.bin', { size: v2.length, read: async (o, n) => v2.subarray(o, o + n) })
      }
    })
    .catch((x: unknown) => x)
  t.ok(replaced)
  // The service may still serve the old version through the URL it issued for it (the
  // emulator keeps replaced content as a version): then the read completes with the
  // first version whole. Otherwise it fails with changedDuringRead. Never a mix.
  if (e instanceof GraphError) {
    t.equal(e.code, 'changedDuringRead', e.message)
    t.equal(e.classify(), 'modified')
  } else {
    t.equal(Buffer.concat(got).length, v1.length, 'the first version was read whole')
    t.equal((e as { version?: string }).version, up.item.cTag ?? up.item.eTag, 'and reported as that version')
  }
  t.ok(Buffer.concat(got).every((x) => x === 1), 'only bytes of the first version were delivered')

  // A read pinned to the old version fails too; one pinned to the current version works.
  // (A URL cached for an older version is replaced by a fresh one when the pin asks for the current one.)
  const cur = await c.getItem({ driveId: drive.id, itemId: up.item.id })
  const fresh = { version: cur.cTag ?? cur.eTag }
  t.not(fresh.version, undefined)
  const pinnedOld = await c.openRange({ driveId: drive.id, itemId: up.item.id }, 10, 20, { pin: 'stale-version' }).catch((x: unknown) => x)
  t.equal((pinnedOld as GraphError).code, 'changedDuringRead')
  const pinnedNow = await c.openRange({ driveId: drive.id, itemId: up.item.id }, 10, 20, { pin: fresh.version })
  const parts: Buffer[] = []
  for await (const b of pinnedNow.body) parts.push(b as Buffer)
  t.same(Buffer.concat(parts), v2.subarray(10, 20))
})

t.test('a range past the end is empty whatever its shape (416)', async (t) => {
  const c = await client()
  const drive = await c.getMyDrive()
  const data = pattern(1000)
  const up = await c.upload({ driveId: drive.id, itemId: 'root' }, 'short.bin', source(data))
  const ref = { driveId: drive.id, itemId: up.item.id }
  for (const [a, b] of [[1000, undefined], [1000, 1010], [5000, 6000]] as const) {
    const rs = await c.openRange(ref, a, b)
    const parts: Buffer[] = []
    for await (const x of rs.body) parts.push(x as Buffer)
    t.equal(Buffer.concat(parts).length, 0, `bytes ${a}-${b ?? ''}: empty`)
    t.equal(rs.total, 1000, 'the size comes with it')
  }
})

t.test('a download of a version without a server hash says it is unverified', async (t) => {
  const c = await client()
  const drive = await c.getMyDrive()
  const data = pattern(5000)
  emu.setFaults({ hashDelayMs: 3_600_000 })
  t.teardown(() => emu.setFaults({ hashDelayMs: 0 }))
  const up = await c.upload({ driveId: drive.id, itemId: 'root' }, 'nohash.bin', source(data), { verify: false })
  const r = await c.download({ driveId: drive.id, itemId: up.item.id }, () => {})
  t.equal(r.verified, false)
  t.equal(r.unverified, 'noServerHash', 'the result says why it is not verified')
  t.equal(r.serverHash, undefined)
})

t.test('over several connections: every byte once at its offset, verified, at most `streams` parts at once, broken parts resumed', async (t) => {
  const fd = faultDispatcher(emu.dispatcher)
  const c = await client({ dispatcher: fd.dispatcher })
  const drive = await c.getMyDrive()
  const data = pattern(1024 * 1024 + 12345)
  const up = await c.upload({ driveId: drive.id, itemId: 'root' }, 'parallel.bin', source(data))
  const part = 64 * 1024
  const parts = Math.ceil(data.length / part)
  // Three answers break after 20 KiB of their body.
  fd.add({ method: 'GET', path: /^\/_download\//, breakAfter: 20 * 1024, times: 3 })
  const out = Buffer.alloc(data.length)
  const seen = new Uint8Array(data.length)
  const left = new Map<number, number>()
  let most = 0
  let twice = 0
  const r = await c.download({ driveId: drive.id, itemId: up.item.id }, async (b, at) => {
    b.copy(out, at)
    for (let i = at; i < at + b.length; i++) if (seen[i]++) twice++
    const p = Math.floor(at / part)
    const l = (left.get(p) ?? Math.min(part, data.length - p * part)) - b.length
    left.set(p, l)
    most = Math.max(most, [...left.values()].filter((x) => x > 0).length)
    await new Promise((res) => setImmediate(res)) // a write that takes a moment
  }, { streams: 4, partSize: part })
  t.equal(twice, 0, 'no byte delivered twice')
  t.ok(out.equals(data), 'every byte at its offset')
  t.equal(r.bytes, data.length)
  t.equal(r.verified, true, 'quickXorHash over the whole file verified')
  t.equal(r.reopened, 3, 'each broken part reopened from its last byte')
  t.equal(fd.count('GET', /^\/_download\//), parts + 3, `one ranged GET per part (${parts}) and per break`)
  t.ok(most > 1 && most <= 4, `parts in flight at once: ${most} (1 < n <= 4)`)
})

t.test('over several connections: a failed write stops every connection and is not retried', async (t) => {
  const fd = faultDispatcher(emu.dispatcher)
  const c = await client({ dispatcher: fd.dispatcher })
  const drive = await c.getMyDrive()
  const data = pattern(512 * 1024)
  const up = await c.upload({ driveId: drive.id, itemId: 'root' }, 'parallel-enospc.bin', source(data))
  let failedAt: number | undefined
  let writes = 0
  const e = await c.download({ driveId: drive.id, itemId: up.item.id }, async (b, at) => {
    writes++
    if (at >= 200 * 1024 && failedAt === undefined) {
      failedAt = at
      throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })
    }
  }, { streams: 3, partSize: 64 * 1024 }).catch((x: unknown) => x)
  t.equal((e as { code?: string }).code, 'ENOSPC', 'the write failure is what the download reports')
  const calls = fd.count('GET', /^\/_download\//)
  const atReturn = writes
  for (let i = 0; i < 20; i++) await new Promise((res) => setImmediate(res))
  t.equal(writes, atReturn, 'no write after it returned: every connection had stopped')
  t.equal(fd.count('GET', /^\/_download\//), calls, 'nor any request')
  t.ok(calls <= Math.ceil(data.length / (64 * 1024)), `no part retried (${calls} GETs)`)
})

t.test('over several connections: a file replaced during the download never mixes versions', async (t) => {
  const c = await client()
  const drive = await c.getMyDrive()
  const root = { driveId: drive.id, itemId: 'root' }
  const v1 = Buffer.alloc(300_000, 1)
  const v2 = Buffer.alloc(300_000, 2)
  const up = await c.upload(root, 'parallel-replaced.bin', { size: v1.length, read: async (o, n) => v1.subarray(o, o + n) })
  let replaced = false
  const out = Buffer.alloc(v1.length)
  const e = await c.download({ driveId: drive.id, itemId: up.item.id }, async (b, at) => {
    b.copy(out, at)
    if (!replaced) {
      replaced = true
      await c.upload(root, 'parallel-replaced.bin', { size: v2.length, read: async (o, n) => v2.subarray(o, o + n) })
    }
  }, { streams: 3, partSize: 64 * 1024 }).catch((x: unknown) => x)
  t.ok(replaced)
  if (e instanceof GraphError) t.equal(e.code, 'changedDuringRead', e.message)
  else t.equal((e as { verified?: boolean }).verified, true, 'the first version, whole and verified')
  t.notOk(out.includes(2), 'no byte of the second version')
})

/** A sink whose memory is the file itself: space(offset) lends the file from that offset, at most `lend` bytes. */
function fileSink(size: number, lend: number, onFilled: (n: number, at: number) => void = () => {}) {
  const file = Buffer.alloc(size)
  let lentAt = -1
  const seen = { spaces: 0, bytes: 0 }
  const sink: DownloadSink = {
    space: (offset) => {
      seen.spaces++
      lentAt = offset
      return file.subarray(offset, Math.min(size, offset + lend))
    },
    filled: (n) => {
      seen.bytes += n
      onFilled(n, lentAt)
    },
  }
  return { sink, file, seen }
}

t.test('into a sink, on a connection of its own: every byte once at its offset, verified, through connection resets', async (t) => {
  const c = await client()
  const drive = await c.getMyDrive()
  const data = pattern(3 * 1024 * 1024 + 77)
  const up = await c.upload({ driveId: drive.id, itemId: 'root' }, 'sink-resets.bin', source(data))
  // The first answer is cut half way (the service decides as it starts it); the
  // download reopens from the last byte placed, still to the end of the file.
  emu.setFaults({ resetRate: 1 })
  t.teardown(() => emu.setFaults({ resetRate: 0 }))
  const { sink, file, seen } = fileSink(data.length, 256 * 1024, () => emu.setFaults({ resetRate: 0 }))
  emu.resetStats()
  const r = await c.download({ driveId: drive.id, itemId: up.item.id }, sink)
  t.ok(file.equals(data), 'the file holds every byte at its offset')
  t.equal(seen.bytes, data.length, 'each byte filled once')
  t.equal(r.reopened, 1, 'reopened after the cut')
  t.equal(emu.stats.resets, 1)
  t.equal(r.verified, true, 'quickXorHash verified')
})

t.test('into a sink through a dispatcher without a connection of its own: chunks are copied in, verified', async (t) => {
  const fd = faultDispatcher(emu.dispatcher)
  const c = await client({ dispatcher: fd.dispatcher })
  const drive = await c.getMyDrive()
  const data = pattern(700 * 1024)
  const up = await c.upload({ driveId: drive.id, itemId: 'root' }, 'sink-copy.bin', source(data))
  fd.add({ method: 'GET', path: /^\/_download\//, breakAfter: 200 * 1024, times: 1 })
  // 1000 bytes lent at a time: every chunk takes several space()/filled() turns.
  const { sink, file, seen } = fileSink(data.length, 1000)
  const r = await c.download({ driveId: drive.id, itemId: up.item.id }, sink)
  t.ok(file.equals(data))
  t.equal(seen.bytes, data.length)
  t.ok(seen.spaces >= data.length / 1000, `lent in pieces (${seen.spaces})`)
  t.equal(r.reopened, 1)
  t.equal(r.verified, true)
})

t.test('into a sink: a failed write (a full disk) ends the download, is reported, and is not retried', async (t) => {
  const c = await client()
  const drive = await c.getMyDrive()
  const data = pattern(2 * 1024 * 1024)
  const up = await c.upload({ driveId: drive.id, itemId: 'root' }, 'sink-enospc.bin', source(data))
  emu.resetStats()
  const { sink } = fileSink(data.length, 64 * 1024, (_n, at) => {
    if (at >= 1024 * 1024) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })
  })
  const e = await c.download({ driveId: drive.id, itemId: up.item.id }, sink).catch((x: unknown) => x)
  t.equal((e as { code?: string }).code, 'ENOSPC', 'the write failure is what the download reports')
  const gets = Object.entries(emu.stats.routes).filter(([k]) => /GET .*_download/.test(k)).reduce((a, [, v]) => a + (v as number), 0)
  t.equal(gets, 1, `one content GET, not retried (${JSON.stringify(emu.stats.routes)})`)
})
