/**
 * Content: downloads (302 to a pre-authenticated URL serving ranges), simple PUT
 * uploads and upload sessions with the service's fragment rules (docs/graph-service.md §3, §4, checklist
 * 7-10). Bodies stream to the state directory and are hashed on the way; nothing
 * holds a whole file in memory.
 */
import { randomBytes } from 'node:crypto'
import { createReadStream, existsSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { QuickXorHash } from '../quickxor.js'
import type { Item } from '../store/index.js'
import { EmuError, identityOf, invalidRequest, nameConflict, notFound } from '../store/index.js'
import type { Env, UploadSession } from './env.js'
import { type Ctx, type Resp, json, empty, readJson } from './http.js'
import { driveItem } from './serialize.js'
import { conflictOf, materializeParent, preconditions, type Target } from './router.js'

export const MAX_SIMPLE_UPLOAD = 250 * 1024 * 1024
export const FRAGMENT_MULTIPLE = 327_680
export const MAX_FRAGMENT = 60 * 1024 * 1024

/** The client went away mid-body: nothing to answer. */
export class ConnectionGone extends Error {}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Paces a body to `bandwidth` bytes/s. */
export class Pacer {
  #start = Date.now()
  #bytes = 0
  constructor(private readonly bandwidth: number) {}
  async add(n: number): Promise<void> {
    if (!this.bandwidth) return
    this.#bytes += n
    const due = (this.#bytes / this.bandwidth) * 1000 - (Date.now() - this.#start)
    if (due > 1) await sleep(due)
  }
}

/**
 * Read a request body chunk by chunk into `sink`; returns the byte count, or throws
 * ConnectionGone when the body broke (client abort or an injected reset).
 */
async function receive(env: Env, req: IncomingMessage, expected: number | undefined, sink: (b: Buffer) => Promise<void>, max?: number): Promise<number> {
  const pacer = new Pacer(env.hooks.bandwidth())
  const cutAt = expected && expected > 1 && Math.random() < env.hooks.resetRate() ? Math.floor(expected / 2) : undefined
  let n = 0
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      n += chunk.length
      env.hooks.bytesIn(chunk.length)
      if (max !== undefined && n > max) throw new EmuError(413, 'maxFileSizeExceeded', 'The request body is too large.')
      if (cutAt !== undefined && n >= cutAt) {
        env.hooks.reset()
        req.socket.destroy()
        throw new ConnectionGone('reset injected')
      }
      await sink(chunk)
      await pacer.add(chunk.length)
    }
  } catch (e) {
    if (e instanceof EmuError) throw e
    throw new ConnectionGone((e as Error).message)
  }
  if (!req.complete) throw new ConnectionGone('request body incomplete')
  return n
}

// ------------------------------------------------------------------ download

export function getContent(env: Env, ctx: Ctx, item: Item): Resp {
  if (item.kind !== 'file' || !item.blob) throw invalidRequest('Only files can be downloaded.')
  const pre = preconditions(ctx, item, false)
  if (pre) return pre
  return empty(302, { Location: env.downloadUrl(item.id, item.blob.path) })
}

/** GET/HEAD on a download URL: no Authorization needed, single ranges honoured. */
export function download(env: Env, method: string, url: URL, headers: IncomingHttpHeaders): Resp {
  const store = env.store
  const id = decodeURIComponent(url.pathname.slice('/_download/'.length))
  const t = env.readToken<{ i: string; b: string; e: number }>(url.searchParams.get('tempauth'))
  if (!t || t.i !== id || !/^[0-9a-f-]{36}$/.test(t.b)) throw new EmuError(401, 'unauthenticated', 'The download URL is not valid.', 'invalidToken')
  if (t.e < store.now()) throw new EmuError(401, 'unauthenticated', 'The download URL has expired.', 'expiredToken')
  const path = join(store.blobDir, t.b)
  if (!existsSync(path)) throw notFound('The file no longer exists.')
  const size = statSync(path).size
  const item = store.get(id)
  const h: Record<string, string> = {
    'Content-Type': item?.mimeType ?? 'application/octet-stream',
    'Accept-Ranges': 'bytes',
  }
  if (item) h['Content-Disposition'] = `attachment; filename*=UTF-8''${encodeURIComponent(item.name)}`
  if (method !== 'GET' && method !== 'HEAD') throw new EmuError(405, 'methodNotAllowed', 'Only GET is supported.')
  const range = typeof headers.range === 'string' ? headers.range.trim() : undefined
  let start = 0
  let end = size - 1
  let status = 200
  const m = range ? /^bytes=(\d*)-(\d*)$/.exec(range) : null
  if (m && (m[1] !== '' || m[2] !== '')) {
    if (m[1] === '') {
      const suffix = Number(m[2])
      start = Math.max(0, size - suffix)
    } else {
      start = Number(m[1])
      end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
    }
    if (start >= size || start > end || (m[1] === '' && Number(m[2]) === 0)) {
      return { status: 416, headers: { ...h, 'Content-Range': `bytes */${size}` }, json: { error: { code: 'invalidRange', message: 'The requested range is not satisfiable.' } } }
    }
    status = 206
    h['Content-Range'] = `bytes ${start}-${end}/${size}`
  }
  const length = size === 0 ? 0 : end - start + 1
  if (method === 'HEAD' || length === 0) return { status, headers: { ...h, 'Content-Length': String(length) } }
  return { status, headers: h, stream: { body: createReadStream(path, { start, end }), length } }
}

// ------------------------------------------------------------- simple upload

async function streamToBlob(env: Env, req: IncomingMessage, expected: number | undefined, max?: number): Promise<{ path: string; size: number; quickXorHash: string }> {
  const path = env.store.newBlobPath()
  const fh = await open(path, 'w')
  const h = new QuickXorHash()
  try {
    let pos = 0
    const size = await receive(env, req, expected, async (b) => {
      h.update(b)
      await fh.write(b, 0, b.length, pos)
      pos += b.length
    }, max)
    await fh.close()
    return { path, size, quickXorHash: h.digest() }
  } catch (e) {
    await fh.close().catch(() => {})
    rmSync(path, { force: true })
    throw e
  }
}

function contentLength(headers: IncomingHttpHeaders): number | undefined {
  const v = headers['content-length']
  if (v === undefined) return undefined
  const n = Number(v)
  return Number.isInteger(n) && n >= 0 ? n : undefined
}

/**
 * The file a content upload (simple PUT or upload session) writes: the existing
 * file, or a new name in its parent. Refuses folders, the root, failed
 * preconditions, missing write access, `fail` onto an existing name and names
 * OneDrive forbids.
 */
function writableTarget(env: Env, ctx: Ctx, t: Target, conflict: string): { existing: Item | undefined; parent: Item } {
  const store = env.store
  const existing = t.item
  const parent = existing ? store.parentOf(existing) : materializeParent(env, ctx, t)
  if (!parent) throw invalidRequest('Cannot upload to the root.')
  if (existing && existing.kind !== 'file') throw nameConflict(existing.name)
  preconditions(ctx, existing, true)
  store.require(ctx.user, existing ?? parent, 'write')
  if (existing && conflict === 'fail') throw nameConflict(existing.name)
  if (!existing) store.validateName(parent, t.name!, false)
  return { existing, parent }
}

export async function putContent(env: Env, ctx: Ctx, t: Target): Promise<Resp> {
  const store = env.store
  if (!ctx.req) throw invalidRequest('Content uploads are not supported in a batch.')
  const conflict = conflictOf(ctx, undefined, 'replace')
  const { existing, parent } = writableTarget(env, ctx, t, conflict)
  const len = contentLength(ctx.headers)
  if (len !== undefined && len > MAX_SIMPLE_UPLOAD) {
    throw new EmuError(413, 'maxFileSizeExceeded', 'Simple uploads are limited to 250 MB; use an upload session.', undefined, { Connection: 'close' })
  }
  // a replaced file's content stays as an earlier version: the new content needs room of its own
  if (len !== undefined && len > store.remaining(store.driveOfItem(parent))) {
    throw new EmuError(507, 'quotaLimitReached', 'Insufficient Space Available', undefined, { Connection: 'close' })
  }
  const blob = await streamToBlob(env, ctx.req, len, MAX_SIMPLE_UPLOAD)
  try {
    const r = store.commitContent({
      parent, name: existing?.name ?? t.name!, target: existing && conflict === 'replace' ? existing : undefined,
      blob, conflict, by: identityOf(ctx.user),
    })
    return json(r.created ? 201 : 200, driveItem(env, r.item))
  } catch (e) {
    rmSync(blob.path, { force: true })
    throw e
  }
}

// ----------------------------------------------------------- upload sessions

export async function createUploadSession(env: Env, ctx: Ctx, t: Target): Promise<Resp> {
  const store = env.store
  const body = await readJson(ctx)
  const spec = (body.item ?? {}) as Record<string, any>
  const conflict = conflictOf({ ...ctx, url: new URL('https://x/') }, spec, 'replace')
  const { existing, parent } = writableTarget(env, ctx, t, conflict)
  const name = existing?.name ?? t.name!
  const fileSize = spec.fileSize
  if (fileSize !== undefined && (typeof fileSize !== 'number' || fileSize < 0)) throw invalidRequest('Invalid fileSize.')
  if (typeof fileSize === 'number' && fileSize > store.remaining(store.driveOfItem(parent))) {
    throw new EmuError(507, 'quotaLimitReached', 'Insufficient Space Available')
  }
  let fs: UploadSession['fs']
  if (spec.fileSystemInfo) {
    fs = {}
    for (const k of ['createdDateTime', 'lastModifiedDateTime'] as const) {
      const v = spec.fileSystemInfo[k]
      if (v !== undefined) {
        if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) throw invalidRequest(`Invalid ${k}.`)
        fs[k] = new Date(v).toISOString()
      }
    }
  }
  const id = randomBytes(24).toString('base64url')
  const file = join(store.uploadDir, id)
  writeFileSync(file, '')
  const s: UploadSession = {
    id, driveId: parent.driveId, parentId: parent.id, name, targetId: existing && conflict === 'replace' ? existing.id : undefined,
    conflict, fs, total: typeof fileSize === 'number' && fileSize > 0 ? fileSize : undefined, received: 0, file, hash: new QuickXorHash(),
    expiresAt: store.now() + env.opts.uploadSessionTtlSec * 1000, deferCommit: body.deferCommit === true,
    by: identityOf(ctx.user), user: ctx.user, busy: false,
  }
  env.sessions.set(id, s)
  return json(200, {
    '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.uploadSession',
    uploadUrl: env.uploadUrl(s), expirationDateTime: store.iso(s.expiresAt), nextExpectedRanges: ['0-'],
  })
}

function sessionStatus(env: Env, s: UploadSession): Record<string, unknown> {
  const done = s.total !== undefined && s.received >= s.total
  return { expirationDateTime: env.store.iso(s.expiresAt), nextExpectedRanges: done ? [] : [`${s.received}-`] }
}

function dropSession(env: Env, s: UploadSession): void {
  env.sessions.delete(s.id)
  rmSync(s.file, { force: true })
}

/** Remove expired sessions and their temp files. */
export function sweepSessions(env: Env): void {
  const now = env.store.now()
  for (const s of env.sessions.values()) if (s.expiresAt < now && !s.busy) dropSession(env, s)
}

function commitSession(env: Env, s: UploadSession, override?: { parent: Item; name: string; conflict: typeof s.conflict }): Resp {
  const store = env.store
  const parent = override?.parent ?? store.get(s.parentId)
  if (!parent) throw notFound('The destination folder no longer exists.')
  let target = !override && s.targetId ? store.get(s.targetId) : undefined
  if (!override && s.targetId && !target) throw notFound('The file being replaced no longer exists.')
  if (target && target.parentId !== parent.id) target = undefined
  const blobPath = store.newBlobPath()
  renameSync(s.file, blobPath)
  try {
    const r = store.commitContent({
      parent, name: override?.name ?? s.name, target, blob: { path: blobPath, size: s.received, quickXorHash: s.hash.digest() },
      conflict: override?.conflict ?? s.conflict, by: s.by, fs: s.fs,
    })
    env.sessions.delete(s.id)
    return json(r.created ? 201 : 200, driveItem(env, r.item))
  } catch (e) {
    renameSync(blobPath, s.file)
    throw e
  }
}

function sessionFromUrl(env: Env, url: URL): UploadSession {
  const id = url.pathname.slice('/_upload/'.length)
  const t = env.readToken<{ s: string }>(url.searchParams.get('tempauth'))
  if (!t || t.s !== id) throw new EmuError(401, 'unauthenticated', 'The upload URL is not valid.', 'invalidToken')
  const s = env.sessions.get(id)
  if (!s) throw new EmuError(404, 'itemNotFound', 'The upload session was not found.', 'uploadSessionNotFound')
  if (s.expiresAt < env.store.now() && !s.busy) {
    dropSession(env, s)
    throw new EmuError(404, 'itemNotFound', 'The upload session has expired.', 'uploadSessionNotFound')
  }
  return s
}

/** Requests to an uploadUrl: PUT fragment, GET status, DELETE cancel, POST commit (deferCommit). */
export async function upload(env: Env, method: string, url: URL, headers: IncomingHttpHeaders, req: IncomingMessage): Promise<Resp> {
  if (headers.authorization !== undefined) {
    throw new EmuError(401, 'unauthenticated', 'Upload URLs are pre-authenticated: do not send an Authorization header.', 'invalidAuthenticationToken', { Connection: 'close' })
  }
  const s = sessionFromUrl(env, url)
  if (method === 'GET') return json(200, sessionStatus(env, s))
  if (method === 'DELETE') {
    if (s.busy) throw new EmuError(409, 'resourceModified', 'A fragment is being received.')
    dropSession(env, s)
    return empty(204)
  }
  if (method === 'POST') {
    if (s.total === undefined || s.received < s.total) throw invalidRequest('The upload is not complete.', 'uploadIncomplete')
    return commitSession(env, s)
  }
  if (method !== 'PUT') throw new EmuError(405, 'methodNotAllowed', 'Use PUT to upload fragments.')
  if (s.received === 0 && !s.flaked && env.opts.freshSessionNotFoundRate > 0 && Math.random() < env.opts.freshSessionNotFoundRate) {
    // eventual consistency: a brand-new session is not visible yet (rclone retries once)
    s.flaked = true
    throw new EmuError(404, 'itemNotFound', 'The upload session was not found.', 'uploadSessionNotFound', { Connection: 'close' })
  }
  const closeOnError = { Connection: 'close' }
  const cr = typeof headers['content-range'] === 'string' ? headers['content-range'].trim() : ''
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(cr)
  if (!m) throw new EmuError(400, 'invalidRequest', 'The Content-Range header is missing or malformed.', 'invalidContentRangeHeader', closeOnError)
  const a = Number(m[1])
  const b = Number(m[2])
  const total = Number(m[3])
  if (b < a || b >= total) throw new EmuError(400, 'invalidRequest', 'The Content-Range header is missing or malformed.', 'invalidContentRangeHeader', closeOnError)
  if (s.total !== undefined && total !== s.total) {
    throw new EmuError(400, 'invalidRequest', `The upload session is for ${s.total} total bytes, the fragment declares ${total}.`, 'fragmentLengthMismatch', closeOnError)
  }
  const len = b - a + 1
  if (contentLength(headers) !== len) {
    throw new EmuError(400, 'invalidRequest', 'Content-Range header length does not match the provided number of bytes.', 'fragmentLengthMismatch', closeOnError)
  }
  if (len > MAX_FRAGMENT - 1) throw new EmuError(413, 'maxFragmentLengthExceeded', 'Fragments must be smaller than 60 MiB.', undefined, closeOnError)
  if (b + 1 < total && len % FRAGMENT_MULTIPLE !== 0) {
    throw new EmuError(400, 'invalidRequest', 'Every fragment but the last must be a multiple of 320 KiB (327,680 bytes).', 'invalidFragmentSize', closeOnError)
  }
  if (s.busy || a < s.received) {
    throw new EmuError(416, 'invalidRange', 'The uploaded fragment overlaps with data that has already been received.', 'fragmentOverlap', closeOnError)
  }
  if (a > s.received) throw new EmuError(416, 'invalidRange', 'The fragment is out of order.', 'fragmentOutOfOrder', closeOnError)
  if (s.total === undefined) s.total = total
  s.busy = true
  const hash = s.hash.clone()
  const fh = await open(s.file, 'r+')
  let pos = a
  try {
    await receive(env, req, len, async (chunk) => {
      if (pos + chunk.length > a + len) throw new EmuError(400, 'invalidRequest', 'More bytes than Content-Length.')
      hash.update(chunk)
      await fh.write(chunk, 0, chunk.length, pos)
      pos += chunk.length
    })
    if (pos !== a + len) throw new ConnectionGone('short fragment')
  } catch (e) {
    // A fragment whose body broke is discarded whole.
    await fh.truncate(s.received).catch(() => {})
    await fh.close().catch(() => {})
    s.busy = false
    throw e
  }
  await fh.close()
  s.busy = false
  s.received = a + len
  s.hash = hash
  s.expiresAt = env.store.now() + env.opts.uploadSessionTtlSec * 1000
  if (s.received < total || s.deferCommit) return json(202, sessionStatus(env, s))
  return commitSession(env, s)
}

/** Personal-style deferred commit: PUT an item address with `@microsoft.graph.sourceUrl` = the uploadUrl. */
export async function commitFromSourceUrl(env: Env, ctx: Ctx, t: Target): Promise<Resp> {
  const store = env.store
  const body = await readJson(ctx)
  const src = body['@microsoft.graph.sourceUrl'] ?? body['@content.sourceUrl']
  if (typeof src !== 'string') throw invalidRequest('PUT on an item needs @microsoft.graph.sourceUrl (or use /content).')
  let url: URL
  try {
    url = new URL(src)
  } catch {
    throw invalidRequest('Invalid sourceUrl.')
  }
  if (!url.pathname.startsWith('/_upload/')) throw invalidRequest('The sourceUrl is not an upload session of this service.')
  const s = sessionFromUrl(env, url)
  if (s.total === undefined || s.received < s.total) throw invalidRequest('The upload is not complete.', 'uploadIncomplete')
  let parent: Item | undefined
  let name: string | undefined = typeof body.name === 'string' ? body.name : undefined
  if (t.item?.kind === 'folder') parent = t.item
  else {
    parent = t.item ? store.parentOf(t.item) : t.parent
    name = name ?? t.item?.name ?? t.name
  }
  if (!parent || !name) throw invalidRequest('Cannot tell where to commit the upload.')
  if (t.item) preconditions(ctx, t.item, true)
  store.require(ctx.user, parent, 'write')
  const conflict = conflictOf(ctx, body, s.conflict)
  return commitSession(env, s, { parent, name, conflict })
}

