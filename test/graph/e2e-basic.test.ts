// The drive client end to end over HTTPS against the emulator: drive, listing,
// paths, folders, move/replace, mtime, delete, upload by session and simple PUT,
// ranged downloads, delta with resync, shared items after sharedWithMe's retirement.
import t from 'tap'
import { createHash } from 'node:crypto'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, GraphError, quickXorHash, type DriveClient, type UploadSource } from '../../src/graph/index.js'
import { TreeResolver } from '../../src/vfs/index.js'
import { errnoFor } from '../../src/vfs/errors.js'

let emu: TestEmulator
/** user1's drive client: every subtest uses it, none depends on what another one did. */
let client: DriveClient

function bufSource(buf: Buffer): UploadSource {
  return { size: buf.length, read: async (o, n) => buf.subarray(o, o + n) }
}

t.before(async () => {
  emu = await startTestEmulator({ seed: 'demo' })
  const token = await tokenFor(emu, 'user1')
  client = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher })
})
t.teardown(async () => {
  await emu?.close()
})

t.test('drive, listing, paths', async (t) => {
  const drive = await client.getMyDrive()
  t.equal(drive.driveType, 'business')
  t.ok(drive.quota && typeof drive.quota.total === 'number', 'quota present')
  const root = await client.listChildren({ driveId: drive.id, itemId: 'root' })
  t.ok(root.length > 0, `demo root has ${root.length} entries`)
  const docs = await client.getItemByPath(drive.id, '/Documents')
  t.ok(docs.folder, 'Documents is a folder')
})

t.test('folders, upload, move with replace, mtime, delete, errno', async (t) => {
  const drive = await client.getMyDrive()
  const root = { driveId: drive.id, itemId: 'root' }
  const dir = await client.createFolder(root, 'e2e dir #1', 'fail')
  const dirRef = { driveId: drive.id, itemId: dir.id }
  const dup = await client.createFolder(root, 'e2e dir #1', 'fail').catch((e: unknown) => e)
  t.type(dup, GraphError)
  t.equal(errnoFor(dup), 'EEXIST')

  const data = Buffer.alloc(700_000)
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff
  const mtime = new Date('2024-05-06T07:08:09Z')
  const up = await client.upload(dirRef, 'a file.bin', bufSource(data), { mtime, fragmentSize: 327_680 })
  t.equal(up.verified, true, 'server quickXorHash equals the local one')
  t.equal(up.localHash, quickXorHash(data))
  t.equal(up.fragments, 3)
  t.equal(up.item.size, data.length)
  t.equal(new Date(up.item.fileSystemInfo!.lastModifiedDateTime!).getTime(), mtime.getTime(), 'mtime set in the same request')

  const empty = await client.upload(dirRef, 'empty.txt', bufSource(Buffer.alloc(0)), { mtime })
  t.equal(empty.item.size, 0)
  t.equal(new Date(empty.item.fileSystemInfo!.lastModifiedDateTime!).getTime(), mtime.getTime())
  t.equal(empty.verified, true, 'zero-byte hash verified too')

  // ranged download
  const ref = { driveId: drive.id, itemId: up.item.id }
  const rs = await client.openRange(ref, 1000, 2000)
  const chunks: Buffer[] = []
  for await (const c of rs.body) chunks.push(c as Buffer)
  t.same(Buffer.concat(chunks), data.subarray(1000, 2000), 'range bytes')
  const all: Buffer[] = []
  const dl = await client.download(ref, (c) => void all.push(c))
  t.equal(dl.verified, true)
  t.equal(createHash('sha256').update(Buffer.concat(all)).digest('hex'), createHash('sha256').update(data).digest('hex'))

  // rename over an existing file: fail, then replace
  const other = await client.upload(dirRef, 'other.bin', bufSource(Buffer.from('other')))
  const clash = await client.move({ driveId: drive.id, itemId: other.item.id }, { name: 'a file.bin' }).catch((e: unknown) => e)
  t.equal(errnoFor(clash), 'EEXIST')
  const moved = await client.move({ driveId: drive.id, itemId: other.item.id }, { name: 'a file.bin', conflictBehavior: 'replace' })
  t.equal(moved.name, 'a file.bin')
  const kids = await client.listChildren(dirRef)
  t.same(kids.map((k) => k.name).sort(), ['a file.bin', 'empty.txt'])

  const m2 = new Date('2020-01-02T03:04:05Z')
  const touched = await client.setMtime({ driveId: drive.id, itemId: moved.id }, m2)
  t.equal(new Date(touched.fileSystemInfo!.lastModifiedDateTime!).getTime(), m2.getTime())

  await client.deleteItem({ driveId: drive.id, itemId: moved.id })
  const gone = await client.getItem({ driveId: drive.id, itemId: moved.id }).catch((e: unknown) => e)
  t.equal(errnoFor(gone), 'ENOENT')
  const bad = await client.createFolder(dirRef, 'bad:name').catch((e: unknown) => e)
  t.equal(errnoFor(bad), 'EINVAL')
})

t.test('delta: enumerate, change, and resync on 410', async (t) => {
  const drive = await client.getMyDrive()
  const cur = client.delta(drive.id)
  const first = await cur.next()
  t.ok(first.items.length > 3, `enumerated ${first.items.length}`)
  t.equal(first.resync, false)
  await client.createFolder({ driveId: drive.id, itemId: 'root' }, 'delta-new', 'fail')
  const second = await cur.next()
  t.ok(second.items.some((i) => i.name === 'delta-new'), 'change seen')
  // a stale token: the cursor restarts and flags resync
  const bogus = cur.state!.replace(/token=[^&]+/, 'token=stale-token-xyz')
  const stale = client.delta(drive.id, bogus)
  const r = await stale.next()
  t.equal(r.resync, true, 'resync flagged')
  t.ok(r.items.some((i) => i.name === 'delta-new'), 're-enumerated')
})

t.test('virtual tree: My files, Shared with me (after retirement), Shared libraries', async (t) => {
  emu.setFaults({ sharedWithMeRetired: true })
  t.teardown(() => emu.setFaults({ sharedWithMeRetired: false }))
  const tree = new TreeResolver(client)
  const top = await tree.list('/')
  t.same(top.map((e) => e.name), ['My files', 'Shared with me', 'Shared libraries'])
  const shared = await tree.list('Shared with me')
  t.ok(shared.length >= 1, `shared entries: ${shared.map((s) => s.name).join(', ')}`)
  const sites = await tree.list('Shared libraries')
  t.ok(sites.length >= 1, `sites: ${sites.map((s) => s.name).join(', ')}`)
  const libs = await tree.list(`Shared libraries/${sites[0]!.name}`)
  t.ok(libs.length >= 1, `libraries: ${libs.map((s) => s.name).join(', ')}`)
  const lib = await tree.resolve(`Shared libraries/${sites[0]!.name}/${libs[0]!.name}`)
  t.equal(lib.kind, 'item')
  const missing = await tree.resolve('My files/Documents/not-there.txt')
  t.equal(missing.kind, 'missing')
  const sharedFolder = shared.find((s) => s.folder)
  if (sharedFolder) {
    const inside = await tree.list(`Shared with me/${sharedFolder.name}`)
    t.ok(Array.isArray(inside), `listed inside ${sharedFolder.name}: ${inside.length}`)
  }
})
