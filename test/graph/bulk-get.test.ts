// Bulk downloads on a connection of their own (src/graph/bulk-get.ts): the request
// it writes, every way an answer's body may be framed, and every way the answer
// may fail, against a server that writes exact bytes; then over TLS against the
// emulator, and the routing that sends only long content GETs this way.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import type { Readable } from 'node:stream'
import { bulkGet, type BodySink } from '../../src/graph/bulk-get.js'
import { GraphTransport } from '../../src/graph/transport.js'
import { connectOptionsOf, createDispatcher, type ConnectOptions } from '../../src/common/index.js'
import { startTestEmulator, tokenFor } from '../support/emulator.js'
import { createGraphDriveClient } from '../../src/graph/index.js'

const plain: ConnectOptions = { connectTimeoutMs: 5_000, headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000 }

interface RawServer {
  url: string
  /** The raw bytes of every request received, by connection. */
  requests: string[]
  close(): Promise<void>
}

/** A server that answers each connection with `answer` (it writes whatever it likes, in pieces). */
async function rawServer(t: any, answer: (sock: net.Socket, request: string) => unknown): Promise<RawServer> {
  const requests: string[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((sock) => {
    sockets.add(sock)
    sock.on('close', () => sockets.delete(sock))
    sock.on('error', () => {})
    let got = ''
    let answered = false
    sock.on('data', (d) => {
      got += d.toString('latin1')
      if (!answered && got.includes('\r\n\r\n')) {
        answered = true
        requests.push(got)
        void answer(sock, got)
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as net.AddressInfo).port
  const s: RawServer = {
    url: `http://127.0.0.1:${port}/_download/abc?tempauth=SECRET`,
    requests,
    close: async () => {
      for (const x of sockets) x.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
  t.teardown(() => s.close())
  return s
}

async function readAll(body: Readable): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of body) parts.push(c as Buffer)
  return Buffer.concat(parts)
}

/** Write `bytes` in pieces of `n`, each in a turn of its own (so parsers see every split). */
async function dribble(sock: net.Socket, bytes: Buffer, n: number): Promise<void> {
  for (let i = 0; i < bytes.length; i += n) {
    sock.write(bytes.subarray(i, i + n))
    await new Promise((r) => setImmediate(r))
  }
}

const payload = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251))

t.test('the request: GET of the path and query, Host, the caller\'s headers, Connection: close', async (t) => {
  const srv = await rawServer(t, (s) => s.end(`HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello`))
  const a = await bulkGet({ url: new URL(srv.url), headers: { Range: 'bytes=0-', 'User-Agent': 'odfs-test', Connection: 'keep-alive' }, connect: plain })
  t.equal(a.status, 200)
  t.equal((await readAll(a.body!)).toString(), 'hello')
  const req = srv.requests[0]!
  const host = new URL(srv.url).host
  t.ok(req.startsWith('GET /_download/abc?tempauth=SECRET HTTP/1.1\r\n'), 'request line')
  t.match(req, `\r\nHost: ${host}\r\n`)
  t.match(req, '\r\nRange: bytes=0-\r\n')
  t.match(req, '\r\nUser-Agent: odfs-test\r\n')
  t.equal(req.match(/connection:/gi)?.length, 1, 'one Connection header, ours')
  t.match(req, '\r\nConnection: close\r\n\r\n')
})

t.test('Content-Length: exactly that many bytes, whatever the server sends after them', async (t) => {
  const srv = await rawServer(t, async (s) => {
    await dribble(s, Buffer.concat([Buffer.from(`HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4999/9000\r\nContent-Length: ${payload.length}\r\n\r\n`), payload, Buffer.from('GARBAGE')]), 333)
    s.end()
  })
  const a = await bulkGet({ url: new URL(srv.url), headers: {}, connect: plain })
  t.equal(a.status, 206)
  t.equal(a.statusText, 'Partial Content')
  t.same(a.headers.find(([k]) => k === 'content-range'), ['content-range', 'bytes 0-4999/9000'], 'header names in lower case')
  t.ok((await readAll(a.body!)).equals(payload), 'the body, no more')
})

t.test('chunked: sizes in hex, extensions and trailers dropped, split anywhere', async (t) => {
  const wire = Buffer.concat([
    Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'),
    Buffer.from('7d0;name=value\r\n'), payload.subarray(0, 2000), Buffer.from('\r\n'),
    Buffer.from('BB8\r\n'), payload.subarray(2000), Buffer.from('\r\n'),
    Buffer.from('0\r\nX-Trailer: yes\r\n\r\n'),
  ])
  for (const piece of [1, 7, 4096]) {
    const srv = await rawServer(t, async (s) => {
      await dribble(s, wire, piece)
      // The connection stays open: the body must end at the last chunk, not at the close.
    })
    const a = await bulkGet({ url: new URL(srv.url), headers: {}, connect: plain })
    t.ok((await readAll(a.body!)).equals(payload), `pieces of ${piece} bytes`)
  }
})

t.test('no length and no chunking: the body ends with the connection', async (t) => {
  const srv = await rawServer(t, async (s) => {
    await dribble(s, Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), payload]), 1000)
    s.end()
  })
  const a = await bulkGet({ url: new URL(srv.url), headers: {}, connect: plain })
  t.ok((await readAll(a.body!)).equals(payload))
})

t.test('interim 1xx answers are skipped; 204 and Content-Length 0 have no body', async (t) => {
  const srv = await rawServer(t, (s) => s.end('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'))
  const a = await bulkGet({ url: new URL(srv.url), headers: {}, connect: plain })
  t.equal(a.status, 200)
  t.equal((await readAll(a.body!)).toString(), 'ok')
  for (const head of ['HTTP/1.1 204 No Content\r\n\r\n', 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n']) {
    const s2 = await rawServer(t, (s) => s.write(head))
    const b = await bulkGet({ url: new URL(s2.url), headers: {}, connect: plain })
    t.equal(b.body, null, head.split('\r\n')[0]!)
  }
})

t.test('a body cut short is an error of the body, with the code undici gives it', async (t) => {
  for (const [name, wire] of [
    ['Content-Length', Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n'), payload.subarray(0, 2500)])],
    ['chunked', Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n'), payload.subarray(0, 2500)])],
  ] as const) {
    const srv = await rawServer(t, (s) => s.end(wire))
    const a = await bulkGet({ url: new URL(srv.url), headers: {}, connect: plain })
    const got: Buffer[] = []
    const err = await new Promise<Error>((resolve) => {
      a.body!.on('data', (c: Buffer) => got.push(c))
      a.body!.on('error', resolve)
      a.body!.on('end', () => resolve(new Error('ended normally')))
    })
    t.equal((err as NodeJS.ErrnoException).code, 'UND_ERR_SOCKET', `${name}: cut short`)
    t.ok(Buffer.concat(got).equals(payload.subarray(0, 2500)), `${name}: the bytes before the cut were delivered`)
  }
})

t.test('failures before the head reject the request', async (t) => {
  const cases: [string, (s: net.Socket) => void, RegExp | string][] = [
    ['closed before answering', (s) => s.end(), 'UND_ERR_SOCKET'],
    ['not HTTP', (s) => s.end('SSH-2.0-OpenSSH\r\n\r\n'), 'HPE_INVALID_CONSTANT'],
    ['a folded header', (s) => s.end('HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n'), 'HPE_INVALID_CONSTANT'],
    ['two lengths', (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'), 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    ['a compressed body', (s) => s.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'), 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    ['an endless head', (s) => s.write(`HTTP/1.1 200 OK\r\n${'X-Pad: '.padEnd(70_000, 'p')}`), 'UND_ERR_HEADERS_OVERFLOW'],
  ]
  for (const [name, answer, code] of cases) {
    const srv = await rawServer(t, answer)
    const err = await bulkGet({ url: new URL(srv.url), headers: {}, connect: plain }).then(() => undefined, (e: unknown) => e)
    t.equal((err as NodeJS.ErrnoException | undefined)?.code, code, name)
  }
  const refused = await rawServer(t, () => {})
  await refused.close()
  const e = await bulkGet({ url: new URL(refused.url), headers: {}, connect: plain }).catch((x: unknown) => x)
  t.equal((e as NodeJS.ErrnoException).code, 'ECONNREFUSED', 'a refused connection keeps its code (the service is unreachable)')
})

t.test('a header that would split the request is refused before anything is sent', async (t) => {
  const srv = await rawServer(t, (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'))
  for (const headers of [{ Range: 'bytes=0-\r\nX-Evil: 1' }, { 'Bad Name': 'x' }] as Record<string, string>[]) {
    await t.rejects(bulkGet({ url: new URL(srv.url), headers, connect: plain }), TypeError)
  }
  t.same(srv.requests, [], 'no request reached the server')
})

t.test('the signal aborts the wait for the head and the body', async (t) => {
  const silent = await rawServer(t, () => {})
  const ac = new AbortController()
  const p = bulkGet({ url: new URL(silent.url), headers: {}, connect: plain, signal: ac.signal })
  while (silent.requests.length === 0) await new Promise((r) => setTimeout(r, 5))
  ac.abort(new Error('stop'))
  await t.rejects(p, { message: 'stop' })
  const slow = await rawServer(t, (s) => s.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n'), payload.subarray(0, 100)])))
  const ac2 = new AbortController()
  const a = await bulkGet({ url: new URL(slow.url), headers: {}, connect: plain, signal: ac2.signal })
  const ended = new Promise<unknown>((resolve) => a.body!.on('error', resolve).on('end', () => resolve('end')))
  a.body!.resume()
  ac2.abort(new Error('stop body'))
  t.match(await ended, { message: 'stop body' })
})

t.test('timeouts: no head, an idle body; a reader holding the body back is not idle', async (t) => {
  const short: ConnectOptions = { connectTimeoutMs: 2_000, headersTimeoutMs: 150, bodyTimeoutMs: 150 }
  const silent = await rawServer(t, () => {})
  await t.rejects(bulkGet({ url: new URL(silent.url), headers: {}, connect: short }), { code: 'UND_ERR_HEADERS_TIMEOUT' })
  const stalls = await rawServer(t, (s) => s.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n'), payload.subarray(0, 100)])))
  const a = await bulkGet({ url: new URL(stalls.url), headers: {}, connect: short })
  a.body!.resume()
  t.match(await new Promise((resolve) => a.body!.on('error', resolve)), { code: 'UND_ERR_BODY_TIMEOUT' })

  // 2 MiB (more than the body's buffer and the socket's), then the reader waits 3 idle periods.
  const big = Buffer.alloc(2 << 20, 1)
  const held = await rawServer(t, (s) => s.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n`), big])))
  const b = await bulkGet({ url: new URL(held.url), headers: {}, connect: short })
  await new Promise((r) => setTimeout(r, 450))
  t.equal((await readAll(b.body!)).length, big.length, 'read whole after being held back')
})

t.test('a TLS handshake that never completes times out as a connect timeout', async (t) => {
  const mute = await rawServer(t, () => {})
  const url = new URL(mute.url.replace('http:', 'https:'))
  await t.rejects(bulkGet({ url, headers: {}, connect: { ...plain, connectTimeoutMs: 150 } }), { code: 'UND_ERR_CONNECT_TIMEOUT' })
})

t.test('over TLS to the emulator: its CA from ca_file is trusted, an unknown one is not', async (t) => {
  const emu = await startTestEmulator({ seed: 'empty' })
  t.teardown(() => emu.close())
  const token = await tokenFor(emu, 'user1')
  const c = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher })
  const drive = await c.getMyDrive()
  const data = Buffer.alloc(6 << 20, 3)
  const up = await c.upload({ driveId: drive.id, itemId: 'root' }, 'bulk.bin', { size: data.length, read: async (o, n) => data.subarray(o, o + n) })
  const ref = { driveId: drive.id, itemId: up.item.id }
  const meta = await emu.fetch(`/v1.0/drives/${drive.id}/items/${up.item.id}?$select=id,@microsoft.graph.downloadUrl`, { headers: { Authorization: `Bearer ${token}` } })
  const url = ((await meta.json()) as Record<string, string>)['@microsoft.graph.downloadUrl']!
  const connect = connectOptionsOf(emu.dispatcher)
  t.ok(connect?.secureContext, 'the dispatcher made by createDispatcher tells how it connects')
  const a = await bulkGet({ url: new URL(url), headers: {}, connect: connect! })
  t.ok((await readAll(a.body!)).equals(data))
  await t.rejects(bulkGet({ url: new URL(url), headers: {}, connect: plain }), { code: /CERT|SIGNATURE|ISSUER/ }, 'without the CA the certificate is refused')

  // The whole-file download goes this way and verifies its hash.
  const got: Buffer[] = []
  const r = await c.download(ref, (chunk) => void got.push(Buffer.from(chunk)))
  t.equal(r.verified, true)
  t.ok(Buffer.concat(got).equals(data))
})

t.test('routing: only bulk GETs through a known dispatcher take their own connection', async (t) => {
  const srv = await rawServer(t, (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'))
  const known = await createDispatcher()
  t.teardown(() => known.close())
  const undici = await import('undici')
  const other = new undici.Agent()
  t.teardown(() => other.close())
  const send = async (dispatcher: typeof known, bulk: boolean) => {
    const tr = new GraphTransport({ baseUrl: 'https://graph.invalid/v1.0', tokenProvider: { getAccessToken: async () => 'x' }, dispatcher })
    const r = await tr.sendUrl('GET', srv.url, { auth: false, raw: true, stream: true, content: true, bulk })
    t.equal(await r.res.text(), 'ok')
    return srv.requests.at(-1)!
  }
  t.match(await send(known, true), /\r\nConnection: close\r\n/, 'bulk, known dispatcher: own connection')
  t.notMatch(await send(known, false), /\r\nConnection: close\r\n/, 'not bulk: the pooled dispatcher')
  t.notMatch(await send(other, true), /\r\nConnection: close\r\n/, 'a dispatcher whose connect options are unknown: itself')
})

/**
 * A sink over one arena: each space() lends the arena from where the body has
 * reached (at most `lend` bytes), so the body, if placed where it was lent,
 * ends up whole and in order in the arena.
 */
function arenaSink(size: number, lend: number, filled: (n: number) => Promise<void> | void = () => {}) {
  const arena = Buffer.alloc(size)
  let at = 0
  let lentAt = -1
  const log = { spaces: 0, fills: 0 }
  const sink: BodySink = {
    space: () => {
      log.spaces++
      lentAt = at
      return arena.subarray(at, Math.min(size, at + lend))
    },
    filled: (n) => {
      log.fills++
      at = lentAt + n
      return filled(n)
    },
  }
  return { sink, log, got: () => arena.subarray(0, at) }
}

const framings: [string, Buffer][] = [
  ['Content-Length (and garbage after it)', Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${payload.length}\r\n\r\n`), payload, Buffer.from('GARBAGE')])],
  ['chunked', Buffer.concat([
    Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'),
    Buffer.from('7d0;name=value\r\n'), payload.subarray(0, 2000), Buffer.from('\r\n'),
    Buffer.from('1\r\n'), payload.subarray(2000, 2001), Buffer.from('\r\n'),
    Buffer.from('BB7\r\n'), payload.subarray(2001), Buffer.from('\r\n'),
    Buffer.from('0\r\nX-Trailer: yes\r\n\r\n'),
  ])],
  ['the end of the connection', Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), payload])],
]

t.test('readInto: every framing, split anywhere, lands in the memory the sink lends', async (t) => {
  for (const [name, wire] of framings) {
    for (const piece of [1, 7, 4096]) {
      for (const lend of [1, 333, 1 << 20]) {
        const srv = await rawServer(t, async (s) => {
          await dribble(s, wire, piece)
          if (name === 'the end of the connection') s.end()
        })
        const a = await bulkGet({ url: new URL(srv.url), headers: {}, connect: plain })
        const { sink, got } = arenaSink(payload.length + 10, lend)
        await a.body!.readInto(sink)
        t.ok(got().equals(payload), `${name}, pieces of ${piece}, ${lend} bytes lent at a time`)
      }
    }
  }
})

t.test('readInto: a pending filled() holds the connection; the body resolves after the last one settles', async (t) => {
  const short: ConnectOptions = { connectTimeoutMs: 2_000, headersTimeoutMs: 1_000, bodyTimeoutMs: 150 }
  const big = Buffer.alloc(2 << 20, 7)
  const srv = await rawServer(t, (s) => s.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n`), big])))
  const a = await bulkGet({ url: new URL(srv.url), headers: {}, connect: short })
  const order: string[] = []
  let slow = 0
  const { sink, got, log } = arenaSink(big.length, 256 * 1024, async (n) => {
    // The first write takes three idle periods: a busy disk is not an idle connection.
    await new Promise((r) => setTimeout(r, slow++ === 0 ? 450 : 1))
    order.push(`filled ${n}`)
  })
  await a.body!.readInto(sink)
  order.push('resolved')
  t.ok(got().equals(big), 'every byte, in order')
  t.equal(order.at(-1), 'resolved', 'resolved after every filled() settled')
  t.equal(order.length, log.fills + 1)
})

t.test('readInto: a body cut short rejects with undici\'s code, after what came before it was placed', async (t) => {
  for (const [name, wire] of [
    ['Content-Length', Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n'), payload.subarray(0, 2500)])],
    ['chunked', Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n'), payload.subarray(0, 2500)])],
  ] as const) {
    const srv = await rawServer(t, async (s) => {
      await dribble(s, wire, 1000)
      s.end()
    })
    const a = await bulkGet({ url: new URL(srv.url), headers: {}, connect: plain })
    let pending = 0
    const { sink, got } = arenaSink(payload.length, 700, async () => {
      pending++
      await new Promise((r) => setTimeout(r, 20))
      pending--
    })
    const err = await a.body!.readInto(sink).then(() => undefined, (e: unknown) => e)
    t.equal((err as NodeJS.ErrnoException | undefined)?.code, 'UND_ERR_SOCKET', `${name}: cut short`)
    t.equal(pending, 0, `${name}: rejected only once the pending filled() had settled`)
    t.ok(got().equals(payload.subarray(0, 2500)), `${name}: the bytes before the cut were placed`)
  }
})

t.test('readInto: a sink that fails (a full disk) fails the body with its error and closes the connection', async (t) => {
  let closed: Promise<unknown> | undefined
  const srv = await rawServer(t, (s) => {
    closed = once(s, 'close')
    s.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${10 * payload.length}\r\n\r\n`), payload]))
  })
  for (const how of ['throws', 'rejects'] as const) {
    const a = await bulkGet({ url: new URL(srv.url), headers: {}, connect: plain })
    const enospc = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })
    const { sink } = arenaSink(payload.length * 10, 1000, (): void | Promise<void> => {
      if (how === 'throws') throw enospc
      return Promise.reject(enospc)
    })
    await t.rejects(a.body!.readInto(sink), { code: 'ENOSPC' }, how)
    await closed
    t.pass(`${how}: the connection was closed`)
  }
})

t.test('readInto: a sink that fails once a pending filled() has settled fails the body, whether or not all of it has arrived', async (t) => {
  for (const size of [payload.length, 10 * payload.length]) {
    const body = Buffer.concat(Array.from({ length: size / payload.length }, () => payload))
    const srv = await rawServer(t, (s) => s.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`), body])))
    const a = await bulkGet({ url: new URL(srv.url), headers: {}, connect: plain })
    // A sink with asynchronous writes: the first filled() is pending a while; by then a
    // write of its own has failed, and its next space() says so (as HandleSink does).
    const broken = Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })
    let fills = 0
    const sink: BodySink = {
      space: () => {
        if (fills > 0) throw broken
        return Buffer.alloc(1000)
      },
      filled: () => {
        fills++
        return new Promise((r) => setTimeout(r, 50))
      },
    }
    await t.rejects(a.body!.readInto(sink), { code: 'ENOSPC' }, `${size} bytes: rejects, does not stall`)
  }
})

t.test('readInto: once only, before the body is read; the signal aborts it', async (t) => {
  const srv = await rawServer(t, (s) => s.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 50000\r\n\r\n'), payload])))
  const a = await bulkGet({ url: new URL(srv.url), headers: {}, connect: plain })
  a.body!.resume()
  await t.rejects(a.body!.readInto(arenaSink(10, 10).sink), /already being read/)
  a.body!.destroy()
  const ac = new AbortController()
  const b = await bulkGet({ url: new URL(srv.url), headers: {}, connect: plain, signal: ac.signal })
  const { sink, got } = arenaSink(50_000, 4096)
  const p = b.body!.readInto(sink)
  while (got().length < payload.length) await new Promise((r) => setTimeout(r, 5))
  ac.abort(new Error('stop'))
  await t.rejects(p, { message: 'stop' })
})

t.test('readInto: an idle body times out', async (t) => {
  const short: ConnectOptions = { connectTimeoutMs: 2_000, headersTimeoutMs: 1_000, bodyTimeoutMs: 150 }
  const srv = await rawServer(t, (s) => s.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n'), payload.subarray(0, 100)])))
  const a = await bulkGet({ url: new URL(srv.url), headers: {}, connect: short })
  await t.rejects(a.body!.readInto(arenaSink(5000, 5000).sink), { code: 'UND_ERR_BODY_TIMEOUT' })
})
