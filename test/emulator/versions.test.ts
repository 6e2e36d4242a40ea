// File versions (docs/emulator/versions.md): every content replacement keeps the previous
// content as a version that counts in quota.used; list, get, download, restore, delete.
import t from 'tap'
import { startTestEmulator, tokenFor, graphCaller, type TestEmulator } from '../support/emulator.js'

let emu: TestEmulator
let g: ReturnType<typeof graphCaller>
let gp: ReturnType<typeof graphCaller>

t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0, etagSettleMs: 0 })
  g = graphCaller(emu, await tokenFor(emu, 'user1'))
  gp = graphCaller(emu, await tokenFor(emu, 'personal1'))
})
t.teardown(() => emu.close())

const quota = async (caller = g) => (await caller('GET', '/me/drive')).body.quota
const text = async (url: string) => Buffer.from(await (await emu.fetch(url)).arrayBuffer()).toString()

t.test('Business: versions listed current first, downloadable, counted in quota', async (t) => {
  const q0 = await quota()
  const f = (await g('PUT', '/me/drive/root:/v/doc.txt:/content', Buffer.from('one'))).body
  await g('PUT', `/me/drive/items/${f.id}/content`, Buffer.from('second'))
  const cur = (await g('PUT', `/me/drive/items/${f.id}/content`, Buffer.from('third!!'))).body
  const list = await g('GET', `/me/drive/items/${f.id}/versions`)
  t.equal(list.status, 200)
  t.same(list.body.value.map((v: any) => v.id), ['3.0', '2.0', '1.0'], 'newest (current) first')
  t.same(list.body.value.map((v: any) => v.size), [7, 6, 3])
  t.match(list.body.value[0], { lastModifiedDateTime: cur.lastModifiedDateTime, lastModifiedBy: { user: { displayName: String } } })
  const q1 = await quota()
  t.equal(q1.used - q0.used, 3 + 6 + 7, 'earlier versions count in quota.used')
  t.equal(q1.remaining, q1.total - q1.used)

  const one = await g('GET', `/me/drive/items/${f.id}/versions/2.0`)
  t.equal(one.status, 200)
  t.match(one.body, { id: '2.0', size: 6 })
  const c = await g('GET', `/me/drive/items/${f.id}/versions/2.0/content`)
  t.equal(c.status, 302, 'an earlier version downloads like an item: 302')
  t.equal(await text(c.headers.get('location')!), 'second')
  const curContent = await g('GET', `/me/drive/items/${f.id}/versions/3.0/content`)
  t.equal(curContent.status, 400, 'the current version is read through the item itself')
  t.equal(curContent.body.error.code, 'invalidRequest')
  t.equal((await g('GET', `/me/drive/items/${f.id}/versions/9.0`)).status, 404)

  const r = await g('POST', `/me/drive/items/${f.id}/versions/1.0/restoreVersion`)
  t.equal(r.status, 204)
  t.equal(r.text, '')
  const after = (await g('GET', `/me/drive/items/${f.id}`)).body
  t.equal(after.size, 3)
  t.not(after.eTag, cur.eTag)
  t.not(after.cTag, cur.cTag, 'a restore is a content change')
  t.equal(await text(after['@microsoft.graph.downloadUrl']), 'one')
  const list2 = (await g('GET', `/me/drive/items/${f.id}/versions`)).body.value
  t.same(list2.map((v: any) => v.id), ['4.0', '3.0', '2.0', '1.0'], 'restoring adds a version and keeps all others')

  const delCur = await g('DELETE', `/me/drive/items/${f.id}/versions/4.0`)
  t.equal(delCur.status, 400, 'the current version cannot be deleted')
  t.equal(delCur.body.error.code, 'invalidRequest')
  const q2 = await quota()
  t.equal((await g('DELETE', `/me/drive/items/${f.id}/versions/2.0`)).status, 204)
  t.equal((await quota()).used, q2.used - 6, 'a deleted version frees its bytes')
  t.same((await g('GET', `/me/drive/items/${f.id}/versions`)).body.value.map((v: any) => v.id), ['4.0', '3.0', '1.0'])
  t.equal((await g('GET', `/me/drive/items/${f.id}/versions/2.0/content`)).status, 404)
})

t.test('Business: an mtime change keeps a version; Personal: it does not', async (t) => {
  const f = (await g('PUT', '/me/drive/root:/v/mt.txt:/content', Buffer.from('abc'))).body
  const q0 = await quota()
  await g('PATCH', `/me/drive/items/${f.id}`, { fileSystemInfo: { lastModifiedDateTime: '2020-01-01T00:00:00Z' } })
  t.same((await g('GET', `/me/drive/items/${f.id}/versions`)).body.value.map((v: any) => v.id), ['2.0', '1.0'])
  t.equal((await quota()).used, q0.used + 3, 'the same content counts twice')
  const p = (await gp('PUT', '/me/drive/root:/mt.txt:/content', Buffer.from('abc'))).body
  await gp('PATCH', `/me/drive/items/${p.id}`, { fileSystemInfo: { lastModifiedDateTime: '2020-01-01T00:00:00Z' } })
  t.same((await gp('GET', `/me/drive/items/${p.id}/versions`)).body.value.map((v: any) => v.id), ['current'])
})

t.test('Personal: current version id "current", earlier ones opaque; versions cannot be deleted', async (t) => {
  const f = (await gp('PUT', '/me/drive/root:/pv.txt:/content', Buffer.from('old'))).body
  await gp('PUT', `/me/drive/items/${f.id}/content`, Buffer.from('newer'))
  const list = (await gp('GET', `/me/drive/items/${f.id}/versions`)).body.value
  t.equal(list.length, 2)
  t.equal(list[0].id, 'current')
  t.not(list[1].id, 'current')
  t.equal(list[1].size, 3)
  const old = list[1].id
  t.equal((await gp('GET', `/me/drive/items/${f.id}/versions/current`)).body.size, 5)
  const loc = (await gp('GET', `/me/drive/items/${f.id}/versions/${encodeURIComponent(old)}/content`)).headers.get('location')!
  t.equal(await text(loc), 'old')
  const del = await gp('DELETE', `/me/drive/items/${f.id}/versions/${encodeURIComponent(old)}`)
  t.equal(del.status, 400)
  t.equal(del.body.error.message, 'API not found')
  t.equal((await gp('POST', `/me/drive/items/${f.id}/versions/${encodeURIComponent(old)}/restoreVersion`)).status, 204)
  t.equal((await gp('GET', `/me/drive/items/${f.id}`)).body.size, 3)
  t.equal((await gp('GET', `/me/drive/items/${f.id}/versions`)).body.value.length, 3)
})

t.test('deleting a file moves its versions to the recycle bin; replacing needs room for the whole new content', async (t) => {
  const f = (await g('PUT', '/me/drive/root:/v/gone.bin:/content', Buffer.alloc(1000))).body
  await g('PUT', `/me/drive/items/${f.id}/content`, Buffer.alloc(400))
  const q0 = await quota()
  t.equal((await g('DELETE', `/me/drive/items/${f.id}`)).status, 204)
  const q1 = await quota()
  t.equal(q1.deleted - q0.deleted, 1400, 'the file and its earlier version are in the bin')
  t.equal(q1.used, q0.used)

  const small = (await g('PUT', '/me/drive/root:/v/tight.bin:/content', Buffer.alloc(8))).body
  emu.store.setQuota('user1', (await quota()).used + 10)
  t.teardown(() => emu.store.setQuota('user1', 1024 ** 4))
  const over = await g('PUT', `/me/drive/items/${small.id}/content`, Buffer.alloc(12))
  t.equal(over.status, 507, 'the replaced 8 bytes stay as a version: 12 new bytes do not fit in 10')
  t.equal(over.body.error.code, 'quotaLimitReached')
  const sess = await g('POST', `/me/drive/items/${small.id}/createUploadSession`, { item: { fileSize: 12 } })
  t.equal(sess.status, 507)
  t.equal((await g('PUT', `/me/drive/items/${small.id}/content`, Buffer.alloc(9))).status, 200)
})

t.test('folders have no versions; unknown segments are refused', async (t) => {
  const d = (await g('POST', '/me/drive/root/children', { name: 'NoVersions', folder: {} })).body
  t.equal((await g('GET', `/me/drive/items/${d.id}/versions`)).status, 404)
  const f = (await g('PUT', '/me/drive/root:/v/x.txt:/content', Buffer.from('x'))).body
  t.equal((await g('GET', `/me/drive/items/${f.id}/versions/1.0/restore`)).status, 400)
  t.equal((await g('PATCH', `/me/drive/items/${f.id}/versions/1.0`, {})).status, 405)
  t.equal((await g('GET', `/me/drive/root:/v/x.txt:/versions`)).body.value[0].id, '1.0', 'path addressing works too')
})
