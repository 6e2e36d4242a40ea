// Delta over real HTTPS (docs/graph-service.md §6, checklist 14).
import t from 'tap'
import { startTestEmulator, tokenFor, graphCaller, type TestEmulator } from '../support/emulator.js'

let emu: TestEmulator
let g: ReturnType<typeof graphCaller>
let gp: ReturnType<typeof graphCaller>

t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0, maxTombstones: 50 })
  g = graphCaller(emu, await tokenFor(emu, 'user1'))
  gp = graphCaller(emu, await tokenFor(emu, 'personal1'))
  await emu.store.createMany('user1', 'A/B', 30)
  await emu.store.writeFile('user1', 'A/top.txt', 'top')
})
t.teardown(() => emu.close())

async function drain(start: string, caller = g): Promise<{ items: any[]; deltaLink: string; pages: number }> {
  const items: any[] = []
  let url: string | undefined = start
  let pages = 0
  let deltaLink = ''
  while (url) {
    const r = await caller('GET', url)
    if (r.status !== 200) throw new Error(`delta ${r.status} ${r.text}`)
    pages++
    items.push(...r.body.value)
    url = r.body['@odata.nextLink']
    if (!url) deltaLink = r.body['@odata.deltaLink']
  }
  return { items, deltaLink, pages }
}

t.test('full enumeration in pages, parents before children, Business paths', async (t) => {
  const { items, deltaLink, pages } = await drain('/me/drive/root/delta?$top=10')
  t.ok(pages >= 4, `paged (${pages} pages)`)
  t.match(deltaLink, /\/root\/delta\?.*token=/)
  const ids = items.map((i) => i.id)
  t.equal(new Set(ids).size, ids.length)
  t.ok(items[0].root, 'root first')
  const pos = new Map(ids.map((id, i) => [id, i]))
  for (const it of items) {
    if (it.root) continue
    const parent = emu.store.get(it.parentReference.id)!
    const rel = emu.store.pathOf(parent).split('/').map(encodeURIComponent).join('/')
    t.equal(it.parentReference.path, `/drives/${it.parentReference.driveId}/root:${rel}`, 'Business delta carries parentReference.path')
    t.ok(pos.get(it.parentReference.id)! < pos.get(it.id)!, `${it.name} after its parent`)
  }
  t.ok(items.every((i) => !('cTag' in i)), 'business delta omits cTag')
  t.equal(items.length, 1 + 2 + 31)
})

t.test('changes since a token: latest state, deletes, token=latest, 410', async (t) => {
  const { deltaLink } = await drain('/me/drive/root/delta')
  const top = (await g('GET', '/me/drive/root:/A/top.txt')).body
  await g('PATCH', `/me/drive/items/${top.id}`, { name: 'top2.txt' })
  await g('PATCH', `/me/drive/items/${top.id}`, { name: 'top3.txt' })
  const victim = (await g('GET', '/me/drive/root:/A/B/file-00003.txt')).body
  t.equal((await g('DELETE', `/me/drive/items/${victim.id}`)).status, 204)
  await g('PUT', '/me/drive/root:/A/new.txt:/content', Buffer.from('new'))
  const { items, deltaLink: next } = await drain(deltaLink)
  const byId = new Map(items.map((i) => [i.id, i]))
  t.equal(byId.get(top.id)?.name, 'top3.txt', 'latest state only')
  const del = byId.get(victim.id)
  t.ok(del?.deleted, 'deleted item reported')
  t.notOk('name' in del, 'business: deleted items have no name')
  t.ok(items.some((i) => i.name === 'new.txt'))
  t.notOk(items.some((i) => i.name === 'file-00004.txt'), 'unchanged items are not repeated')
  const again = await drain(next)
  t.equal(again.items.length, 0, 'nothing new')
  const latest = await g('GET', '/me/drive/root/delta?token=latest')
  t.equal(latest.status, 200)
  t.same(latest.body.value, [])
  t.match(latest.body['@odata.deltaLink'], /token=/)
  await g('PUT', '/me/drive/root:/after-latest.txt:/content', Buffer.from('x'))
  const fromLatest = await drain(latest.body['@odata.deltaLink'])
  t.ok(fromLatest.items.some((i) => i.name === 'after-latest.txt'))
  const junk = await g('GET', '/me/drive/root/delta?token=garbage')
  t.equal(junk.status, 410)
  t.equal(junk.body.error.code, 'resyncChangesApplyDifferences')
  t.match(junk.headers.get('location'), /\/root\/delta$/)
  // the test hook makes every earlier token stale
  const hook = await emu.fetch('/_emulator/delta/expire', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account: 'user1' }) })
  t.equal(hook.status, 204)
  t.equal((await g('GET', next)).status, 410)
  // a bounded change log: many deletes push old tokens out
  const fresh = (await drain('/me/drive/root/delta')).deltaLink
  await emu.store.createMany('user1', 'Churn', 60)
  const churn = (await g('GET', '/me/drive/root:/Churn')).body
  await g('DELETE', `/me/drive/items/${churn.id}`)
  t.equal((await g('GET', fresh)).status, 410, 'token older than the change log → 410')
})

t.test('business: token may be an ISO timestamp', async (t) => {
  const since = new Date().toISOString()
  await g('PUT', '/me/drive/root:/A/stamped.txt:/content', Buffer.from('s'))
  const r = await g('GET', `/me/drive/root/delta?token=${encodeURIComponent(since)}`)
  t.equal(r.status, 200)
  t.ok(r.body.value.some((i: any) => i.name === 'stamped.txt'))
  t.notOk(r.body.value.some((i: any) => i.name === 'file-00010.txt'), 'older items not listed')
  t.match(r.body['@odata.deltaLink'], /token=/)
  t.equal((await gp('GET', `/me/drive/root/delta?token=${encodeURIComponent(since)}`)).status, 410, 'personal: not a valid token')
})

t.test('personal: folder delta, deleted names, cTag on folders, shortcut needs Prefer', async (t) => {
  const full = await drain('/me/drive/root/delta', gp)
  t.notOk(full.items.some((i) => i.remoteItem), 'shortcut hidden without Prefer')
  const r = await gp('GET', '/me/drive/root/delta', undefined, { prefer: 'Include-Feature=AddToOneDrive' })
  const sc = r.body.value.find((i: any) => i.remoteItem)
  t.ok(sc, 'shortcut shown with Prefer: Include-Feature=AddToOneDrive')
  t.notOk('folder' in sc, 'no outer folder facet')
  t.ok(sc.remoteItem.folder)
  const f = (await gp('POST', '/me/drive/root/children', { name: 'PF', folder: {} })).body
  t.ok(f.cTag, 'personal folders have a cTag')
  const x = (await gp('PUT', '/me/drive/root:/PF/x.txt:/content', Buffer.from('x'))).body
  const f2 = (await gp('GET', `/me/drive/items/${f.id}`)).body
  t.not(f2.cTag, f.cTag, 'personal folder cTag changes when a child changes')
  t.equal(f2.eTag, f.eTag, 'folder eTag unchanged by descendant changes')
  const fd = await drain(`/me/drive/items/${f.id}/delta`, gp)
  t.same(fd.items.map((i) => i.name).sort(), ['PF', 'x.txt'])
  t.notOk(fd.items.some((i) => 'path' in (i.parentReference ?? {})), 'personal delta has no parentReference.path')
  t.notOk(full.items.some((i) => 'path' in (i.parentReference ?? {})), 'not in the root delta either')
  t.ok((await gp('GET', '/me/drive/root:/PF/x.txt')).body.parentReference.path, 'while a plain GET has it')
  await gp('DELETE', `/me/drive/items/${x.id}`)
  const fd2 = await drain(fd.deltaLink, gp)
  const del = fd2.items.find((i) => i.id === x.id)
  t.equal(del?.name, 'x.txt', 'personal deleted items keep their name')
  t.ok(del?.deleted)
  const biz = (await g('GET', '/me/drive/root:/A')).body
  const bd = await g('GET', `/me/drive/items/${biz.id}/delta`)
  t.equal(bd.status, 400, 'business: delta only on the root')
})
