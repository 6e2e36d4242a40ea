/**
 * Uploads (docs/graph-service.md §4).
 *
 * - Zero bytes: simple PUT (an upload session cannot express an empty range), then
 *   the mtime by PATCH (the only way for an empty file).
 * - Everything else: an upload session whose createUploadSession body carries
 *   fileSystemInfo, so the mtime is set in the same request without an extra
 *   version. Fragments are a multiple of 320 KiB (default 10 MiB), sent without
 *   Authorization; a failed fragment is resumed from the server's nextExpectedRanges;
 *   the session (uploadUrl, expiry, offset) can be persisted and resumed by a later
 *   process; an expired session restarts cleanly; a session given up for good is
 *   cancelled (DELETE) so no placeholder is left behind.
 * - The local quickXorHash is compared with the server's after the upload; a
 *   mismatch is retried once, then reported as a GraphError `hashMismatch` (the
 *   local file is never touched). A size change the service makes on its own to an
 *   Office file in a SharePoint/Business library (docs/graph-service.md §4.3) is recognised and logged,
 *   never answered by uploading again.
 */
import { createHash } from 'node:crypto'
import { lstat, open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { ensurePrivateDir, readPrivateFile, removePrivateFile, writePrivateFile, type PrivateOwner } from '../common/index.js'
import { GraphError, isGraphError, isNetworkError } from './errors.js'
import { encodeSegment } from './paths.js'
import { QuickXorHash } from './quickxorhash.js'
import { backoffDelay, DEFAULT_RETRY, type PiecedBody } from './middleware.js'
import type { GraphTransport } from './transport.js'
import { ITEM_SELECT, type ConflictBehavior, type DriveItem, type ItemRef } from './types.js'

/** 320 KiB: every fragment but the last must be a multiple of this. */
export const FRAGMENT_UNIT = 327_680
/** Largest valid fragment: 191 units = 62,586,880 bytes (< 60 MiB). */
export const MAX_FRAGMENT = 191 * FRAGMENT_UNIT
export const DEFAULT_FRAGMENT = 32 * FRAGMENT_UNIT // 10 MiB
/**
 * A persisted session's state is saved at most this often while its fragments go
 * out (ms): each save creates, syncs and renames a private file after checking every
 * directory on its path, which per 10 MiB fragment took ~1 s of 6 s of CPU samples
 * of a 512 MiB `odfs put` (docs/performance.md).
 */
export const SAVE_EVERY_MS = 5_000
/** A fragment is read from its source, hashed and sent in pieces of this many bytes... */
export const UPLOAD_PIECE = 256 << 10
/** ...read this many pieces ahead of the one being sent. */
export const PIECES_AHEAD = 4

/** Round a requested fragment size down to a multiple of 320 KiB within [320 KiB, ~59.7 MiB]. */
export function validFragmentSize(requested: number): number {
  const units = Math.floor(requested / FRAGMENT_UNIT)
  return Math.min(MAX_FRAGMENT, Math.max(1, units) * FRAGMENT_UNIT)
}

/** The fragments [start, endInclusive] of a `size`-byte upload from `offset`. */
export function fragmentsOf(size: number, fragmentSize: number, offset = 0): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = []
  for (let s = offset; s < size; s += fragmentSize) out.push({ start: s, end: Math.min(size, s + fragmentSize) - 1 })
  return out
}

/** `Content-Range` of a fragment. */
export function contentRange(start: number, end: number, total: number): string {
  return `bytes ${start}-${end}/${total}`
}

/** The resume offset from nextExpectedRanges (["12345-"] or ["12345-67890", ...]): the first range's start. */
export function offsetFromRanges(ranges: unknown): number | undefined {
  if (!Array.isArray(ranges) || ranges.length === 0) return undefined
  const m = /^(\d+)-/.exec(String(ranges[0]))
  return m ? Number(m[1]) : undefined
}

/** Bytes to upload, readable at any offset (so a resume or a re-hash can re-read). */
export interface UploadSource {
  readonly size: number
  /** `into`, when given, is a buffer the source may fill and return instead of allocating one. */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>
  close?(): Promise<void>
}

export async function fileSource(path: string): Promise<UploadSource & { mtime: Date; close(): Promise<void> }> {
  const fh = await open(path, 'r')
  const st = await fh.stat()
  return {
    size: st.size,
    mtime: st.mtime,
    async read(offset, length, into) {
      const buf = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length)
      let got = 0
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, offset + got)
        if (bytesRead === 0) throw new GraphError({ status: 0, code: 'sourceChanged', message: `${path} shrank while uploading`, local: true })
        got += bytesRead
      }
      return buf
    },
    close: () => fh.close(),
  }
}

export interface PersistedUploadSession {
  uploadUrl: string
  /** ms since epoch. */
  expiresAt: number
  size: number
  fragmentSize: number
  driveId: string
  parentId: string
  name: string
  /** Identity of the local content (caller-defined, e.g. path+size+mtime). */
  sourceId: string
  /** Bytes the service has acknowledged. */
  offset: number
}

/** Where resumable sessions are kept between processes. uploadUrl is a credential: store it privately. */
export interface UploadSessionStore {
  get(key: string): Promise<PersistedUploadSession | undefined>
  put(key: string, s: PersistedUploadSession): Promise<void>
  delete(key: string): Promise<void>
  list(): Promise<{ key: string; session: PersistedUploadSession }[]>
}

/** A persisted entry as read back: only the shape this code writes is accepted. */
function validSession(v: unknown): v is { key: string; session: PersistedUploadSession } {
  const o = v as { key?: unknown; session?: Record<string, unknown> } | null
  const x = o?.session
  return !!o && typeof o.key === 'string' && !!x && typeof x.uploadUrl === 'string' && typeof x.expiresAt === 'number' &&
    typeof x.size === 'number' && typeof x.offset === 'number' && typeof x.sourceId === 'string'
}

/**
 * One private JSON file per session (0600, written exclusively through a random
 * temporary name, never following symlinks) in a directory the user owns with mode
 * 0700; a directory that is not so is refused with a clear error (src/common/private-file.ts).
 * uploadUrl is a credential: a file whose content does not belong to its name is dropped.
 */
export class FileUploadSessionStore implements UploadSessionStore {
  /** `owner`: the user whose directory this is, when not the caller (root's --user). */
  constructor(private readonly dir: string, private readonly owner: PrivateOwner = {}) {}

  #name(key: string): string {
    return createHash('sha256').update(key).digest('hex').slice(0, 32) + '.json'
  }

  async #read(name: string): Promise<{ key: string; session: PersistedUploadSession } | undefined> {
    let v: unknown
    try {
      const text = await readPrivateFile(this.dir, name, { ...this.owner, what: 'upload session file' })
      if (text === null) return undefined
      v = JSON.parse(text)
    } catch {
      v = undefined
    }
    if (validSession(v) && this.#name(v.key) === name) return v
    // Unreadable, unsafe, malformed or misplaced: never trusted; removed (never following a link).
    // When the directory itself is unsafe, the removal refuses it with the reason.
    await removePrivateFile(this.dir, name, this.owner)
    return undefined
  }

  async get(key: string): Promise<PersistedUploadSession | undefined> {
    const v = await this.#read(this.#name(key))
    return v?.key === key ? v.session : undefined
  }

  async put(key: string, session: PersistedUploadSession): Promise<void> {
    await ensurePrivateDir(this.dir, this.owner)
    await writePrivateFile(this.dir, this.#name(key), JSON.stringify({ key, session }), this.owner)
  }

  async delete(key: string): Promise<void> {
    await removePrivateFile(this.dir, this.#name(key), this.owner)
  }

  async list(): Promise<{ key: string; session: PersistedUploadSession }[]> {
    try {
      await lstat(this.dir)
    } catch {
      return []
    }
    await ensurePrivateDir(this.dir, this.owner)
    const out: { key: string; session: PersistedUploadSession }[] = []
    for (const n of (await readdir(this.dir)).filter((n) => /^[0-9a-f]{32}\.json$/.test(n))) {
      const v = await this.#read(n)
      if (v) out.push(v)
    }
    return out
  }
}

export interface UploadOptions {
  conflictBehavior?: ConflictBehavior
  /** Modification time to store (fileSystemInfo.lastModifiedDateTime). */
  mtime?: Date
  fragmentSize?: number
  /** Persist the session here so a later process can resume it. */
  sessionStore?: UploadSessionStore
  /** Key of the persisted session (default derived from target and sourceId). */
  sessionKey?: string
  /** Identity of the local content; a persisted session is only resumed for the same sourceId. */
  sourceId?: string
  onProgress?: (acknowledged: number, total: number) => void
  signal?: AbortSignal
  /** Compare quickXorHash with the server's (default true). */
  verify?: boolean
  /** Uploads retried after a hash mismatch before giving up (default 1). */
  hashRetries?: number
}

export interface UploadResult {
  item: DriveItem
  /** Bytes the service already had when this call started (resume). */
  resumedFrom: number
  /** Bytes this call sent in fragment bodies (including resent ones). */
  bytesSent: number
  fragments: number
  localHash: string
  /** True when the server's quickXorHash equalled the local one. */
  verified: boolean
  /** The service changed size/hash on its own (SharePoint Office rewrite): logged, not re-uploaded. */
  serviceRewrite: boolean
}

/** The host of a URL for logs (never the URL: its query is a credential). */
function hostOf(url: string): string {
  try {
    return new URL(url).host
  } catch {
    return '(invalid URL)'
  }
}

const OFFICE_EXT = /\.(docx?|xlsx?|pptx?|docm|xlsm|pptm|vsdx|one)$/i

/**
 * Did the service rewrite this upload on its own (docs/graph-service.md §4.3)? True for Office files in
 * Business/SharePoint libraries whose size differs from what was sent.
 */
export function isServiceRewrite(name: string, sentSize: number, item: DriveItem): boolean {
  const dt = item.parentReference?.driveType
  return OFFICE_EXT.test(name) && (dt === 'business' || dt === 'documentLibrary') && item.size !== sentSize
}

interface SessionState {
  uploadUrl: string
  expiresAt: number
  offset: number
}

/**
 * Hosts of the uploadUrls the service returned to createUploadSession in this
 * process: the hosts a session's bytes may go to besides the configured ones.
 */
const issuedUploadHosts = new Set<string>()

/** Where the services put upload URLs (Personal *.up.1drv.com; Business and national clouds SharePoint hosts). */
export const DEFAULT_UPLOAD_HOSTS = ['*.1drv.com', '*.sharepoint.com', '*.sharepoint.us', '*.sharepoint-mil.us', '*.sharepoint.de', '*.sharepoint.cn']

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/

export interface UploaderOptions {
  /** Host patterns (`*.example.com` or exact names) upload URLs may point to, in addition to those issued in this process. */
  uploadHosts?: string[]
}

export class Uploader {
  readonly #hosts: string[]

  constructor(private readonly t: GraphTransport, opts: UploaderOptions = {}) {
    this.#hosts = (opts.uploadHosts ?? DEFAULT_UPLOAD_HOSTS).map((h) => h.toLowerCase())
  }

  /**
   * May a session's bytes or a DELETE go to this URL? Only https to a host the
   * service issued an upload URL for in this process, a configured host, or (when
   * the Graph API itself is on this machine: the emulator) the same port on loopback.
   */
  trusted(uploadUrl: string): boolean {
    let u: URL
    try {
      u = new URL(uploadUrl)
    } catch {
      return false
    }
    if (u.protocol !== 'https:' || u.username || u.password) return false
    if (issuedUploadHosts.has(u.host)) return true
    const host = u.hostname.toLowerCase()
    if (this.#hosts.some((p) => (p.startsWith('*.') ? host.endsWith(p.slice(1)) : host === p))) return true
    const api = new URL(this.t.baseUrl)
    return LOOPBACK.test(api.hostname) && LOOPBACK.test(u.hostname) && u.port === api.port
  }

  #target(parent: ItemRef, name: string): string {
    return `/drives/${encodeURIComponent(parent.driveId)}/items/${encodeURIComponent(parent.itemId)}:/${encodeSegment(name)}:`
  }

  /** Upload `source` as `name` in folder `parent`. */
  async upload(parent: ItemRef, name: string, source: UploadSource, opts: UploadOptions = {}): Promise<UploadResult> {
    const hashRetries = opts.hashRetries ?? 1
    for (let attempt = 0; ; attempt++) {
      const r = source.size === 0 ? await this.#uploadEmpty(parent, name, opts) : await this.#uploadSession(parent, name, source, opts)
      if (opts.verify === false) return r
      const check = await this.#verify(name, source.size, r)
      if (check.verified || check.serviceRewrite) return { ...r, item: check.item, verified: check.verified, serviceRewrite: check.serviceRewrite }
      if (check.missing) {
        this.t.log.warn({ itemId: r.item.id }, 'server reported no quickXorHash: upload not verified')
        return { ...r, item: check.item, verified: false }
      }
      const serverHash = check.item.file?.hashes?.quickXorHash
      this.t.log.warn({ itemId: r.item.id, attempt, size: source.size, serverSize: check.item.size }, 'quickXorHash mismatch after upload')
      if (attempt >= hashRetries) {
        throw new GraphError({
          status: 0,
          code: 'hashMismatch',
          message: `uploaded ${name} but the server's quickXorHash ${serverHash} differs from the local ${r.localHash}; the local file is unchanged`,
          details: { itemId: r.item.id, driveId: parent.driveId, localHash: r.localHash, serverHash, size: source.size, serverSize: check.item.size },
          level: 'error',
        })
      }
      // Retry as a replacement of what we just wrote.
      opts = { ...opts, conflictBehavior: 'replace' }
    }
  }

  async #verify(name: string, size: number, r: UploadResult): Promise<{ verified: boolean; serviceRewrite: boolean; missing: boolean; item: DriveItem }> {
    let item = r.item
    for (let i = 0; i < 4 && !item.file?.hashes?.quickXorHash; i++) {
      // Hashes may be filled in shortly after an upload (docs/graph-service.md §1.3).
      if (i > 0) await this.t.clock.sleep(1000 * i)
      item = await this.t.json<DriveItem>('GET', `/drives/${encodeURIComponent(item.parentReference?.driveId ?? '')}/items/${encodeURIComponent(item.id)}?$select=${ITEM_SELECT}`)
    }
    const server = item.file?.hashes?.quickXorHash
    if (!server) return { verified: false, serviceRewrite: false, missing: true, item }
    if (server === r.localHash && item.size === size) return { verified: true, serviceRewrite: false, missing: false, item }
    if (isServiceRewrite(name, size, item)) {
      this.t.log.info({ itemId: item.id, size, serverSize: item.size }, 'service rewrote the uploaded file (Office/SharePoint): accepted, not re-uploaded')
      return { verified: false, serviceRewrite: true, missing: false, item }
    }
    return { verified: false, serviceRewrite: false, missing: false, item }
  }

  async #uploadEmpty(parent: ItemRef, name: string, opts: UploadOptions): Promise<UploadResult> {
    const cb = opts.conflictBehavior ?? 'replace'
    let item: DriveItem
    try {
      item = await this.t.json<DriveItem>('PUT', `${this.#target(parent, name)}/content?@microsoft.graph.conflictBehavior=${cb}`, {
        body: Buffer.alloc(0),
        signal: opts.signal,
        idempotent: cb !== 'rename',
      })
    } catch (e) {
      // Resent after its answer was lost, a `fail` PUT meets the file its first attempt
      // created (409). An empty file at the name is exactly what was asked: success.
      if (!(cb === 'fail' && isGraphError(e) && e.attempts > 1 && e.classify() === 'nameConflict')) throw e
      const there = await this.t.json<DriveItem>('GET', `${this.#target(parent, name)}?$select=${ITEM_SELECT}`, {
        signal: opts.signal,
        label: 'GET /drives/{id}/items/{id}:{path}:',
      }).catch(() => undefined)
      if (!there?.file || there.size !== 0) throw e
      item = there
    }
    if (opts.mtime) item = await this.#setMtimeAfterUpload({ driveId: parent.driveId, itemId: item.id }, opts.mtime, opts.signal)
    return { item, resumedFrom: 0, bytesSent: 0, fragments: 0, localHash: new QuickXorHash().digest(), verified: false, serviceRewrite: false }
  }

  /** PATCH the mtime right after an upload; the eTag may change on its own then (docs/graph-service.md §4.3), so no If-Match and one retry on resourceModified. */
  async #setMtimeAfterUpload(ref: ItemRef, mtime: Date, signal?: AbortSignal): Promise<DriveItem> {
    for (let i = 0; ; i++) {
      try {
        return await this.t.json<DriveItem>('PATCH', `/drives/${encodeURIComponent(ref.driveId)}/items/${encodeURIComponent(ref.itemId)}`, {
          body: { fileSystemInfo: { lastModifiedDateTime: mtime.toISOString() } },
          signal,
          idempotent: true,
        })
      } catch (e) {
        if (i < 2 && isGraphError(e) && e.classify() === 'modified') {
          await this.t.clock.sleep(1000, signal)
          continue
        }
        throw e
      }
    }
  }

  async #createSession(parent: ItemRef, name: string, size: number, opts: UploadOptions): Promise<SessionState> {
    const item: Record<string, unknown> = { '@microsoft.graph.conflictBehavior': opts.conflictBehavior ?? 'replace', name }
    if (opts.mtime) item.fileSystemInfo = { lastModifiedDateTime: opts.mtime.toISOString() }
    const r = await this.t.json<{ uploadUrl: string; expirationDateTime?: string; nextExpectedRanges?: string[] }>(
      'POST',
      `${this.#target(parent, name)}/createUploadSession`,
      // Safe to resend (after a 5xx or a lost answer): a session creates no item, and one
      // left unused expires on its own (docs/graph-service.md §4.2). A service that refuses
      // the second session (409) fails this upload, which the caller retries later.
      { body: { item }, signal: opts.signal, idempotent: true, label: 'POST /drives/{id}/items/{id}:{path}:/createUploadSession' },
    )
    try {
      issuedUploadHosts.add(new URL(r.uploadUrl).host)
    } catch {
      throw new GraphError({ status: 200, code: 'invalidUploadUrl', message: `createUploadSession for ${name} answered without a valid uploadUrl` })
    }
    return {
      uploadUrl: r.uploadUrl,
      expiresAt: r.expirationDateTime ? Date.parse(r.expirationDateTime) : this.t.clock.now() + 15 * 60_000,
      offset: offsetFromRanges(r.nextExpectedRanges) ?? 0,
    }
  }

  /**
   * Ask the service where to continue. undefined = the session cannot be used any
   * more: gone (404), or its URL's embedded token expired (401; it lasts 24 h
   * whatever the session's own expiry). Other failures throw.
   */
  async #status(s: SessionState, signal?: AbortSignal): Promise<number | undefined> {
    const r = await this.t.sendUrl('GET', s.uploadUrl, { auth: false, idempotent: true, signal, label: 'GET {uploadUrl}' })
    if (r.res.status === 404 || r.res.status === 401) {
      await r.res.body?.cancel()
      return undefined
    }
    if (!r.res.ok) throw await this.t.errorOf(r, 'GET')
    const body = (await r.res.json()) as { nextExpectedRanges?: string[]; expirationDateTime?: string }
    if (body.expirationDateTime) s.expiresAt = Date.parse(body.expirationDateTime)
    return offsetFromRanges(body.nextExpectedRanges) ?? s.offset
  }

  /** Commit a session that holds every byte, at the target, with this call's conflict behaviour (docs/graph-service.md §4.2: PUT with sourceUrl). */
  async #commitBySourceUrl(parent: ItemRef, name: string, s: SessionState, opts: UploadOptions): Promise<DriveItem> {
    this.t.log.info({ name }, 'upload session holds every byte: committing it')
    return this.t.json<DriveItem>('PUT', this.#target(parent, name), {
      body: { name, '@microsoft.graph.conflictBehavior': opts.conflictBehavior ?? 'replace', '@microsoft.graph.sourceUrl': s.uploadUrl },
      signal: opts.signal,
      label: 'PUT /drives/{id}/items/{id}:{path}: (sourceUrl)',
    })
  }

  /** Cancel a session (DELETE uploadUrl); errors are ignored (it may be gone already). */
  async cancel(uploadUrl: string): Promise<void> {
    if (!this.trusted(uploadUrl)) {
      this.t.log.warn({ host: hostOf(uploadUrl) }, 'not cancelling an upload session whose URL the service did not issue')
      return
    }
    try {
      const r = await this.t.sendUrl('DELETE', uploadUrl, { auth: false, idempotent: true, label: 'DELETE {uploadUrl}' })
      await r.res.body?.cancel()
    } catch {
      // best effort
    }
  }

  /** Cancel and forget every persisted session that has expired or is older than `maxAgeMs`. */
  async cancelAbandoned(store: UploadSessionStore): Promise<number> {
    let n = 0
    for (const { key, session } of await store.list()) {
      if (session.expiresAt <= this.t.clock.now()) {
        await this.cancel(session.uploadUrl)
        await store.delete(key)
        n++
      }
    }
    return n
  }

  async #uploadSession(parent: ItemRef, name: string, source: UploadSource, opts: UploadOptions): Promise<UploadResult> {
    const size = source.size
    const fragSize = validFragmentSize(opts.fragmentSize ?? DEFAULT_FRAGMENT)
    const sourceId = opts.sourceId ?? `${size}`
    // One persisted session per target: a session left for other content is cancelled
    // below (the service may refuse a second session for the same file, docs/graph-service.md §4.2).
    const key = opts.sessionKey ?? `${parent.driveId}/${parent.itemId}/${name.toLowerCase()}`
    const store = opts.sessionStore
    const hs = { h: new QuickXorHash(), to: 0 }
    let bytesSent = 0
    let fragments = 0
    let restarts = 0

    let s: SessionState | undefined
    let resumedFrom = 0
    let saved = store ? await store.get(key) : undefined
    if (saved && !this.trusted(saved.uploadUrl)) {
      // Read back from disk but not a URL of the service: never send it bytes or a DELETE.
      this.t.log.warn({ name, host: hostOf(saved.uploadUrl) }, 'refusing a persisted upload session: its URL\'s host was not issued by the service; dropped')
      await store!.delete(key)
      saved = undefined
    }
    if (saved && saved.size === size && saved.sourceId === sourceId && saved.expiresAt > this.t.clock.now() + 10_000) {
      const st: SessionState = { uploadUrl: saved.uploadUrl, expiresAt: saved.expiresAt, offset: saved.offset }
      let at: number | undefined
      try {
        at = await this.#status(st, opts.signal)
      } catch (e) {
        if (opts.signal?.aborted) throw e
        // The probe failed: the session may still be open on the service. Cancel it
        // before forgetting it, or it lingers (and may block a new session, docs/graph-service.md §4.2).
        this.t.log.info({ name, error: (e as Error).message }, 'persisted upload session could not be probed: cancelling it and starting anew')
        await this.cancel(saved.uploadUrl)
      }
      if (at !== undefined) {
        st.offset = at
        s = st
        resumedFrom = at
        this.t.log.info({ name, offset: at, size }, 'resuming persisted upload session')
      } else if (store) {
        await store.delete(key)
      }
    } else if (saved && store) {
      // Expired or for other content: cancel it and start clean.
      await this.cancel(saved.uploadUrl)
      await store.delete(key)
    }
    if (!s) s = await this.#createSession(parent, name, size, opts)

    // The session's state is saved when it starts, then at most every SAVE_EVERY_MS
    // while fragments are acknowledged, each time in the background while a fragment
    // goes out (a save syncs a file: milliseconds on a disk, before every first
    // fragment when it was awaited), and once more when the upload stops without
    // finishing. A failed save stops the upload before the next fragment. The saved offset
    // may lag behind (a resume asks the service where to continue anyway); saves never
    // overlap, and each is awaited before the entry is deleted.
    let saving: Promise<void> = Promise.resolve()
    let saveFailed: { e: unknown } | undefined
    let lastSaved: PersistedUploadSession | undefined
    let savedAt = 0
    let forgotten = false
    const persist = (): Promise<void> => {
      if (!store) return saving
      const entry: PersistedUploadSession = {
        uploadUrl: s!.uploadUrl, expiresAt: s!.expiresAt, size, fragmentSize: fragSize,
        driveId: parent.driveId, parentId: parent.itemId, name, sourceId, offset: s!.offset,
      }
      lastSaved = entry
      savedAt = this.t.clock.now()
      saving = saving.then(() => store.put(key, entry))
      saving.catch((e: unknown) => void (saveFailed ??= { e }))
      return saving
    }
    /** Does the saved entry say less than what is known now? */
    const unsaved = () => !!store && !forgotten && (lastSaved?.uploadUrl !== s!.uploadUrl || lastSaved.offset !== s!.offset || lastSaved.expiresAt !== s!.expiresAt)
    const forget = async () => {
      if (!store) return
      forgotten = true
      await saving.catch(() => {})
      await store.delete(key)
    }
    void persist().catch(() => {})

    // The local hash covers the source's bytes [0, hs.to), in order. Pieces are
    // hashed as they go out (fragmentBody below); bytes not sent in order since (a
    // resume at another offset) are read again by hashTo().
    const hashTo = async (to: number) => {
      while (hs.to < to) {
        const from = hs.to
        const piece = await source.read(from, Math.min(8 << 20, to - from))
        if (hs.to !== from) continue // hashed meanwhile
        hs.h.update(piece)
        hs.to = from + piece.length
      }
    }
    /** Hash the source's bytes at `from` (a piece on its way out) where they extend the hash. */
    const hashPiece = (from: number, piece: Buffer) => {
      if (from <= hs.to && hs.to < from + piece.length) {
        hs.h.update(hs.to === from ? piece : piece.subarray(hs.to - from))
        hs.to = from + piece.length
      }
    }

    // A fragment is read from the source piece by piece, into its buffer, just before
    // each piece is sent (PIECES_AHEAD pieces ahead), and each piece is hashed on its
    // way: read, hashed and encrypted while it is in the CPU's cache, where a whole
    // fragment read at once went through memory three times (docs/performance.md).
    // The first piece of the next fragment is read while this one is sent, into one of
    // two small lead buffers, so a fragment's first byte waits for no read. Reads still
    // running are tracked: none may outlive the upload (the caller closes the source).
    //
    // One fragment buffer, reused (a fresh 10 MiB buffer per fragment kept the GC
    // busy): refilled only after the service acknowledged the fragment it held, so
    // its bytes have left the socket; so are the lead buffers.
    let fragBuf = Buffer.allocUnsafe(Math.min(fragSize, size))
    const reads = new Set<Promise<void>>()
    /** A read of the source that failed while its fragment was being sent. */
    let sourceFailed: { e: unknown } | undefined
    const track = (read: Promise<Buffer>): Promise<void> => {
      const settled = read.then(() => {}, () => {})
      reads.add(settled)
      void settled.then(() => reads.delete(settled))
      return settled
    }
    const pieceLen = Math.min(UPLOAD_PIECE, size)
    let leads = [Buffer.allocUnsafe(pieceLen), Buffer.allocUnsafe(pieceLen)]
    let leadReads: Promise<void>[] = [Promise.resolve(), Promise.resolve()]
    let lead: { start: number; read: Promise<Buffer> } | undefined
    let leadSlot = 0
    /** Read the piece at `from` into the other lead buffer (once its previous read is over). */
    const readLead = async (from: number) => {
      leadSlot ^= 1
      await leadReads[leadSlot]
      const read = source.read(from, Math.min(UPLOAD_PIECE, size - from), leads[leadSlot])
      leadReads[leadSlot] = track(read)
      lead = { start: from, read }
    }
    const fragmentBody = (start: number, len: number, buf: Buffer): PiecedBody => ({
      length: len,
      async *[Symbol.asyncIterator]() {
        const first = lead?.start === start ? lead.read : undefined
        const ahead: Promise<Buffer>[] = []
        let next = first ? Math.min(UPLOAD_PIECE, len) : 0
        for (let at = 0; at < len; at += UPLOAD_PIECE) {
          // With the first piece read already, it goes out after one read is begun (each
          // costs the event loop tens of µs); the rest are begun once it is on its way.
          const until = at === 0 && first ? UPLOAD_PIECE * 2 : at + PIECES_AHEAD * UPLOAD_PIECE
          for (; next < len && next < until; next += UPLOAD_PIECE) {
            const n = Math.min(UPLOAD_PIECE, len - next)
            const read = source.read(start + next, n, buf.subarray(next, next + n))
            void track(read)
            ahead.push(read)
          }
          let piece: Buffer
          try {
            piece = await (at === 0 && first ? first : ahead.shift()!)
          } catch (e) {
            // The transport sees a body that broke: remember that it was the source.
            sourceFailed ??= { e }
            throw e
          }
          hashPiece(start + at, piece)
          yield piece
          if (at === 0 && start + len < size && lead?.start !== start + len) await readLead(start + len)
        }
      },
    })
    /** After a fragment that was not acknowledged (its bytes may still sit in a socket's queue): fresh buffers. */
    const freshBuffers = () => {
      fragBuf = Buffer.allocUnsafe(fragBuf.length)
      leads = [Buffer.allocUnsafe(pieceLen), Buffer.allocUnsafe(pieceLen)]
      leadReads = [Promise.resolve(), Promise.resolve()]
      lead = undefined
    }

    // After the last fragment's answer was lost: the file as the service now holds
    // it, if it is this upload (same size and quickXorHash), else undefined.
    const committed = async (): Promise<UploadResult | undefined> => {
      await hashTo(size)
      const localHash = hs.h.digest()
      const r = await this.t.send('GET', `${this.#target(parent, name)}?$select=${ITEM_SELECT}`, { signal: opts.signal, label: 'GET /drives/{id}/items/{id}:{path}:' })
      if (r.res.status !== 200) {
        await r.res.body?.cancel()
        return undefined
      }
      const item = (await r.res.json()) as DriveItem
      if (item.size !== size || item.file?.hashes?.quickXorHash !== localHash) return undefined
      this.t.log.info({ name, size }, 'the last fragment\'s answer was lost but the service holds the file: upload complete')
      await forget()
      opts.onProgress?.(size, size)
      return { item, resumedFrom, bytesSent, fragments, localHash, verified: false, serviceRewrite: false }
    }

    let failures = 0
    opts.onProgress?.(s.offset, size)
    try {
      for (;;) {
        if (opts.signal?.aborted) throw opts.signal.reason
        if (saveFailed) throw saveFailed.e
        const start = s.offset
        if (start >= size) {
          // Everything acknowledged but no item seen (e.g. resumed after the last fragment): ask again.
          const at = await this.#status(s, opts.signal)
          if (at === undefined) {
            const done = await committed()
            if (done) return done
            throw new GraphError({ status: 404, code: 'uploadSessionNotFound', message: `upload session for ${name} vanished after the last byte and no matching file exists; run again to upload it anew` })
          }
          s.offset = at
          if (at >= size) {
            // Every byte is there but the commit failed earlier (a name conflict keeps the
            // session): commit it now with this call's conflict behaviour.
            const item = await this.#commitBySourceUrl(parent, name, s, opts)
            await forget()
            await hashTo(size)
            opts.onProgress?.(size, size)
            return { item, resumedFrom, bytesSent, fragments, localHash: hs.h.digest(), verified: false, serviceRewrite: false }
          }
          continue
        }
        const len = Math.min(fragSize, size - start)
        await hashTo(start) // nothing to do unless resumed: every piece sent so far was hashed
        const sending = this.t.sendUrl('PUT', s.uploadUrl, {
          body: fragmentBody(start, len, fragBuf),
          headers: { 'Content-Range': contentRange(start, start + len - 1, size) },
          auth: false,
          idempotent: false, // a broken fragment is resumed from the server's status, not blindly resent
          timeoutMs: 300_000,
          signal: opts.signal,
          label: 'PUT {uploadUrl}',
          raw: true,
          content: true,
        })
        sending.catch(() => {}) // awaited below; this only keeps an early failure from counting as unhandled
        let outcome: 'accepted' | 'done' | 'gone' | 'retry'
        let item: DriveItem | undefined
        try {
          const r = await sending
          bytesSent += len
          fragments++
          const st = r.res.status
          if (st === 202) {
            const body = (await r.res.json()) as { nextExpectedRanges?: string[]; expirationDateTime?: string }
            if (body.expirationDateTime) s.expiresAt = Date.parse(body.expirationDateTime)
            s.offset = offsetFromRanges(body.nextExpectedRanges) ?? start + len
            outcome = 'accepted'
            failures = 0
          } else if (st === 200 || st === 201) {
            item = (await r.res.json()) as DriveItem
            outcome = 'done'
          } else if (st === 404 || st === 401) {
            // Gone, or the URL's embedded token expired (401 from the upload host):
            // either way this session is over; a new one is started below.
            await r.res.body?.cancel()
            outcome = 'gone'
          } else if (st === 416 || (st >= 500 && st !== 507)) {
            const err = await this.t.errorOf(r, 'PUT')
            this.t.log.debug({ status: st, code: err.code, innerCode: err.innerCode, requestId: err.requestId }, 'fragment refused: asking the session where to resume')
            outcome = 'retry'
          } else {
            const err = await this.t.errorOf(r, 'PUT')
            if (err.classify() === 'nameConflict' && store) {
              // A name conflict at commit: the service keeps the session with every byte
              // (docs/graph-service.md §4.2). Keep it persisted too, so a later call (e.g. replacing) commits it
              // without sending the bytes again; cancelAbandoned() cancels it once expired.
              s.offset = size
              await persist()
              throw err
            }
            // Anything else is fatal, and a session nobody can resume is cancelled; so is
            // 507 quotaLimitReached (docs/graph-service.md: fatal): resending cannot make room.
            // The caller keeps the bytes and a later attempt starts a new session.
            await this.cancel(s.uploadUrl)
            await forget()
            throw err
          }
        } catch (e) {
          if (opts.signal?.aborted) throw e
          // A source that failed mid-fragment is reported as itself (EIO, the file
          // shrank): the network did not fail, and no retry can help.
          if (sourceFailed) throw sourceFailed.e
          if (!isNetworkError(e)) throw e
          // Connection reset or timeout mid-fragment: the service discards the partial fragment.
          this.t.log.debug({ offset: start, error: e.message }, 'fragment broke: asking the session where to resume')
          outcome = 'retry'
        }
        // A refused or broken fragment's bytes may still sit in a socket's queue: read the next into a new buffer.
        if (outcome !== 'accepted') freshBuffers()
        if (outcome === 'retry') {
          if (++failures > DEFAULT_RETRY.maxAttempts) {
            throw new GraphError({ status: 0, code: 'uploadFailed', message: `upload of ${name} kept failing at byte ${start}; run again to resume`, exhausted: true })
          }
          await this.t.clock.sleep(backoffDelay(failures, DEFAULT_RETRY), opts.signal)
          const at = await this.#status(s, opts.signal)
          if (at === undefined) outcome = 'gone'
          else s.offset = at
        }
        if (outcome === 'gone' && start + len >= size) {
          // The last fragment went out but its answer was lost: the service may have
          // committed the file and closed the session. Look before uploading it all again.
          const done = await committed()
          if (done) return done
        }
        if (outcome === 'gone') {
          // Expired or cancelled on the service: start over once, cleanly.
          if (++restarts > 2) throw new GraphError({ status: 404, code: 'uploadSessionNotFound', message: `upload session for ${name} keeps expiring` })
          this.t.log.info({ name, offset: start }, 'upload session expired: restarting from zero')
          s = await this.#createSession(parent, name, size, opts)
          resumedFrom = 0
        }
        if (outcome === 'done') {
          await forget()
          await hashTo(size)
          opts.onProgress?.(size, size)
          return { item: item!, resumedFrom, bytesSent, fragments, localHash: hs.h.digest(), verified: false, serviceRewrite: false }
        }
        if (outcome === 'accepted') {
          // Saved while the next fragment goes out; a failed save stops the upload before the one after.
          if (this.t.clock.now() - savedAt >= SAVE_EVERY_MS) void persist().catch(() => {})
        } else {
          await persist()
        }
        opts.onProgress?.(s.offset, size)
      }
    } catch (e) {
      // What the service has acknowledged is saved for a later call to resume from
      // (best effort: this error is the one reported). No save may still be writing
      // when the caller looks (or a later process resumes).
      if (unsaved()) await persist().catch(() => {})
      await saving.catch(() => {})
      throw e
    } finally {
      // Nor a read of a fragment's piece (one abandoned by a broken fragment) when the caller closes the source.
      await Promise.all(reads)
    }
  }
}
