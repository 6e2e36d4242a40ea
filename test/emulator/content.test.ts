// Content over real HTTPS: download redirect + ranges + expiry, simple PUT, and
// upload sessions with every rule of the fidelity checklist (items 7-10).
import t from 'tap'
import https from 'node:https'
import { readFileSync } from 'node:fs'
import { startTestEmulator, tokenFor, graphCaller, type TestEmulator } from '../support/emulator.js'
import { quickXorHash } from '../../src/emulator/index.js'

let emu: TestEmulator
let g: ReturnType<typeof graphCaller>
let gp: ReturnType<typeof graphCaller>
const KB320 = 327_680

t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0 })
  g = graphCaller(emu, await tokenFor(emu, 'user1'))
  gp = graphCaller(emu, await tokenFor(emu, 'personal1'))
})
t.teardown(() => emu.close())

function ramp(n: number, seed = 0): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff
  return b
}

/** A raw HTTPS request that can lie about Content-Length or die mid-body. */
function raw(url: string, opts: { method: string; headers?: Record<string, string | number>; body?: Buffer; dieAfter?: number }): Promise<{ status: number; body: any } | 'reset'> {
  return new Promise((resolve) => {
    const req = https.request(url, { method: opts.method, headers: opts.headers, ca: readFileSync(emu.info.ca) }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (c) => parts.push(c))
      res.on('end', () => {
        const text = Buffer.concat(parts).toString()
        resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined })
      })
      res.on('error', () => resolve('reset'))
    })
    req.on('error', () => resolve('reset'))
    if (opts.dieAfter !== undefined) {
      req.write(opts.body!.subarray(0, opts.dieAfter), () => setTimeout(() => { req.destroy(); resolve('reset') }, 50))
    } else if (opts.body) req.end(opts.body)
    else if (opts.headers?.['content-length'] === undefined) req.end()
    else req.flushHeaders()
  })
}

const put = (url: string, body: Buffer, range: string, extra: Record<string, string> = {}) =>
  emu.fetch(url, { method: 'PUT', headers: { 'content-range': range, ...extra }, body })

t.test('download: 302 to a pre-authenticated URL, ranges, 416, expiry (checklist 7)', async (t) => {
  const data = ramp(100_000)
  const up = await g('PUT', '/me/drive/root:/dl/r.bin:/content', data)
  t.equal(up.status, 201)
  t.equal(up.body.file.hashes.quickXorHash, quickXorHash(data), 'quickXorHash computed over the bytes')
  const c = await g('GET', `/me/drive/items/${up.body.id}/content`)
  t.equal(c.status, 302)
  const loc = c.headers.get('location')!
  t.match(loc, /^https:\/\/localhost:\d+\/_download\/.+\?tempauth=/)
  const full = await emu.fetch(loc)
  t.equal(full.status, 200)
  t.same(Buffer.from(await full.arrayBuffer()), data)
  const part = await emu.fetch(loc, { headers: { range: 'bytes=10-19' } })
  t.equal(part.status, 206)
  t.equal(part.headers.get('content-range'), 'bytes 10-19/100000')
  t.same(Buffer.from(await part.arrayBuffer()), data.subarray(10, 20))
  const open = await emu.fetch(loc, { headers: { range: 'bytes=99990-' } })
  t.equal(open.status, 206)
  t.equal((await open.arrayBuffer()).byteLength, 10)
  const suffix = await emu.fetch(loc, { headers: { range: 'bytes=-5' } })
  t.same(Buffer.from(await suffix.arrayBuffer()), data.subarray(99_995))
  const past = await emu.fetch(loc, { headers: { range: 'bytes=100000-100010' } })
  t.equal(past.status, 416)
  t.equal(past.headers.get('content-range'), 'bytes */100000')
  await past.arrayBuffer()
  const nm = await g('GET', `/me/drive/items/${up.body.id}/content`, undefined, { 'if-none-match': up.body.cTag })
  t.equal(nm.status, 304)
  const folder = await g('GET', '/me/drive/root:/dl:/content')
  t.equal(folder.status, 400, 'folders have no content')
  const bad = await emu.fetch(loc.replace(/tempauth=.{5}/, 'tempauth=xxxxx'))
  t.equal(bad.status, 401)
  await bad.arrayBuffer()
  emu.setFaults({ downloadUrlTtlSec: 0 })
  const c2 = await g('GET', `/me/drive/items/${up.body.id}/content`)
  emu.setFaults({ downloadUrlTtlSec: 3600 })
  let exp: Response | undefined
  for (let i = 0; i < 50; i++) {
    exp = await emu.fetch(c2.headers.get('location')!)
    if (exp.status !== 200) break
    await exp.arrayBuffer()
    await new Promise((r) => setTimeout(r, 10))
  }
  t.equal(exp!.status, 401, 'expired URL refused')
  t.equal(((await exp!.json()) as any).error.innerError.code, 'expiredToken')
})

t.test('simple PUT (checklist 8)', async (t) => {
  const a = await g('PUT', '/me/drive/root:/put/a.txt:/content', Buffer.from('one'))
  t.equal(a.status, 201)
  const b = await g('PUT', '/me/drive/root:/put/a.txt:/content', Buffer.from('two'))
  t.equal(b.status, 200, 'default replace')
  t.equal(b.body.id, a.body.id)
  t.not(b.body.cTag, a.body.cTag, 'cTag changes with content')
  const f = await g('PUT', '/me/drive/root:/put/a.txt:/content?@microsoft.graph.conflictBehavior=fail', Buffer.from('x'))
  t.equal(f.status, 409)
  t.equal(f.body.error.code, 'nameAlreadyExists')
  const r = await g('PUT', '/me/drive/root:/put/a.txt:/content?@microsoft.graph.conflictBehavior=rename', Buffer.from('x'))
  t.equal(r.status, 201)
  t.equal(r.body.name, 'a 1.txt')
  const parent = (await g('GET', '/me/drive/root:/put')).body
  const byParent = await g('PUT', `/me/drive/items/${parent.id}:/b.txt:/content`, Buffer.from('bee'))
  t.equal(byParent.status, 201)
  const byId = await g('PUT', `/me/drive/items/${byParent.body.id}/content`, Buffer.from('bee2'))
  t.equal(byId.status, 200)
  t.equal(byId.body.size, 4)
  const zero = await g('PUT', '/me/drive/root:/put/zero.txt:/content', Buffer.alloc(0))
  t.equal(zero.status, 201, 'zero-byte files allowed')
  t.equal(zero.body.size, 0)
  t.equal(zero.body.file.hashes.quickXorHash, 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=')
  const zc = await g('GET', `/me/drive/items/${zero.body.id}/content`)
  const zd = await emu.fetch(zc.headers.get('location')!)
  t.equal(zd.status, 200)
  t.equal((await zd.arrayBuffer()).byteLength, 0)
  const tooBig = await raw(`${emu.info.graph}/me/drive/root:/put/huge.bin:/content`, {
    method: 'PUT', headers: { authorization: `Bearer ${await tokenFor(emu, 'user1')}`, 'content-length': 300 * 1024 * 1024 },
  })
  t.not(tooBig, 'reset')
  if (tooBig !== 'reset') {
    t.equal(tooBig.status, 413)
    t.equal(tooBig.body.error.code, 'maxFileSizeExceeded')
  }
  const fourMiB = ramp(5 * 1024 * 1024)
  const big = await g('PUT', '/me/drive/root:/put/5mib.bin:/content', fourMiB)
  t.equal(big.status, 201, 'more than 4 MiB by simple PUT works')
  t.equal(big.body.file.hashes.quickXorHash, quickXorHash(fourMiB))
})

async function session(path: string, body: object = {}, caller = g): Promise<string> {
  const s = await caller('POST', `/me/drive/root:/${path}:/createUploadSession`, body)
  if (s.status !== 200) throw new Error(`createUploadSession ${s.status} ${s.text}`)
  return s.body.uploadUrl
}

t.test('upload session happy path, status, nextExpectedRanges (checklist 9)', async (t) => {
  const data = ramp(KB320 * 2 + 1000)
  const s = await g('POST', '/me/drive/root:/up/one.bin:/createUploadSession', { item: { '@microsoft.graph.conflictBehavior': 'fail' } })
  t.equal(s.status, 200)
  t.match(s.body, { uploadUrl: /^https:\/\/localhost:\d+\/_upload\//, expirationDateTime: String, nextExpectedRanges: ['0-'] })
  const url = s.body.uploadUrl
  const f1 = await put(url, data.subarray(0, KB320), `bytes 0-${KB320 - 1}/${data.length}`)
  t.equal(f1.status, 202)
  t.match(await f1.json(), { expirationDateTime: String, nextExpectedRanges: [`${KB320}-`] })
  const st = await emu.fetch(url)
  t.equal(st.status, 200)
  t.same(((await st.json()) as any).nextExpectedRanges, [`${KB320}-`])
  const f2 = await put(url, data.subarray(KB320, 2 * KB320), `bytes ${KB320}-${2 * KB320 - 1}/${data.length}`)
  t.equal(f2.status, 202)
  await f2.arrayBuffer()
  const last = await put(url, data.subarray(2 * KB320), `bytes ${2 * KB320}-${data.length - 1}/${data.length}`)
  t.equal(last.status, 201)
  const item = (await last.json()) as any
  t.equal(item.name, 'one.bin')
  t.equal(item.size, data.length)
  t.equal(item.file.hashes.quickXorHash, quickXorHash(data))
  const gone = await emu.fetch(url)
  t.equal(gone.status, 404, 'session gone after commit')
  await gone.arrayBuffer()
  // replacing by path → 200
  const url2 = await session('up/one.bin')
  const again = await put(url2, Buffer.from('short'), 'bytes 0-4/5')
  t.equal(again.status, 200, 'default conflict behaviour replaces')
  t.equal(((await again.json()) as any).id, item.id)
  // by item id
  const s3 = await g('POST', `/me/drive/items/${item.id}/createUploadSession`, {})
  t.equal(s3.status, 200)
  const r3 = await put(s3.body.uploadUrl, Buffer.from('xyz'), 'bytes 0-2/3')
  t.equal(r3.status, 200)
  await r3.arrayBuffer()
})

t.test('fragment rules: 320 KiB multiples, ranges, lengths, order, total (checklist 9)', async (t) => {
  const data = ramp(KB320 * 3)
  const url = await session('up/rules.bin')
  const expect = async (r: Response, status: number, inner?: string, msg = "") => {
    t.equal(r.status, status, msg)
    const b = (await r.json()) as any
    if (inner) t.equal(b.error.innerError.code, inner, msg)
    return b
  }
  await expect(await put(url, data.subarray(0, 1000), `bytes 0-999/${data.length}`), 400, 'invalidFragmentSize', 'non-final fragment not a multiple of 320 KiB')
  await expect(await put(url, data.subarray(0, 10), 'bytes=0-9'), 400, undefined, 'malformed Content-Range')
  await expect(await emu.fetch(url, { method: 'PUT', body: data.subarray(0, 10) }), 400, undefined, 'missing Content-Range')
  await expect(await put(url, Buffer.alloc(0), 'bytes 0--1/0'), 400, undefined, 'empty range')
  await expect(await put(url, Buffer.alloc(1), 'bytes 0-0/0'), 400, undefined, 'zero total')
  const lie = await raw(url, { method: 'PUT', headers: { 'content-range': `bytes 0-${KB320 - 1}/${data.length}`, 'content-length': 10 }, body: data.subarray(0, 10) })
  t.not(lie, 'reset')
  if (lie !== 'reset') t.equal(lie.status, 400, 'Content-Length must equal the range length')
  await expect(await put(url, data.subarray(KB320, 2 * KB320), `bytes ${KB320}-${2 * KB320 - 1}/${data.length}`), 416, 'fragmentOutOfOrder', 'gap')
  const ok = await put(url, data.subarray(0, KB320), `bytes 0-${KB320 - 1}/${data.length}`)
  t.equal(ok.status, 202)
  await ok.arrayBuffer()
  await expect(await put(url, data.subarray(0, KB320), `bytes 0-${KB320 - 1}/${data.length}`), 416, 'fragmentOverlap', 'overlap')
  await expect(await put(url, data.subarray(KB320, 2 * KB320), `bytes ${KB320}-${2 * KB320 - 1}/${data.length + 1}`), 400, 'fragmentLengthMismatch', 'total changed')
  const big = await raw(url, { method: 'PUT', headers: { 'content-range': `bytes ${KB320}-${KB320 + 64 * 1024 * 1024 - 1}/${200 * 1024 * 1024}`, 'content-length': 64 * 1024 * 1024 } })
  t.not(big, 'reset')
  if (big !== 'reset') t.ok(big.status === 413 || big.status === 400, `fragment of 60 MiB or more refused (${big.status})`)
  const withAuth = await put(url, data.subarray(KB320, 2 * KB320), `bytes ${KB320}-${2 * KB320 - 1}/${data.length}`, { authorization: 'Bearer x' })
  t.equal(withAuth.status, 401, 'Authorization on an upload URL → 401')
  await withAuth.arrayBuffer()
  const st = (await (await emu.fetch(url)).json()) as any
  t.same(st.nextExpectedRanges, [`${KB320}-`], 'nothing of the refused fragments was kept')
  // a fragment whose body breaks mid-way is discarded whole
  const broken = await raw(url, { method: 'PUT', headers: { 'content-range': `bytes ${KB320}-${2 * KB320 - 1}/${data.length}`, 'content-length': KB320 }, body: data.subarray(KB320, 2 * KB320), dieAfter: 100_000 })
  t.equal(broken, 'reset')
  let st2: any
  for (let i = 0; i < 50; i++) {
    const r = await emu.fetch(url)
    st2 = await r.json()
    if (r.status === 200 && st2.nextExpectedRanges[0] === `${KB320}-`) {
      const retry = await put(url, data.subarray(KB320, 2 * KB320), `bytes ${KB320}-${2 * KB320 - 1}/${data.length}`)
      if (retry.status === 202) { await retry.arrayBuffer(); break }
      await retry.arrayBuffer()
    }
    await new Promise((r) => setTimeout(r, 20))
  }
  const fin = await put(url, data.subarray(2 * KB320), `bytes ${2 * KB320}-${data.length - 1}/${data.length}`)
  t.equal(fin.status, 201)
  t.equal(((await fin.json()) as any).file.hashes.quickXorHash, quickXorHash(data), 'bytes of the broken fragment did not leak in')
})

t.test('cancel, expiry, conflict at commit, fileSize over quota, fileSystemInfo', async (t) => {
  const url = await session('up/cancel.bin')
  const d = await emu.fetch(url, { method: 'DELETE' })
  t.equal(d.status, 204)
  const after = await put(url, Buffer.from('x'), 'bytes 0-0/1')
  t.equal(after.status, 404)
  t.equal(((await after.json()) as any).error.code, 'itemNotFound')
  const url2 = await session('up/expire.bin')
  const hook = await emu.fetch('/_emulator/uploads/expire', { method: 'POST' })
  t.equal(hook.status, 204)
  const ex = await put(url2, Buffer.from('x'), 'bytes 0-0/1')
  t.equal(ex.status, 404, 'expired session → 404')
  await ex.arrayBuffer()
  // conflict at commit keeps the session
  const url3 = await session('up/late.bin', { item: { '@microsoft.graph.conflictBehavior': 'fail' } })
  await g('PUT', '/me/drive/root:/up/late.bin:/content', Buffer.from('someone else'))
  const c = await put(url3, Buffer.from('mine'), 'bytes 0-3/4')
  t.equal(c.status, 409)
  t.equal(((await c.json()) as any).error.code, 'nameAlreadyExists')
  const st = await emu.fetch(url3)
  t.equal(st.status, 200, 'session kept after a commit conflict')
  t.same(((await st.json()) as any).nextExpectedRanges, [])
  // existing name + explicit fail is refused at creation
  const fail = await g('POST', '/me/drive/root:/up/late.bin:/createUploadSession', { item: { '@microsoft.graph.conflictBehavior': 'fail' } })
  t.equal(fail.status, 409)
  // rename
  const url4 = await session('up/late.bin', { item: { '@microsoft.graph.conflictBehavior': 'rename' } })
  const rn = await put(url4, Buffer.from('ren'), 'bytes 0-2/3')
  t.equal(rn.status, 201)
  t.equal(((await rn.json()) as any).name, 'late 1.bin')
  // top-level conflictBehavior is ignored (default replace)
  const url5 = await session('up/late.bin', { '@microsoft.graph.conflictBehavior': 'fail' })
  const rp = await put(url5, Buffer.from('rep'), 'bytes 0-2/3')
  t.equal(rp.status, 200)
  await rp.arrayBuffer()
  // fileSize over quota → 507, no session
  emu.store.setQuota('personal1', 10_000_000)
  const q = await gp('POST', '/me/drive/root:/huge.bin:/createUploadSession', { item: { fileSize: 20_000_000 } })
  t.equal(q.status, 507)
  t.equal(q.body.error.code, 'quotaLimitReached')
  emu.store.setQuota('personal1', 5 * 1024 ** 3)
  // fileSystemInfo in item sets the mtime in the same request
  const mtime = '2019-05-06T07:08:09.000Z'
  const url6 = await session('up/dated.bin', { item: { fileSystemInfo: { lastModifiedDateTime: mtime } } })
  const dr = await put(url6, Buffer.from('dated'), 'bytes 0-4/5')
  t.equal(((await dr.json()) as any).fileSystemInfo.lastModifiedDateTime, mtime)
})

t.test('deferCommit: POST to the uploadUrl (Business) and PUT with sourceUrl (Personal)', async (t) => {
  const url = await session('up/deferred.bin', { deferCommit: true })
  const r = await put(url, Buffer.from('later'), 'bytes 0-4/5')
  t.equal(r.status, 202)
  t.same(((await r.json()) as any).nextExpectedRanges, [])
  t.equal((await g('GET', '/me/drive/root:/up/deferred.bin')).status, 404, 'not created before the commit')
  const c = await emu.fetch(url, { method: 'POST', headers: { 'content-length': '0' } })
  t.equal(c.status, 201)
  t.equal(((await c.json()) as any).size, 5)
  const purl = await session('later.bin', { deferCommit: true }, gp)
  const pr = await put(purl, Buffer.from('personal'), 'bytes 0-7/8')
  t.equal(pr.status, 202)
  await pr.arrayBuffer()
  const commit = await gp('PUT', '/me/drive/root:/later.bin', { name: 'later.bin', '@microsoft.graph.conflictBehavior': 'rename', '@microsoft.graph.sourceUrl': purl })
  t.equal(commit.status, 201)
  t.equal(commit.body.size, 8)
})

t.test('graph-client style: Range header on /content rides the redirect', async (t) => {
  const up = await g('PUT', '/me/drive/root:/ride.bin:/content', ramp(1000))
  const c = await g('GET', `/me/drive/items/${up.body.id}/content`, undefined, { range: 'bytes=0-9' })
  t.equal(c.status, 302)
})
