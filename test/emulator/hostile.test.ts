// Hostile-answer fault knobs (docs/emulator/hostile-answers.md): each is off by default,
// set through POST /_emulator/faults, damages only answers about the item it names, and
// goes away when set back to ''.
import t, { type Test } from 'tap'
import { startTestEmulator, tokenFor, graphCaller, type TestEmulator } from '../support/emulator.js'

let emu: TestEmulator
let g: ReturnType<typeof graphCaller>
let tok: string
let aId: string
let bId: string
let folderId: string

t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0, etagSettleMs: 0 })
  tok = await tokenFor(emu, 'user1')
  g = graphCaller(emu, tok)
  aId = (await g('PUT', '/me/drive/root:/H/a.txt:/content', Buffer.from('alpha'))).body.id
  bId = (await g('PUT', '/me/drive/root:/H/b.txt:/content', Buffer.from('beta'))).body.id
  folderId = (await g('GET', '/me/drive/root:/H')).body.id
})
t.teardown(() => emu.close())

/** Turn one knob on through the runtime hook; turned off again when the test ends. */
async function knob(t: Test, name: string, value: string): Promise<void> {
  const set = (v: string) => emu.fetch('/_emulator/faults', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ [name]: v }) })
  const r = await set(value)
  t.equal(r.status, 200, `${name} set`)
  await r.arrayBuffer()
  t.teardown(async () => void (await (await set('')).arrayBuffer()))
}

const raw = (path: string) => emu.fetch(`${emu.info.graph}${path}`, { headers: { authorization: `Bearer ${tok}` } })

async function listing(): Promise<Map<string, any>> {
  const r = await g('GET', `/me/drive/items/${folderId}/children`)
  return new Map(r.body.value.map((e: any) => [e.id, e]))
}

t.test('every knob is off by default', async (t) => {
  const f = (await (await emu.fetch('/_emulator/faults')).json()) as Record<string, unknown>
  for (const k of ['hostileNameSlash', 'hostileNameNul', 'hostileNameDotDot', 'hostileNameLong', 'hostileSize', 'hostileHash', 'hostileJson', 'hostileTruncate']) t.equal(f[k], '', k)
  const bad = await emu.fetch('/_emulator/faults', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ hostileJson: 1 }) })
  t.equal(bad.status, 400, 'a knob takes a path string')
  await bad.arrayBuffer()
})

const names: [string, (n: string) => boolean][] = [
  ['hostileNameSlash', (n) => n.includes('/')],
  ['hostileNameNul', (n) => n.includes('\u0000')],
  ['hostileNameDotDot', (n) => n === '..'],
  ['hostileNameLong', (n) => n.length > 255],
]
for (const [name, hostile] of names) {
  t.test(`${name}: the named item is reported under a hostile name, the others are not`, async (t) => {
    await knob(t, name, '/H/a.txt')
    const l = await listing()
    t.ok(hostile(l.get(aId).name), `listing: ${JSON.stringify(l.get(aId).name).slice(0, 40)}`)
    t.equal(l.get(bId).name, 'b.txt')
    t.ok(hostile((await g('GET', `/me/drive/items/${aId}`)).body.name), 'its own metadata')
    const d = await g('GET', '/me/drive/root/delta')
    t.ok(hostile(d.body.value.find((e: any) => e.id === aId).name), 'delta')
    await knob(t, name, '')
    t.equal((await listing()).get(aId).name, 'a.txt', 'off again')
  })
}

t.test('hostileSize: the named file is reported one byte larger than its content', async (t) => {
  await knob(t, 'hostileSize', 'h/A.TXT')
  const l = await listing()
  t.equal(l.get(aId).size, 6)
  t.equal(l.get(bId).size, 4)
  t.equal((await g('GET', `/me/drive/items/${aId}`)).body.size, 6)
  const loc = (await g('GET', `/me/drive/items/${aId}/content`)).headers.get('location')!
  t.equal((await (await emu.fetch(loc)).arrayBuffer()).byteLength, 5, 'the content is what it is')
})

t.test('hostileHash: the named file carries a wrong quickXorHash', async (t) => {
  const good = (await listing()).get(aId).file.hashes.quickXorHash
  const other = (await listing()).get(bId).file.hashes.quickXorHash
  await knob(t, 'hostileHash', '/H/a.txt')
  const l = await listing()
  t.not(l.get(aId).file.hashes.quickXorHash, good)
  t.equal(Buffer.from(l.get(aId).file.hashes.quickXorHash, 'base64').length, 20, 'still a well-formed hash')
  t.equal(l.get(bId).file.hashes.quickXorHash, other)
})

t.test('hostileJson: answers about the named folder are not valid JSON', async (t) => {
  await knob(t, 'hostileJson', '/H')
  const r = await raw(`/me/drive/items/${folderId}/children`)
  t.equal(r.status, 200)
  const text = await r.text()
  t.equal(Number(r.headers.get('content-length')), Buffer.byteLength(text), 'the length matches what is sent')
  t.throws(() => JSON.parse(text), 'not JSON')
  const selected = await (await raw(`/me/drive/items/${folderId}/children?$select=name`)).text()
  t.throws(() => JSON.parse(selected), 'a listing without parentReference too')
  const meta = await (await raw('/me/drive/root:/H')).text()
  t.throws(() => JSON.parse(meta), 'its metadata too')
  t.equal((await g('GET', '/me/drive/root/children')).status, 200, 'the parent listing is intact')
  t.equal((await g('GET', `/me/drive/items/${aId}`)).body.name, 'a.txt', 'other items are intact')
})

async function received(r: Response): Promise<{ got: number; error: boolean }> {
  let got = 0
  try {
    for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) got += c.length
    return { got, error: false }
  } catch {
    return { got, error: true }
  }
}

t.test('hostileTruncate: Content-Length promises more than is sent, then the connection closes', async (t) => {
  await knob(t, 'hostileTruncate', '/H')
  const r = await raw(`/me/drive/items/${folderId}/children`)
  t.equal(r.status, 200)
  const promised = Number(r.headers.get('content-length'))
  const { got, error } = await received(r)
  t.ok(error, 'the body breaks off')
  t.ok(got < promised, `${got} of ${promised} bytes`)
  t.equal((await g('GET', '/me/drive/root/children')).status, 200, 'other answers are whole')

  const big = (await g('PUT', '/me/drive/root:/H/big.bin:/content', Buffer.alloc(200_000, 1))).body
  await knob(t, 'hostileTruncate', '/H/big.bin')
  const loc = (await g('GET', `/me/drive/items/${big.id}/content`)).headers.get('location')!
  const dl = await emu.fetch(loc)
  const body = await received(dl)
  t.equal(Number(dl.headers.get('content-length')), 200_000)
  t.ok(body.error && body.got < 200_000, `download cut at ${body.got}`)
  const locB = (await g('GET', `/me/drive/items/${bId}/content`)).headers.get('location')!
  t.equal(Buffer.from(await (await emu.fetch(locB)).arrayBuffer()).toString(), 'beta', 'other downloads are whole')
})
