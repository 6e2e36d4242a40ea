// Graph items over real HTTPS: addressing forms, paging, $select, naming rules,
// conflicts, PATCH/move, delete + quota, copy monitor, preconditions, errors, 401s.
import t from 'tap'
import { ManualClock } from '../../src/common/index.js'
import { startTestEmulator, tokenFor, graphCaller, type TestEmulator } from '../support/emulator.js'

let emu: TestEmulator
let g: ReturnType<typeof graphCaller>
let gp: ReturnType<typeof graphCaller>
let driveId: string

t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0 })
  g = graphCaller(emu, await tokenFor(emu, 'user1'))
  gp = graphCaller(emu, await tokenFor(emu, 'personal1'))
  driveId = emu.store.driveOf('user1').id
  await emu.store.writeFile('user1', 'Docs/Sub Folder/a b#%.txt', 'hello')
  await emu.store.writeFile('user1', 'Docs/readme.txt', 'readme')
})
t.teardown(() => emu.close())

t.test('/me, /me/drive, /me/drives, /drives/{id}', async (t) => {
  const me = await g('GET', '/me')
  t.equal(me.status, 200)
  t.match(me.body, { id: '11111111-1111-4111-8111-111111111111', displayName: 'User One', userPrincipalName: 'user1@contoso.onmicrosoft.com', mail: 'user1@contoso.onmicrosoft.com' })
  const d = await g('GET', '/me/drive')
  t.equal(d.status, 200)
  t.equal(d.body.driveType, 'business')
  t.match(d.body.id, /^b![A-Za-z0-9_-]{60,}$/)
  t.match(d.body.quota, { total: Number, used: Number, remaining: Number, deleted: 0, state: 'normal' })
  t.match(d.body.owner, { user: { id: '11111111-1111-4111-8111-111111111111' } })
  const ds = await g('GET', '/me/drives')
  t.equal(ds.body.value.length, 1)
  t.equal((await g('GET', `/drives/${driveId}`)).body.id, driveId)
  const pd = await gp('GET', '/me/drive')
  t.equal(pd.body.driveType, 'personal')
  t.match(pd.body.id, /^[0-9a-f]{16}$/)
  t.notOk('fileCount' in pd.body.quota, 'no fileCount on personal')
  // another user's drive without any grant
  const other = emu.store.driveOf('other1').id
  t.equal((await g('GET', `/drives/${other}`)).status, 403)
  t.equal((await g('GET', '/drives/b!doesnotexist')).status, 404)
})

t.test('item addressing forms (checklist 1)', async (t) => {
  const byPath = await g('GET', '/me/drive/root:/Docs/Sub%20Folder/a%20b%23%25.txt')
  t.equal(byPath.status, 200)
  t.equal(byPath.body.name, 'a b#%.txt')
  const id = byPath.body.id
  const forms = [
    '/me/drive/root:/Docs/Sub%20Folder/a%20b%23%25.txt:',
    `/drives/${driveId}/root:/Docs/Sub%20Folder/a%20b%23%25.txt`,
    `/drives/${driveId}/items/${id}`,
    `/me/drive/items/${id}`,
    '/me/drive/root:/docs/SUB%20folder/A%20B%23%25.TXT',
  ]
  for (const f of forms) {
    const r = await g('GET', f)
    t.equal(r.status, 200, f)
    t.equal(r.body.id, id, f)
  }
  const sub = await g('GET', '/me/drive/root:/Docs/Sub%20Folder')
  const rel = await g('GET', `/drives/${driveId}/items/${sub.body.id}:/a%20b%23%25.txt:`)
  t.equal(rel.body.id, id, 'items/{id}:/rel:')
  const trailing = await g('GET', '/me/drive/root:/Docs/Sub%20Folder/:/')
  t.equal(trailing.body.id, sub.body.id, 'trailing slash form dir:/')
  const kids = await g('GET', '/me/drive/root:/Docs:/children')
  t.equal(kids.status, 200)
  t.same(kids.body.value.map((i: any) => i.name), ['readme.txt', 'Sub Folder'])
  const rootAlias = await g('GET', '/me/drive/items/root/children')
  t.equal(rootAlias.status, 200)
  t.ok(rootAlias.body.value.some((i: any) => i.name === 'Docs'))
  const root = await g('GET', '/me/drive/root')
  t.same(root.body.root, {})
  t.same(Object.keys(root.body.parentReference).sort(), ['driveId', 'driveType'])
  const missing = await g('GET', '/me/drive/root:/Docs/nope.txt')
  t.equal(missing.status, 404)
  t.equal(missing.body.error.code, 'itemNotFound')
  t.match(missing.body.error.innerError, { date: String, 'request-id': String, 'client-request-id': String })
  t.ok(missing.headers.get('request-id'))
  t.equal((await g('GET', '/me/drive/items/01NOPE')).status, 404)
})

t.test('path addresses are decoded before they are split (docs/emulator/path-addressing.md)', async (t) => {
  await emu.store.writeFile('user1', 'Enc/up/a.txt', 'a')
  const a = await g('GET', '/me/drive/root:/Enc/up/a.txt')
  const up = await g('GET', '/me/drive/root:/Enc/up')
  // one percent-encoded component for the whole path, as abraunegg/onedrive sends it
  for (const f of ['/me/drive/root:/Enc%2Fup%2Fa.txt', '/me/drive/root:/Enc%2Fup%2Fa.txt:', `/drives/${driveId}/root:/.%2FEnc%2Fup%2Fa.txt:`,
    '/me/drive/root:/./Enc/up/a.txt', `/drives/${driveId}/items/${up.body.id}:/.%2Fa.txt:`]) {
    const r = await g('GET', f)
    t.equal(r.status, 200, f)
    t.equal(r.body.id, a.body.id, f)
  }
  t.equal((await g('GET', '/me/drive/root:/.%2FEnc%2Fup%2Fa.txt:/content')).status, 302, ':/content after an encoded path')
  const kids = await g('GET', '/me/drive/root:/.%2FEnc%2Fup:/children')
  t.equal(kids.status, 200, ':/children after an encoded path')
  t.same(kids.body.value.map((i: any) => i.name), ['a.txt'])
  const put = await g('PUT', '/me/drive/root:/Enc%2Fup%2Fput.txt:/content', new TextEncoder().encode('x'))
  t.equal(put.status, 201)
  t.equal(put.body.parentReference.id, up.body.id, 'created in the folder the path names, not as a name with slashes')
  const session = await g('POST', '/me/drive/root:/.%2FEnc%2Fnew%2Fbig.bin:/createUploadSession', {})
  t.equal(session.status, 200, ':/createUploadSession after an encoded path')
  t.ok(session.body.uploadUrl)
  // `..` never climbs: no item has that name, and none can be made
  t.equal((await g('GET', '/me/drive/root:/Enc%2F..%2FEnc%2Fup%2Fa.txt')).status, 404)
  t.equal((await g('GET', '/me/drive/root:/Enc/up/..:/children')).status, 404)
  const climb = await g('PUT', '/me/drive/root:/Enc%2F..%2Fescape.txt:/content', new TextEncoder().encode('x'))
  t.equal(climb.status, 400)
  t.equal((await g('GET', '/me/drive/root:/escape.txt')).status, 404)
  // in a JSON name, "%2F" is three plain characters and "/" is refused
  t.equal((await g('POST', '/me/drive/root:/Enc:/children', { name: 'a%2Fb', folder: {} })).status, 201)
  t.equal((await g('POST', '/me/drive/root:/Enc:/children', { name: 'a/b', folder: {} })).status, 400)
})

t.test('item shape (docs/graph-service.md §1.3) and Business rules', async (t) => {
  const f = (await g('GET', '/me/drive/root:/Docs/readme.txt')).body
  t.match(f, {
    id: String, name: 'readme.txt', size: 6, eTag: /^"\{[0-9A-F-]+\},\d+"$/, cTag: /^"c:\{[0-9A-F-]+\},\d+"$/,
    parentReference: { driveId, driveType: 'business', id: String, path: `/drives/${driveId}/root:/Docs` },
    fileSystemInfo: { createdDateTime: String, lastModifiedDateTime: String },
    file: { mimeType: 'text/plain', hashes: { quickXorHash: String } },
  })
  t.notOk('sha1Hash' in f.file.hashes, 'never sha1 in business mode')
  const d = (await g('GET', '/me/drive/root:/Docs')).body
  t.notOk('cTag' in d, 'business folders have no cTag')
  t.equal(d.folder.childCount, 2)
  t.equal(d.size, 11, 'folder size is the recursive total')
})

t.test('children paging, $top, $select, $expand (checklist 2)', async (t) => {
  await emu.store.createMany('user1', 'Many', 450)
  emu.resetStats()
  let url: string | undefined = '/me/drive/root:/Many:/children?$top=200&$select=name,size'
  const names: string[] = []
  let pages = 0
  while (url) {
    const r = await g('GET', url)
    t.equal(r.status, 200)
    pages++
    for (const it of r.body.value) {
      t.same(Object.keys(it).sort(), ['id', 'name', 'size'])
      names.push(it.name)
    }
    url = r.body['@odata.nextLink']
    if (url) t.match(url, /^https:\/\/127\.0\.0\.1:\d+\/v1\.0\/.*\$skiptoken=/)
  }
  t.equal(pages, 3)
  t.equal(names.length, 450)
  t.equal(new Set(names).size, 450)
  t.equal(emu.stats.routes['GET /me/drive/root:/{path}:/children'], 1)
  t.equal(emu.stats.routes['GET /drives/{id}/items/{id}/children'], 2, 'nextLinks use the id form')
  const def = await g('GET', '/me/drive/root:/Many:/children')
  t.equal(def.body.value.length, 200, 'default page 200')
  const big = await g('GET', '/me/drive/root:/Many:/children?$top=5000')
  t.equal(big.status, 200)
  t.equal(big.body.value.length, 450, '$top above 1000 is clamped, not refused')
  const many = emu.store.itemByPath('user1', 'Many')!
  await emu.store.createMany('user1', 'Many', 700, 'more-')
  const clamped = await g('GET', `/me/drive/items/${many.id}/children?$top=5000`)
  t.equal(clamped.body.value.length, 1000)
  t.ok(clamped.body['@odata.nextLink'])
  t.equal((await g('GET', '/me/drive/root:/Many:/children?$top=0')).status, 400)
  const dl = await g('GET', '/me/drive/root:/Docs/readme.txt?select=id,@microsoft.graph.downloadUrl')
  t.same(Object.keys(dl.body).filter((k) => !k.startsWith('@odata')).sort(), ['@microsoft.graph.downloadUrl', 'id'])
  const ex = await g('GET', '/me/drive/root:/Many?$expand=children')
  t.equal(ex.body.children.length, 200)
  t.ok(ex.body['children@odata.nextLink'])
  t.equal((await g('GET', '/me/drive/root:/Docs:/children?$skiptoken=garbage')).status, 400)
})

t.test('naming rules (docs/graph-service.md §8, checklist 4)', async (t) => {
  const bad = ['a:b', 'a*b', 'a?b', 'a"b', 'a<b', 'a>b', 'a|b', 'a\\b', ' lead', 'trail ', 'dot.', 'CON', 'con.txt', 'LPT1', 'desktop.ini', '.lock', 'x_vti_y', '~$temp']
  for (const name of bad) {
    const r = await g('POST', '/me/drive/root/children', { name, folder: {} })
    t.equal(r.status, 400, `rejects ${JSON.stringify(name)}`)
    t.equal(r.body.error.code, 'invalidRequest')
    t.equal(r.body.error.innerError.code, 'invalidPath')
  }
  t.equal((await g('POST', '/me/drive/root/children', { name: '~folder', folder: {} })).status, 400, 'business: no leading ~ on folders')
  t.equal((await gp('POST', '/me/drive/root/children', { name: '~folder', folder: {} })).status, 201, 'personal allows it')
  // path length: business prefix /personal/user1_contoso_onmicrosoft_com/Documents/ counts
  const prefix = '/personal/user1_contoso_onmicrosoft_com/Documents'.length
  const okName = 'n'.repeat(399 - prefix - 1)
  t.equal((await g('POST', '/me/drive/root/children', { name: okName, folder: {} })).status, 201, '399 chars accepted')
  const tooLong = await g('POST', '/me/drive/root/children', { name: okName + 'x', folder: {} })
  t.equal(tooLong.status, 400)
  t.equal(tooLong.body.error.innerError.code, 'pathIsTooLong')
  // percent-encoded allowed chars
  t.equal((await g('PUT', `/me/drive/root:/${encodeURIComponent("it's (1) [x] & y=z #1 %.txt")}:/content`, Buffer.from('x'))).status, 201)
})

t.test('case-insensitive, case-preserving (checklist 3)', async (t) => {
  const a = await g('PUT', '/me/drive/root:/Case/Hello.TXT:/content', Buffer.from('one'))
  t.equal(a.status, 201)
  const b = await g('PUT', '/me/drive/root:/case/hello.txt:/content', Buffer.from('two!'))
  t.equal(b.status, 200, 'case variant replaces')
  t.equal(b.body.id, a.body.id)
  t.equal(b.body.name, 'Hello.TXT', 'original case kept')
  t.equal(b.body.size, 4)
  const dup = await g('POST', '/me/drive/root:/Case:/children', { name: 'HELLO.txt', folder: {} })
  t.equal(dup.status, 409)
  t.equal(dup.body.error.code, 'nameAlreadyExists')
  const ren = await g('PATCH', `/me/drive/items/${a.body.id}`, { name: 'hello.txt' })
  t.equal(ren.status, 200, 'case-only rename')
  t.equal(ren.body.name, 'hello.txt')
  const fold = await g('POST', '/me/drive/root:/Case:/children', { name: 'Æsop', folder: {} })
  t.equal(fold.status, 201)
  t.equal((await g('POST', '/me/drive/root:/Case:/children', { name: 'aesop', folder: {} })).status, 409, 'collation folds æ and ae')
})

t.test('folder create conflict behaviours (checklist 10)', async (t) => {
  const mk = (body: object, q = '') => g('POST', `/me/drive/root/children${q}`, body)
  t.equal((await mk({ name: 'F', folder: {} })).status, 201)
  t.equal((await mk({ name: 'F', folder: {} })).status, 409, 'default fail')
  t.equal((await mk({ name: 'F', folder: {}, '@microsoft.graph.conflictBehavior': 'fail' })).status, 409)
  const r = await mk({ name: 'F', folder: {}, '@microsoft.graph.conflictBehavior': 'rename' })
  t.equal(r.status, 201)
  t.equal(r.body.name, 'F 1')
  const legacy = await mk({ name: 'F', folder: {}, '@name.conflictBehavior': 'rename' })
  t.equal(legacy.body.name, 'F 2', 'legacy @name.conflictBehavior honoured')
  const rep = await mk({ name: 'F', folder: {}, '@microsoft.graph.conflictBehavior': 'replace' })
  t.ok(rep.status === 200 || rep.status === 201)
  t.equal(rep.body.name, 'F')
  t.equal((await mk({ name: 'G' })).status, 400, 'needs a facet')
  t.equal((await g('POST', '/me/drive/root/children', 'not json' as any)).status, 400)
})

t.test('PATCH rename/move rules (checklist 11)', async (t) => {
  const a = (await g('PUT', '/me/drive/root:/Move/a.txt:/content', Buffer.from('a'))).body
  const b = (await g('PUT', '/me/drive/root:/Move/b.txt:/content', Buffer.from('bb'))).body
  const dest = (await g('POST', '/me/drive/root:/Move:/children', { name: 'Dest', folder: {} })).body
  const root = (await g('GET', '/me/drive/root')).body
  const mtime = '2020-01-02T03:04:05.000Z'
  const mv = await g('PATCH', `/me/drive/items/${a.id}`, { name: 'a2.txt', parentReference: { id: dest.id }, fileSystemInfo: { lastModifiedDateTime: mtime } })
  t.equal(mv.status, 200)
  t.equal(mv.body.name, 'a2.txt')
  t.equal(mv.body.parentReference.id, dest.id)
  t.equal(mv.body.fileSystemInfo.lastModifiedDateTime, mtime)
  t.equal(mv.body.id, a.id, 'id stable across move')
  t.not(mv.body.eTag, a.eTag)
  t.equal(mv.body.cTag, a.cTag.replace(/,\d+"$/, (s: string) => s), 'cTag unchanged by metadata edits')
  // conflict
  const c1 = await g('PATCH', `/me/drive/items/${b.id}`, { name: 'a2.txt', parentReference: { id: dest.id } })
  t.equal(c1.status, 409)
  const c2 = await g('PATCH', `/me/drive/items/${b.id}?@microsoft.graph.conflictBehavior=replace`, { name: 'a2.txt', parentReference: { id: dest.id } })
  t.equal(c2.status, 200, 'replace onto a file')
  t.equal((await g('GET', `/me/drive/items/${a.id}`)).status, 404, 'replaced file is gone')
  const folderA = (await g('POST', '/me/drive/root:/Move:/children', { name: 'FA', folder: {} })).body
  const folderB = (await g('POST', '/me/drive/root:/Move:/children', { name: 'FB', folder: {} })).body
  const c3 = await g('PATCH', `/me/drive/items/${folderB.id}`, { name: 'FA', '@microsoft.graph.conflictBehavior': 'replace' })
  t.equal(c3.status, 409, 'replace refused onto folders')
  t.equal((await g('PATCH', `/me/drive/items/${folderA.id}`, { parentReference: { id: 'root' } })).status, 400, '"root" parent refused')
  t.equal((await g('PATCH', `/me/drive/items/${folderA.id}`, { parentReference: { id: root.id } })).status, 200, 'real root id accepted')
  const other = emu.store.driveOf('user2')
  const xd = await g('PATCH', `/me/drive/items/${folderB.id}`, { parentReference: { driveId: other.id, id: other.rootId } })
  t.equal(xd.status, 400, 'no cross-drive moves')
  t.equal((await g('PATCH', `/me/drive/items/${folderB.id}`, { parentReference: { id: folderB.id } })).status, 400, 'not into itself')
  t.equal((await g('PATCH', `/me/drive/items/${folderB.id}`, { fileSystemInfo: { lastModifiedDateTime: 'yesterday' } })).status, 400)
})

t.test('If-Match / If-None-Match (checklist 6)', async (t) => {
  const f = (await g('PUT', '/me/drive/root:/Tags/f.txt:/content', Buffer.from('v1'))).body
  const nm = await g('GET', `/me/drive/items/${f.id}`, undefined, { 'if-none-match': f.eTag })
  t.equal(nm.status, 304)
  const bad = '"{00000000-0000-0000-0000-000000000000},1"'
  const p1 = await g('PATCH', `/me/drive/items/${f.id}`, { name: 'g.txt' }, { 'if-match': bad })
  t.equal(p1.status, 412)
  t.equal(p1.body.error.code, 'resourceModified')
  const cur = (await g('GET', `/me/drive/items/${f.id}`)).body
  t.equal((await g('PATCH', `/me/drive/items/${f.id}`, { name: 'g.txt' }, { 'if-match': cur.eTag })).status, 200)
  t.equal((await g('PUT', `/me/drive/items/${f.id}/content`, Buffer.from('v2'), { 'if-match': bad })).status, 412)
  t.equal((await g('POST', `/me/drive/items/${f.id}/createUploadSession`, {}, { 'if-match': bad })).status, 412)
  t.equal((await g('DELETE', `/me/drive/items/${f.id}`, undefined, { 'if-match': bad })).status, 412)
  const now = (await g('GET', `/me/drive/items/${f.id}`)).body
  t.equal((await g('DELETE', `/me/drive/items/${f.id}`, undefined, { 'if-match': now.eTag })).status, 204)
})

t.test('eTag changes on its own about a second after an upload (docs/graph-service.md §4.3)', async (t) => {
  const clock = new ManualClock(Date.now())
  const timed = await startTestEmulator({ seed: 'empty', rateLimit: 0, clock })
  t.teardown(() => timed.close())
  const tg = graphCaller(timed, await tokenFor(timed, 'user1'))
  const up = (await tg('PUT', '/me/drive/root:/settle.txt:/content', Buffer.from('x'))).body
  await clock.advance(500)
  t.equal((await tg('GET', `/me/drive/items/${up.id}`)).body.eTag, up.eTag, 'unchanged half a second later')
  await clock.advance(600)
  t.not((await tg('GET', `/me/drive/items/${up.id}`)).body.eTag, up.eTag, 'eTag moved without any client change')
  const p = await tg('PATCH', `/me/drive/items/${up.id}`, { name: 'settled.txt' }, { 'if-match': up.eTag })
  t.equal(p.status, 412, 'the stale eTag now fails If-Match')
})

t.test('DELETE into the recycle bin, quota, permanentDelete (checklist 12, 19)', async (t) => {
  const before = (await g('GET', '/me/drive')).body.quota
  const f = (await g('PUT', '/me/drive/root:/Trash/big.bin:/content', Buffer.alloc(10_000, 1))).body
  const mid = (await g('GET', '/me/drive')).body.quota
  t.equal(mid.used, before.used + 10_000, 'upload counts in used')
  t.equal(mid.remaining, mid.total - mid.used)
  t.equal((await g('DELETE', `/me/drive/items/${f.id}`)).status, 204)
  t.equal((await g('GET', `/me/drive/items/${f.id}`)).status, 404)
  const after = (await g('GET', '/me/drive')).body.quota
  t.equal(after.deleted, mid.deleted + 10_000, 'recycle bin counted in quota.deleted')
  const folder = (await g('GET', '/me/drive/root:/Trash')).body
  t.equal(folder.size, 0)
  const p = (await g('PUT', '/me/drive/root:/Trash/gone.bin:/content', Buffer.alloc(500, 1))).body
  t.equal((await g('POST', `/me/drive/items/${p.id}/permanentDelete`)).status, 204)
  t.equal((await g('GET', '/me/drive')).body.quota.deleted, after.deleted, 'permanent delete skips the bin')
  const pf = (await gp('PUT', '/me/drive/root:/x.bin:/content', Buffer.alloc(5, 1))).body
  t.equal((await gp('POST', `/me/drive/items/${pf.id}/permanentDelete`)).status, 400, 'personal: unsupported')
  const root = (await g('GET', '/me/drive/root')).body
  t.equal((await g('DELETE', `/me/drive/items/${root.id}`)).status, 403)
})

t.test('copy with a monitor URL (checklist 13)', async (t) => {
  const src = (await g('PUT', '/me/drive/root:/CopySrc/x.txt:/content', Buffer.from('copy me'))).body
  await g('PATCH', `/me/drive/items/${src.id}`, { fileSystemInfo: { lastModifiedDateTime: '2001-01-01T00:00:00Z' } })
  const folder = (await g('GET', '/me/drive/root:/CopySrc')).body
  const root = (await g('GET', '/me/drive/root')).body
  const r = await g('POST', `/me/drive/items/${folder.id}/copy`, { parentReference: { driveId, id: root.id }, name: 'CopyDst' }, { prefer: 'respond-async' })
  t.equal(r.status, 202)
  const loc = r.headers.get('location')!
  t.match(loc, /^https:\/\/localhost:\d+\/_monitor\//)
  // The emulator copies on the next turn of its event loop: polling (each poll a
  // round trip) sees the job finish without waiting any time.
  let status: any
  for (let i = 0; i < 50; i++) {
    const m = await emu.fetch(loc) // no Authorization
    t.ok(m.status === 200 || m.status === 202)
    status = await m.json()
    if (status.status === 'completed') break
  }
  t.match(status, { status: 'completed', percentageComplete: 100, resourceId: String })
  const copy = (await g('GET', `/me/drive/items/${status.resourceId}`)).body
  t.equal(copy.name, 'CopyDst')
  const x = (await g('GET', '/me/drive/root:/CopyDst/x.txt')).body
  t.equal(x.size, 7)
  t.equal(x.file.hashes.quickXorHash, src.file.hashes.quickXorHash)
  t.not(x.fileSystemInfo.lastModifiedDateTime, '2001-01-01T00:00:00.000Z', 'mtime not preserved')
  const clash = await g('POST', `/me/drive/items/${folder.id}/copy`, { parentReference: { driveId, id: root.id }, name: 'CopyDst' })
  t.equal(clash.status, 409, 'name clash rejected up front')
})

t.test('401 for missing, malformed, expired and revoked tokens', async (t) => {
  const none = await graphCaller(emu, undefined)('GET', '/me/drive')
  t.equal(none.status, 401)
  t.equal(none.body.error.code, 'InvalidAuthenticationToken')
  t.match(none.headers.get('www-authenticate'), /^Bearer /)
  const junk = await graphCaller(emu, 'not-a-token')('GET', '/me/drive')
  t.equal(junk.status, 401)
  const clock = new ManualClock(Date.now())
  const short = await startTestEmulator({ accessTokenTtlSec: 60, rateLimit: 0, clock })
  t.teardown(() => short.close())
  const tok = await tokenFor(short, 'user2')
  const s = graphCaller(short, tok)
  await clock.advance(59_000)
  t.equal((await s('GET', '/me')).status, 200, 'valid until its lifetime is over')
  await clock.advance(2_000)
  const expired = await s('GET', '/me')
  t.equal(expired.status, 401)
  t.equal(expired.body.error.code, 'InvalidAuthenticationToken')
  t.match(expired.body.error.message, /expired/)
  t.match(expired.headers.get('www-authenticate'), /invalid_token/)
  const tok2 = await tokenFor(emu, 'user2')
  emu.identity.revoke('user2')
  const rv = await graphCaller(emu, tok2)('GET', '/me')
  t.equal(rv.status, 401)
})

t.test('unknown routes and methods', async (t) => {
  t.equal((await g('GET', '/me/drive/root/bogus')).status, 400)
  t.equal((await g('GET', '/nothing/here')).status, 400)
  t.equal((await g('POST', '/me/drive/root')).status, 405)
})

t.test('special folders: approot is created on first use', async (t) => {
  const a = await g('GET', '/me/drive/special/approot')
  t.equal(a.status, 200)
  t.equal(a.body.name, 'odfs')
  const up = await g('PUT', '/me/drive/special/approot:/state.json:/content', Buffer.from('{}'))
  t.equal(up.status, 201)
  t.equal(up.body.parentReference.id, a.body.id)
  t.equal((await g('GET', '/me/drive/special/nonsense')).status, 404)
})

t.test('other addressing: /users/{upn}/drive, legacy children/{name}, $orderby', async (t) => {
  const u = await g('GET', '/users/user1@contoso.onmicrosoft.com/drive/root:/Docs')
  t.equal(u.status, 200)
  t.equal((await g('GET', '/users/user2@contoso.onmicrosoft.com/drive')).status, 403, 'not someone else\'s')
  const docs = u.body
  const legacy = await g('GET', `/me/drive/items/${docs.id}/children/README.TXT`)
  t.equal(legacy.status, 200)
  t.equal(legacy.body.name, 'readme.txt')
  const desc = await g('GET', `/me/drive/items/${docs.id}/children?$orderby=name desc`)
  t.same(desc.body.value.map((i: any) => i.name), ['Sub Folder', 'readme.txt'])
  t.equal((await g('GET', `/me/drive/items/${docs.id}/children?$orderby=size`)).status, 400, 'business orders by name only')
  const pr = (await gp('POST', '/me/drive/root/children', { name: 'Ord', folder: {} })).body
  await gp('PUT', `/me/drive/items/${pr.id}:/big.bin:/content`, Buffer.alloc(100))
  await gp('PUT', `/me/drive/items/${pr.id}:/small.bin:/content`, Buffer.alloc(1))
  const bySize = await gp('GET', `/me/drive/items/${pr.id}/children?$orderby=size`)
  t.same(bySize.body.value.map((i: any) => i.name), ['small.bin', 'big.bin'], 'personal orders by size')
  const item = (await gp('GET', `/me/drive/items/${pr.id}:/big.bin:`)).body
  t.match(item.id, /^[0-9A-F]{16}![0-9]+$/, 'personal legacy item id')
  const head = await emu.fetch(item['@microsoft.graph.downloadUrl'], { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.headers.get('content-length'), '100')
})
