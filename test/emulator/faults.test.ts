// Faults, throttling, stats, test hooks and $batch over real HTTPS.
import t from 'tap'
import { startTestEmulator, tokenFor, graphCaller, type TestEmulator } from '../support/emulator.js'

let emu: TestEmulator
let g: ReturnType<typeof graphCaller>
let tok: string

t.before(async () => {
  emu = await startTestEmulator({ seed: 'demo', rateLimit: 0 })
  tok = await tokenFor(emu, 'user1')
  g = graphCaller(emu, tok)
})
t.teardown(() => emu.close())

const hook = (path: string, body?: unknown) =>
  emu.fetch(path, { method: body === undefined ? 'GET' : 'POST', headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })

t.test('faults are readable and settable at run time', async (t) => {
  const f = await hook('/_emulator/faults')
  t.equal(f.status, 200)
  t.match(await f.json(), { latencyMs: 0, failRate: 0, rateLimit: 0, sharedWithMeRetired: false })
  const set = await hook('/_emulator/faults', { latencyMs: 5, sharedWithMeRetired: true })
  t.equal(set.status, 200)
  t.match(await set.json(), { latencyMs: 5, sharedWithMeRetired: true })
  t.equal(emu.faults.latencyMs, 5)
  t.same((await g('GET', '/me/drive/sharedWithMe')).body.value, [])
  t.equal((await hook('/_emulator/faults', { latencyMs: -1 })).status, 400)
  t.equal((await hook('/_emulator/faults', { nope: 1 })).status, 400)
  await hook('/_emulator/faults', { latencyMs: 0, sharedWithMeRetired: false })
  t.equal((await g('GET', '/me/drive/sharedWithMe')).body.value.length, 2)
})

t.test('stats count requests per route template, bytes, and reset', async (t) => {
  t.equal((await hook('/_emulator/stats/reset', {})).status, 204)
  await g('GET', '/me/drive/root/children')
  const docs = (await g('GET', '/me/drive/root:/Documents')).body
  await g('GET', `/drives/${docs.parentReference.driveId}/items/${docs.id}/children`)
  await g('GET', `/drives/${docs.parentReference.driveId}/items/${docs.id}/children`)
  await g('PUT', '/me/drive/root:/stats.bin:/content', Buffer.alloc(1000, 1))
  const s = (await (await hook('/_emulator/stats')).json()) as any
  t.equal(s.routes['GET /me/drive/root/children'], 1)
  t.equal(s.routes['GET /me/drive/root:/{path}'], 1)
  t.equal(s.routes['GET /drives/{id}/items/{id}/children'], 2)
  t.equal(s.routes['PUT /me/drive/root:/{path}:/content'], 1)
  t.equal(s.total, 5)
  t.ok(s.bytesIn >= 1000)
  t.ok(s.bytesOut > 1000)
  t.match(s, { throttled429: 0, unavailable503: 0, resets: 0 })
})

t.test('per-user throttling: 429 activityLimitReached with integer Retry-After, escalating', async (t) => {
  emu.setFaults({ rateLimit: 5 })
  t.teardown(() => emu.setFaults({ rateLimit: 0 }))
  emu.resetStats()
  const results = await Promise.all(Array.from({ length: 30 }, () => g('GET', '/me')))
  const throttled = results.filter((r) => r.status === 429)
  t.ok(throttled.length >= 1, `${throttled.length} of 30 throttled`)
  t.ok(results.some((x) => x.status === 200 && x.headers.get('ratelimit-limit') === '5' && /^\d+$/.test(x.headers.get('ratelimit-remaining') ?? '')), 'RateLimit-* headers near the budget')
  const r = throttled[0]!
  t.equal(r.body.error.code, 'activityLimitReached')
  t.equal(r.body.error.innerError.code, 'throttledRequest')
  t.match(r.headers.get('retry-after'), /^\d+$/)
  // continued pressure while throttled escalates the wait
  const first = Number(r.headers.get('retry-after'))
  const more = await g('GET', '/me')
  t.equal(more.status, 429, 'still throttled')
  t.ok(Number(more.headers.get('retry-after')) >= first, 'Retry-After does not shrink under pressure')
  // other users have their own budget
  const g2 = graphCaller(emu, await tokenFor(emu, 'user2'))
  t.equal((await g2('GET', '/me')).status, 200)
  t.ok(emu.stats.throttled429 >= throttled.length + 1)
})

t.test('failRate: 503 serviceNotAvailable with Retry-After', async (t) => {
  emu.setFaults({ failRate: 1 })
  const r = await g('GET', '/me/drive')
  emu.setFaults({ failRate: 0 })
  t.equal(r.status, 503)
  t.equal(r.body.error.code, 'serviceNotAvailable')
  t.match(r.headers.get('retry-after'), /^\d+$/)
  t.equal((await g('GET', '/me/drive')).status, 200)
  t.ok(emu.stats.unavailable503 >= 1)
})

t.test('serverErrorRate and freshSessionNotFoundRate', async (t) => {
  emu.setFaults({ serverErrorRate: 1 })
  const r = await g('GET', '/me/drive')
  emu.setFaults({ serverErrorRate: 0 })
  t.ok([500, 502, 504].includes(r.status), `got ${r.status}`)
  t.equal(r.body.error.code, 'generalException')
  emu.setFaults({ freshSessionNotFoundRate: 1 })
  t.teardown(() => emu.setFaults({ freshSessionNotFoundRate: 0 }))
  const s = await g('POST', '/me/drive/root:/flaky.bin:/createUploadSession', {})
  const put = () => emu.fetch(s.body.uploadUrl, { method: 'PUT', headers: { 'content-range': 'bytes 0-2/3' }, body: Buffer.from('abc') })
  const first = await put()
  t.equal(first.status, 404, 'fresh session: transient 404')
  await first.arrayBuffer()
  const second = await put()
  t.equal(second.status, 201, 'the retry succeeds')
  await second.arrayBuffer()
})

t.test('resetRate cuts downloads and uploads mid-body', async (t) => {
  const up = (await g('PUT', '/me/drive/root:/reset.bin:/content', Buffer.alloc(2_000_000, 7))).body
  const loc = (await g('GET', `/me/drive/items/${up.id}/content`)).headers.get('location')!
  emu.setFaults({ resetRate: 1 })
  t.teardown(() => emu.setFaults({ resetRate: 0 }))
  const before = emu.stats.resets
  const broken = await emu.fetch(loc).then((r) => r.arrayBuffer()).then((b) => b.byteLength, () => 'error')
  t.not(broken, 2_000_000, 'download did not complete')
  const upErr = await g('PUT', '/me/drive/root:/reset2.bin:/content', Buffer.alloc(2_000_000, 7)).then((r) => r.status, () => 'error')
  t.equal(upErr, 'error', 'upload connection cut')
  t.ok(emu.stats.resets >= before + 2)
  emu.setFaults({ resetRate: 0 })
  t.equal((await g('GET', '/me/drive/root:/reset2.bin')).status, 404, 'the broken upload left nothing')
  const ok = await emu.fetch(loc)
  t.equal((await ok.arrayBuffer()).byteLength, 2_000_000)
})

t.test('latency and bandwidth slow requests down', async (t) => {
  const up = (await g('PUT', '/me/drive/root:/slow.bin:/content', Buffer.alloc(200_000, 3))).body
  const loc = (await g('GET', `/me/drive/items/${up.id}/content`)).headers.get('location')!
  emu.setFaults({ bandwidth: 1_000_000 })
  const t0 = Date.now()
  const body = await (await emu.fetch(loc)).arrayBuffer()
  const ms = Date.now() - t0
  emu.setFaults({ bandwidth: 0 })
  t.equal(body.byteLength, 200_000)
  t.ok(ms >= 150, `200 kB at 1 MB/s took ${ms} ms`)
  emu.setFaults({ latencyMs: 200 })
  const t1 = Date.now()
  await g('GET', '/me')
  emu.setFaults({ latencyMs: 0 })
  t.ok(Date.now() - t1 >= 190, 'latency added')
})

t.test('corruptHashes reports a wrong quickXorHash', async (t) => {
  const good = (await g('GET', '/me/drive/root:/README.txt')).body.file.hashes.quickXorHash
  emu.setFaults({ corruptHashes: true })
  const bad = (await g('GET', '/me/drive/root:/README.txt')).body.file.hashes.quickXorHash
  emu.setFaults({ corruptHashes: false })
  t.not(bad, good)
  t.equal(Buffer.from(bad, 'base64').length, 20)
})

t.test('hashDelayMs: hashes appear some time after an upload', async (t) => {
  emu.setFaults({ hashDelayMs: 60_000 })
  const up = await g('PUT', '/me/drive/root:/later-hash.bin:/content', Buffer.from('abc'))
  emu.setFaults({ hashDelayMs: 0 })
  t.equal(up.status, 201)
  t.same(Object.keys(up.body.file), ['mimeType'], 'no hashes yet')
  const item = emu.store.get(up.body.id)!
  item.hashReadyAt = Date.now() - 1 // time passes
  t.equal((await g('GET', `/me/drive/items/${up.body.id}`)).body.file.hashes.quickXorHash, 'YRDDGAAAAAAAAAAAAwAAAAAAAAA=')
})

t.test('$batch: per-request status, dependsOn 424, limit 20', async (t) => {
  const r = await g('POST', '/$batch', {
    requests: [
      { id: '1', method: 'GET', url: '/me/drive/root:/README.txt' },
      { id: '2', method: 'GET', url: '/me/drive/root:/nope.txt' },
      { id: '3', method: 'GET', url: '/me', dependsOn: ['2'] },
      { id: '4', method: 'POST', url: '/me/drive/root/children', headers: { 'Content-Type': 'application/json' }, body: { name: 'FromBatch', folder: {} } },
    ],
  })
  t.equal(r.status, 200)
  const by = new Map(r.body.responses.map((x: any) => [x.id, x]))
  t.equal((by.get('1') as any).status, 200)
  t.equal((by.get('1') as any).body.name, 'README.txt')
  t.equal((by.get('2') as any).status, 404)
  t.equal((by.get('3') as any).status, 424)
  t.equal((by.get('4') as any).status, 201)
  const tooMany = await g('POST', '/$batch', { requests: Array.from({ length: 21 }, (_, i) => ({ id: String(i), method: 'GET', url: '/me' })) })
  t.equal(tooMany.status, 400)
  const dup = await g('POST', '/$batch', { requests: [{ id: '1', method: 'GET', url: '/me' }, { id: '1', method: 'GET', url: '/me' }] })
  t.equal(dup.status, 400)
  emu.setFaults({ rateLimit: 3 })
  const thr = await g('POST', '/$batch', { requests: Array.from({ length: 8 }, (_, i) => ({ id: String(i), method: 'GET', url: '/me' })) })
  emu.setFaults({ rateLimit: 0 })
  t.equal(thr.status, 200, 'outer status 200 even when sub-requests are throttled')
  const sub429 = thr.body.responses.filter((x: any) => x.status === 429)
  t.ok(sub429.length >= 1)
  t.match(sub429[0].headers['Retry-After'], /^\d+$/)
})

t.test('unknown hooks and paths', async (t) => {
  t.equal((await hook('/_emulator/nothing')).status, 404)
  const r = await emu.fetch('/no/such/thing')
  t.equal(r.status, 404)
  await r.arrayBuffer()
})
