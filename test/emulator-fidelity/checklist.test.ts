// Independent audit of the emulator against docs/graph-service.md, one test per
// item of its "Emulator fidelity checklist". Every request is real HTTPS to an in-process
// emulator; every assertion is a status code or a body/header the reference names.
import t, { type Test } from 'tap'
import https from 'node:https'
import { readFileSync } from 'node:fs'
import { startTestEmulator, tokenFor, graphCaller, PUBLIC_CLIENT, SCOPES, type TestEmulator } from '../support/emulator.js'

let emu: TestEmulator
let g: ReturnType<typeof graphCaller> // user1, Business
let gp: ReturnType<typeof graphCaller> // personal1, Personal
let g2: ReturnType<typeof graphCaller> // user2, Business
let tok1: string
let driveId: string
const KB320 = 327_680

t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0 })
  tok1 = await tokenFor(emu, 'user1')
  g = graphCaller(emu, tok1)
  gp = graphCaller(emu, await tokenFor(emu, 'personal1'))
  g2 = graphCaller(emu, await tokenFor(emu, 'user2'))
  driveId = emu.store.driveOf('user1').id
})
t.teardown(() => emu.close())

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

function ramp(n: number, seed = 0): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 13 + seed) & 0xff
  return b
}

/** Raw HTTPS: can send headers without a body (to see an early 413) or lie about Content-Length. */
function raw(url: string, opts: { method: string; headers: Record<string, string | number>; body?: Buffer }): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: opts.method, headers: opts.headers, ca: readFileSync(emu.info.ca) }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (c) => parts.push(c))
      res.on('end', () => {
        const text = Buffer.concat(parts).toString()
        resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    if (opts.body) req.end(opts.body)
    else req.flushHeaders()
  })
}

/** An access token for `handle` with exactly `scope`, through the device-code endpoints. */
async function tokenWithScope(handle: string, scope: string): Promise<string> {
  const form = (f: Record<string, string>) => ({ method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(f).toString() })
  emu.identity.setAutoConsent(handle)
  try {
    const dc = (await (await emu.fetch('/common/oauth2/v2.0/devicecode', form({ client_id: PUBLIC_CLIENT, scope }))).json()) as any
    const r = (await (await emu.fetch('/common/oauth2/v2.0/token', form({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: PUBLIC_CLIENT, device_code: dc.device_code }))).json()) as any
    if (!r.access_token) throw new Error(`no token: ${r.error}`)
    return r.access_token
  } finally {
    emu.identity.setAutoConsent(undefined)
  }
}

const put = (url: string, body: Buffer, range: string, extra: Record<string, string> = {}) =>
  emu.fetch(url, { method: 'PUT', headers: { 'content-range': range, ...extra }, body })

function assertGraphError(t: Test, r: { status: number; body: any }, status: number, code: string | RegExp, inner?: string): void {
  t.equal(r.status, status, `status ${status}`)
  t.match(r.body?.error?.code, code, `error.code ${code}`)
  t.type(r.body?.error?.message, 'string', 'error.message')
  t.match(r.body?.error?.innerError, { date: String, 'request-id': String }, 'innerError with date and request-id')
  if (inner) t.equal(r.body?.error?.innerError?.code, inner, `innerError.code ${inner}`)
}

t.test('checklist 1: id and path addressing, root alias, colons, sub-resources, decoding, case (docs/graph-service.md §1.1)', async (t) => {
  const f = await emu.store.writeFile('user1', 'Addr/Sub Dir/a b#%&+,;=!$().txt', 'addr')
  const folder = emu.store.itemByPath('user1', 'Addr')!
  const enc = 'Addr/Sub%20Dir/a%20b%23%25&+,;=!$().txt'
  const forms = [
    `/me/drive/root:/${enc}`,
    `/me/drive/root:/${enc}:`,
    `/drives/${driveId}/root:/${enc}:`,
    `/drives/${driveId}/items/${f.id}`,
    `/me/drive/items/${f.id}`,
    `/drives/${driveId}/items/${folder.id}:/Sub%20Dir/a%20b%23%25&+,;=!$().txt:`,
    `/drives/${driveId}/items/${folder.id}:/Sub%20Dir/a%20b%23%25&+,;=!$().txt`,
    `/drives/${driveId}/items/root:/${enc}:`,
    `/me/drive/root:/ADDR/sub%20dir/A%20B%23%25&+,;=!$().TXT`,
  ]
  for (const u of forms) {
    const r = await g('GET', u)
    t.equal(r.status, 200, u)
    t.equal(r.body?.id, f.id, u)
    t.equal(r.body?.name, 'a b#%&+,;=!$().txt', `${u}: stored name, case preserved`)
  }
  // `root` as an item id, including the docs/graph-service.md §1.1 example /drive/items/root/children
  const root = await g('GET', '/me/drive/items/root')
  t.equal(root.status, 200)
  t.same(root.body.root, {})
  t.equal((await g('GET', `/drives/${driveId}/items/root/children`)).status, 200)
  const dr = await g('GET', '/drive/items/root/children')
  t.equal(dr.status, 200, '/drive is the signed-in user\'s drive')
  t.ok(dr.body.value.some((i: any) => i.name === 'Addr'))
  // sub-resources after a path need the closing colon
  const kids = await g('GET', '/me/drive/root:/Addr:/children')
  t.equal(kids.status, 200)
  t.same(kids.body.value.map((i: any) => i.name), ['Sub Dir'])
  const kids2 = await g('GET', `/drives/${driveId}/items/${folder.id}:/Sub%20Dir:/children`)
  t.equal(kids2.body.value[0].id, f.id)
  const content = await g('GET', `/me/drive/root:/${enc}:/content`)
  t.equal(content.status, 302)
  // a path ending in / is accepted as …:/ (rclone's withTrailingColon)
  t.equal((await g('GET', '/me/drive/root:/Addr/')).body.id, folder.id)
  t.equal((await g('GET', '/me/drive/root:/Addr:/')).body.id, folder.id)
  // misses are Graph-shaped 404s
  assertGraphError(t, await g('GET', '/me/drive/root:/Addr/nope.txt'), 404, 'itemNotFound')
  assertGraphError(t, await g('GET', `/drives/${driveId}/items/01NOSUCHITEMNOSUCHITEMNOSUCHITEMX`), 404, 'itemNotFound')
})

t.test('checklist 2: /children pages at 200, $top ≤ 1000, absolute nextLink, $select (docs/graph-service.md §1.2)', async (t) => {
  await emu.store.createMany('user1', 'Many', 450)
  const seen = new Set<string>()
  let url: string | undefined = '/me/drive/root:/Many:/children'
  const sizes: number[] = []
  while (url) {
    const r = await g('GET', url)
    t.equal(r.status, 200)
    sizes.push(r.body.value.length)
    for (const i of r.body.value) seen.add(i.id)
    url = r.body['@odata.nextLink']
    if (url) {
      t.ok(url.startsWith(emu.info.graph + '/'), 'nextLink is absolute')
      t.match(url, /[?&]\$skiptoken=[^&]+/, 'nextLink carries an opaque $skiptoken')
    }
  }
  t.same(sizes, [200, 200, 50], 'default page 200')
  t.equal(seen.size, 450, 'every child once')
  const top = await g('GET', '/me/drive/root:/Many:/children?$top=1000')
  t.equal(top.body.value.length, 450)
  t.notOk(top.body['@odata.nextLink'])
  const top5 = await g('GET', '/me/drive/root:/Many:/children?$top=5')
  t.equal(top5.body.value.length, 5)
  t.match(top5.body['@odata.nextLink'], /\$top=5/, 'nextLink keeps the query')
  const huge = await g('GET', '/me/drive/root:/Many:/children?$top=5000')
  t.ok(huge.status === 400 || (huge.status === 200 && huge.body.value.length <= 1000), '$top above 1000 is clamped or refused')
  const sel = await g('GET', '/me/drive/root:/Many:/children?$top=3&$select=name,size')
  for (const i of sel.body.value) t.same(Object.keys(i).sort(), ['id', 'name', 'size'], 'only the selected props plus id')
  const dl = await g('GET', '/me/drive/root:/Many:/children?$top=2&$select=id,@microsoft.graph.downloadUrl')
  const u = dl.body.value[0]['@microsoft.graph.downloadUrl']
  t.match(u, /^https:\/\//)
  t.same(Object.keys(dl.body.value[0]).sort(), ['@microsoft.graph.downloadUrl', 'id'])
  const got = await emu.fetch(u)
  t.equal(got.status, 200, 'selected downloadUrl works without auth')
  t.equal(await got.text(), 'file 0\n')
  const item = await g('GET', '/me/drive/root:/Many/file-00001.txt?select=id,@microsoft.graph.downloadUrl')
  t.type(item.body['@microsoft.graph.downloadUrl'], 'string', 'select without $ works on an item')
  // $expand=children: one page inline; its nextLink only with $-prefixed options (docs/graph-service.md §1.2)
  const ex = await g('GET', '/me/drive/root:/Many?$expand=children')
  t.equal(ex.body.children.length, 200)
  t.match(ex.body['children@odata.nextLink'], /^https:\/\/.*\$skiptoken=/)
  const exBare = await g('GET', '/me/drive/root:/Many?expand=children')
  t.equal(exBare.body.children.length, 200)
  t.notOk('children@odata.nextLink' in exBare.body, 'no children nextLink without the $ prefix')
  // $filter: Business only on name; Personal not at all (docs/graph-service.md §1.2)
  const fe = await g('GET', "/me/drive/root:/Many:/children?$filter=name eq 'FILE-00007.txt'")
  t.equal(fe.status, 200)
  t.same(fe.body.value.map((i: any) => i.name), ['file-00007.txt'])
  const fs = await g('GET', "/me/drive/root:/Many:/children?$filter=startswith(name,'file-0044')")
  t.same(fs.body.value.map((i: any) => i.name), ['file-00440.txt', 'file-00441.txt', 'file-00442.txt', 'file-00443.txt', 'file-00444.txt', 'file-00445.txt', 'file-00446.txt', 'file-00447.txt', 'file-00448.txt', 'file-00449.txt'])
  assertGraphError(t, await g('GET', '/me/drive/root:/Many:/children?$filter=size gt 3'), 400, 'invalidRequest')
  assertGraphError(t, await gp('GET', "/me/drive/root/children?$filter=name eq 'x'"), 400, 'invalidRequest')
  // options with and without $ are not mixed in one request (docs/graph-service.md §1.2)
  const mixed = await g('GET', '/me/drive/root:/Many:/children?$top=2&select=name')
  t.equal(mixed.status, 400, 'mixed $-prefixed and bare options are refused')
  // without $: the nextLink keeps the request's style so following it stays valid
  const bare = await g('GET', '/me/drive/root:/Many:/children?top=300&select=name')
  t.equal(bare.status, 200)
  const next = await g('GET', bare.body['@odata.nextLink'])
  t.equal(next.status, 200)
  t.equal(next.body.value.length, 150)
})

t.test('checklist 3: case-insensitive, case-preserving names (docs/graph-service.md §8, §4.3)', async (t) => {
  const a = await g('PUT', '/me/drive/root:/Case/Hello.MP4:/content', Buffer.from('one'))
  t.equal(a.status, 201)
  const b = await g('PUT', '/me/drive/root:/case/hello.mp4:/content', Buffer.from('two!'))
  t.equal(b.status, 200, 'PUT to a case variant replaces the existing item')
  t.equal(b.body.id, a.body.id)
  t.equal(b.body.name, 'Hello.MP4', 'and keeps its original name')
  t.equal(b.body.size, 4)
  const caseFolder = (await g('GET', '/me/drive/root:/Case')).body
  assertGraphError(t, await g('POST', `/me/drive/items/${caseFolder.id}/children`, { name: 'HELLO.mp4', folder: {}, '@microsoft.graph.conflictBehavior': 'fail' }), 409, 'nameAlreadyExists')
  const other = await g('PUT', '/me/drive/root:/Case/other.txt:/content', Buffer.from('o'))
  assertGraphError(t, await g('PATCH', `/me/drive/items/${other.body.id}`, { name: 'hello.MP4' }), 409, 'nameAlreadyExists')
  const cr = await g('PATCH', `/me/drive/items/${a.body.id}`, { name: 'HELLO.mp4' })
  t.equal(cr.status, 200, 'case-only rename onto itself')
  t.equal(cr.body.name, 'HELLO.mp4')
  t.equal((await g('GET', '/me/drive/root:/Case/hello.MP4')).body.name, 'HELLO.mp4')
  const list = await g('GET', `/me/drive/items/${caseFolder.id}/children`)
  t.same(list.body.value.map((i: any) => i.name).sort(), ['HELLO.mp4', 'other.txt'], 'one item per folded name')
  // collation folds æ ≡ ae (docs/graph-service.md §8)
  t.equal((await g('PUT', '/me/drive/root:/Case/Encyclopædia.txt:/content?@microsoft.graph.conflictBehavior=fail', Buffer.from('x'))).status, 201)
  assertGraphError(t, await g('PUT', '/me/drive/root:/Case/Encyclopaedia.txt:/content?@microsoft.graph.conflictBehavior=fail', Buffer.from('y')), 409, 'nameAlreadyExists')
})

t.test('checklist 4: naming rules with 400 invalidRequest and the 400-char path limit (docs/graph-service.md §8)', async (t) => {
  const parent = (await g('POST', '/me/drive/root/children', { name: 'Names', folder: {} })).body
  const bad = ['a"b', 'a*b', 'a:b', 'a<b', 'a>b', 'a?b', 'a\\b', 'a|b', ' lead', 'trail ', 'dot.', 'CON', 'con.txt', 'Lpt9.log', 'COM0', 'aux', 'NUL.tar.gz', '.lock',
    'desktop.ini', 'x_vti_y', '~$doc.docx', 'a&#123;b', 'new\nline']
  for (const name of bad) {
    const r = await g('POST', `/me/drive/items/${parent.id}/children`, { name, folder: {} })
    assertGraphError(t, r, 400, 'invalidRequest', 'invalidPath')
    const p = await g('PUT', `/me/drive/items/${parent.id}:/${encodeURIComponent(name)}:/content`, Buffer.from('x'))
    t.equal(p.status, 400, `PUT ${JSON.stringify(name)}`)
  }
  const okNames = ['#hash', '100%', "it's (1) [x] !$&+,;=", 'desktop.ini.bak', 'CONSOLE.txt', '.hidden', '~file.txt']
  for (const name of okNames) {
    const r = await g('PUT', `/me/drive/items/${parent.id}:/${encodeURIComponent(name)}:/content`, Buffer.from('x'))
    t.equal(r.status, 201, `${JSON.stringify(name)} allowed`)
    t.equal(r.body.name, name)
  }
  // Business/SPO: no leading ~ on folders; Personal allows it
  assertGraphError(t, await g('POST', `/me/drive/items/${parent.id}/children`, { name: '~tilde', folder: {} }), 400, 'invalidRequest', 'invalidPath')
  t.equal((await gp('POST', '/me/drive/root/children', { name: '~tilde', folder: {} })).status, 201)
  // renames obey the rules too
  const f = await g('PUT', `/me/drive/items/${parent.id}:/ren.txt:/content`, Buffer.from('x'))
  assertGraphError(t, await g('PATCH', `/me/drive/items/${f.body.id}`, { name: 'ren?.txt' }), 400, 'invalidRequest', 'invalidPath')
  // path length: decoded, server-relative library prefix counted on Business (< 400)
  const prefix = `/personal/${'user1@contoso.onmicrosoft.com'.replace(/[@.]/g, '_')}/Documents`
  const room = 399 - (prefix + '/Names/').length
  const fits = 'é'.repeat(room - 4) + '.txt'
  const fit = await g('PUT', `/me/drive/items/${parent.id}:/${encodeURIComponent(fits)}:/content`, Buffer.from('x'))
  t.equal(fit.status, 201, 'a 399-char decoded path (prefix included) fits')
  const long = 'é'.repeat(room - 3) + '.txt'
  assertGraphError(t, await g('PUT', `/me/drive/items/${parent.id}:/${encodeURIComponent(long)}:/content`, Buffer.from('x')), 400, 'invalidRequest', 'pathIsTooLong')
  // the same name fits on Personal, which has no prefix
  const pp = (await gp('POST', '/me/drive/root/children', { name: 'Names', folder: {} })).body
  t.equal((await gp('PUT', `/me/drive/items/${pp.id}:/${encodeURIComponent(long)}:/content`, Buffer.from('x'))).status, 201)
  // a SharePoint library counts its server-relative prefix (/sites/x/Shared Documents/) too
  const site = (await g('GET', '/me/followedSites')).body.value[0]
  const lib = (await g('GET', `/sites/${site.id}/drives`)).body.value.find((d: any) => d.name === 'Documents')
  const libPrefix = new URL(site.webUrl).pathname + '/Shared Documents'
  const libRoom = 399 - (libPrefix + '/').length
  const libOk = await g('PUT', `/drives/${lib.id}/root:/${'L'.repeat(libRoom - 4)}.txt:/content`, Buffer.from('x'))
  t.equal(libOk.status, 201, 'library path of 399 chars with its prefix')
  assertGraphError(t, await g('PUT', `/drives/${lib.id}/root:/${'L'.repeat(libRoom - 3)}.txt:/content`, Buffer.from('x')), 400, 'invalidRequest', 'pathIsTooLong')
  // moving a folder so that a descendant's path passes the limit is refused
  const deep = (await g('POST', `/me/drive/items/${parent.id}/children`, { name: 'deep', folder: {} })).body
  const inner = 'i'.repeat(room - 'deep/'.length - 10) + '.txt'
  t.equal((await g('PUT', `/me/drive/items/${deep.id}:/${inner}:/content`, Buffer.from('x'))).status, 201)
  assertGraphError(t, await g('PATCH', `/me/drive/items/${deep.id}`, { name: 'deeper-than-it-was-before' }), 400, 'invalidRequest', 'pathIsTooLong')
})

t.test('checklist 5: folder size, childCount, cTag rules, eTag/cTag changes (docs/graph-service.md §1.3)', async (t) => {
  emu.store.etagSettleMs = 0
  t.teardown(() => { emu.store.etagSettleMs = 1000 })
  await emu.store.writeFile('user1', 'Sz/a.bin', Buffer.alloc(100))
  await emu.store.writeFile('user1', 'Sz/in/b.bin', Buffer.alloc(50))
  await emu.store.writeFile('user1', 'Sz/in/deeper/c.bin', Buffer.alloc(7))
  const sz = (await g('GET', '/me/drive/root:/Sz')).body
  t.equal(sz.size, 157, 'folder size is the recursive total')
  t.equal(sz.folder.childCount, 2, 'childCount counts immediate children')
  t.notOk('cTag' in sz, 'Business folders have no cTag')
  const file = (await g('GET', '/me/drive/root:/Sz/a.bin')).body
  t.type(file.cTag, 'string')
  const ren = (await g('PATCH', `/me/drive/items/${file.id}`, { name: 'a2.bin' })).body
  t.not(ren.eTag, file.eTag, 'eTag changes on a metadata change')
  t.equal(ren.cTag, file.cTag, 'cTag does not')
  const mt = (await g('PATCH', `/me/drive/items/${file.id}`, { fileSystemInfo: { lastModifiedDateTime: '2020-01-02T03:04:05Z' } })).body
  t.not(mt.eTag, ren.eTag, 'eTag changes on an mtime change')
  t.equal(mt.cTag, ren.cTag)
  const up = (await g('PUT', `/me/drive/items/${file.id}/content`, Buffer.alloc(10))).body
  t.not(up.eTag, mt.eTag, 'eTag changes on content')
  t.not(up.cTag, mt.cTag, 'cTag changes on content')
  const sz2 = (await g('GET', '/me/drive/root:/Sz')).body
  t.equal(sz2.eTag, sz.eTag, 'a folder eTag is not changed by descendant changes')
  t.equal(sz2.size, 67)
  const root = (await g('GET', '/me/drive/root')).body
  const quota = (await g('GET', '/me/drive')).body.quota
  // earlier versions count in quota.used but not in folder sizes (docs/emulator/versions.md)
  t.equal(root.size, quota.used - quota.deleted - emu.store.driveOf('user1').versionBytes, 'root size ≈ drive usage')
  // Personal: folders have a cTag that changes when any descendant changes
  await emu.store.writeFile('personal1', 'PSz/in/x.txt', 'x')
  const pf = (await gp('GET', '/me/drive/root:/PSz')).body
  t.type(pf.cTag, 'string', 'Personal folders carry a cTag')
  await gp('PUT', '/me/drive/root:/PSz/in/x.txt:/content', Buffer.from('changed'))
  const pf2 = (await gp('GET', '/me/drive/root:/PSz')).body
  t.not(pf2.cTag, pf.cTag, 'Personal folder cTag moves with a descendant change')
  t.equal(pf2.eTag, pf.eTag, 'its eTag does not')
  // Business delta omits cTag (item 14 checks the rest of delta)
  const d = await g('GET', '/me/drive/root/delta')
  t.notOk(d.body.value.some((i: any) => 'cTag' in i), 'no cTag in Business delta')
})

t.test('checklist 6: eTag settles after upload; If-Match / If-None-Match on every verb (docs/graph-service.md §4.3, §1.2)', async (t) => {
  const up = (await g('PUT', '/me/drive/root:/Pre/settle.txt:/content', Buffer.from('x'))).body
  let cur = up
  for (let i = 0; i < 150 && cur.eTag === up.eTag; i++) {
    await pause(50)
    cur = (await g('GET', `/me/drive/items/${up.id}`)).body
  }
  t.not(cur.eTag, up.eTag, 'the eTag changed on its own after the upload')
  assertGraphError(t, await g('PATCH', `/me/drive/items/${up.id}`, { name: 's2.txt' }, { 'if-match': up.eTag }), 412, 'resourceModified', 'entityTagDoesNotMatch')
  // the settle change is a change: delta after it reports the item with its new eTag
  const stale = '"{00000000-0000-0000-0000-000000000000},1"'
  const id = up.id
  const item = `/me/drive/items/${id}`
  assertGraphError(t, await g('GET', item, undefined, { 'if-match': stale }), 412, 'resourceModified')
  t.equal((await g('GET', item, undefined, { 'if-match': cur.eTag })).status, 200)
  t.equal((await g('GET', item, undefined, { 'if-none-match': cur.eTag })).status, 304)
  t.equal((await g('GET', item, undefined, { 'if-none-match': cur.cTag })).status, 304, 'cTag works as a tag too')
  t.equal((await g('GET', item, undefined, { 'if-none-match': stale })).status, 200)
  t.equal((await g('GET', `${item}/content`, undefined, { 'if-none-match': cur.eTag })).status, 304)
  t.equal((await g('GET', `${item}/content`, undefined, { 'if-none-match': stale })).status, 302)
  const folder = (await g('GET', '/me/drive/root:/Pre')).body
  const kids = await g('GET', `/me/drive/items/${folder.id}/children`, undefined, { 'if-none-match': folder.eTag })
  t.equal(kids.status, 304, 'If-None-Match on /children')
  t.equal((await g('GET', `/me/drive/items/${folder.id}/children`, undefined, { 'if-none-match': stale })).status, 200)
  // writes: If-Match mismatch and If-None-Match match are both 412
  for (const [h, v] of [['if-match', stale], ['if-none-match', cur.eTag], ['if-none-match', '*']] as const) {
    assertGraphError(t, await g('PATCH', item, { name: 'z.txt' }, { [h]: v }), 412, 'resourceModified')
    assertGraphError(t, await g('PUT', `${item}/content`, Buffer.from('y'), { [h]: v }), 412, 'resourceModified')
    assertGraphError(t, await g('POST', `${item}/createUploadSession`, {}, { [h]: v }), 412, 'resourceModified')
    assertGraphError(t, await g('DELETE', item, undefined, { [h]: v }), 412, 'resourceModified')
  }
  t.equal((await g('PUT', '/me/drive/root:/Pre/new.txt:/content', Buffer.from('n'), { 'if-none-match': '*' })).status, 201, 'If-None-Match: * creates a new file')
  t.equal((await g('PATCH', item, { name: 'ok.txt' }, { 'if-match': cur.eTag })).status, 200)
  const now = (await g('GET', item)).body
  t.equal((await g('DELETE', item, undefined, { 'if-match': now.eTag })).status, 204)
})

t.test('checklist 7: download 302 to a URL needing no auth, ranges, 416, expiry (docs/graph-service.md §3)', async (t) => {
  const data = ramp(5000)
  const f = await emu.store.writeFile('user1', 'Dl/r.bin', data)
  const c = await g('GET', `/me/drive/items/${f.id}/content`)
  t.equal(c.status, 302)
  const loc = c.headers.get('location')!
  const gu = new URL(emu.info.graph)
  const lu = new URL(loc)
  t.ok(lu.host !== gu.host || !lu.pathname.startsWith('/v1.0'), 'a separate host/path')
  const full = await emu.fetch(loc)
  t.equal(full.status, 200, 'no Authorization needed')
  t.same(Buffer.from(await full.arrayBuffer()), data)
  const r1 = await emu.fetch(loc, { headers: { range: 'bytes=100-199' } })
  t.equal(r1.status, 206)
  t.equal(r1.headers.get('content-range'), 'bytes 100-199/5000')
  t.same(Buffer.from(await r1.arrayBuffer()), data.subarray(100, 200))
  const r2 = await emu.fetch(loc, { headers: { range: 'bytes=4990-' } })
  t.equal(r2.status, 206)
  t.equal(r2.headers.get('content-range'), 'bytes 4990-4999/5000')
  t.equal((await r2.arrayBuffer()).byteLength, 10)
  const r3 = await emu.fetch(loc, { headers: { range: 'bytes=5000-5010' } })
  t.equal(r3.status, 416, 'range past EOF')
  await r3.arrayBuffer()
  // Range on /content rides the redirect (onedriver)
  const viaContent = await emu.fetch(`${emu.info.graph}/me/drive/items/${f.id}/content`, { headers: { authorization: `Bearer ${tok1}`, range: 'bytes=0-9' }, redirect: 'follow' } as RequestInit)
  t.equal(viaContent.status, 206)
  t.same(Buffer.from(await viaContent.arrayBuffer()), data.subarray(0, 10))
  // folders are not downloadable
  const folder = emu.store.itemByPath('user1', 'Dl')!
  const fc = await g('GET', `/me/drive/items/${folder.id}/content`)
  t.ok(fc.status >= 400 && fc.status < 500, 'folder content is an error')
  t.type(fc.body.error.code, 'string')
  // URLs expire
  emu.setFaults({ downloadUrlTtlSec: 0 })
  t.teardown(() => emu.setFaults({ downloadUrlTtlSec: 3600 }))
  const shortLoc = (await g('GET', `/me/drive/items/${f.id}/content`)).headers.get('location')!
  await pause(5)
  const expired = await emu.fetch(shortLoc)
  t.ok(expired.status === 401 || expired.status === 403 || expired.status === 404, `expired URL refused (${expired.status})`)
  await expired.arrayBuffer()
  emu.setFaults({ downloadUrlTtlSec: 3600 })
  const tampered = new URL(loc)
  tampered.searchParams.set('tempauth', 'x' + tampered.searchParams.get('tempauth'))
  const bad = await emu.fetch(tampered.toString())
  t.equal(bad.status, 401, 'a tampered URL is refused')
  await bad.arrayBuffer()
})

t.test('checklist 8: simple PUT 201/200, default replace, query conflictBehavior, zero bytes, 413 (docs/graph-service.md §4.1)', async (t) => {
  const a = await g('PUT', '/me/drive/root:/Sp/a.txt:/content', Buffer.from('one'))
  t.equal(a.status, 201)
  t.match(a.body, { id: String, name: 'a.txt', size: 3, file: { hashes: { quickXorHash: String } } })
  const b = await g('PUT', '/me/drive/root:/Sp/a.txt:/content', Buffer.from('two2'))
  t.equal(b.status, 200, 'default replace')
  t.equal(b.body.id, a.body.id)
  const byId = await g('PUT', `/me/drive/items/${a.body.id}/content`, Buffer.from('3'))
  t.equal(byId.status, 200)
  assertGraphError(t, await g('PUT', '/me/drive/root:/Sp/a.txt:/content?@microsoft.graph.conflictBehavior=fail', Buffer.from('x')), 409, 'nameAlreadyExists')
  const rn = await g('PUT', '/me/drive/root:/Sp/a.txt:/content?@microsoft.graph.conflictBehavior=rename', Buffer.from('x'))
  t.equal(rn.status, 201)
  t.equal(rn.body.name, 'a 1.txt')
  const z = await g('PUT', '/me/drive/root:/Sp/empty.txt:/content', Buffer.alloc(0))
  t.equal(z.status, 201, 'zero-byte PUT creates the file')
  t.equal(z.body.size, 0)
  t.equal(z.body.file.hashes.quickXorHash, 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=')
  const big = await raw(`${emu.info.graph}/me/drive/root:/Sp/huge.bin:/content`, {
    method: 'PUT', headers: { authorization: `Bearer ${tok1}`, 'content-length': 250 * 1024 * 1024 + 1 },
  })
  assertGraphError(t, big, 413, 'maxFileSizeExceeded')
  t.notOk(emu.store.itemByPath('user1', 'Sp/huge.bin'), 'nothing created')
  // a file cannot be made by POST …/children with a file facet: PUT is the way (docs/graph-service.md §4.1)
  const post = await g('POST', '/me/drive/root:/Sp:/children', { name: 'posted.txt', file: {} })
  t.equal(post.status, 400, 'POST children with a file facet is refused')
})

t.test('checklist 9: upload session rules (docs/graph-service.md §4.2)', async (t) => {
  const create = async (path: string, body: object = {}) => {
    const s = await g('POST', `/me/drive/root:/${path}:/createUploadSession`, body)
    t.equal(s.status, 200, `create ${path}`)
    t.match(s.body, { uploadUrl: /^https:\/\//, expirationDateTime: /Z$/ })
    t.ok(Date.parse(s.body.expirationDateTime) > Date.now())
    return s.body.uploadUrl as string
  }
  const data = ramp(2 * KB320 + 1000, 3)
  const total = data.length
  const u = await create('Us/big.bin')
  // Authorization on a fragment → 401
  const withAuth = await put(u, data.subarray(0, KB320), `bytes 0-${KB320 - 1}/${total}`, { authorization: `Bearer ${tok1}` })
  t.equal(withAuth.status, 401)
  await withAuth.arrayBuffer()
  // malformed/empty Content-Range → 400
  for (const cr of ['', 'bytes 0-9', 'bytes=0-9/100', 'bytes 0--1/0', 'bytes 0-0/0', 'bytes 9-0/100']) {
    const r = await put(u, Buffer.alloc(10), cr)
    t.equal(r.status, 400, `Content-Range ${JSON.stringify(cr)}`)
    t.equal(((await r.json()) as any).error.code, 'invalidRequest')
  }
  // non-final fragment not a multiple of 320 KiB
  const odd = await put(u, data.subarray(0, 1000), `bytes 0-999/${total}`)
  t.equal(odd.status, 400)
  await odd.arrayBuffer()
  // Content-Length must equal the range length
  const lie = await raw(u, { method: 'PUT', headers: { 'content-range': `bytes 0-${KB320 - 1}/${total}`, 'content-length': 1000 }, body: data.subarray(0, 1000) })
  t.equal(lie.status, 400)
  // fragments of 60 MiB or more are refused before the body
  const tooBig = await raw(u, { method: 'PUT', headers: { 'content-range': `bytes 0-${60 * 1024 * 1024 - 1}/${100 * 1024 * 1024}`, 'content-length': 60 * 1024 * 1024 } })
  t.equal(tooBig.status, 413)
  // first fragment
  const f1 = await put(u, data.subarray(0, KB320), `bytes 0-${KB320 - 1}/${total}`)
  t.equal(f1.status, 202)
  const j1 = (await f1.json()) as any
  t.same(j1.nextExpectedRanges, [`${KB320}-`])
  t.match(j1.expirationDateTime, /Z$/)
  // overlap → 416 fragmentOverlap; gap → 416; total changes → 400 fragmentLengthMismatch
  const ov = await put(u, data.subarray(0, KB320), `bytes 0-${KB320 - 1}/${total}`)
  t.equal(ov.status, 416)
  t.match(await ov.json(), { error: { code: 'invalidRange', innerError: { code: 'fragmentOverlap' } } })
  const gap = await put(u, data.subarray(0, KB320), `bytes ${2 * KB320}-${3 * KB320 - 1}/${4 * KB320}`)
  t.equal(gap.status, 400, 'a changed total is refused first')
  t.match(await gap.json(), { error: { code: 'invalidRequest', innerError: { code: 'fragmentLengthMismatch' } } })
  const gap2 = await put(u, data.subarray(2 * KB320), `bytes ${2 * KB320}-${total - 1}/${total}`)
  t.equal(gap2.status, 416, 'out of order')
  t.match(await gap2.json(), { error: { code: 'invalidRange', innerError: { code: 'fragmentOutOfOrder' } } })
  // status
  const st = await emu.fetch(u)
  t.equal(st.status, 200)
  t.same(((await st.json()) as any).nextExpectedRanges, [`${KB320}-`])
  const f2 = await put(u, data.subarray(KB320, 2 * KB320), `bytes ${KB320}-${2 * KB320 - 1}/${total}`)
  t.equal(f2.status, 202)
  await f2.arrayBuffer()
  const f3 = await put(u, data.subarray(2 * KB320), `bytes ${2 * KB320}-${total - 1}/${total}`)
  t.equal(f3.status, 201, 'the last fragment creates the file')
  const item = (await f3.json()) as any
  t.match(item, { name: 'big.bin', size: total, file: { hashes: { quickXorHash: String } } })
  t.equal((await emu.fetch(u)).status, 404, 'a finished session is gone')
  // replacing → 200
  const u2 = await create('Us/big.bin')
  const r2 = await put(u2, Buffer.from('tiny'), 'bytes 0-3/4')
  t.equal(r2.status, 200, 'replacing an existing file ends with 200')
  t.equal(((await r2.json()) as any).id, item.id)
  // cancel → 204, then 404
  const u3 = await create('Us/cancel.bin')
  const del = await emu.fetch(u3, { method: 'DELETE' })
  t.equal(del.status, 204)
  const after = await put(u3, Buffer.from('x'), 'bytes 0-0/1')
  t.equal(after.status, 404)
  await after.arrayBuffer()
  // expiry → 404
  const u4 = await create('Us/expire.bin')
  await emu.fetch('/_emulator/uploads/expire', { method: 'POST' })
  const ex = await emu.fetch(u4)
  t.equal(ex.status, 404)
  await ex.arrayBuffer()
  // deferCommit, Business style: POST {uploadUrl} with Content-Length 0
  const u5 = await create('Us/defer.bin', { deferCommit: true })
  const d1 = await put(u5, Buffer.from('defer'), 'bytes 0-4/5')
  t.equal(d1.status, 202, 'with deferCommit the last byte does not commit')
  await d1.arrayBuffer()
  t.notOk(emu.store.itemByPath('user1', 'Us/defer.bin'))
  const commit = await emu.fetch(u5, { method: 'POST', headers: { 'content-length': '0' } })
  t.equal(commit.status, 201)
  t.equal(((await commit.json()) as any).size, 5)
  // deferCommit, Personal style: PUT the parent path with @microsoft.graph.sourceUrl
  const ps = await gp('POST', '/me/drive/root:/Defer/p.bin:/createUploadSession', { deferCommit: true })
  const pu = ps.body.uploadUrl
  t.equal((await put(pu, Buffer.from('pp'), 'bytes 0-1/2')).status, 202)
  const pc = await gp('PUT', '/me/drive/root:/Defer', { name: 'p.bin', '@microsoft.graph.conflictBehavior': 'rename', '@microsoft.graph.sourceUrl': pu })
  t.ok(pc.status === 201 || pc.status === 200, `sourceUrl commit ${pc.status}`)
  t.equal(pc.body.name, 'p.bin')
  // name conflict at commit → 409, session kept
  const u6 = await create('Us/race.bin', { item: { '@microsoft.graph.conflictBehavior': 'fail' } })
  await g('PUT', '/me/drive/root:/Us/race.bin:/content', Buffer.from('someone else'))
  const c6 = await put(u6, Buffer.from('mine'), 'bytes 0-3/4')
  t.equal(c6.status, 409)
  t.match(await c6.json(), { error: { code: 'nameAlreadyExists' } })
  const kept = await emu.fetch(u6)
  t.equal(kept.status, 200, 'the session is kept after a commit conflict')
  await kept.arrayBuffer()
})

t.test('checklist 10: createUploadSession default replace, mkdir conflict behaviours (docs/graph-service.md §4.2, §5)', async (t) => {
  const orig = await g('PUT', '/me/drive/root:/Cb/f.txt:/content', Buffer.from('orig'))
  const sess = async (body: object) => (await g('POST', '/me/drive/root:/Cb/f.txt:/createUploadSession', body))
  const s1 = await sess({})
  t.equal(s1.status, 200, 'no conflictBehavior: session for an existing name')
  const r1 = await put(s1.body.uploadUrl, Buffer.from('new!'), 'bytes 0-3/4')
  t.equal(r1.status, 200, 'behaves as replace')
  t.equal(((await r1.json()) as any).id, orig.body.id)
  const s2 = await sess({ '@microsoft.graph.conflictBehavior': 'fail' })
  t.equal(s2.status, 200, 'a top-level conflictBehavior is ignored')
  await emu.fetch(s2.body.uploadUrl, { method: 'DELETE' })
  assertGraphError(t, await sess({ item: { '@microsoft.graph.conflictBehavior': 'fail' } }), 409, 'nameAlreadyExists')
  const s3 = await sess({ item: { '@microsoft.graph.conflictBehavior': 'rename' } })
  t.equal(s3.status, 200)
  const r3 = await put(s3.body.uploadUrl, Buffer.from('x'), 'bytes 0-0/1')
  t.equal(r3.status, 201)
  t.equal(((await r3.json()) as any).name, 'f 1.txt')
  // mkdir
  const mk = (body: object, q = '') => g('POST', `/me/drive/root:/Cb:/children${q}`, body)
  const d = await mk({ name: 'D', folder: {}, '@microsoft.graph.conflictBehavior': 'fail' })
  t.equal(d.status, 201)
  assertGraphError(t, await mk({ name: 'd', folder: {}, '@microsoft.graph.conflictBehavior': 'fail' }), 409, 'nameAlreadyExists')
  const rn = await mk({ name: 'D', folder: {}, '@microsoft.graph.conflictBehavior': 'rename' })
  t.equal(rn.status, 201)
  t.equal(rn.body.name, 'D 1')
  const legacy = await mk({ name: 'D', folder: {}, '@name.conflictBehavior': 'rename' })
  t.equal(legacy.status, 201, 'legacy @name.conflictBehavior')
  t.equal(legacy.body.name, 'D 2')
  const legacyFail = await mk({ name: 'D', folder: {}, '@name.conflictBehavior': 'fail' })
  t.equal(legacyFail.status, 409)
  const rep = await mk({ name: 'D', folder: {}, '@microsoft.graph.conflictBehavior': 'replace' })
  t.ok(rep.status === 200 || rep.status === 201, 'replace onto a folder')
  t.equal(rep.body.id, d.body.id, 'answers the existing folder untouched')
  assertGraphError(t, await mk({ name: 'D', folder: {}, '@microsoft.graph.conflictBehavior': 'sideways' }), 400, 'invalidRequest')
})

t.test('checklist 11: PATCH rename/move with fileSystemInfo, conflicts, forbidden moves (docs/graph-service.md §5)', async (t) => {
  const a = (await g('PUT', '/me/drive/root:/Mv/a.txt:/content', Buffer.from('a'))).body
  const b = (await g('PUT', '/me/drive/root:/Mv/b.txt:/content', Buffer.from('bb'))).body
  const dst = (await g('POST', '/me/drive/root:/Mv:/children', { name: 'Dst', folder: {} })).body
  const mtime = '2021-03-04T05:06:07Z'
  const mv = await g('PATCH', `/me/drive/items/${a.id}`, { name: 'moved.txt', parentReference: { id: dst.id, driveId }, fileSystemInfo: { lastModifiedDateTime: mtime } })
  t.equal(mv.status, 200)
  t.equal(mv.body.id, a.id, 'id stable across rename/move')
  t.equal(mv.body.name, 'moved.txt')
  t.equal(mv.body.parentReference.id, dst.id)
  t.equal(Date.parse(mv.body.fileSystemInfo.lastModifiedDateTime), Date.parse(mtime))
  // onto an existing name: 409 unless replace
  const clash = (await g('PUT', `/me/drive/items/${dst.id}:/b.txt:/content`, Buffer.from('other'))).body
  assertGraphError(t, await g('PATCH', `/me/drive/items/${b.id}`, { parentReference: { id: dst.id } }), 409, 'nameAlreadyExists')
  const rq = await g('PATCH', `/me/drive/items/${b.id}?@microsoft.graph.conflictBehavior=replace`, { parentReference: { id: dst.id } })
  t.equal(rq.status, 200, 'replace in the query')
  t.equal((await g('GET', `/me/drive/items/${clash.id}`)).status, 404, 'the target was replaced')
  const c = (await g('PUT', '/me/drive/root:/Mv/c.txt:/content', Buffer.from('c'))).body
  const rb = await g('PATCH', `/me/drive/items/${c.id}`, { name: 'moved.txt', parentReference: { id: dst.id }, '@microsoft.graph.conflictBehavior': 'replace' })
  t.equal(rb.status, 200, 'replace in the body')
  // replace onto a folder is refused
  const folderTarget = (await g('POST', '/me/drive/root:/Mv:/children', { name: 'F', folder: {} })).body
  const e = (await g('PUT', '/me/drive/root:/Mv/e.txt:/content', Buffer.from('e'))).body
  const ontoFolder = await g('PATCH', `/me/drive/items/${e.id}?@microsoft.graph.conflictBehavior=replace`, { name: 'F' })
  t.ok(ontoFolder.status >= 400, `replace onto a folder refused (${ontoFolder.status})`)
  t.equal((await g('GET', `/me/drive/items/${folderTarget.id}`)).status, 200, 'the folder is still there')
  // "id":"root" parents and cross-drive moves are refused
  const r = await g('PATCH', `/me/drive/items/${e.id}`, { parentReference: { id: 'root' } })
  t.equal(r.status, 400, '"root" is not accepted as a parent id')
  const other = emu.store.driveOf('user2')
  const x = await g('PATCH', `/me/drive/items/${e.id}`, { parentReference: { driveId: other.id, id: other.rootId } })
  t.equal(x.status, 400, 'no cross-drive moves')
  const rootId = (await g('GET', '/me/drive/root')).body.id
  const toRoot = await g('PATCH', `/me/drive/items/${e.id}`, { parentReference: { id: rootId } })
  t.equal(toRoot.status, 200, 'the real root id works')
  // a folder cannot move into itself
  const inner = (await g('POST', `/me/drive/items/${dst.id}/children`, { name: 'inner', folder: {} })).body
  t.equal((await g('PATCH', `/me/drive/items/${dst.id}`, { parentReference: { id: inner.id } })).status, 400)
})

t.test('checklist 12: DELETE to the recycle bin counted in quota.deleted; permanentDelete Business only (docs/graph-service.md §5, §2)', async (t) => {
  const q0 = (await g('GET', '/me/drive')).body.quota
  await emu.store.writeFile('user1', 'Del/x/one.bin', Buffer.alloc(1000))
  await emu.store.writeFile('user1', 'Del/x/two.bin', Buffer.alloc(500))
  const x = emu.store.itemByPath('user1', 'Del/x')!
  const d = await g('DELETE', `/me/drive/items/${x.id}`)
  t.equal(d.status, 204)
  t.equal(d.text, '')
  t.equal((await g('GET', '/me/drive/root:/Del/x/one.bin')).status, 404, 'recursive')
  const q1 = (await g('GET', '/me/drive')).body.quota
  t.equal(q1.deleted - q0.deleted, 1500, 'recycle bin bytes in quota.deleted')
  t.equal(q1.used - q0.used, 1500, 'recycled bytes still count as used')
  assertGraphError(t, await g('DELETE', `/me/drive/items/${x.id}`), 404, 'itemNotFound')
  const p = await emu.store.writeFile('user1', 'Del/perm.bin', Buffer.alloc(300))
  const pd = await g('POST', `/me/drive/items/${p.id}/permanentDelete`)
  t.equal(pd.status, 204)
  const q2 = (await g('GET', '/me/drive')).body.quota
  t.equal(q2.deleted, q1.deleted, 'permanentDelete bypasses the recycle bin')
  const pp = await emu.store.writeFile('personal1', 'perm.bin', 'x')
  const ppd = await gp('POST', `/me/drive/items/${pp.id}/permanentDelete`)
  t.ok(ppd.status >= 400 && ppd.status < 500, 'permanentDelete unsupported on Personal')
  t.equal((await gp('GET', `/me/drive/items/${pp.id}`)).status, 200)
})

t.test('checklist 13: copy → 202 + monitor URL without auth, completes, mtime not kept (docs/graph-service.md §5)', async (t) => {
  const src = (await g('PUT', '/me/drive/root:/Cp/src.txt:/content', Buffer.from('copy me'))).body
  await g('PATCH', `/me/drive/items/${src.id}`, { fileSystemInfo: { lastModifiedDateTime: '2001-01-01T00:00:00Z' } })
  const dst = (await g('POST', '/me/drive/root:/Cp:/children', { name: 'Out', folder: {} })).body
  const c = await g('POST', `/me/drive/items/${src.id}/copy`, { parentReference: { driveId, id: dst.id }, name: 'copy.txt' }, { prefer: 'respond-async' })
  t.equal(c.status, 202)
  const mon = c.headers.get('location')!
  t.match(mon, /^https:\/\//)
  let job: any
  for (let i = 0; i < 200; i++) {
    const r = await emu.fetch(mon)
    t.ok(r.status === 200 || r.status === 202, 'monitor answers 200/202 without auth')
    job = await r.json()
    t.match(job, { status: String, percentageComplete: Number })
    if (job.status === 'completed' || job.status === 'failed') break
    await pause(10)
  }
  t.equal(job.status, 'completed')
  t.equal(job.percentageComplete, 100)
  const copy = (await g('GET', `/me/drive/items/${job.resourceId}`)).body
  t.equal(copy.name, 'copy.txt')
  t.equal(copy.parentReference.id, dst.id)
  t.equal(copy.file.hashes.quickXorHash, src.file.hashes.quickXorHash)
  t.not(copy.fileSystemInfo.lastModifiedDateTime.slice(0, 4), '2001', 'copy does not preserve the source mtime')
  const clash = await g('POST', `/me/drive/items/${src.id}/copy`, { parentReference: { driveId, id: dst.id }, name: 'copy.txt' })
  t.equal(clash.status, 409, 'a name clash is rejected up front')
})

t.test('checklist 14: delta (docs/graph-service.md §6)', async (t) => {
  await emu.store.writeFile('user2', 'D1/D2/f.txt', 'f')
  await emu.store.writeFile('user2', 'D1/g.txt', 'g')
  const d2id = emu.store.itemByPath('user2', 'D1/D2')!.id
  // Business: root only
  t.equal((await g2('GET', `/me/drive/items/${d2id}/delta`)).status, 400, 'Business delta is root-only')
  const all: any[] = []
  let url: string | undefined = '/me/drive/root/delta?$top=3'
  let deltaLink: string | undefined
  while (url) {
    const r = await g2('GET', url)
    t.equal(r.status, 200)
    all.push(...r.body.value)
    url = r.body['@odata.nextLink']
    deltaLink = r.body['@odata.deltaLink']
    t.notOk(url && deltaLink, 'nextLink xor deltaLink')
  }
  t.match(deltaLink, /[?&]token=/, 'deltaLink has a token= query parameter')
  const pos = new Map(all.map((i, k) => [i.id, k]))
  t.ok(all.some((i) => i.root), 'root included')
  for (const i of all) {
    // Business delta carries parentReference.path; Personal's does not (docs/emulator/delta-parent-path.md)
    if (!i.root && !i.deleted) t.match(i.parentReference?.path, /^\/drives\/[^/]+\/root:/, 'Business delta has parentReference.path')
    t.notOk('cTag' in i, 'no cTag in Business delta')
    if (i.parentReference?.id && pos.has(i.parentReference.id)) t.ok(pos.get(i.parentReference.id)! < pos.get(i.id)!, 'parents before children')
  }
  // changes
  const g1 = emu.store.itemByPath('user2', 'D1/g.txt')!
  await g2('PATCH', `/me/drive/items/${g1.id}`, { name: 'g2.txt' })
  const f1 = emu.store.itemByPath('user2', 'D1/D2/f.txt')!
  await g2('DELETE', `/me/drive/items/${f1.id}`)
  const token = new URL(deltaLink!).searchParams.get('token')!
  const ch = await g2('GET', `/me/drive/root/delta?token=${encodeURIComponent(token)}`)
  t.equal(ch.status, 200)
  const renamed = ch.body.value.filter((i: any) => i.id === g1.id).pop()
  t.equal(renamed?.name, 'g2.txt', 'latest state')
  const gone = ch.body.value.find((i: any) => i.id === f1.id)
  t.ok(gone?.deleted, 'deleted facet')
  t.notOk('name' in gone, 'Business deletes have no name')
  t.notOk(ch.body.value.some((i: any) => i.deleted && i.parentReference?.path), 'deleted items carry no path')
  // following the deltaLink verbatim works as well
  t.equal((await g2('GET', deltaLink!)).status, 200)
  // token=latest
  const latest = await g2('GET', '/me/drive/root/delta?token=latest')
  t.same(latest.body.value, [])
  t.match(latest.body['@odata.deltaLink'], /token=/)
  const quiet = await g2('GET', latest.body['@odata.deltaLink'])
  t.same(quiet.body.value, [], 'nothing changed since latest')
  // an upload's settling eTag is a change delta reports with the new eTag
  emu.store.etagSettleMs = 50
  t.teardown(() => { emu.store.etagSettleMs = 1000 })
  const up = (await g2('PUT', '/me/drive/root:/D1/settle.bin:/content', Buffer.from('s'))).body
  const afterUp = await g2('GET', '/me/drive/root/delta?token=latest')
  let settled = up
  for (let i = 0; i < 100 && settled.eTag === up.eTag; i++) {
    await pause(20)
    settled = (await g2('GET', `/me/drive/items/${up.id}`)).body
  }
  t.not(settled.eTag, up.eTag)
  const sd = await g2('GET', afterUp.body['@odata.deltaLink'])
  const seenSettle = sd.body.value.filter((i: any) => i.id === up.id).pop()
  t.equal(seenSettle?.eTag, settled.eTag, 'delta reports the settled eTag')
  // Personal: deletes keep the name
  await emu.store.writeFile('personal1', 'PD/x.txt', 'x')
  const pl = (await gp('GET', '/me/drive/root/delta?token=latest')).body['@odata.deltaLink']
  const px = emu.store.itemByPath('personal1', 'PD/x.txt')!
  await gp('DELETE', `/me/drive/items/${px.id}`)
  const pdl = await gp('GET', pl)
  const pgone = pdl.body.value.find((i: any) => i.id === px.id)
  t.ok(pgone?.deleted)
  t.notOk('cTag' in pgone, 'no cTag on a Personal delete')
  const pfull = await gp('GET', '/me/drive/root/delta')
  t.ok(pfull.body.value.length > 1)
  t.notOk(pfull.body.value.some((i: any) => 'path' in (i.parentReference ?? {})), 'no parentReference.path in Personal delta')
  // stale token → 410 with Location
  await emu.fetch('/_emulator/delta/expire', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ account: 'user2' }) })
  const stale = await g2('GET', deltaLink!)
  assertGraphError(t, stale, 410, /^resync/)
  t.match(stale.headers.get('location'), /^https:\/\/.*\/delta/)
  t.equal((await g2('GET', stale.headers.get('location')!)).status, 200, 'the Location restarts enumeration')
})

t.test('checklist 15: shared items, remoteItem, remote drive addressing, Personal Prefer, drive id quirks (docs/graph-service.md §7)', async (t) => {
  const swm = await g('GET', '/me/drive/sharedWithMe')
  t.equal(swm.status, 200)
  const px = swm.body.value.find((i: any) => i.name === 'Project X')
  t.match(px, { id: String, name: 'Project X', remoteItem: { id: String, name: 'Project X', size: Number, folder: { childCount: Number }, parentReference: { driveId: String, driveType: 'business' } } })
  const rd = px.remoteItem.parentReference.driveId
  t.not(rd, driveId, 'the remote drive is the owner\'s')
  const kids = await g('GET', `/drives/${rd}/items/${px.remoteItem.id}/children`)
  t.equal(kids.status, 200)
  t.ok(kids.body.value.length > 0)
  t.notOk(kids.body.value.some((i: any) => i.remoteItem), 'children of a remote folder are plain items')
  t.equal((await g('GET', `/me/drive/items/${px.remoteItem.id}`)).status, 404, 'not reachable through my own drive')
  // docs/graph-service.md §7.1: sharedWithMe works with Files.ReadWrite, but the items need a *.All scope
  const narrow = graphCaller(emu, await tokenWithScope('user1', 'Files.ReadWrite User.Read offline_access'))
  const nl = await narrow('GET', '/me/drive/sharedWithMe')
  t.equal(nl.status, 200)
  t.ok(nl.body.value.some((i: any) => i.name === 'Project X'))
  assertGraphError(t, await narrow('GET', `/drives/${rd}/items/${px.remoteItem.id}/children`), 403, 'accessDenied')
  t.equal((await narrow('GET', '/me/drive/root/children')).status, 200, 'own drive with Files.ReadWrite')
  // Personal: the "Add to OneDrive" shortcut in root needs the Prefer header
  const PREFER = { prefer: 'Include-Feature=AddToOneDrive' }
  const plain = await gp('GET', '/me/drive/root/children')
  t.notOk(plain.body.value.some((i: any) => i.remoteItem), 'no shortcut without Prefer')
  const withPref = await gp('GET', '/me/drive/root/children', undefined, PREFER)
  const sc = withPref.body.value.find((i: any) => i.remoteItem)
  t.ok(sc, 'shortcut with Prefer')
  t.notOk('folder' in sc, 'the outer shortcut item has no folder facet')
  t.match(sc.remoteItem, { id: String, folder: Object, parentReference: { driveId: String, driveType: 'personal' } })
  const sk = await gp('GET', `/me/drive/items/${sc.id}/children`, undefined, PREFER)
  t.same(sk.body.value, [], 'children of the shortcut id come back empty')
  const rk = await gp('GET', `/drives/${sc.remoteItem.parentReference.driveId}/items/${sc.remoteItem.id}/children`)
  t.equal(rk.status, 200)
  t.ok(rk.body.value.length > 0, 'children via the remote drive + item id')
  const first = rk.body.value[0]
  t.equal((await gp('GET', `/me/drive/root:/${encodeURIComponent(sc.name)}/${encodeURIComponent(first.name)}`)).status, 404, '/root:/path does not traverse shortcuts')
  t.equal((await gp('GET', `/drives/${sc.remoteItem.parentReference.driveId}/items/${sc.remoteItem.id}:/${encodeURIComponent(first.name)}:`)).body.id, first.id)
  // quirks: 15-char / upper-case Personal drive ids resolve
  emu.setFaults({ driveIdQuirks: true })
  t.teardown(() => emu.setFaults({ driveIdQuirks: false }))
  const q = (await gp('GET', '/me/drive/root/children', undefined, PREFER)).body.value.find((i: any) => i.remoteItem)
  const qd = q.remoteItem.parentReference.driveId
  t.match(qd, /^[0-9A-F]{15}$/, 'remote Personal drive id with the leading zero dropped, upper case')
  t.equal((await gp('GET', `/drives/${qd}/items/${q.remoteItem.id}/children`)).status, 200)
})

t.test('checklist 16: Graph-shaped errors, 401 on expired tokens, 429/503 Retry-After, 5xx, 404 on fresh sessions (docs/graph-service.md §9)', async (t) => {
  assertGraphError(t, await g('GET', '/me/drive/root:/no/such/thing'), 404, 'itemNotFound')
  const noTok = await graphCaller(emu, undefined)('GET', '/me/drive')
  assertGraphError(t, noTok, 401, 'InvalidAuthenticationToken')
  t.match(noTok.headers.get('www-authenticate'), /^Bearer /)
  // expired access token
  const short = await startTestEmulator({ accessTokenTtlSec: 1, rateLimit: 0 })
  t.teardown(() => short.close())
  const s = graphCaller(short, await tokenFor(short, 'user1'))
  let r = await s('GET', '/me/drive')
  for (let i = 0; i < 100 && r.status === 200; i++) {
    await pause(50)
    r = await s('GET', '/me/drive')
  }
  assertGraphError(t, r, 401, 'InvalidAuthenticationToken')
  t.match(r.body.error.message, /expired/)
  // 429 with integer, escalating Retry-After
  emu.setFaults({ rateLimit: 2 })
  const retries: number[] = []
  for (let i = 0; i < 8; i++) {
    const x = await g('GET', '/me')
    if (x.status === 429) {
      assertGraphError(t, x, 429, 'activityLimitReached')
      const ra = x.headers.get('retry-after')!
      t.match(ra, /^\d+$/, 'integer Retry-After')
      retries.push(Number(ra))
    }
  }
  emu.setFaults({ rateLimit: 0 })
  t.ok(retries.length >= 2, 'throttled')
  t.ok(retries[retries.length - 1]! > retries[0]!, `Retry-After escalates (${retries.join(',')})`)
  // 503 with Retry-After
  emu.setFaults({ failRate: 1 })
  const u = await g('GET', '/me/drive')
  emu.setFaults({ failRate: 0 })
  assertGraphError(t, u, 503, 'serviceNotAvailable')
  t.match(u.headers.get('retry-after'), /^\d+$/)
  // occasional 5xx
  emu.setFaults({ serverErrorRate: 1 })
  const five = await g('GET', '/me/drive')
  emu.setFaults({ serverErrorRate: 0 })
  t.ok([500, 502, 504].includes(five.status))
  t.equal(five.body.error.code, 'generalException')
  // 404 on a fresh upload session, then fine
  emu.setFaults({ freshSessionNotFoundRate: 1 })
  t.teardown(() => emu.setFaults({ freshSessionNotFoundRate: 0 }))
  const us = (await g('POST', '/me/drive/root:/Err/f.bin:/createUploadSession', {})).body.uploadUrl
  const f1 = await put(us, Buffer.from('ab'), 'bytes 0-1/2')
  t.equal(f1.status, 404)
  await f1.arrayBuffer()
  const f2 = await put(us, Buffer.from('ab'), 'bytes 0-1/2')
  t.equal(f2.status, 201, 'the retry succeeds')
  await f2.arrayBuffer()
  emu.setFaults({ freshSessionNotFoundRate: 0 })
})

t.test('checklist 17: $batch (docs/graph-service.md §10)', async (t) => {
  const b = (requests: unknown[]) => g('POST', '/$batch', { requests })
  const reqs = Array.from({ length: 21 }, (_, i) => ({ id: String(i), method: 'GET', url: '/me' }))
  assertGraphError(t, await b(reqs), 400, /./)
  t.equal((await b([{ id: '1', method: 'GET', url: '/me' }, { id: '1', method: 'GET', url: '/me/drive' }])).status, 400, 'duplicate ids')
  const ok = await b([
    { id: 'a', method: 'GET', url: '/me/drive' },
    { id: 'b', method: 'GET', url: '/me/drive/root:/nope-batch' },
    { id: 'c', method: 'GET', url: '/me/drive/root', dependsOn: ['b'] },
    { id: 'd', method: 'POST', url: '/me/drive/root/children', headers: { 'Content-Type': 'application/json' }, body: { name: 'BatchDir', folder: {} } },
  ])
  t.equal(ok.status, 200, 'outer 200')
  const by = new Map(ok.body.responses.map((r: any) => [r.id, r]))
  t.equal(by.size, 4)
  t.match(by.get('a'), { status: 200, body: { driveType: 'business' } })
  t.match(by.get('b'), { status: 404, body: { error: { code: 'itemNotFound' } } })
  t.equal((by.get('c') as any).status, 424, 'a failed dependency gives 424')
  t.equal((by.get('d') as any).status, 201)
  t.equal((await b([{ id: '1', method: 'POST', url: '/me/drive/root/children', body: { name: 'x', folder: {} } }])).status, 400, 'body without Content-Type')
  // responses in arbitrary order: the emulator never answers in request order, so clients must match by id
  const order = await b(Array.from({ length: 5 }, (_, i) => ({ id: `o${i}`, method: 'GET', url: '/me' })))
  t.not(order.body.responses.map((r: any) => r.id).join(), 'o0,o1,o2,o3,o4')
  t.same(order.body.responses.map((r: any) => r.id).sort(), ['o0', 'o1', 'o2', 'o3', 'o4'])
  // dependsOn sequences requests wherever the dependency sits in the list
  const seq = await b([
    { id: 'file', method: 'GET', url: '/me/drive/root:/BatchDir2', dependsOn: ['dir'] },
    { id: 'dir', method: 'POST', url: '/me/drive/root/children', headers: { 'Content-Type': 'application/json' }, body: { name: 'BatchDir2', folder: {} } },
  ])
  const sb = new Map(seq.body.responses.map((r: any) => [r.id, r.status]))
  t.equal(sb.get('dir'), 201)
  t.equal(sb.get('file'), 200, 'the dependency ran first')
  t.equal((await b([{ id: '1', method: 'GET', url: '/me', dependsOn: ['9'] }])).status, 400, 'dependsOn an unknown id')
  emu.setFaults({ rateLimit: 3 })
  const th = await b(Array.from({ length: 10 }, (_, i) => ({ id: String(i), method: 'GET', url: '/me' })))
  emu.setFaults({ rateLimit: 0 })
  t.equal(th.status, 200, 'outer 200 while sub-requests are throttled')
  const t429 = th.body.responses.filter((r: any) => r.status === 429)
  t.ok(t429.length > 0)
  for (const r of t429) t.match(r.headers['Retry-After'] ?? r.headers['retry-after'], /^\d+$/)
})

t.test('checklist 18: quickXorHash for every file, incl. zero bytes; no sha1 (docs/graph-service.md §11)', async (t) => {
  const vectors: [Buffer, string][] = [
    [Buffer.alloc(0), 'AAAAAAAAAAAAAAAAAAAAAAAAAAA='],
    [Buffer.from([0x4a]), 'SgAAAAAAAAAAAAAAAQAAAAAAAAA='],
    [Buffer.from([0xb5, 0xb4]), 'taAFAAAAAAAAAAAAAgAAAAAAAAA='],
    [Buffer.from('a'), 'YQAAAAAAAAAAAAAAAQAAAAAAAAA='],
    [Buffer.from('abc'), 'YRDDGAAAAAAAAAAAAwAAAAAAAAA='],
    [Buffer.from('hello world'), 'aCgDG9jwBhDc4Q1yawMZAAAAAAA='],
    [Buffer.from('The quick brown fox jumps over the lazy dog'), 'bMSlbysmxJL6S75XwfMcQZOpcr4='],
  ]
  for (const [i, [data, want]] of vectors.entries()) {
    const r = await g('PUT', `/me/drive/root:/Qx/v${i}.bin:/content`, data)
    t.equal(r.body.file.hashes.quickXorHash, want, `vector ${i} by PUT`)
    t.notOk('sha1Hash' in r.body.file.hashes, 'no sha1 on Business')
    t.notOk('crc32Hash' in r.body.file.hashes, 'no crc32 on Business')
    const p = await gp('PUT', `/me/drive/root:/Qx/v${i}.bin:/content`, data)
    t.equal(p.body.file.hashes.quickXorHash, want, `vector ${i} on Personal`)
  }
  // the same bytes through an upload session, across fragment boundaries
  const big = ramp(KB320 + 333, 9)
  const viaPut = (await g('PUT', '/me/drive/root:/Qx/big-put.bin:/content', big)).body.file.hashes.quickXorHash
  const u = (await g('POST', '/me/drive/root:/Qx/big-session.bin:/createUploadSession', {})).body.uploadUrl
  t.equal((await put(u, big.subarray(0, KB320), `bytes 0-${KB320 - 1}/${big.length}`)).status, 202)
  const last = await put(u, big.subarray(KB320), `bytes ${KB320}-${big.length - 1}/${big.length}`)
  t.equal(((await last.json()) as any).file.hashes.quickXorHash, viaPut)
  // and in listings
  const list = await g('GET', '/me/drive/root:/Qx:/children')
  t.ok(list.body.value.every((i: any) => typeof i.file.hashes.quickXorHash === 'string'))
})

t.test('checklist 19: drive resource, quota tracking, Business-only sites (docs/graph-service.md §2, §7.3)', async (t) => {
  const d = await g('GET', '/me/drive')
  t.match(d.body, { id: driveId, driveType: 'business', owner: { user: { id: String, displayName: String } }, quota: { total: Number, used: Number, remaining: Number, deleted: Number, state: 'normal' } })
  t.equal(d.body.quota.remaining, d.body.quota.total - d.body.quota.used)
  const pd = await gp('GET', '/me/drive')
  t.match(pd.body, { driveType: 'personal', quota: { total: Number, used: Number, remaining: Number, deleted: Number, state: String } })
  t.match(pd.body.id, /^[0-9a-f]{16}$/)
  const q0 = d.body.quota
  const f = await g('PUT', '/me/drive/root:/Qt/f.bin:/content', Buffer.alloc(4096))
  const q1 = (await g('GET', '/me/drive')).body.quota
  t.equal(q1.used - q0.used, 4096, 'used tracks uploads')
  t.equal(q1.remaining, q0.remaining - 4096)
  await g('DELETE', `/me/drive/items/${f.body.id}`)
  const q2 = (await g('GET', '/me/drive')).body.quota
  t.equal(q2.deleted - q1.deleted, 4096, 'deleted tracks deletes')
  // nearing / critical / exceeded
  t.teardown(() => emu.store.setQuota('user2', 1024 ** 4))
  await emu.store.writeFile('user2', 'Qt/fill.bin', Buffer.alloc(100_000))
  const used2 = (await g2('GET', '/me/drive')).body.quota.used
  emu.store.setQuota('user2', Math.ceil(used2 / 0.95)) // 5 % left
  t.equal((await g2('GET', '/me/drive')).body.quota.state, 'nearing', 'under 10 % left: nearing')
  emu.store.setQuota('user2', Math.ceil(used2 / 0.995)) // 0.5 % left
  const crit = (await g2('GET', '/me/drive')).body.quota
  t.equal(crit.state, 'critical', 'under 1 % left: critical')
  const over = await g2('PUT', '/me/drive/root:/over.bin:/content', Buffer.alloc(crit.remaining + 1))
  assertGraphError(t, over, 507, 'quotaLimitReached')
  emu.store.setQuota('user2', 1024 ** 4)
  // Business: drives, followed sites, site libraries
  t.equal((await g('GET', '/me/drives')).status, 200)
  const ud = await g('GET', '/users/user1@contoso.onmicrosoft.com/drives')
  t.equal(ud.status, 200, '/users/{upn}/drives')
  t.equal(ud.body.value[0].id, driveId)
  const fs = await g('GET', '/me/followedSites')
  t.equal(fs.status, 200)
  const site = fs.body.value[0]
  t.match(site.id, /^[^,]+,[0-9a-f-]{36},[0-9a-f-]{36}$/, 'site id host,guid,guid')
  const libs = await g('GET', `/sites/${site.id}/drives`)
  t.equal(libs.status, 200)
  t.ok(libs.body.value.length >= 2)
  for (const l of libs.body.value) t.equal(l.driveType, 'documentLibrary')
  // the other site addressing forms of docs/graph-service.md §7.3
  const su = new URL(site.webUrl)
  const byPath = await g('GET', `/sites/${su.hostname}:${su.pathname}`)
  t.equal(byPath.status, 200, '/sites/{hostname}:/sites/{path}')
  t.equal(byPath.body.id, site.id)
  const byPathDrives = await g('GET', `/sites/${su.hostname}:${su.pathname}:/drives`)
  t.equal(byPathDrives.body.value.length, libs.body.value.length)
  const search = await g('GET', `/sites?search=${encodeURIComponent(site.displayName.slice(0, 4))}`)
  t.equal(search.status, 200)
  t.ok(search.body.value.some((x: any) => x.id === site.id), '/sites?search=')
  t.same((await graphCaller(emu, await tokenFor(emu, 'other1'))('GET', `/sites?search=${encodeURIComponent(site.displayName)}`)).body.value, [], 'other tenants do not see the site')
  // Personal: no sites
  t.ok((await gp('GET', '/me/followedSites')).status >= 400, 'no followedSites on Personal')
  t.ok((await gp('GET', `/sites/${site.id}/drives`)).status >= 400, 'no sites on Personal')
  t.ok((await gp('GET', '/sites?search=eng')).status >= 400, 'no site search on Personal')
})

t.test('checklist 20: device code polling errors, rotating refresh tokens, expiring access tokens (docs/graph-service.md §12)', async (t) => {
  const e = await startTestEmulator({ accessTokenTtlSec: 1, deviceCodeIntervalSec: 5, rateLimit: 0 })
  t.teardown(() => e.close())
  const form = (path: string, f: Record<string, string>) => e.fetch(path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(f).toString() })
  const dcR = await form('/common/oauth2/v2.0/devicecode', { client_id: PUBLIC_CLIENT, scope: SCOPES })
  t.equal(dcR.status, 200)
  const dc = (await dcR.json()) as any
  t.match(dc, { device_code: String, user_code: String, verification_uri: /^https:\/\//, expires_in: Number, interval: 5, message: String })
  t.notOk('verification_uri_complete' in dc)
  const poll = async (grant = 'urn:ietf:params:oauth:grant-type:device_code') => {
    const r = await form('/common/oauth2/v2.0/token', { grant_type: grant, client_id: PUBLIC_CLIENT, device_code: dc.device_code })
    return { status: r.status, body: (await r.json()) as any }
  }
  const p1 = await poll()
  t.equal(p1.status, 400)
  t.equal(p1.body.error, 'authorization_pending')
  t.ok(Array.isArray(p1.body.error_codes) && p1.body.error_codes.includes(70016), 'AADSTS70016')
  const p2 = await poll('device_code')
  t.equal(p2.status, 400)
  t.equal(p2.body.error, 'slow_down', 'polling faster than interval → slow_down')
  // (expired_token after expires_in is asserted with a ManualClock in test/emulator/identity.test.ts
  // 'device code errors: decline, slow_down, expired, bad code, bad requests')
  // approve through the test hook, then wait out the interval the server asked for
  e.identity.setAutoConsent(undefined)
  const ap = await e.fetch('/_emulator/identity/approve', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user_code: dc.user_code, account: 'user1' }) })
  t.equal(ap.status, 200)
  let tok: any
  for (let i = 0; i < 100; i++) {
    const p = await poll()
    if (p.status === 200) { tok = p.body; break }
    t.ok(['authorization_pending', 'slow_down'].includes(p.body.error))
    await pause(250)
  }
  t.match(tok, { token_type: 'Bearer', access_token: String, refresh_token: String, expires_in: Number, scope: String })
  // access tokens expire → 401; refresh rotates
  const s = graphCaller(e, tok.access_token)
  let r = await s('GET', '/me')
  for (let i = 0; i < 100 && r.status === 200; i++) {
    await pause(50)
    r = await s('GET', '/me')
  }
  t.equal(r.status, 401, 'the access token expired')
  const ref = await form('/common/oauth2/v2.0/token', { grant_type: 'refresh_token', client_id: PUBLIC_CLIENT, refresh_token: tok.refresh_token, scope: SCOPES })
  t.equal(ref.status, 200)
  const fresh = (await ref.json()) as any
  t.type(fresh.refresh_token, 'string')
  t.not(fresh.refresh_token, tok.refresh_token, 'refresh tokens rotate')
  t.equal((await graphCaller(e, fresh.access_token)('GET', '/me')).status, 200)
  const again = await form('/common/oauth2/v2.0/token', { grant_type: 'refresh_token', client_id: PUBLIC_CLIENT, refresh_token: tok.refresh_token })
  t.equal(again.status, 200, 'the previous refresh token is not revoked by rotation (docs/graph-service.md §12)')
  await again.arrayBuffer()
  // revocation (test hook): refresh then fails with invalid_grant
  e.identity.revoke('user1')
  const revoked = await form('/common/oauth2/v2.0/token', { grant_type: 'refresh_token', client_id: PUBLIC_CLIENT, refresh_token: fresh.refresh_token })
  t.equal(revoked.status, 400)
  t.equal(((await revoked.json()) as any).error, 'invalid_grant')
})
