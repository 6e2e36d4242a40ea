// Caches for the mount: concurrent callers for one item share one request (download
// URLs, tree data), and cached tree data expires (on the injected clock).
import t from 'tap'
import { ManualClock } from '../../src/common/index.js'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, type DriveClient } from '../../src/graph/index.js'
import { TreeResolver } from '../../src/vfs/index.js'

let emu: TestEmulator
t.before(async () => {
  emu = await startTestEmulator({ seed: 'demo' })
})
t.teardown(async () => {
  await emu?.close()
})

async function client(handle: string, extra: Record<string, unknown> = {}): Promise<DriveClient> {
  const token = await tokenFor(emu, handle)
  return createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, ...extra })
}

const routeCount = (re: RegExp) => Object.entries(emu.stats.routes).filter(([r]) => re.test(r)).reduce((a, [, n]) => a + n, 0)

t.test('concurrent reads of one item fetch its download URL once', async (t) => {
  const c = await client('user1')
  const drive = await c.getMyDrive()
  const data = Buffer.alloc(50_000, 3)
  const up = await c.upload({ driveId: drive.id, itemId: 'root' }, 'shared-url.bin', { size: data.length, read: async (o, n) => data.subarray(o, o + n) })
  const ref = { driveId: drive.id, itemId: up.item.id }
  emu.resetStats()
  const reads = await Promise.all(
    Array.from({ length: 8 }, async (_, i) => {
      const rs = await c.openRange(ref, i * 1000, i * 1000 + 10)
      const parts: Buffer[] = []
      for await (const b of rs.body) parts.push(b as Buffer)
      return Buffer.concat(parts).length
    }),
  )
  t.same(reads, Array(8).fill(10), 'every read got its bytes')
  t.equal(routeCount(/^GET \/drives\/\{id\}\/items\/\{id\}$/), 1, `one item request for 8 concurrent readers (${JSON.stringify(emu.stats.routes)})`)
  t.equal(c.stats().downloadUrlFetches, 1)
})

t.test('a download URL is fetched again after its time to live (injected clock)', async (t) => {
  const clock = new ManualClock()
  const c = await client('user1', { clock, downloadUrlTtlMs: 60_000 })
  const drive = await c.getMyDrive()
  const data = Buffer.alloc(1000, 4)
  const up = await c.upload({ driveId: drive.id, itemId: 'root' }, 'ttl-url.bin', { size: data.length, read: async (o, n) => data.subarray(o, o + n) }, { verify: false })
  const ref = { driveId: drive.id, itemId: up.item.id }
  const read = async () => {
    const rs = await c.openRange(ref, 0, 10)
    for await (const _ of rs.body) void _
  }
  await read()
  await clock.advance(59_000)
  await read()
  t.equal(c.stats().downloadUrlFetches, 1, 'reused within its time to live')
  await clock.advance(2_000)
  await read()
  t.equal(c.stats().downloadUrlFetches, 2, 'fetched again once expired')
})

t.test('tree data: one fetch for concurrent callers, fetched again after its time to live', async (t) => {
  const clock = new ManualClock()
  const c = await client('user1')
  const tree = new TreeResolver(c, { clock, cacheTtlMs: 30_000 })
  emu.resetStats()
  const lists = await Promise.all(Array.from({ length: 6 }, () => tree.list('Shared with me')))
  t.ok(lists.every((l) => l.length === lists[0]!.length), 'every caller got the same entries')
  t.equal(routeCount(/sharedWithMe/), 1, `sharedWithMe asked once for 6 concurrent callers (${JSON.stringify(emu.stats.routes)})`)
  t.equal(routeCount(/^GET \/me\/drive$/), 1, 'the drive asked once')
  await tree.list('Shared with me')
  t.equal(routeCount(/sharedWithMe/), 1, 'reused while fresh')
  await clock.advance(30_001)
  await tree.list('Shared with me')
  t.equal(routeCount(/sharedWithMe/), 2, 'fetched again once expired')
})

t.test('an upload or a delete forgets the download URL of the item it replaced', async (t) => {
  const c = await client('user1')
  const drive = await c.getMyDrive()
  const root = { driveId: drive.id, itemId: 'root' }
  const src = (b: Buffer) => ({ size: b.length, read: async (o: number, n: number) => b.subarray(o, o + n) })
  const v1 = Buffer.alloc(30_000, 1)
  const v2 = Buffer.alloc(40_000, 2)
  const up = await c.upload(root, 'replaced-url.bin', src(v1))
  const ref = { driveId: drive.id, itemId: up.item.id }
  const whole = async () => {
    const parts: Buffer[] = []
    await c.download(ref, (b) => void parts.push(Buffer.from(b)))
    return Buffer.concat(parts)
  }
  t.same(await whole(), v1, 'the first version (its URL is now cached)')
  const again = await c.upload(root, 'replaced-url.bin', src(v2), { conflictBehavior: 'replace' })
  t.equal(again.item.id, ref.itemId, 'the same item, a new version')
  // The emulator's download URLs, like the service's, serve the version they were issued
  // for while it exists: a URL cached before the upload would give back v1.
  t.same(await whole(), v2, 'after the upload the new version is downloaded')
  await c.deleteItem(ref)
  await t.rejects(whole(), { code: 'itemNotFound' }, 'after a delete the item is asked for again, and is gone')
})

t.test('an item fetched alone brings its download URL: the read after it asks for none, and the item does not carry it', async (t) => {
  const c = await client('user1')
  const drive = await c.getMyDrive()
  const data = Buffer.alloc(30_000, 5)
  for (const how of ['by path', 'by id'] as const) {
    // A file of its own for each case (a download caches the URL it fetched).
    const name = `kept-url-${how.replace(' ', '-')}.bin`
    const up = await c.upload({ driveId: drive.id, itemId: 'root' }, name, { size: data.length, read: async (o, n) => data.subarray(o, o + n) })
    const byPath = how === 'by path' ? await c.getItemByPath(drive.id, name) : up.item
    const item = how === 'by path' ? byPath : await c.getItem({ driveId: drive.id, itemId: byPath.id })
    t.equal(item['@microsoft.graph.downloadUrl'], undefined, `${how}: the URL, a credential, is not in the item the caller keeps`)
    t.notMatch(JSON.stringify(item), /_download|tempauth/, `${how}: nor anywhere in it`)
    const before = c.stats().downloadUrlFetches
    emu.resetStats()
    const got: Buffer[] = []
    const r = await c.download({ driveId: item.parentReference?.driveId ?? drive.id, itemId: item.id }, (b) => void got.push(Buffer.from(b)))
    t.ok(Buffer.concat(got).equals(data), `${how}: the bytes`)
    t.equal(r.verified, true, `${how}: verified against the hash that came with the URL`)
    t.equal(c.stats().downloadUrlFetches, before, `${how}: no request for a download URL`)
    t.same(emu.stats.routes, { 'GET /_download/{id}': 1 }, `${how}: the content GET alone`)
  }
  // A folder's answer has no URL: nothing is kept, and reading it is still a clear local error.
  const folder = await c.createFolder({ driveId: drive.id, itemId: 'root' }, 'kept-url-folder')
  await c.getItem({ driveId: drive.id, itemId: folder.id })
  await t.rejects(c.download({ driveId: drive.id, itemId: folder.id }, () => {}), { code: 'notAFile' })
})
