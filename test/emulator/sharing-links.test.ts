// Sharing links have the service's shapes (docs/emulator/sharing-links.md) and still
// resolve through /shares/{u!…}.
import t from 'tap'
import { startTestEmulator, tokenFor, graphCaller, type TestEmulator } from '../support/emulator.js'

let emu: TestEmulator
let u1: ReturnType<typeof graphCaller>
let u2: ReturnType<typeof graphCaller>
let p1: ReturnType<typeof graphCaller>

t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0 })
  u1 = graphCaller(emu, await tokenFor(emu, 'user1'))
  u2 = graphCaller(emu, await tokenFor(emu, 'user2'))
  p1 = graphCaller(emu, await tokenFor(emu, 'personal1'))
})
t.teardown(() => emu.close())

const shareToken = (url: string) => 'u!' + Buffer.from(url).toString('base64url')

async function linkOf(caller: ReturnType<typeof graphCaller>, drivePath: string, id: string, body: unknown = { type: 'view' }): Promise<string> {
  const r = await caller('POST', `${drivePath}/items/${id}/createLink`, body)
  t.ok(r.status === 200 || r.status === 201, `createLink ${r.status}`)
  return r.body.link.webUrl
}

t.test('OneDrive for Business: https://{tenant}-my.sharepoint.com/:{k}:/g/personal/{user}/{token}', async (t) => {
  const kinds: [string, string][] = [['Report.docx', 'w'], ['Budget.xlsx', 'x'], ['Deck.pptx', 'p'], ['Paper.pdf', 'b'], ['notes.txt', 't'], ['photo.JPG', 'i'], ['clip.mp4', 'v'], ['data.bin', 'u']]
  for (const [name, k] of kinds) {
    const f = (await u2('PUT', `/me/drive/root:/Links/${name}:/content`, Buffer.from(name))).body
    const url = await linkOf(u2, '/me/drive', f.id)
    t.match(url, new RegExp(`^https://contoso-my\\.sharepoint\\.com/:${k}:/g/personal/user2_contoso_onmicrosoft_com/E[A-Za-z0-9_-]{45}$`), `${name} → :${k}:`)
    // rclone's direct-link conversion expects exactly 8 slash-separated segments
    t.equal(url.split('/').length, 8)
    const via = await u1('GET', `/shares/${shareToken(url)}/driveItem`)
    t.equal(via.status, 200, `${name}: /shares resolves the link`)
    t.equal(via.body.id, f.id)
  }
  const folder = (await u2('GET', '/me/drive/root:/Links')).body
  const furl = await linkOf(u2, '/me/drive', folder.id, { type: 'edit' })
  t.match(furl, /^https:\/\/contoso-my\.sharepoint\.com\/:f:\/g\/personal\/user2_contoso_onmicrosoft_com\/E[\w-]{45}$/, 'folders are :f:')
  const kids = await u1('GET', `/shares/${shareToken(furl)}/driveItem/children`)
  t.equal(kids.status, 200)
  t.equal(kids.body.value.length, 8)
})

t.test('SharePoint library: https://{tenant}.sharepoint.com/:{k}:/s/{site}/{token}', async (t) => {
  const site = [...emu.store.sites.values()].find((s) => s.name === 'Engineering')!
  const lib = site.driveIds[0]!
  const f = (await u1('PUT', `/drives/${lib}/root:/spec.bin:/content`, Buffer.from('spec'))).body
  const url = await linkOf(u1, `/drives/${lib}`, f.id)
  t.match(url, /^https:\/\/contoso\.sharepoint\.com\/:u:\/s\/Engineering\/E[\w-]{45}$/)
  t.equal((await u2('GET', `/shares/${shareToken(url)}/driveItem`)).body.id, f.id)
})

t.test('Personal: https://1drv.ms/{k}/s!{token}', async (t) => {
  const f = (await p1('PUT', '/me/drive/root:/pic.png:/content', Buffer.from('png'))).body
  const url = await linkOf(p1, '/me/drive', f.id)
  t.match(url, /^https:\/\/1drv\.ms\/i\/s![\w-]+$/)
  t.equal(url.split('/').length, 5, 'the shape rclone converts to a direct link')
  const d = (await p1('POST', '/me/drive/root/children', { name: 'Album', folder: {} })).body
  t.match(await linkOf(p1, '/me/drive', d.id), /^https:\/\/1drv\.ms\/f\/s![\w-]+$/)
  t.equal((await p1('GET', `/shares/${shareToken(url)}/driveItem`)).body.id, f.id)
})

t.test('the same link is answered again for the same item, type and scope', async (t) => {
  const f = (await u2('PUT', '/me/drive/root:/again.txt:/content', Buffer.from('x'))).body
  const a = await u2('POST', `/me/drive/items/${f.id}/createLink`, { type: 'view', scope: 'organization' })
  const b = await u2('POST', `/me/drive/items/${f.id}/createLink`, { type: 'view', scope: 'organization' })
  t.equal(a.status, 201)
  t.equal(b.status, 200)
  t.equal(b.body.link.webUrl, a.body.link.webUrl)
  t.equal(b.body.id, a.body.id)
})
