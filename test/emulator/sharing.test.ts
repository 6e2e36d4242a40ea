// Sharing and sites over real HTTPS (docs/graph-service.md §7, checklist 15, 19).
import t from 'tap'
import { startTestEmulator, tokenFor, graphCaller, type TestEmulator } from '../support/emulator.js'

let emu: TestEmulator
let u1: ReturnType<typeof graphCaller>
let u2: ReturnType<typeof graphCaller>
let p1: ReturnType<typeof graphCaller>
let o1: ReturnType<typeof graphCaller>

t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0 })
  u1 = graphCaller(emu, await tokenFor(emu, 'user1'))
  u2 = graphCaller(emu, await tokenFor(emu, 'user2'))
  p1 = graphCaller(emu, await tokenFor(emu, 'personal1'))
  o1 = graphCaller(emu, await tokenFor(emu, 'other1'))
})
t.teardown(() => emu.close())

t.test('sharedWithMe shape, access through the owner drive, rights', async (t) => {
  const r = await u1('GET', '/me/drive/sharedWithMe')
  t.equal(r.status, 200)
  const names = r.body.value.map((i: any) => i.name).sort()
  t.same(names, ['Budget.xlsx', 'Project X'])
  const px = r.body.value.find((i: any) => i.name === 'Project X')
  t.match(px.remoteItem, { id: String, name: 'Project X', size: Number, folder: { childCount: 2 }, parentReference: { driveId: String, driveType: 'business' } })
  const budget = r.body.value.find((i: any) => i.name === 'Budget.xlsx')
  t.match(budget.remoteItem, { file: { mimeType: String }, parentReference: { driveId: px.remoteItem.parentReference.driveId } })
  const d = px.remoteItem.parentReference.driveId
  const kids = await u1('GET', `/drives/${d}/items/${px.remoteItem.id}/children`)
  t.equal(kids.status, 200)
  t.same(kids.body.value.map((i: any) => i.name).sort(), ['Designs', 'plan.txt'])
  t.notOk(kids.body.value.some((i: any) => i.remoteItem), 'children of a remote folder are plain items')
  const byPath = await u1('GET', `/drives/${d}/items/${px.remoteItem.id}:/Designs/overview.txt:`)
  t.equal(byPath.status, 200)
  const c = await u1('GET', `/drives/${d}/items/${byPath.body.id}/content`)
  t.equal(c.status, 302, 'read inside a shared folder')
  const w = await u1('PUT', `/drives/${d}/items/${px.remoteItem.id}:/from-user1.txt:/content`, Buffer.from('hi'))
  t.equal(w.status, 201, 'write inside an edit share')
  const ro = await u1('PUT', `/drives/${d}/items/${budget.remoteItem.id}/content`, Buffer.from('nope'))
  t.equal(ro.status, 403, 'read-only share refuses writes')
  t.equal(ro.body.error.code, 'accessDenied')
  t.equal((await u1('GET', `/drives/${d}/items/${budget.remoteItem.id}`)).status, 200)
  const user2root = emu.store.root(emu.store.driveOf('user2'))
  t.equal((await u1('GET', `/drives/${d}/items/${user2root.id}/children`)).status, 404, 'unshared items are invisible')
  t.equal((await o1('GET', `/drives/${d}/items/${px.remoteItem.id}`)).status, 404, 'other users see nothing')
  const dr = await u1('GET', `/drives/${d}`)
  t.equal(dr.status, 200)
  t.notOk('quota' in dr.body, 'no quota of a drive one only has shares in')
})

t.test('sharedWithMe retired: empty; search still finds shared items', async (t) => {
  emu.setFaults({ sharedWithMeRetired: true })
  t.teardown(() => emu.setFaults({ sharedWithMeRetired: false }))
  const r = await u1('GET', '/me/drive/sharedWithMe')
  t.equal(r.status, 200)
  t.same(r.body.value, [])
  const s = await u1('POST', '/search/query', { requests: [{ entityTypes: ['driveItem'], query: { queryString: 'budget' }, from: 0, size: 25 }] })
  t.equal(s.status, 200)
  const hits = s.body.value[0].hitsContainers[0].hits
  t.equal(hits.length, 1)
  t.match(hits[0].resource, { '@odata.type': '#microsoft.graph.driveItem', name: 'Budget.xlsx', parentReference: { driveId: emu.store.driveOf('user2').id } })
  const all = await u1('POST', '/search/query', { requests: [{ entityTypes: ['driveItem'], query: { queryString: '*' }, from: 0, size: 2 }] })
  const hc = all.body.value[0].hitsContainers[0]
  t.equal(hc.hits.length, 2)
  t.equal(hc.moreResultsAvailable, true, 'paged with from/size')
  t.equal((await p1('POST', '/search/query', { requests: [{ entityTypes: ['driveItem'], query: { queryString: 'x' } }] })).status, 400, 'business only')
  t.equal((await u1('POST', '/search/query', { requests: [{ entityTypes: ['message'], query: { queryString: 'x' } }] })).status, 400)
})

t.test('personal shortcut ("Add to OneDrive") needs Prefer on /children', async (t) => {
  const plain = await p1('GET', '/me/drive/root/children')
  t.notOk(plain.body.value.some((i: any) => i.remoteItem))
  const withPrefer = await p1('GET', '/me/drive/root/children', undefined, { prefer: 'Include-Feature=AddToOneDrive' })
  const sc = withPrefer.body.value.find((i: any) => i.remoteItem)
  t.ok(sc)
  t.equal(sc.name, 'Holiday Photos')
  t.notOk('folder' in sc, 'outer item has no folder facet')
  t.match(sc.remoteItem, { folder: { childCount: 2 }, parentReference: { driveType: 'personal', driveId: /^[0-9a-f]{16}$/ } })
  const inside = await p1('GET', `/drives/${sc.remoteItem.parentReference.driveId}/items/${sc.remoteItem.id}/children`)
  t.equal(inside.status, 200)
  t.equal(inside.body.value.length, 2)
  const viaShortcut = await p1('GET', `/me/drive/items/${sc.id}/children`)
  t.same(viaShortcut.body.value, [], 'children of the shortcut id itself are empty')
  const upper = sc.remoteItem.parentReference.driveId.toUpperCase()
  t.equal((await p1('GET', `/drives/${upper}/items/${sc.remoteItem.id}`)).status, 200, 'personal drive ids compare case-insensitively')
  const sw = await p1('GET', '/me/drive/sharedWithMe')
  t.equal(sw.body.value[0].remoteItem.name, 'Holiday Photos')
})

t.test('driveIdQuirks: 15-char upper-case Personal remote drive ids still resolve', async (t) => {
  emu.setFaults({ driveIdQuirks: true })
  t.teardown(() => emu.setFaults({ driveIdQuirks: false }))
  const r = await p1('GET', '/me/drive/root/children', undefined, { prefer: 'Include-Feature=AddToOneDrive' })
  const sc = r.body.value.find((i: any) => i.remoteItem)
  const quirky = sc.remoteItem.parentReference.driveId
  t.match(quirky, /^[0-9A-F]{15}$/, 'leading zero dropped, upper case')
  t.equal(emu.store.driveOf('personal2').id, '0' + quirky.toLowerCase())
  t.equal((await p1('GET', `/drives/${quirky}/items/${sc.remoteItem.id}/children`)).status, 200)
})

t.test('createLink and /shares with redeemSharingLink', async (t) => {
  await emu.store.writeFile('user2', 'Private/secret.txt', 'secret')
  const f = (await u2('GET', '/me/drive/root:/Private')).body
  const d = f.parentReference.driveId
  t.equal((await u1('GET', `/drives/${d}/items/${f.id}`)).status, 404, 'not shared yet')
  const link = await u2('POST', `/me/drive/items/${f.id}/createLink`, { type: 'view', scope: 'organization' })
  t.equal(link.status, 201)
  t.match(link.body, { id: String, roles: ['read'], link: { type: 'view', scope: 'organization', webUrl: /^https:/ } })
  const token = 'u!' + Buffer.from(link.body.link.webUrl).toString('base64url')
  t.equal((await o1('GET', `/shares/${token}/driveItem`)).status, 403, 'organization link: other tenants refused')
  const peek = await u1('GET', `/shares/${token}/driveItem`)
  t.equal(peek.status, 200)
  t.equal(peek.body.id, f.id)
  t.equal((await u1('GET', `/drives/${d}/items/${f.id}`)).status, 404, 'no lasting access without redeem')
  const redeemed = await u1('GET', `/shares/${token}/driveItem`, undefined, { prefer: 'redeemSharingLink' })
  t.equal(redeemed.status, 200)
  t.equal((await u1('GET', `/drives/${d}/items/${f.id}/children`)).status, 200, 'lasting access after redeem')
  t.equal((await u1('POST', `/drives/${d}/items/${f.id}/children`, { name: 'x', folder: {} })).status, 403, 'view link grants read only')
  const kids = await u1('GET', `/shares/${token}/driveItem/children`)
  t.equal(kids.body.value[0].name, 'secret.txt')
  t.equal((await u1('GET', '/shares/u!bm9wZQ/driveItem')).status, 404)
  const edit = await u2('POST', `/me/drive/items/${f.id}/createLink`, { type: 'edit' })
  t.equal(edit.body.roles[0], 'write')
  t.equal((await u2('POST', `/me/drive/items/${f.id}/createLink`, { type: 'bogus' })).status, 400)
  const perms = await u2('GET', `/me/drive/items/${f.id}/permissions`)
  t.ok(perms.body.value.length >= 3)
})

t.test('invite shares with a user', async (t) => {
  const f = (await u2('POST', '/me/drive/root/children', { name: 'Invited', folder: {} })).body
  const inv = await u2('POST', `/me/drive/items/${f.id}/invite`, { recipients: [{ email: 'user1@contoso.onmicrosoft.com' }], roles: ['write'], requireSignIn: true, sendInvitation: false })
  t.equal(inv.status, 200)
  const sw = await u1('GET', '/me/drive/sharedWithMe')
  t.ok(sw.body.value.some((i: any) => i.name === 'Invited'))
})

t.test('sites and libraries: business only', async (t) => {
  const fs = await u1('GET', '/me/followedSites')
  t.equal(fs.status, 200)
  t.equal(fs.body.value.length, 1)
  const site = fs.body.value[0]
  t.match(site, { id: /^contoso\.sharepoint\.com,[0-9a-f-]{36},[0-9a-f-]{36}$/, displayName: 'Engineering', webUrl: String })
  const drives = await u1('GET', `/sites/${site.id}/drives`)
  t.equal(drives.status, 200)
  t.equal(drives.body.value.length, 2)
  for (const d of drives.body.value) t.equal(d.driveType, 'documentLibrary')
  const lib = drives.body.value[0].id
  const up = await u1('PUT', `/drives/${lib}/root:/from-user1.txt:/content`, Buffer.from('team'))
  t.equal(up.status, 201)
  t.equal(up.body.parentReference.driveType, 'documentLibrary')
  t.equal(up.body.parentReference.siteId, site.id)
  t.equal((await u2('GET', `/drives/${lib}/root:/from-user1.txt`)).status, 200, 'tenant members share the library')
  t.equal((await o1('GET', `/drives/${lib}/root/children`)).status, 404, 'other tenants do not')
  t.equal((await o1('GET', `/sites/${site.id}`)).status, 403)
  t.same((await o1('GET', '/me/followedSites')).body.value, [])
  t.equal((await u1('GET', `/sites/${site.id}/drive`)).body.driveType, 'documentLibrary')
  const pf = await p1('GET', '/me/followedSites')
  t.equal(pf.status, 400, 'personal accounts have no sites')
  t.equal((await p1('GET', `/sites/${site.id}/drives`)).status, 400)
  const forms = await u1('POST', `/drives/${lib}/root/children`, { name: 'Forms', folder: {} })
  t.equal(forms.status, 400, '"forms" reserved at a library root')
})
