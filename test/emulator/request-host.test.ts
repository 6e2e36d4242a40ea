// Links in Graph responses name the host the request was sent to, when the emulator
// answers for that name (docs/emulator/request-host.md): 127.0.0.1, localhost, and
// graph.microsoft.com behind a TLS proxy. Any other Host is not reflected. Download and
// upload URLs stay on the content host.
import t from 'tap'
import https from 'node:https'
import tls from 'node:tls'
import { readFileSync } from 'node:fs'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'

let emu: TestEmulator
let token: string
let ca: string

t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0 })
  token = await tokenFor(emu, 'user1')
  ca = readFileSync(emu.info.ca, 'utf8')
  await emu.store.createMany('user1', 'Many', 5)
  await emu.store.writeFile('user1', 'f.txt', 'f')
})
t.teardown(() => emu.close())

/** A Graph request to the emulator's socket with a chosen Host header (as a proxy sends it). */
function viaHost(host: string, method: string, path: string, body?: unknown): Promise<{ status: number; headers: Record<string, unknown>; body: any }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    const req = https.request({
      host: '127.0.0.1', port: emu.port, method, path, ca,
      // the proxy's leg: the socket is the emulator's, whatever the Host header says
      checkServerIdentity: (_name, cert) => tls.checkServerIdentity('127.0.0.1', cert),
      headers: { host, authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        resolve({ status: res.statusCode!, headers: res.headers, body: text ? JSON.parse(text) : undefined })
      })
    })
    req.on('error', reject)
    req.end(payload)
  })
}

const ownOrigin = () => new URL(emu.info.graph).origin

t.test('graph.microsoft.com through a proxy: context, nextLink, deltaLink, 410 Location', async (t) => {
  const kids = await viaHost('graph.microsoft.com', 'GET', '/v1.0/me/drive/root:/Many:/children?$top=2')
  t.equal(kids.status, 200)
  t.match(kids.body['@odata.context'], /^https:\/\/graph\.microsoft\.com\/v1\.0\/\$metadata#/)
  t.match(kids.body['@odata.nextLink'], /^https:\/\/graph\.microsoft\.com\/v1\.0\/drives\/.+\/children\?/)
  const next = new URL(kids.body['@odata.nextLink'])
  const page2 = await viaHost('graph.microsoft.com', 'GET', next.pathname + next.search)
  t.equal(page2.status, 200, 'the nextLink works through the same host')
  const item = await viaHost('graph.microsoft.com:443', 'GET', '/v1.0/me/drive/root:/f.txt')
  t.match(item.body['@odata.context'], /^https:\/\/graph\.microsoft\.com\/v1\.0\//, 'the default port is not written')
  t.equal(new URL(item.body['@microsoft.graph.downloadUrl']).hostname, 'localhost', 'downloads stay on the content host')
  const me = await viaHost('graph.microsoft.com', 'GET', '/v1.0/me')
  t.match(me.body['@odata.context'], /^https:\/\/graph\.microsoft\.com\/v1\.0\//)
  const delta = await viaHost('graph.microsoft.com', 'GET', '/v1.0/me/drive/root/delta?token=latest')
  t.match(delta.body['@odata.deltaLink'], /^https:\/\/graph\.microsoft\.com\/v1\.0\/drives\/.+\/root\/delta\?token=/)
  const stale = await viaHost('graph.microsoft.com', 'GET', '/v1.0/me/drive/root/delta?token=not-a-token')
  t.equal(stale.status, 410)
  t.match(stale.headers.location, /^https:\/\/graph\.microsoft\.com\/v1\.0\//, 'the resync Location too')
  const batch = await viaHost('graph.microsoft.com', 'POST', '/v1.0/$batch', { requests: [{ id: '1', method: 'GET', url: '/me/drive/root:/Many:/children?$top=1' }] })
  t.match(batch.body.responses[0].body['@odata.nextLink'], /^https:\/\/graph\.microsoft\.com\/v1\.0\//, 'and inside $batch')
})

t.test('localhost:PORT instead of 127.0.0.1:PORT', async (t) => {
  const base = `https://localhost:${emu.port}`
  const r = await emu.fetch(`${base}/v1.0/me/drive/root/delta?$top=2`, { headers: { authorization: `Bearer ${token}` } })
  const body = (await r.json()) as Record<string, string>
  t.equal(r.status, 200)
  t.ok(body['@odata.context']!.startsWith(`${base}/v1.0/`), body['@odata.context'])
  t.ok(body['@odata.nextLink']!.startsWith(`${base}/v1.0/`), body['@odata.nextLink'])
  const own = await viaHost(`127.0.0.1:${emu.port}`, 'GET', '/v1.0/me/drive/root/delta?token=latest')
  t.ok(own.body['@odata.deltaLink'].startsWith(`${ownOrigin()}/v1.0/`), 'and the own address as before')
})

t.test('a Host the emulator does not answer for is not reflected', async (t) => {
  for (const host of ['evil.example.org', 'graph.microsoft.com.evil.example', 'graph.microsoft.com@evil.example', 'a b', `localhost:${emu.port}/x`]) {
    const r = await viaHost(host, 'GET', '/v1.0/me/drive/root:/Many:/children?$top=2')
    t.equal(r.status, 200, host)
    t.ok(r.body['@odata.nextLink'].startsWith(`${ownOrigin()}/v1.0/`), `${host}: links name the emulator's own address`)
    t.ok(r.body['@odata.context'].startsWith(`${ownOrigin()}/v1.0/`))
  }
})
