/**
 * DriveClient: one typed method per Graph call shape odfs makes, over the shared
 * middleware pipeline (auth, retry, per-user rate limit). Listing asks for the
 * largest page (1000) with `$select` of only the fields odfs uses; items in the
 * user's own drive are requested with `Prefer: Include-Feature=AddToOneDrive` so
 * shortcuts to shared folders appear (docs/graph-service.md §6, §7.2a).
 */
import pLimit from 'p-limit'
import { DeltaCursor } from './delta.js'
import { Downloader, type DownloadResult, type DownloadSink, type DownloadToOptions, type DownloadWrite, type OpenRangeOptions, type RangeStream } from './download.js'
import { GraphError, isGraphError } from './errors.js'
import { encodePath, encodeSegment, shareIdOf } from './paths.js'
import type { RateLimiter } from './ratelimit.js'
import type { Reachability } from './reachability.js'
import { GraphTransport, type TransportOptions } from './transport.js'
import { Uploader, type UploadOptions, type UploadResult, type UploadSessionStore, type UploadSource } from './upload.js'
import {
  canonicalDriveId, ITEM_SELECT, MAX_PAGE_SIZE, type ConflictBehavior, type Drive, type DriveItem, type ItemRef, type Site,
} from './types.js'

/** The transport's options (base URL, token provider, dispatcher, rate limit, retry) plus transfer settings. */
export interface GraphDriveClientOptions extends TransportOptions {
  /** Upload fragment size (rounded down to a multiple of 320 KiB; default 10 MiB). */
  fragmentSize?: number
  /** Transfers (uploads, downloads) running at once (default 4). */
  maxConcurrentTransfers?: number
  /** Reuse download URLs this long (ms). */
  downloadUrlTtlMs?: number
  /**
   * Host patterns (`*.sharepoint.com`, exact names) a persisted upload session's URL
   * may point to (default DEFAULT_UPLOAD_HOSTS); hosts the service issued upload URLs
   * for in this process are always accepted.
   */
  uploadHosts?: string[]
}

export interface ListOptions {
  signal?: AbortSignal
  /** Page size (default and maximum 1000). */
  top?: number
}

export interface MoveOptions {
  name?: string
  /** New parent (same drive). */
  parentId?: string
  /** `replace` overwrites an existing file of that name (docs/graph-service.md §5). */
  conflictBehavior?: ConflictBehavior
  mtime?: Date
  ifMatch?: string
  signal?: AbortSignal
}

export interface SharedEntry {
  /** Name shown under "Shared with me". */
  name: string
  /** Where the item really lives. */
  ref: ItemRef
  folder: boolean
  size: number | undefined
  mtime: string | undefined
  source: 'sharedWithMe' | 'shortcut' | 'search' | 'link'
}

export interface ClientStats {
  requests: number
  retries: number
  throttled: number
  networkErrors: number
  tokenRefreshes: number
  downloadUrlFetches: number
}

export interface DriveClient {
  readonly baseUrl: string
  readonly limiter: RateLimiter
  /** Whether the service answers at all (unreachable since when; onDown/onBack). */
  readonly reachability: Reachability
  /** The signed-in user's drive, with quota. */
  getMyDrive(signal?: AbortSignal): Promise<Drive>
  getDrive(driveId: string, signal?: AbortSignal): Promise<Drive>
  getItem(ref: ItemRef, signal?: AbortSignal): Promise<DriveItem>
  /** An item by path relative to the drive root or to `relativeTo` (works inside shared folders). */
  getItemByPath(driveId: string, path: string, opts?: { relativeTo?: string; signal?: AbortSignal }): Promise<DriveItem>
  /**
   * An item by path in the signed-in user's drive, without knowing the drive's id
   * (`/me/drive/root:/path:`); the item's parentReference names the drive.
   */
  getMyItemByPath(path: string, opts?: { signal?: AbortSignal }): Promise<DriveItem>
  /** Every child (all pages, gathered: prefer iterateChildren for large folders). */
  listChildren(ref: ItemRef, opts?: ListOptions): Promise<DriveItem[]>
  /** Children page by page (up to 1000 a page), as they arrive. */
  iterateChildren(ref: ItemRef, opts?: ListOptions): AsyncGenerator<DriveItem[]>
  /** `/me/drive/sharedWithMe` raw (empty after the endpoint's retirement). */
  sharedWithMe(signal?: AbortSignal): Promise<DriveItem[]>
  /** `POST /search/query` for driveItems (Business). */
  searchDriveItems(queryString: string, opts?: { signal?: AbortSignal; max?: number }): Promise<DriveItem[]>
  /** A sharing link resolved through `/shares` (redeem: lasting access). */
  resolveShareLink(link: string, opts?: { redeem?: boolean; signal?: AbortSignal }): Promise<DriveItem>
  /** Items shared with the user, surviving sharedWithMe's retirement (docs/graph-service.md §7.2a). */
  listSharedWithMe(opts?: { links?: string[]; signal?: AbortSignal }): Promise<SharedEntry[]>
  listFollowedSites(signal?: AbortSignal): Promise<Site[]>
  listSiteDrives(siteId: string, signal?: AbortSignal): Promise<Drive[]>
  createFolder(parent: ItemRef, name: string, conflictBehavior?: ConflictBehavior, signal?: AbortSignal): Promise<DriveItem>
  /** Rename and/or move (same drive), optionally replacing an existing file and setting the mtime. */
  move(ref: ItemRef, opts: MoveOptions): Promise<DriveItem>
  setMtime(ref: ItemRef, mtime: Date, signal?: AbortSignal): Promise<DriveItem>
  deleteItem(ref: ItemRef, opts?: { ifMatch?: string; signal?: AbortSignal }): Promise<void>
  delta(driveId: string, state?: string): DeltaCursor
  /**
   * Bytes [start, endExclusive) of a file. The last argument is a signal or
   * options; `pin` (a RangeStream.version of an earlier read) makes the read fail
   * with `changedDuringRead` if the file was replaced since.
   */
  openRange(ref: ItemRef, start: number, endExclusive?: number, opts?: AbortSignal | OpenRangeOptions): Promise<RangeStream>
  /** A file's bytes into `to`: a function given each chunk at its offset, or a sink that lends its memory (DownloadSink). */
  download(ref: ItemRef, to: DownloadWrite | DownloadSink, opts?: DownloadToOptions): Promise<DownloadResult>
  upload(parent: ItemRef, name: string, source: UploadSource, opts?: UploadOptions): Promise<UploadResult>
  cancelUploadSession(uploadUrl: string): Promise<void>
  cancelAbandonedUploads(store: UploadSessionStore): Promise<number>
  stats(): ClientStats
}

const SHORTCUT_PREFER = { Prefer: 'Include-Feature=AddToOneDrive' }

function d(id: string): string {
  return encodeURIComponent(id)
}

/** Does `item` show every change `opts` asked for? */
function applied(item: DriveItem, opts: MoveOptions): boolean {
  if (opts.name !== undefined && item.name !== opts.name) return false
  if (opts.parentId !== undefined && item.parentReference?.id !== opts.parentId) return false
  if (opts.mtime) {
    const at = Date.parse(item.fileSystemInfo?.lastModifiedDateTime ?? '')
    // The service keeps whole seconds.
    if (Number.isNaN(at) || Math.floor(at / 1000) !== Math.floor(opts.mtime.getTime() / 1000)) return false
  }
  return true
}

interface Page<T> {
  value: T[]
  '@odata.nextLink'?: string
}

/** How long an interrupted children listing can be resumed from its nextLink (ms). */
export const LISTING_RESUME_MS = 60_000

/** An error after which the same nextLink may work again (no answer, or a 5xx/429 after the retries). */
function resumable(e: unknown): boolean {
  return isGraphError(e) && (e.status === 0 || e.status === 429 || e.status >= 500)
}

class GraphDriveClient implements DriveClient {
  readonly #t: GraphTransport
  readonly #down: Downloader
  readonly #up: Uploader
  readonly #transfers: ReturnType<typeof pLimit>
  readonly #fragmentSize: number | undefined
  #myDriveId: string | undefined
  /** Children listings interrupted after their retries, by folder: the pages taken and where to go on. */
  readonly #interrupted = new Map<string, { pages: DriveItem[][]; next: string; at: number }>()

  constructor(opts: GraphDriveClientOptions) {
    this.#t = new GraphTransport(opts)
    this.#down = new Downloader(this.#t, { ttlMs: opts.downloadUrlTtlMs })
    this.#up = new Uploader(this.#t, { uploadHosts: opts.uploadHosts })
    this.#transfers = pLimit(opts.maxConcurrentTransfers ?? 4)
    this.#fragmentSize = opts.fragmentSize
  }

  get baseUrl(): string {
    return this.#t.baseUrl
  }

  get limiter(): RateLimiter {
    return this.#t.limiter
  }

  get reachability(): Reachability {
    return this.#t.reachability
  }

  stats(): ClientStats {
    return { ...this.#t.counters, downloadUrlFetches: this.#down.urlFetches }
  }

  async getMyDrive(signal?: AbortSignal): Promise<Drive> {
    const drive = await this.#t.json<Drive>('GET', '/me/drive?$select=id,driveType,name,owner,quota,webUrl', { signal })
    this.#myDriveId = canonicalDriveId(drive.id)
    return drive
  }

  getDrive(driveId: string, signal?: AbortSignal): Promise<Drive> {
    return this.#t.json<Drive>('GET', `/drives/${d(driveId)}?$select=id,driveType,name,owner,quota,webUrl`, { signal })
  }

  async getItem(ref: ItemRef, signal?: AbortSignal): Promise<DriveItem> {
    const item = await this.#t.json<DriveItem>('GET', `/drives/${d(ref.driveId)}/items/${d(ref.itemId)}?$select=${ONE_ITEM_SELECT}`, { signal, headers: SHORTCUT_PREFER })
    return this.#keepDownloadUrl(item, ref)
  }

  getItemByPath(driveId: string, path: string, opts: { relativeTo?: string; signal?: AbortSignal } = {}): Promise<DriveItem> {
    const base = opts.relativeTo ? `/drives/${d(driveId)}/items/${d(opts.relativeTo)}` : `/drives/${d(driveId)}/root`
    return this.#itemByPath(base, path, driveId, 'GET /drives/{id}/items/{id}:{path}:', opts.signal)
  }

  getMyItemByPath(path: string, opts: { signal?: AbortSignal } = {}): Promise<DriveItem> {
    return this.#itemByPath('/me/drive/root', path, this.#myDriveId, 'GET /me/drive/root:{path}:', opts.signal)
  }

  async #itemByPath(base: string, path: string, driveId: string | undefined, label: string, signal: AbortSignal | undefined): Promise<DriveItem> {
    const rel = encodePath(path)
    const url = rel ? `${base}:/${rel}:?$select=${ONE_ITEM_SELECT}` : `${base}?$select=${ONE_ITEM_SELECT}`
    const item = await this.#t.json<DriveItem>('GET', url, { signal, headers: SHORTCUT_PREFER, label })
    const drive = item.parentReference?.driveId ?? driveId
    return this.#keepDownloadUrl(item, drive === undefined ? undefined : { driveId: drive, itemId: item.id })
  }

  /**
   * A file's item fetched alone comes with its download URL: the downloader keeps it
   * (so reading the file next costs no request of its own, as `odfs get` does right
   * after resolving the path), and it is taken out of the item, so the URL, a
   * credential, is held in one place and never in the metadata the caller keeps.
   */
  #keepDownloadUrl(item: DriveItem, ref: ItemRef | undefined): DriveItem {
    const url = item['@microsoft.graph.downloadUrl']
    if (url === undefined) return item
    delete item['@microsoft.graph.downloadUrl']
    if (ref && item.file && !item.remoteItem) this.#down.keep(ref, item, url)
    return item
  }

  /**
   * Pages as they arrive. A page that fails after the transport's retries (a reset
   * connection, a 5xx) ends this enumeration with the error, but the pages before it
   * and its nextLink are kept a while (LISTING_RESUME_MS): the next enumeration of
   * the same folder replays them and goes on from that nextLink instead of page 1.
   * The kept nextLink is tried before anything is replayed; if the service no longer
   * takes it (4xx), the enumeration starts over.
   */
  async *iterateChildren(ref: ItemRef, opts: ListOptions = {}): AsyncGenerator<DriveItem[]> {
    const top = Math.min(MAX_PAGE_SIZE, opts.top ?? MAX_PAGE_SIZE)
    const first = `/drives/${d(ref.driveId)}/items/${d(ref.itemId)}/children?$top=${top}&$select=${ITEM_SELECT}`
    const key = `${ref.driveId}\u0000${ref.itemId}\u0000${top}`
    const fetchPage = (url: string) => this.#t.json<Page<DriveItem>>('GET', url, {
      signal: opts.signal,
      headers: SHORTCUT_PREFER,
      label: 'GET /drives/{id}/items/{id}/children',
    })
    const kept = this.#interrupted.get(key)
    this.#interrupted.delete(key)
    let pages: DriveItem[][] = []
    let url: string | undefined = first
    let page: Page<DriveItem> | undefined
    if (kept && this.#t.clock.now() - kept.at < LISTING_RESUME_MS) {
      try {
        page = await fetchPage(kept.next)
        pages = kept.pages
        url = kept.next
      } catch (e) {
        if (resumable(e)) {
          this.#interrupted.set(key, { ...kept, at: this.#t.clock.now() })
          throw e
        }
        // The service no longer takes the nextLink: from the start.
      }
    }
    for (const p of pages) yield p
    while (url) {
      if (!page) {
        try {
          page = await fetchPage(url)
        } catch (e) {
          if (url !== first && resumable(e)) this.#interrupted.set(key, { pages, next: url, at: this.#t.clock.now() })
          throw e
        }
      }
      pages.push(page.value)
      yield page.value
      url = page['@odata.nextLink'] // followed verbatim
      page = undefined
    }
  }

  async listChildren(ref: ItemRef, opts: ListOptions = {}): Promise<DriveItem[]> {
    const all: DriveItem[] = []
    for await (const page of this.iterateChildren(ref, opts)) all.push(...page)
    return all
  }

  async #allPages<T>(path: string, signal?: AbortSignal, headers?: Record<string, string>): Promise<T[]> {
    const out: T[] = []
    let url: string | undefined = path
    while (url) {
      const page: Page<T> = await this.#t.json<Page<T>>('GET', url, { signal, headers })
      out.push(...(page.value ?? []))
      url = page['@odata.nextLink']
    }
    return out
  }

  sharedWithMe(signal?: AbortSignal): Promise<DriveItem[]> {
    return this.#allPages<DriveItem>('/me/drive/sharedWithMe', signal)
  }

  async searchDriveItems(queryString: string, opts: { signal?: AbortSignal; max?: number } = {}): Promise<DriveItem[]> {
    const out: DriveItem[] = []
    const size = 200
    const max = opts.max ?? 5000
    for (let from = 0; from < max; from += size) {
      const r = await this.#t.json<{
        value?: { hitsContainers?: { hits?: { resource?: DriveItem }[]; moreResultsAvailable?: boolean }[] }[]
      }>('POST', '/search/query', {
        body: { requests: [{ entityTypes: ['driveItem'], query: { queryString }, from, size }] },
        signal: opts.signal,
        idempotent: true,
      })
      let more = false
      for (const v of r.value ?? []) {
        for (const c of v.hitsContainers ?? []) {
          for (const h of c.hits ?? []) if (h.resource?.id) out.push(h.resource)
          more ||= !!c.moreResultsAvailable
        }
      }
      if (!more) break
    }
    return out
  }

  resolveShareLink(link: string, opts: { redeem?: boolean; signal?: AbortSignal } = {}): Promise<DriveItem> {
    return this.#t.json<DriveItem>('GET', `/shares/${shareIdOf(link)}/driveItem?$select=${ITEM_SELECT}`, {
      signal: opts.signal,
      headers: { Prefer: opts.redeem === false ? 'redeemSharingLinkIfNecessary' : 'redeemSharingLink' },
      label: 'GET /shares/{id}/driveItem',
    })
  }

  async listSharedWithMe(opts: { links?: string[]; signal?: AbortSignal } = {}): Promise<SharedEntry[]> {
    const signal = opts.signal
    const entries: SharedEntry[] = []
    const seen = new Set<string>()
    const add = (e: SharedEntry) => {
      const k = `${e.ref.driveId}\u0000${e.ref.itemId}`
      if (seen.has(k)) return
      seen.add(k)
      entries.push(e)
    }
    const fromRemote = (it: DriveItem, source: SharedEntry['source']) => {
      const r = it.remoteItem
      if (!r?.parentReference?.driveId) return
      add({
        name: it.name ?? r.name ?? r.id,
        ref: { driveId: canonicalDriveId(r.parentReference.driveId), itemId: r.id },
        folder: !!r.folder,
        size: r.size,
        mtime: r.fileSystemInfo?.lastModifiedDateTime,
        source,
      })
    }
    const myDrive = this.#myDriveId ?? canonicalDriveId((await this.getMyDrive(signal)).id)
    const drive = await this.getDrive(myDrive, signal).catch(() => undefined)
    // 1. sharedWithMe, while it still answers (retired November 2026: then it is empty).
    try {
      for (const it of await this.sharedWithMe(signal)) fromRemote(it, 'sharedWithMe')
    } catch (e) {
      if (!isGraphError(e)) throw e
      this.#t.log.debug({ code: e.code }, 'sharedWithMe unavailable')
    }
    // 2. Shortcuts ("Add to My files" / "Add to OneDrive") in the user's own root.
    for await (const page of this.iterateChildren({ driveId: myDrive, itemId: 'root' }, { signal })) {
      for (const it of page) if (it.remoteItem) fromRemote(it, 'shortcut')
    }
    // 3. Search (Business): driveItems that live in other drives.
    if (drive?.driveType !== 'personal') {
      try {
        const hits = (await this.searchDriveItems('*', { signal })).filter(
          (h) => h.parentReference?.driveId && canonicalDriveId(h.parentReference.driveId) !== myDrive,
        )
        const ids = new Set(hits.map((h) => h.id))
        for (const h of hits) {
          // Only the top of each shared tree: skip hits whose parent is itself a hit.
          if (h.parentReference?.id && ids.has(h.parentReference.id)) continue
          add({
            name: h.name ?? h.id,
            ref: { driveId: canonicalDriveId(h.parentReference!.driveId), itemId: h.id },
            folder: !!h.folder,
            size: h.size,
            mtime: h.fileSystemInfo?.lastModifiedDateTime,
            source: 'search',
          })
        }
      } catch (e) {
        if (!isGraphError(e)) throw e
        this.#t.log.debug({ code: e.code }, 'search unavailable')
      }
    }
    // 4. Sharing links the user registered.
    // A link revoked or an item deleted since is skipped: it must not hide the rest.
    for (const link of opts.links ?? []) {
      let it: DriveItem
      try {
        it = await this.resolveShareLink(link, { signal })
      } catch (e) {
        if (!isGraphError(e) || !['notFound', 'accessDenied', 'badRequest'].includes(e.classify())) throw e
        this.#t.log.warn({ code: e.code }, 'a sharing link added with odfs shared add no longer resolves; skipped (odfs shared remove forgets it)')
        continue
      }
      add({
        name: it.name ?? it.id,
        ref: { driveId: canonicalDriveId(it.parentReference?.driveId ?? ''), itemId: it.id },
        folder: !!it.folder,
        size: it.size,
        mtime: it.fileSystemInfo?.lastModifiedDateTime,
        source: 'link',
      })
    }
    return entries
  }

  listFollowedSites(signal?: AbortSignal): Promise<Site[]> {
    return this.#allPages<Site>('/me/followedSites?$select=id,name,displayName,webUrl', signal)
  }

  listSiteDrives(siteId: string, signal?: AbortSignal): Promise<Drive[]> {
    return this.#allPages<Drive>(`/sites/${d(siteId)}/drives?$select=id,driveType,name,owner,quota,webUrl`, signal)
  }

  async createFolder(parent: ItemRef, name: string, conflictBehavior: ConflictBehavior = 'fail', signal?: AbortSignal): Promise<DriveItem> {
    const path = `/drives/${d(parent.driveId)}/items/${d(parent.itemId)}/children`
    try {
      // Resent after a 5xx or a lost answer, except with `rename`, where a resend could make a second folder.
      return await this.#t.json<DriveItem>('POST', path, {
        body: { name, folder: {}, '@microsoft.graph.conflictBehavior': conflictBehavior },
        signal,
        idempotent: conflictBehavior !== 'rename',
      })
    } catch (e) {
      // A `fail` POST resent after its first attempt went through meets that folder (409):
      // a folder at the name is exactly what was asked.
      if (!(conflictBehavior === 'fail' && isGraphError(e) && e.attempts > 1 && e.classify() === 'nameConflict')) throw e
      const there = await this.#t.json<DriveItem>('GET', `/drives/${d(parent.driveId)}/items/${d(parent.itemId)}:/${encodeSegment(name)}:?$select=${ITEM_SELECT}`, {
        signal,
        label: 'GET /drives/{id}/items/{id}:{path}:',
      }).catch(() => undefined)
      if (!there?.folder) throw e
      return there
    }
  }

  async move(ref: ItemRef, opts: MoveOptions): Promise<DriveItem> {
    const body: Record<string, unknown> = {}
    if (opts.name !== undefined) body.name = opts.name
    if (opts.parentId !== undefined) body.parentReference = { id: opts.parentId, driveId: ref.driveId }
    if (opts.mtime) body.fileSystemInfo = { lastModifiedDateTime: opts.mtime.toISOString() }
    const q = opts.conflictBehavior ? `?@microsoft.graph.conflictBehavior=${opts.conflictBehavior}` : ''
    const headers: Record<string, string> = {}
    if (opts.ifMatch) headers['If-Match'] = opts.ifMatch
    try {
      return await this.#t.json<DriveItem>('PATCH', `/drives/${d(ref.driveId)}/items/${d(ref.itemId)}${q}`, {
        body,
        headers,
        signal: opts.signal,
        idempotent: true,
      })
    } catch (e) {
      // A PATCH resent after its answer was lost meets its own change: the eTag moved on
      // (412 with If-Match) or the name is taken by the item itself. If the item now
      // is what was asked, the first attempt went through: that is success.
      if (isGraphError(e) && e.attempts > 1 && ['modified', 'nameConflict'].includes(e.classify())) {
        const now = await this.getItem(ref, opts.signal).catch(() => undefined)
        if (now && applied(now, opts)) return now
      }
      throw e
    }
  }

  setMtime(ref: ItemRef, mtime: Date, signal?: AbortSignal): Promise<DriveItem> {
    return this.move(ref, { mtime, signal })
  }

  async deleteItem(ref: ItemRef, opts: { ifMatch?: string; signal?: AbortSignal } = {}): Promise<void> {
    const headers: Record<string, string> = {}
    if (opts.ifMatch) headers['If-Match'] = opts.ifMatch
    this.#down.invalidate(ref)
    try {
      await this.#t.json<void>('DELETE', `/drives/${d(ref.driveId)}/items/${d(ref.itemId)}`, { headers, signal: opts.signal })
    } catch (e) {
      // A retried DELETE whose first attempt went through finds nothing: that is success.
      if (isGraphError(e) && e.classify() === 'notFound' && e.attempts > 1) return
      throw e
    }
  }

  delta(driveId: string, state?: string): DeltaCursor {
    return new DeltaCursor(this.#t, driveId, state)
  }

  openRange(ref: ItemRef, start: number, endExclusive?: number, opts?: AbortSignal | OpenRangeOptions): Promise<RangeStream> {
    return this.#down.openRange(ref, start, endExclusive, opts)
  }

  download(ref: ItemRef, to: DownloadWrite | DownloadSink, opts: DownloadToOptions = {}): Promise<DownloadResult> {
    return this.#transfers(() => this.#down.downloadTo(ref, to, opts))
  }

  upload(parent: ItemRef, name: string, source: UploadSource, opts: UploadOptions = {}): Promise<UploadResult> {
    const o = { fragmentSize: this.#fragmentSize, ...opts }
    return this.#transfers(async () => {
      const res = await this.#up.upload(parent, name, source, o)
      // A download URL cached for the file this replaced serves the old version.
      this.#down.invalidate({ driveId: parent.driveId, itemId: res.item.id })
      return res
    })
  }

  cancelUploadSession(uploadUrl: string): Promise<void> {
    return this.#up.cancel(uploadUrl)
  }

  cancelAbandonedUploads(store: UploadSessionStore): Promise<number> {
    return this.#up.cancelAbandoned(store)
  }
}

/** The properties of an item fetched alone: those of a listing, and a file's download URL (kept by the downloader). */
const ONE_ITEM_SELECT = `${ITEM_SELECT},@microsoft.graph.downloadUrl`

export function createGraphDriveClient(opts: GraphDriveClientOptions): DriveClient {
  return new GraphDriveClient(opts)
}

export { GraphError }
