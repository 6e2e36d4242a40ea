// The middleware chain against a scripted local HTTP server (no emulator needed):
// retry on 429/503/5xx/resets, one token refresh on 401, no bearer to foreign URLs.
import t from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Agent } from 'undici'
import { GraphTransport } from '../../src/graph/transport.js'
import { GraphError } from '../../src/graph/errors.js'
import { BODY_PIECE } from '../../src/graph/middleware.js'

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void

async function scripted(t: { teardown(f: () => Promise<void>): void }, handler: Handler) {
  const seen: { method: string; url: string; auth: string | undefined; ct: string | undefined; body: Buffer }[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, ct: req.headers['content-type'], body: Buffer.concat(chunks) })
      handler(req, res, seen.length)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) }))
  const port = (server.address() as AddressInfo).port
  return { base: `http://127.0.0.1:${port}/v1.0`, origin: `http://127.0.0.1:${port}`, seen }
}

function tokens() {
  let n = 0
  const calls: boolean[] = []
  return {
    calls,
    provider: {
      async getAccessToken(o?: { forceRefresh?: boolean }) {
        calls.push(!!o?.forceRefresh)
        if (o?.forceRefresh) n++
        return `tok${n}`
      },
    },
  }
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(JSON.stringify(body))
}

const fast = { baseDelayMs: 1, maxDelayMs: 5 }
const fail = (p: Promise<unknown>): Promise<GraphError> =>
  p.then(() => { throw new Error('expected a failure') }, (e: unknown) => e as GraphError)

t.test('429 then 503 with Retry-After, then success; the shared limiter is told', async (t) => {
  const s = await scripted(t, (_q, res, n) => {
    if (n === 1) return json(res, 429, { error: { code: 'activityLimitReached', innerError: { code: 'throttledRequest' } } }, { 'retry-after': '0' })
    if (n === 2) return json(res, 503, { error: { code: 'serviceNotAvailable' } }, { 'retry-after': '0' })
    json(res, 200, { id: 'd1', driveType: 'business' })
  })
  const tk = tokens()
  const tr = new GraphTransport({ baseUrl: s.base, tokenProvider: tk.provider, retry: fast })
  const drive = await tr.json<{ id: string }>('GET', '/me/drive')
  t.equal(drive.id, 'd1')
  t.equal(s.seen.length, 3)
  t.equal(tr.counters.retries, 2)
  t.equal(tr.counters.throttled, 2)
  t.equal(tr.limiter.stats().throttleEvents, 2, 'the whole user backs off')
  t.equal(s.seen[0]!.auth, 'Bearer tok0')
  t.equal(s.seen[0]!.url, '/v1.0/me/drive')
})

t.test('401 gets one silent refresh and a retry; a second 401 is an error', async (t) => {
  const s = await scripted(t, (q, res) => {
    if (q.headers.authorization === 'Bearer tok1') return json(res, 200, { id: 'x' })
    json(res, 401, { error: { code: 'InvalidAuthenticationToken', message: 'Access token has expired' } })
  })
  const tk = tokens()
  const tr = new GraphTransport({ baseUrl: s.base, tokenProvider: tk.provider, retry: fast })
  t.same(await tr.json('GET', '/me'), { id: 'x' })
  t.same(tk.calls, [false, true])
  t.equal(tr.counters.tokenRefreshes, 1)

  const s2 = await scripted(t, (_q, res) => json(res, 401, { error: { code: 'InvalidAuthenticationToken' } }))
  const tr2 = new GraphTransport({ baseUrl: s2.base, tokenProvider: tokens().provider, retry: fast })
  const err = await fail(tr2.json('GET', '/me'))
  t.type(err, GraphError)
  t.equal(err.classify(), 'unauthenticated')
  t.equal(s2.seen.length, 2)
})

t.test('500 retried for GET, not for POST; resets retried only when idempotent', async (t) => {
  let flakyOnce = false
  const s = await scripted(t, (q, res, n) => {
    if (q.url === '/v1.0/reset' && n <= 2) return q.socket.destroy()
    if (q.method === 'POST') return json(res, 500, { error: { code: 'generalException' } })
    if (q.url === '/v1.0/flaky2' && !flakyOnce) {
      flakyOnce = true
      return json(res, 500, { error: { code: 'generalException' } })
    }
    json(res, 200, { ok: n })
  })
  const tr = new GraphTransport({ baseUrl: s.base, tokenProvider: tokens().provider, retry: fast })
  const r = await tr.json<{ ok: number }>('GET', '/reset')
  t.equal(r.ok, 3, 'two resets then success')
  const before = s.seen.length
  const e = await fail(tr.json('POST', '/flaky', { body: { a: 1 } }))
  t.equal(e.status, 500)
  t.equal(s.seen.length, before + 1, 'POST not retried on 500')
  const g = await tr.json<{ ok: number }>('GET', '/flaky2')
  t.equal(g.ok, before + 3, 'GET retried once after a 500')
})

t.test('exhausted retries are marked; reset on POST is not resent', async (t) => {
  const s = await scripted(t, (q, res) => {
    if (q.url === '/v1.0/post') return q.socket.destroy()
    json(res, 503, { error: { code: 'serviceNotAvailable' } }, { 'retry-after': '0' })
  })
  const tr = new GraphTransport({ baseUrl: s.base, tokenProvider: tokens().provider, retry: { ...fast, maxThrottledAttempts: 3 } })
  const e = await fail(tr.json('GET', '/always503'))
  t.equal(e.status, 503)
  t.equal(e.exhausted, true)
  t.equal(e.attempts, 3)
  const n = s.seen.length
  const p = await fail(tr.json('POST', '/post', { body: {} }))
  t.type(p, GraphError)
  t.equal(p.status, 0)
  t.equal(p.classify(), 'network')
  t.equal(s.seen.length, n + 1, 'not resent')
})

t.test('no bearer to URLs outside the Graph base; bytes keep their content type', async (t) => {
  const s = await scripted(t, (_q, res) => json(res, 200, {}))
  const tr = new GraphTransport({ baseUrl: s.base, tokenProvider: tokens().provider, retry: fast })
  await tr.sendUrl('PUT', `${s.origin}/upload/abc?sig=secret`, { auth: false, body: Buffer.from('hello'), headers: { 'Content-Range': 'bytes 0-4/5' } })
  await tr.sendUrl('GET', `${s.origin}/elsewhere`, {})
  await tr.send('PUT', '/drives/d/items/p:/a.txt:/content', { body: Buffer.from('xyz') })
  t.equal(s.seen[0]!.auth, undefined, 'upload URL: no Authorization')
  t.equal(s.seen[0]!.ct, 'application/octet-stream')
  t.equal(s.seen[0]!.body.toString(), 'hello')
  t.equal(s.seen[1]!.auth, undefined, 'foreign URL: no Authorization even if auth allowed')
  t.equal(s.seen[2]!.auth, 'Bearer tok0')
  t.equal(s.seen[2]!.ct, 'application/octet-stream', 'Buffer PUT through the SDK is not labelled JSON')
  t.equal(s.seen[2]!.body.toString(), 'xyz')
})

t.test('a retry deadline stops retrying before a long Retry-After', async (t) => {
  const s = await scripted(t, (_q, res) => json(res, 429, { error: { code: 'activityLimitReached' } }, { 'retry-after': '30' }))
  const tr = new GraphTransport({ baseUrl: s.base, tokenProvider: tokens().provider, retry: fast, deadlineMs: 12_000 })
  const e = await fail(tr.json('GET', '/me/drive'))
  t.equal(e.status, 429)
  t.equal(e.exhausted, true, 'reported as exhausted at once')
  t.equal(s.seen.length, 1, 'no retry: waiting 30 s would pass the deadline')
  t.equal(e.retryAfterMs, 30_000)
})

t.test('content URL transfers skip the per-second API budget; Graph calls do not', async (t) => {
  const s = await scripted(t, (_q, res) => json(res, 200, { ok: true }))
  const tk = tokens()
  const tr = new GraphTransport({ baseUrl: s.base, tokenProvider: tk.provider, rateLimit: 1, retry: fast })
  // Ten transfers on a pre-authenticated URL with a budget of 1/s: none takes a token.
  for (let i = 0; i < 10; i++) {
    const r = await tr.sendUrl('PUT', `${s.origin}/upload/session1`, { auth: false, content: true, raw: true, body: Buffer.from('x'), label: 'PUT {uploadUrl}' })
    await r.res.arrayBuffer()
  }
  t.equal(tr.limiter.stats().granted, 0, 'content transfers took no API token')
  await tr.json('GET', '/me/drive')
  t.equal(tr.limiter.stats().granted, 1, 'a Graph API call takes one')
  t.equal(s.seen.length, 11)
  t.ok(s.seen.slice(0, 10).every((r) => r.auth === undefined), 'no bearer on the content URL')
})

t.test('a large transfer body goes to the dispatcher in pieces, with its length, and arrives whole', async (t) => {
  const s = await scripted(t, (_q, res) => json(res, 202, {}))
  const agent = new Agent()
  t.teardown(() => agent.close())
  // What the dispatcher was handed: one Buffer (written whole) or pieces.
  const given: { whole: boolean; pieces: number[]; length: string | undefined }[] = []
  const spy = {
    request(o: Parameters<Agent['request']>[0]) {
      const h = o.headers as Record<string, string>
      const g = { whole: o.body instanceof Uint8Array, pieces: [] as number[], length: Object.entries(h).find(([k]) => k.toLowerCase() === 'content-length')?.[1] }
      given.push(g)
      const inner = o.body as Iterable<Buffer>
      const counted = function* () {
        for (const p of inner) {
          g.pieces.push(p.length)
          yield p
        }
      }
      return agent.request(g.whole ? o : { ...o, body: counted() as never })
    },
  }
  const tr = new GraphTransport({ baseUrl: s.base, tokenProvider: tokens().provider, retry: fast, dispatcher: spy as unknown as Agent })
  const body = Buffer.alloc(5 * BODY_PIECE + 123)
  for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 11)) & 0xff
  const r = await tr.sendUrl('PUT', `${s.origin}/upload/s`, { auth: false, content: true, raw: true, body, headers: { 'Content-Range': `bytes 0-${body.length - 1}/${body.length}` } })
  await r.res.arrayBuffer()
  t.equal(given.length, 1)
  t.notOk(given[0]!.whole, 'not handed over as one buffer')
  const pieces = given[0]!.pieces
  t.ok(pieces.length >= 6 && pieces.every((n) => n <= BODY_PIECE), `${pieces.length} pieces of at most ${BODY_PIECE} bytes`)
  t.equal(given[0]!.length, String(body.length), 'content-length given')
  t.ok(s.seen[0]!.body.equals(body), 'the service got every byte in order')
  // A small body is still handed over whole.
  await (await tr.sendUrl('PUT', `${s.origin}/upload/s`, { auth: false, content: true, raw: true, body: Buffer.from('tiny') })).res.arrayBuffer()
  t.ok(given[1]!.whole)
  t.equal(s.seen[1]!.body.toString(), 'tiny')
})
