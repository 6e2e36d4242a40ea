/**
 * The emulator: ONE HTTPS server on 127.0.0.1 serving the identity platform
 * (delegated to IdentityPlatform first) and Microsoft Graph v1.0 drive endpoints
 * under /v1.0, plus pre-authenticated download/upload URLs, copy monitors and
 * test hooks under /_emulator/. Faults (latency, bandwidth, 503s, connection
 * resets, per-user throttling) can be set at start and changed at run time.
 */
import https from 'node:https'
import type http from 'node:http'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { once } from 'node:events'
import { silentLogger, systemClock, type Clock, type Logger } from '../common/index.js'
import { ACCOUNTS, APPS, findAccount, type Account } from './directory.js'
import { IdentityPlatform } from './identity/index.js'
import { ensureTls } from './tls.js'
import { EmuError, Store } from './store/index.js'
import { Env } from './graph/env.js'
import { type Ctx, type Resp, errorBody, requestOrigin } from './graph/http.js'
import { routeGraph, monitorJson } from './graph/router.js'
import { download, upload, sweepSessions, ConnectionGone, Pacer } from './graph/content.js'
import { Throttle, costOf } from './graph/throttle.js'
import { HOSTILE_OFF, reshape, downloadDamage, type HostileFaults } from './graph/hostile.js'
import { seed } from './seed.js'

export interface Faults extends HostileFaults {
  /** Added to every request (ms). */
  latencyMs: number
  /** Bytes per second per response body and per request body; 0 = unlimited. */
  bandwidth: number
  /** Fraction of Graph requests answered 503 with Retry-After. */
  failRate: number
  /** Fraction of Graph requests answered 500/502/504 generalException (no Retry-After). */
  serverErrorRate: number
  /** Fraction of fresh upload sessions whose first fragment gets a transient 404 (eventual consistency, docs/graph-service.md §4.2). */
  freshSessionNotFoundRate: number
  /** Fraction of content transfers (downloads, fragment and simple uploads) cut mid-body. */
  resetRate: number
  /**
   * Resource units per second per user (a single-item GET costs 1, a listing or a write 2);
   * past the budget 429 activityLimitReached with Retry-After. 0 = unlimited.
   */
  rateLimit: number
  /** Window of the throttling budget in seconds: a user may spend rateLimit × rateWindowSec units at once. */
  rateWindowSec: number
  /** sharedWithMe answers an empty list, as the retired endpoint does. */
  sharedWithMeRetired: boolean
  /** Report wrong quickXorHash values (test fault). */
  corruptHashes: boolean
  /** Personal remoteItem drive ids upper-cased and without their leading zero (docs/graph-service.md §7.4 quirk). */
  driveIdQuirks: boolean
  /** Hashes of a new upload are missing for this long (ms), as the service sometimes does. */
  hashDelayMs: number
  uploadSessionTtlSec: number
  downloadUrlTtlSec: number
}

export const DEFAULT_FAULTS: Faults = {
  latencyMs: 0, bandwidth: 0, failRate: 0, serverErrorRate: 0, freshSessionNotFoundRate: 0, resetRate: 0, rateLimit: 100, rateWindowSec: 1, sharedWithMeRetired: false, corruptHashes: false, driveIdQuirks: false, hashDelayMs: 0,
  uploadSessionTtlSec: 900, downloadUrlTtlSec: 3600, ...HOSTILE_OFF,
}

export interface EmulatorOptions extends Partial<Faults> {
  port?: number
  /** State directory (certificates, content). Default: a new temp dir, deleted on close. */
  state?: string
  seed?: 'demo' | 'empty'
  autoConsent?: string
  accessTokenTtlSec?: number
  deviceCodeIntervalSec?: number
  /** Delay before an uploaded item's eTag changes on its own (docs/graph-service.md §4.3); 0 disables. Default 1000. */
  etagSettleMs?: number
  /** Tombstones kept per drive before older delta tokens go stale. */
  maxTombstones?: number
  /** Host name of download/upload/monitor URLs (same server); default localhost. */
  contentHost?: string
  /**
   * Further host names Graph links may name when a request's Host header names them
   * (a TLS proxy in front of the emulator); default `['graph.microsoft.com']`.
   * 127.0.0.1, localhost and the content host are always answered for.
   */
  hostNames?: string[]
  logger?: Logger
  /** The emulator's time (throttling budgets, URL and session expiry); tests pass a ManualClock. */
  clock?: Clock
}

export interface EmulatorInfo {
  graph: string
  authority: string
  ca: string
  state: string
  apps: { client_id: string; secret?: string; account_types: string; tenant: string; name: string }[]
  accounts: { handle: string; username: string; kind: string; tenant: string }[]
}

export interface Stats {
  total: number
  /** "METHOD /route/{id}/template" → count. */
  routes: Record<string, number>
  status: Record<string, number>
  bytesIn: number
  bytesOut: number
  throttled429: number
  unavailable503: number
  resets: number
}

export interface Emulator {
  info: EmulatorInfo
  port: number
  faults: Readonly<Faults>
  setFaults(partial: Partial<Faults>): void
  stats: Stats
  resetStats(): void
  store: Store
  identity: IdentityPlatform
  env: Env
  /**
   * The service becomes unreachable, as in an outage or a network cut: the port
   * refuses connections and open ones are cut. Everything it holds is kept.
   */
  goDown(): Promise<void>
  /** Back on the same port with the same state (drives, tokens, upload sessions). */
  comeBack(): Promise<void>
  close(): Promise<void>
}

/** Wait until a response can take more data or is gone; leaves no listener behind. */
function drainOrClose(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}

function newStats(): Stats {
  return { total: 0, routes: {}, status: {}, bytesIn: 0, bytesOut: 0, throttled429: 0, unavailable503: 0, resets: 0 }
}

/** Route template for stats: ids and paths replaced by placeholders. */
export function routeTemplate(method: string, pathname: string): string {
  let p = pathname.startsWith('/v1.0') ? pathname.slice(5) || '/' : pathname
  p = p.replace(/:\/[^:]*(:?)/, (_s, colon: string) => `:/{path}${colon}`)
  const segs = p.split('/')
  const idAfter = new Set(['drives', 'items', 'sites', 'shares', 'users', '_download', '_upload', '_monitor', 'versions'])
  for (let i = 1; i < segs.length; i++) {
    if (idAfter.has(segs[i - 1]!) && segs[i] !== '' && !segs[i]!.startsWith('{')) {
      const colon = segs[i]!.indexOf(':')
      segs[i] = colon >= 0 ? '{id}' + segs[i]!.slice(colon) : '{id}'
    }
  }
  if (!pathname.startsWith('/v1.0') && !pathname.startsWith('/_')) {
    // identity routes: /{tenant}/oauth2/v2.0/token
    if (segs.length > 2) segs[1] = '{tenant}'
  }
  return `${method} ${segs.join('/')}`
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export async function startEmulator(opts: EmulatorOptions = {}): Promise<Emulator> {
  const log = opts.logger ?? silentLogger
  const createdState = !opts.state
  const stateDir = resolve(opts.state ?? mkdtempSync(join(tmpdir(), 'odfs-emulator-')))
  mkdirSync(stateDir, { recursive: true })
  // Metadata lives in memory: content left by an earlier run is unreachable, drop it.
  rmSync(join(stateDir, 'blobs'), { recursive: true, force: true })
  rmSync(join(stateDir, 'uploads'), { recursive: true, force: true })
  const tls = ensureTls(stateDir)
  const faults: Faults = { ...DEFAULT_FAULTS }
  for (const k of Object.keys(DEFAULT_FAULTS) as (keyof Faults)[]) {
    if (opts[k] !== undefined) (faults as any)[k] = opts[k]
  }
  let port = 0
  const base = () => `https://127.0.0.1:${port}`
  const clock = opts.clock ?? systemClock
  const store = new Store({ dir: stateDir, clock, etagSettleMs: opts.etagSettleMs, maxTombstones: opts.maxTombstones, hashDelayMs: () => faults.hashDelayMs })
  const env = new Env(store, base, faults)
  if (opts.contentHost) env.contentHost = opts.contentHost
  /** Names a Host header may give for the links of a Graph response (docs/emulator/request-host.md). */
  const linkHosts: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', env.contentHost, ...(opts.hostNames ?? ['graph.microsoft.com'])]
    .map((h) => h.toLowerCase()))
  const identity = new IdentityPlatform({
    clock, baseUrl: base, accessTokenTtlSec: opts.accessTokenTtlSec, deviceCodeIntervalSec: opts.deviceCodeIntervalSec, autoConsent: opts.autoConsent,
  })
  let stats = newStats()
  const throttle = new Throttle(clock, () => ({ rate: faults.rateLimit, windowSec: faults.rateWindowSec }))
  env.hooks = {
    bandwidth: () => faults.bandwidth,
    resetRate: () => faults.resetRate,
    bytesIn: (n) => { stats.bytesIn += n },
    bytesOut: (n) => { stats.bytesOut += n },
    reset: () => { stats.resets++ },
  }
  await seed(store, opts.seed ?? 'demo')

  function count(route: string): void {
    stats.total++
    stats.routes[route] = (stats.routes[route] ?? 0) + 1
  }

  async function send(req: http.IncomingMessage, res: http.ServerResponse, r: Resp): Promise<void> {
    const headers: Record<string, string> = { ...(r.headers ?? {}) }
    stats.status[r.status] = (stats.status[r.status] ?? 0) + 1
    if (r.status === 429) stats.throttled429++
    if (r.status === 503) stats.unavailable503++
    if (r.stream) {
      const { body, length } = r.stream
      res.writeHead(r.status, { ...headers, 'Content-Length': String(length) })
      const pacer = new Pacer(faults.bandwidth)
      const cutAt = length > 1 && (r.damage === 'truncated' || Math.random() < faults.resetRate) ? Math.floor(length / 2) : undefined
      let sent = 0
      let gone = false
      res.on('close', () => { gone = true })
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          if (gone) break
          let c = chunk
          if (cutAt !== undefined && sent + c.length >= cutAt) {
            c = c.subarray(0, Math.max(0, cutAt - sent))
            if (c.length) res.write(c)
            stats.bytesOut += c.length
            stats.resets++
            res.destroy()
            gone = true
            break
          }
          sent += c.length
          stats.bytesOut += c.length
          if (!res.write(c)) await drainOrClose(res)
          await pacer.add(c.length)
        }
      } finally {
        body.destroy()
      }
      if (!gone) res.end()
      return
    }
    let payload: Buffer | undefined
    if (r.json !== undefined) {
      payload = Buffer.from(JSON.stringify(r.json))
      headers['Content-Type'] ??= 'application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8'
      // hostileJson: a body that is not valid JSON (cut in half, length consistent)
      if (r.damage === 'malformed') payload = payload.subarray(0, Math.floor(payload.length / 2))
    }
    headers['Content-Length'] ??= String(payload?.length ?? 0)
    if (r.damage === 'truncated' && payload && payload.length > 1) {
      // hostileTruncate: promise the whole body, send half of it, close the connection
      res.writeHead(r.status, headers)
      const half = payload.subarray(0, Math.floor(payload.length / 2))
      stats.bytesOut += half.length
      stats.resets++
      res.write(half, () => res.destroy())
      return
    }
    if (payload && faults.bandwidth > 0) await new Pacer(faults.bandwidth).add(payload.length)
    if (res.destroyed) return
    res.writeHead(r.status, headers)
    if (payload && req.method !== 'HEAD') {
      stats.bytesOut += payload.length
      res.end(payload)
    } else res.end()
  }

  function errorResp(e: EmuError, requestId: string, req: http.IncomingMessage): Resp {
    const cri = typeof req.headers['client-request-id'] === 'string' ? req.headers['client-request-id'] : undefined
    return { status: e.status, headers: e.headers, json: errorBody(e, requestId, cri) }
  }

  async function readBody(req: http.IncomingMessage, max = 4 * 1024 * 1024): Promise<Buffer> {
    const parts: Buffer[] = []
    let n = 0
    for await (const c of req as AsyncIterable<Buffer>) {
      n += c.length
      stats.bytesIn += c.length
      if (n > max) throw new EmuError(413, 'requestTooLarge', 'The request body is too large.', undefined, { Connection: 'close' })
      parts.push(c)
    }
    return Buffer.concat(parts)
  }

  function unauthorized(user: Account | undefined, reason: string): EmuError {
    const messages: Record<string, string> = {
      missing: 'Access token is empty.',
      malformed: 'IDX14100: JWT is not well formed.',
      expired: 'Access token has expired or is not yet valid.',
      revoked: 'Access token has been revoked.',
      invalid: 'Access token validation failure.',
    }
    const www = reason === 'expired'
      ? 'Bearer realm="", authorization_uri="' + base() + '/common/oauth2/v2.0/authorize", client_id="00000003-0000-0000-c000-000000000000", error="invalid_token", error_description="expired_token: Access token has expired."'
      : 'Bearer realm="", authorization_uri="' + base() + '/common/oauth2/v2.0/authorize", client_id="00000003-0000-0000-c000-000000000000"' + (reason === 'missing' ? '' : ', error="invalid_token"')
    void user
    return new EmuError(401, 'InvalidAuthenticationToken', messages[reason] ?? messages.invalid!, undefined, { 'WWW-Authenticate': www })
  }

  /** One Graph request (also used for each $batch sub-request). */
  async function graph(ctx: Ctx): Promise<Resp> {
    // Throttled requests count against the budget too (docs/emulator/throttling.md).
    const charge = throttle.charge(ctx.user.oid, costOf(ctx.method, ctx.url))
    if (charge.retryAfter !== undefined) {
      throw new EmuError(429, 'activityLimitReached', 'The request has been throttled', 'throttledRequest', { 'Retry-After': String(charge.retryAfter) })
    }
    if (faults.failRate > 0 && Math.random() < faults.failRate) {
      throw new EmuError(503, 'serviceNotAvailable', 'The service is temporarily unavailable. Please retry later.', undefined, { 'Retry-After': '1' })
    }
    if (faults.serverErrorRate > 0 && Math.random() < faults.serverErrorRate) {
      const status = [500, 502, 504][Math.floor(Math.random() * 3)]!
      throw new EmuError(status, 'generalException', 'An unspecified error occurred.')
    }
    const resp = await routeGraph(env, ctx)
    const damage = reshape(store, faults, resp.json)
    if (damage) resp.damage = damage
    // Near 80 % of the budget the service starts sending RateLimit-* headers (docs/graph-service.md §9).
    if (charge.headers) resp.headers = { ...(resp.headers ?? {}), ...charge.headers }
    return resp
  }

  async function batch(user: Account, scopes: string[], req: http.IncomingMessage, url: URL, requestId: string): Promise<Resp> {
    const raw = await readBody(req)
    let body: any
    try {
      body = JSON.parse(raw.toString('utf8'))
    } catch {
      throw new EmuError(400, 'BadRequest', 'Invalid batch payload format.')
    }
    const requests = body?.requests
    if (!Array.isArray(requests) || requests.length === 0) throw new EmuError(400, 'BadRequest', 'Invalid batch payload format.')
    if (requests.length > 20) throw new EmuError(400, 'BadRequest', 'The number of batch requests exceeds the limit of 20.')
    const ids = new Set<string>()
    for (const r of requests) {
      if (typeof r?.id !== 'string' || typeof r?.method !== 'string' || typeof r?.url !== 'string') throw new EmuError(400, 'BadRequest', 'Each batch request needs id, method and url.')
      if (ids.has(r.id)) throw new EmuError(400, 'BadRequest', 'Batch request ids must be unique.')
      ids.add(r.id)
      if (r.body !== undefined && !Object.keys(r.headers ?? {}).some((h) => h.toLowerCase() === 'content-type')) {
        throw new EmuError(400, 'BadRequest', 'A Content-Type header is required for a request with a body.')
      }
    }
    for (const r of requests) {
      if (r.dependsOn !== undefined && (!Array.isArray(r.dependsOn) || r.dependsOn.some((d: unknown) => typeof d !== 'string' || !ids.has(d) || d === r.id))) {
        throw new EmuError(400, 'BadRequest', 'dependsOn must name other requests of the batch.')
      }
    }
    // A request runs after the requests it depends on, wherever they are in the list (docs/graph-service.md §10).
    const order: any[] = []
    const placed = new Set<string>()
    while (order.length < requests.length) {
      const ready = requests.filter((r: any) => !placed.has(r.id) && (r.dependsOn ?? []).every((d: string) => placed.has(d)))
      if (ready.length === 0) throw new EmuError(400, 'BadRequest', 'The dependsOn references form a cycle.')
      for (const r of ready) {
        order.push(r)
        placed.add(r.id)
      }
    }
    const results = new Map<string, number>()
    const responses: unknown[] = []
    for (const r of order) {
      const deps: string[] = Array.isArray(r.dependsOn) ? r.dependsOn : []
      let resp: Resp
      if (deps.some((d) => !results.has(d) || results.get(d)! >= 400)) {
        resp = errorResp(new EmuError(424, 'failedDependency', 'A request this one depends on failed.'), requestId, req)
      } else {
        const rel = r.url.startsWith('/') ? r.url : `/${r.url}`
        const subUrl = new URL(`${url.origin}/v1.0${rel}`)
        const headers: http.IncomingHttpHeaders = {}
        for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = String(v)
        const subBody = r.body === undefined ? Buffer.alloc(0) : typeof r.body === 'string' ? Buffer.from(r.body, 'base64') : Buffer.from(JSON.stringify(r.body))
        const ctx: Ctx = { method: r.method.toUpperCase(), url: subUrl, path: subUrl.pathname.slice(5), headers, user, scopes, body: async () => subBody }
        count(routeTemplate(ctx.method, subUrl.pathname))
        try {
          resp = await graph(ctx)
        } catch (e) {
          resp = errorResp(e instanceof EmuError ? e : new EmuError(500, 'generalException', 'An internal error occurred.'), requestId, req)
        }
        if (resp.stream) {
          resp.stream.body.destroy()
          resp = errorResp(new EmuError(400, 'BadRequest', 'Content downloads are not supported in a batch.'), requestId, req)
        }
        if (resp.status === 429) stats.throttled429++
        if (resp.status === 503) stats.unavailable503++
      }
      results.set(r.id, resp.status)
      responses.push({ id: r.id, status: resp.status, headers: { 'Content-Type': 'application/json', ...(resp.headers ?? {}) }, ...(resp.json !== undefined ? { body: resp.json } : {}) })
    }
    // Responses come back in arbitrary order (docs/graph-service.md §10): never the request order, so clients match by id.
    for (let i = responses.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      ;[responses[i], responses[j]] = [responses[j], responses[i]]
    }
    if (responses.length > 1 && responses.every((x, i) => (x as { id: string }).id === requests[i].id)) responses.push(responses.shift())
    return { status: 200, json: { responses } }
  }

  async function admin(req: http.IncomingMessage, url: URL): Promise<Resp> {
    const p = url.pathname.replace(/\/$/, '')
    const m = req.method
    const bodyJson = async () => {
      const b = await readBody(req)
      if (!b.length) return {}
      try {
        return JSON.parse(b.toString('utf8'))
      } catch {
        throw new EmuError(400, 'BadRequest', 'Invalid JSON.')
      }
    }
    if (p === '/_emulator/stats' && m === 'GET') return { status: 200, json: stats }
    if (p === '/_emulator/stats/reset' && m === 'POST') {
      stats = newStats()
      return { status: 204 }
    }
    if (p === '/_emulator/faults' && m === 'GET') return { status: 200, json: faults }
    if (p === '/_emulator/faults' && m === 'POST') {
      setFaults(await bodyJson())
      return { status: 200, json: faults }
    }
    if (p === '/_emulator/info' && m === 'GET') return { status: 200, json: info }
    if (p === '/_emulator/delta/expire' && m === 'POST') {
      const b = await bodyJson()
      const drives = b.account ? [store.driveOf(String(b.account))] : b.driveId ? [store.getDrive(String(b.driveId))!].filter(Boolean) : [...store.drives.values()]
      for (const d of drives) store.expireDeltaTokens(d)
      return { status: 204 }
    }
    if (p === '/_emulator/uploads/expire' && m === 'POST') {
      for (const s of env.sessions.values()) s.expiresAt = 0
      return { status: 204 }
    }
    throw new EmuError(404, 'itemNotFound', 'No such test hook.')
  }

  function setFaults(partial: Partial<Faults>): void {
    for (const [k, v] of Object.entries(partial ?? {})) {
      if (!(k in DEFAULT_FAULTS)) throw new EmuError(400, 'invalidRequest', `Unknown fault option ${k}.`)
      const want = typeof DEFAULT_FAULTS[k as keyof Faults]
      if (typeof v !== want || (want === 'number' && (!Number.isFinite(v) || (v as number) < 0))) {
        throw new EmuError(400, 'invalidRequest', `Fault option ${k} must be a non-negative ${want}.`)
      }
      ;(faults as any)[k] = v
      if (k === 'rateLimit' || k === 'rateWindowSec') throttle.clear()
    }
  }

  async function onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const requestId = randomUUID()
    const started = Date.now()
    res.setHeader('request-id', requestId)
    const cri = req.headers['client-request-id']
    res.setHeader('client-request-id', typeof cri === 'string' ? cri : requestId)
    let url: URL
    try {
      url = new URL(req.url ?? '/', base())
    } catch {
      res.writeHead(400).end()
      return
    }
    const path = url.pathname
    const method = req.method ?? 'GET'
    let route = routeTemplate(method, path)
    try {
      if (path.startsWith('/_emulator/') && !path.startsWith('/_emulator/identity/')) {
        return await send(req, res, await admin(req, url))
      }
      count(route)
      if (faults.latencyMs > 0) await sleep(faults.latencyMs)
      if (path === '/v1.0' || path.startsWith('/v1.0/')) {
        const check = identity.verifyAccessToken(req.headers.authorization)
        if (!check.ok) throw unauthorized(undefined, check.reason)
        // Links in the answer name the host the request named (when the emulator answers for it).
        const graphUrl = new URL(`${url.pathname}${url.search}`, requestOrigin(req.headers.host, linkHosts, base()))
        if (path === '/v1.0/$batch') {
          if (method !== 'POST') throw new EmuError(405, 'methodNotAllowed', 'Use POST.')
          return await send(req, res, await batch(check.account, check.scopes, req, graphUrl, requestId))
        }
        let buffered: Promise<Buffer> | undefined
        const ctx: Ctx = {
          method, url: graphUrl, path: path.slice(5), headers: req.headers, user: check.account, scopes: check.scopes, req,
          body: () => (buffered ??= readBody(req)),
        }
        const r = await graph(ctx)
        return await send(req, res, r)
      }
      if (path.startsWith('/_download/')) {
        const r = download(env, method, url, req.headers)
        if (r.stream) r.damage = downloadDamage(store, faults, decodeURIComponent(path.slice('/_download/'.length)))
        return await send(req, res, r)
      }
      if (path.startsWith('/_upload/')) return await send(req, res, await upload(env, method, url, req.headers, req))
      if (path.startsWith('/_monitor/')) return await send(req, res, monitorJson(env, path.slice('/_monitor/'.length)))
      const body = await readBody(req, 1024 * 1024)
      const handled = await identity.handle(req, res, url, body)
      if (!handled) {
        route = `${method} (unknown)`
        await send(req, res, errorResp(new EmuError(404, 'NotFound', 'No such endpoint.'), requestId, req))
      }
    } catch (e) {
      if (e instanceof ConnectionGone) {
        res.destroy()
        return
      }
      let err: EmuError
      if (e instanceof EmuError) err = e
      else {
        log.error({ err: e, route }, 'emulator: internal error')
        err = new EmuError(500, 'generalException', 'An internal error occurred.')
      }
      if (!res.headersSent) await send(req, res, errorResp(err, requestId, req)).catch(() => res.destroy())
      else res.destroy()
    } finally {
      log.debug({ route, status: res.statusCode, ms: Date.now() - started }, 'emulator request')
    }
  }

  const server = https.createServer({ key: tls.key, cert: tls.cert, keepAliveTimeout: 30_000, requestTimeout: 0 }, (req, res) => {
    onRequest(req, res).catch((e) => {
      log.error({ err: e }, 'emulator: request failed')
      res.destroy()
    })
  })
  server.on('clientError', (_e, socket) => socket.destroy())
  server.listen(opts.port ?? 0, '127.0.0.1')
  await once(server, 'listening')
  port = (server.address() as { port: number }).port
  const sweeper = setInterval(() => sweepSessions(env), 30_000)
  sweeper.unref()

  const info: EmulatorInfo = {
    graph: `${base()}/v1.0`,
    authority: base(),
    ca: tls.caFile,
    state: stateDir,
    apps: APPS.map((a) => ({
      client_id: a.clientId, ...(a.secret ? { secret: a.secret } : {}), account_types: a.accountTypes, tenant: a.tenantId, name: a.displayName,
    })),
    accounts: ACCOUNTS.map((a) => ({ handle: a.handle, username: a.upn, kind: a.kind, tenant: a.tenantId })),
  }

  let closed = false
  let down = false
  return {
    info,
    port,
    faults,
    setFaults,
    get stats() {
      return stats
    },
    resetStats() {
      stats = newStats()
    },
    store,
    identity,
    env,
    async goDown() {
      if (down || closed) return
      down = true
      const stopped = new Promise<void>((r) => server.close(() => r()))
      server.closeAllConnections()
      await stopped
    },
    async comeBack() {
      if (!down || closed) return
      server.listen(port, '127.0.0.1')
      await once(server, 'listening')
      down = false
    },
    async close() {
      if (closed) return
      closed = true
      clearInterval(sweeper)
      store.close()
      identity.close()
      if (!down) {
        server.closeAllConnections()
        await new Promise<void>((r) => server.close(() => r()))
      }
      // A request cut off by closeAllConnections() may still be writing a blob: its
      // file can appear while the folder is being removed (ENOTEMPTY, seen in CI after
      // a client closed without waiting for its uploads). rm retries those.
      if (createdState) rmSync(stateDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 })
    },
  }
}

export { findAccount }
