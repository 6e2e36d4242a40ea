/**
 * Vfs: the filesystem the mount shows, as FUSE-shaped async operations on paths
 * (the shape of fuse-native's high-level API), with no fuse-native import: the
 * adapter in src/fuse only turns callbacks into calls and errors into errnos, so
 * everything here is tested without a kernel.
 *
 * The tree:   /My files/...  /Shared with me/...  /Shared libraries/<site>/<library>/...
 * (or the subtree given as `root`). Virtual directories are read-only.
 *
 * Metadata comes from one MetadataCache (cache.ts): a listing fills the attributes
 * of every child, so `ls -l` costs the listing pages and nothing per file; the
 * mount's own changes are applied to it at once. Names are looked up
 * case-insensitively and shown as OneDrive keeps them. File contents: remote files
 * are read by ranges (reader.ts); files being written are local copies in the
 * write-back spool (writeback.ts), which every read of that file uses.
 *
 * Inode numbers are stable per (driveId, itemId) and per virtual path for the
 * life of the mount; a new file keeps its number when its upload gives it an id.
 */
import { constants } from 'node:fs'
import { errorMessage, silentLogger, systemClock, type Clock, type Logger } from '../common/index.js'
import {
  canonicalDriveId, isFolder, isGraphError, mtimeOf, targetOf, type DriveClient, type DriveItem, type ItemRef,
} from '../graph/index.js'
import { MetadataCache, type Entry } from './cache.js'
import { VfsError } from './errors.js'
import { InodeTable } from './inodes.js'
import { checkPathLength, pathPrefixOf, sameName, toLocalName, toRemoteName, unshowableName } from './names.js'
import { ChunkReader, type ReadCursor, type ReadTarget } from './reader.js'
import { Spool } from './spool.js'
import { itemKey, LocalFile, MAX_FILE_SIZE, WriteBack, type Conflict, type PendingUpload } from './writeback.js'
import { MY_FILES, SHARED_LIBRARIES, SHARED_WITH_ME, TreeResolver } from './tree/index.js'

export interface VfsOptions {
  client: DriveClient
  /** Directory of the write-back spool (0700, created if missing). */
  spoolDir: string
  tree?: TreeResolver
  clock?: Clock
  log?: Logger
  /** Show this virtual path as the root (e.g. "My files/Documents"). */
  root?: string
  /** How long a directory listing answers lookups (ms, default 60 s). */
  dirCacheTimeMs?: number
  /** How long "no such name" is remembered (ms, default 5 s). */
  negativeTtlMs?: number
  /** Metadata cache bound, in entries (default 500,000). */
  maxCacheEntries?: number
  /** Largest read-ahead window (bytes, default 16 MiB; at most half the chunk cache). */
  readAhead?: number
  /** Read chunk cache (bytes, default 32 MiB). */
  chunkCacheBytes?: number
  /** Most bytes the write-back spool may hold (0 or undefined: what its disk has free). */
  spoolMaxBytes?: number
  /** Delay between the last close and the upload (ms, default 5 s). */
  writeBackMs?: number
  /** Uploads at once (default 4). */
  transfers?: number
  uid?: number
  gid?: number
  umask?: number
  /** Permission bits of files and directories (before umask; defaults 0666/0777). */
  fileMode?: number
  dirMode?: number
  readOnly?: boolean
  /** Check each drive in use for remote changes this often (ms; 0 or absent: never). */
  pollIntervalMs?: number
}

export interface Attr {
  ino: number
  mode: number
  nlink: number
  uid: number
  gid: number
  size: number
  blocks: number
  blksize: number
  atime: number
  mtime: number
  ctime: number
}

export interface StatFs {
  bsize: number
  frsize: number
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
  favail: number
  namemax: number
}

interface Handle {
  key: string
  /** Entry when opened (remote reads). */
  target: ReadTarget | undefined
  lf: LocalFile | undefined
  cursor: ReadCursor
  append: boolean
  write: boolean
}

interface Resolved {
  entry: Entry
  /** Parent directory entry (undefined for the root). */
  parent: Entry | undefined
}

export const XATTR_ID = 'user.onedrive.id'
export const XATTR_ETAG = 'user.onedrive.etag'
export const XATTR_HASH = 'user.onedrive.quickxorhash'

/** Access mode bits of open flags (Linux; not exported by node:fs). */
const O_ACCMODE = 3
const ROOT_KEY = 'v:'
const BLOCK = 4096
/** How often an unreachable service is probed (ms). */
const PROBE_MS = 5_000

function split(path: string): string[] {
  return path.split('/').filter((s) => s !== '' && s !== '.')
}

export class Vfs {
  readonly client: DriveClient
  readonly cache: MetadataCache
  readonly reader: ChunkReader
  readonly writeBack: WriteBack
  readonly spool: Spool
  readonly #tree: TreeResolver
  readonly #clock: Clock
  readonly #log: Logger
  readonly #o: VfsOptions
  readonly #startedAt: number
  readonly #inos = new InodeTable()
  readonly #handles = new Map<number, Handle>()
  #nextFh = 1
  readonly #listing = new Map<string, Promise<Entry[]>>()
  readonly #lookups = new Map<string, Promise<Entry | undefined>>()
  #root: Entry
  #myDriveId: string | undefined
  #quota: { at: number; total: number; remaining: number } | undefined
  readonly #fileMode: number
  readonly #dirMode: number
  /** Drives whose folders the mount has shown: the delta poll follows these. */
  readonly #drives = new Set<string>()
  readonly #rootIds = new Map<string, string>()
  readonly #stopPoll = new AbortController()

  constructor(o: VfsOptions) {
    this.#o = o
    this.client = o.client
    this.#clock = o.clock ?? systemClock
    this.#log = o.log ?? silentLogger
    this.#tree = o.tree ?? new TreeResolver(o.client)
    this.#startedAt = this.#clock.now()
    this.cache = new MetadataCache({
      clock: this.#clock,
      dirTtlMs: o.dirCacheTimeMs ?? 60_000,
      negativeTtlMs: o.negativeTtlMs ?? 5_000,
      maxEntries: o.maxCacheEntries ?? 500_000,
    })
    this.reader = new ChunkReader(o.client, { readAhead: o.readAhead ?? 16 << 20, cacheBytes: o.chunkCacheBytes ?? 32 << 20 })
    this.spool = new Spool(o.spoolDir, { maxBytes: o.spoolMaxBytes, log: this.#log })
    this.writeBack = new WriteBack({
      client: o.client, spool: this.spool, clock: this.#clock, log: this.#log,
      delayMs: o.writeBackMs ?? 5_000, transfers: o.transfers ?? 4,
      onUploaded: (lf, item, oldKey) => this.#uploaded(lf, item, oldKey),
      onConflict: (lf) => this.cache.invalidateDir(lf.parentKey),
    })
    const umask = o.umask ?? 0o022
    this.#fileMode = (o.fileMode ?? 0o666) & ~umask & 0o7777
    this.#dirMode = (o.dirMode ?? 0o777) & ~umask & 0o7777
    this.#root = this.#virtual([], '')
    this.#inos.set(ROOT_KEY, 1)
  }

  /**
   * Lock the spool, upload what an earlier run left journaled, and find the root.
   * The mount must answer only after this resolves.
   */
  async init(): Promise<{ recovered: number; failed: number }> {
    await this.spool.open()
    const drive = await this.#tree.myDrive()
    this.#myDriveId = canonicalDriveId(drive.id)
    const r = await this.writeBack.recover((ref) => this.#dirKeyOf(ref))
    if (this.#o.root && split(this.#o.root).length > 0) {
      const { entry } = await this.#resolve(this.#o.root)
      if (!entry.folder) throw new VfsError('notDir', `--root ${this.#o.root} is not a folder`)
      this.#root = { ...entry, fixed: true }
      this.#inos.set(entry.key, 1)
    }
    if (this.#o.pollIntervalMs && this.#o.pollIntervalMs > 0) void this.#poll(this.#o.pollIntervalMs)
    this.#watchReachability()
    return { recovered: r.recovered, failed: r.failed.length }
  }

  /**
   * While OneDrive cannot be reached, lookups and listings are answered from the
   * cache however old (#child, #children), writes go on into the spool, and the
   * service is probed every PROBE_MS; the moment it answers again (a probe or any
   * other call), waiting uploads start instead of sitting out their back-off.
   */
  #watchReachability(): void {
    const reach = this.client.reachability
    const signal = this.#stopPoll.signal
    const probe = async () => {
      while (reach.unreachableSince !== undefined && !signal.aborted) {
        try {
          await this.#clock.sleep(PROBE_MS, signal)
          await this.client.getMyDrive(signal)
        } catch {
          // still down (or stopping): the loop condition decides
        }
      }
    }
    const offDown = reach.onDown(() => {
      this.#log.warn({}, 'OneDrive cannot be reached: the mount answers from its cache and keeps what is written in the spool until it answers again')
      void probe()
    })
    const offBack = reach.onBack((downForMs) => {
      const resumed = this.writeBack.resume()
      this.#log.warn({ downForS: Math.round(downForMs / 1000), resumed }, 'OneDrive answers again: waiting uploads resume')
    })
    signal.addEventListener('abort', () => {
      offDown()
      offBack()
    }, { once: true })
  }

  /**
   * The delta poll: one cursor per drive in use, started at "now" (token=latest);
   * every change drops the cached listing of the folder it is in (and of the item
   * itself, when a folder), and cached chunks of a changed file. A resync clears
   * the whole cache. Drives the user may not enumerate are dropped from the poll.
   */
  async #poll(intervalMs: number): Promise<void> {
    const cursors = new Map<string, ReturnType<DriveClient['delta']>>()
    const signal = this.#stopPoll.signal
    for (;;) {
      try {
        await this.#clock.sleep(intervalMs, signal)
      } catch {
        return
      }
      for (const driveId of this.#drives) {
        try {
          let c = cursors.get(driveId)
          if (!c) {
            c = this.client.delta(driveId)
            await c.latest(signal)
            cursors.set(driveId, c)
            continue
          }
          const batch = await c.next(signal)
          if (batch.resync) {
            this.cache.clear()
            continue
          }
          this.#applyChanges(driveId, batch.items)
        } catch (e) {
          if (signal.aborted) return
          if (isGraphError(e) && ['accessDenied', 'notFound', 'badRequest'].includes(e.classify())) {
            this.#drives.delete(driveId)
            cursors.delete(driveId)
          }
          this.#log.debug({ driveId, err: errorMessage(e) }, 'delta poll failed')
        }
      }
    }
  }

  #applyChanges(driveId: string, items: DriveItem[]): void {
    for (const it of items) {
      if (it.root) {
        this.#rootIds.set(driveId, it.id)
        continue
      }
      const parentId = it.parentReference?.id
      if (parentId) {
        this.cache.invalidateDir(itemKey({ driveId, itemId: parentId }))
        if (parentId === this.#rootIds.get(driveId) || it.parentReference?.path?.endsWith('/root:')) {
          this.cache.invalidateDir(itemKey({ driveId, itemId: 'root' }))
        }
      }
      if (it.folder || it.deleted) this.cache.invalidateDir(itemKey({ driveId, itemId: it.id }))
      this.reader.forget(itemKey({ driveId, itemId: it.id }))
    }
  }

  /** Upload everything pending now; resolves with what is still not on OneDrive. */
  sync(): Promise<PendingUpload[]> {
    return this.writeBack.drain().then(() => this.writeBack.pending())
  }

  pending(): PendingUpload[] {
    return this.writeBack.pending()
  }

  /**
   * Forget cached metadata and file data (rclone's vfs/forget): the next lookups,
   * listings and reads ask OneDrive. Local copies in the spool are the data itself
   * and stay; inode numbers stay.
   */
  dropCaches(): void {
    this.cache.clear()
    this.reader.clear()
  }

  /** Files uploaded beside a remote change (name (conflict DATE HOST).ext), for `odfs status`. */
  conflicts(): Conflict[] {
    return [...this.writeBack.conflicts]
  }

  /**
   * Shutdown: journal open copies, upload what can be uploaded within `waitMs`
   * (default: no bound), release the spool. What is left stays journaled for the
   * next mount and is returned.
   */
  async close(opts: { waitMs?: number } = {}): Promise<PendingUpload[]> {
    this.#stopPoll.abort()
    await this.writeBack.journalOpen()
    const drained = this.writeBack.drain({ closing: true }).then(() => false)
    if (opts.waitMs === undefined) await drained
    else {
      const bound = new AbortController()
      const timedOut = await Promise.race([drained, this.#clock.sleep(opts.waitMs, bound.signal).then(() => true, () => false)])
      bound.abort()
      if (timedOut) this.#log.warn({ waitedMs: opts.waitMs, left: this.writeBack.pending().length }, 'stopping with uploads still running: they stay journaled for the next mount')
    }
    const left = this.writeBack.pending()
    await this.writeBack.close()
    await this.spool.close()
    return left
  }

  // ---- entries, keys, inodes ----------------------------------------------------

  #virtual(vpath: string[], name: string): Entry {
    return { name, key: `v:${vpath.join('/')}`, folder: true, vpath, size: 0, mtimeMs: this.#startedAt, ctimeMs: this.#startedAt, fixed: true, at: 0 }
  }

  /** Cache key of a folder: drive roots are keyed by the 'root' alias they are reached by. */
  #dirKeyOf(ref: ItemRef): string {
    return itemKey(ref)
  }

  #entryOfItem(item: DriveItem, fallbackDrive: string, at: number, nameOverride?: string): Entry {
    const ref = targetOf(item)
    if (!ref.driveId) ref.driveId = fallbackDrive
    const folder = isFolder(item)
    const mtimeMs = mtimeOf(item)?.getTime() ?? this.#startedAt
    return {
      name: nameOverride ?? toLocalName(item.name ?? item.remoteItem?.name ?? item.id),
      key: itemKey(ref),
      folder,
      ref,
      size: folder ? 0 : (item.remoteItem?.size ?? item.size ?? 0),
      mtimeMs,
      ctimeMs: Date.parse(item.lastModifiedDateTime ?? '') || mtimeMs,
      ...(item.eTag ? { eTag: item.eTag } : {}),
      ...(item.cTag ? { cTag: item.cTag } : {}),
      ...((item.file?.hashes?.quickXorHash ?? item.remoteItem?.file?.hashes?.quickXorHash)
        ? { quickXorHash: item.file?.hashes?.quickXorHash ?? item.remoteItem?.file?.hashes?.quickXorHash }
        : {}),
      at,
    }
  }

  #entryOfLocal(lf: LocalFile): Entry {
    return {
      name: lf.name, key: lf.key, folder: false,
      ...(lf.itemId ? { ref: { driveId: lf.parent.driveId, itemId: lf.itemId } } : {}),
      size: lf.size, mtimeMs: lf.mtimeMs, ctimeMs: lf.ctimeMs,
      ...(lf.baseETag ? { eTag: lf.baseETag } : {}),
      at: this.#clock.now(),
    }
  }

  #ino(key: string): number {
    return this.#inos.of(key)
  }

  #uploaded(lf: LocalFile, item: DriveItem, oldKey: string): void {
    const e = this.#entryOfItem(item, lf.parent.driveId, this.#clock.now(), lf.name)
    this.#inos.carry(oldKey, e.key)
    this.cache.put(lf.parentKey, e)
    this.reader.forget(e.key)
  }

  // ---- resolution ---------------------------------------------------------------

  async #listVirtual(dir: Entry): Promise<Entry[]> {
    const now = this.#clock.now()
    const vp = dir.vpath!
    if (vp.length === 0) {
      const my = this.#myDriveId ?? canonicalDriveId((await this.#tree.myDrive()).id)
      const out: Entry[] = [
        { ...this.#virtual([MY_FILES], MY_FILES), key: itemKey({ driveId: my, itemId: 'root' }), ref: { driveId: my, itemId: 'root' }, vpath: undefined },
        this.#virtual([SHARED_WITH_ME], SHARED_WITH_ME),
      ]
      if ((await this.#tree.sites()).length > 0) out.push(this.#virtual([SHARED_LIBRARIES], SHARED_LIBRARIES))
      return out
    }
    const list = await this.#tree.list(vp.join('/'))
    return list.map((v) => {
      if (!v.ref) return this.#virtual([...vp, v.name], v.name)
      const mtimeMs = v.mtime ? Date.parse(v.mtime) : this.#startedAt
      return {
        name: v.name, key: itemKey(v.ref), folder: v.folder, ref: v.ref, size: v.folder ? 0 : (v.size ?? 0),
        mtimeMs, ctimeMs: mtimeMs, fixed: true, at: now,
        ...(v.item?.eTag ? { eTag: v.item.eTag } : {}),
      }
    })
  }

  /** The children of a directory from the service (all pages); fills the cache. */
  #list(dir: Entry): Promise<Entry[]> {
    let p = this.#listing.get(dir.key)
    if (!p) {
      p = (async () => {
        const at = this.#clock.now()
        let entries: Entry[]
        if (dir.vpath) {
          entries = await this.#listVirtual(dir)
        } else {
          entries = []
          this.#drives.add(dir.ref!.driveId)
          for await (const page of this.client.iterateChildren(dir.ref!)) {
            for (const item of page) {
              const e = this.#entryOfItem(item, dir.ref!.driveId, at)
              const why = unshowableName(e.name)
              if (why) {
                // Never an unsafe name on the mount; the rest of the folder stays readable.
                this.#log.warn({ folder: dir.name, itemId: item.id, why }, 'an item the service listed is hidden: its name cannot be shown on this filesystem')
                continue
              }
              entries.push(e)
            }
            const parentId = page[0]?.parentReference?.id
            if (dir.ref!.itemId === 'root' && parentId) this.#rootIds.set(dir.ref!.driveId, parentId)
          }
        }
        this.cache.setListing(dir.key, entries, at)
        return entries
      })().finally(() => this.#listing.delete(dir.key))
      this.#listing.set(dir.key, p)
    }
    return p
  }

  /**
   * A child by name. `how.stale` is set when the answer came from a cache past its
   * time because OneDrive cannot be reached (see #offline).
   */
  async #child(dir: Entry, name: string, how?: { stale: boolean }): Promise<Entry | undefined> {
    if (!dir.folder) throw new VfsError('notDir', `${dir.name} is not a folder`)
    const lf = this.writeBack.find(dir.key, name)
    if (lf) return this.#entryOfLocal(lf)
    const c = this.cache.lookup(dir.key, name)
    if (c.hit) return c.entry
    const stale = () => {
      const s = this.cache.staleLookup(dir.key, name)
      if (s.hit && how) how.stale = true
      return s
    }
    if (this.#offline()) {
      const s = stale()
      if (s.hit) return s.entry
    }
    try {
      return await this.#ask(dir, name)
    } catch (e) {
      if (!this.#noAnswer(e)) throw e
      const s = stale()
      if (!s.hit) throw e
      return s.entry
    }
  }

  /** The service cannot be reached now (the last attempt could not connect). */
  #offline(): boolean {
    return this.client.reachability.unreachableSince !== undefined
  }

  /** No answer from the service (after the pipeline's retries): the cache may answer instead. */
  #noAnswer(e: unknown): boolean {
    return isGraphError(e) && ['network', 'timeout'].includes(e.classify())
  }

  /** The children of a directory: a fresh listing, else the service's, else (unreachable) the last one taken. */
  async #children(dir: Entry): Promise<Entry[]> {
    const fresh = this.cache.listing(dir.key)
    if (fresh) return fresh
    const stale = this.#offline() ? this.cache.staleListing(dir.key) : undefined
    if (stale) return stale
    try {
      return await this.#list(dir)
    } catch (e) {
      const last = this.#noAnswer(e) ? this.cache.staleListing(dir.key) : undefined
      if (!last) throw e
      return last
    }
  }

  /** A child by name from the service (one call per name at a time); fills the cache. */
  #ask(dir: Entry, name: string): Promise<Entry | undefined> {
    if (dir.vpath) {
      // From the listing itself: with --dir-cache-time 0 the cache trusts it for no time at all.
      const k = name.toLowerCase()
      return this.#list(dir).then((all) => all.find((e) => e.name.toLowerCase() === k))
    }
    const k = `${dir.key}\0${name.toLowerCase()}`
    let p = this.#lookups.get(k)
    if (!p) {
      p = (async () => {
        let remote: string
        try {
          remote = toRemoteName(name)
        } catch {
          return undefined // a name OneDrive cannot hold cannot exist there
        }
        this.#drives.add(dir.ref!.driveId)
        try {
          const item = await this.client.getItemByPath(dir.ref!.driveId, remote, { relativeTo: dir.ref!.itemId })
          const e = this.#entryOfItem(item, dir.ref!.driveId, this.#clock.now())
          this.cache.put(dir.key, e)
          return e
        } catch (e) {
          if (isGraphError(e) && e.classify() === 'notFound') {
            this.cache.putMissing(dir.key, name)
            return undefined
          }
          throw e
        }
      })().finally(() => this.#lookups.delete(k))
      this.#lookups.set(k, p)
    }
    return p
  }

  async #resolve(path: string): Promise<Resolved> {
    let entry = this.#root
    let parent: Entry | undefined
    for (const seg of split(path)) {
      const next = await this.#child(entry, seg)
      if (!next) throw new VfsError('notFound', `no such file: ${path}`)
      parent = entry
      entry = next
    }
    return { entry, parent }
  }

  /** Parent directory and leaf name of a path to be created; the parent must hold files. */
  async #parentOf(path: string): Promise<{ dir: Entry; name: string }> {
    const segs = split(path)
    const name = segs.pop()
    if (name === undefined) throw new VfsError('exists', 'the root exists')
    const { entry: dir } = await this.#resolve(segs.join('/'))
    if (!dir.folder) throw new VfsError('notDir', `${segs.join('/')} is not a folder`)
    if (dir.vpath) throw new VfsError('virtualDir', `${segs.join('/') || '/'} is a virtual folder: files live in My files, Shared with me and the libraries`)
    return { dir, name }
  }

  /**
   * A file that will exist only locally until its upload: refuse now (ENAMETOOLONG)
   * a path OneDrive will refuse then. Checked where the path from the drive root is
   * known from the mount path (My files); elsewhere the upload's refusal says so.
   */
  async #checkNewPath(path: string): Promise<void> {
    const segs = [...split(this.#o.root ?? ''), ...split(path)]
    if (segs[0] !== MY_FILES || segs.length < 2) return
    const prefix = pathPrefixOf(await this.#tree.myDrive())
    checkPathLength('/' + segs.slice(1).map(toRemoteName).join('/'), prefix)
  }

  #writable(): void {
    if (this.#o.readOnly) throw new VfsError('readOnlyMount', 'mounted read-only')
  }

  // ---- attributes -----------------------------------------------------------------

  #attr(e: Entry): Attr {
    const lf = e.folder ? undefined : this.writeBack.byKey(e.key)
    const size = lf ? lf.size : e.size
    const mtime = lf ? lf.mtimeMs : e.mtimeMs
    const readOnlyDir = !!e.vpath || this.#o.readOnly
    const perm = e.folder ? (readOnlyDir ? this.#dirMode & ~0o222 : this.#dirMode) : (this.#o.readOnly ? this.#fileMode & ~0o222 : this.#fileMode)
    return {
      ino: e.key === this.#root.key ? 1 : this.#ino(e.key),
      mode: (e.folder ? constants.S_IFDIR : constants.S_IFREG) | perm,
      nlink: e.folder ? 2 : 1,
      uid: this.#o.uid ?? process.getuid?.() ?? 0,
      gid: this.#o.gid ?? process.getgid?.() ?? 0,
      size,
      blocks: Math.ceil(size / 512),
      blksize: BLOCK,
      atime: mtime,
      mtime,
      ctime: Math.max(mtime, lf ? lf.ctimeMs : e.ctimeMs),
    }
  }

  async getattr(path: string): Promise<Attr> {
    const { entry } = await this.#resolve(path)
    const a = this.#attr(entry)
    // A name spelled in another case than OneDrive's is the same file under a distinct
    // inode number: `mv h H` then sees two files and renames instead of refusing
    // ("are the same file"), as on a case-preserving local disk.
    const spelled = split(path).pop()
    if (spelled !== undefined && spelled !== entry.name) a.ino = this.#ino(`${entry.key}\0${spelled}`)
    return a
  }

  async readdir(path: string): Promise<{ names: string[]; attrs: Attr[] }> {
    const { entry: dir } = await this.#resolve(path)
    if (!dir.folder) throw new VfsError('notDir', `${path} is not a folder`)
    const entries = await this.#children(dir)
    const byName = new Map<string, Entry>()
    for (const e of entries) byName.set(e.name.toLowerCase(), e)
    for (const lf of this.writeBack.inDir(dir.key)) byName.set(lf.name.toLowerCase(), this.#entryOfLocal(lf))
    const list = [...byName.values()]
    return { names: ['.', '..', ...list.map((e) => e.name)], attrs: [this.#attr(dir), this.#attr(dir), ...list.map((e) => this.#attr(e))] }
  }

  async statfs(): Promise<StatFs> {
    const now = this.#clock.now()
    if (!this.#quota || now - this.#quota.at > 60_000) {
      const d = await this.client.getMyDrive()
      const total = d.quota?.total ?? 0
      this.#quota = { at: now, total, remaining: d.quota?.remaining ?? Math.max(0, total - (d.quota?.used ?? 0)) }
    }
    const blocks = Math.floor(this.#quota.total / BLOCK)
    const free = Math.floor(this.#quota.remaining / BLOCK)
    // 255 UTF-16 units is OneDrive's limit per name; bytes can be more, this is the usual answer.
    return { bsize: BLOCK, frsize: BLOCK, blocks, bfree: free, bavail: free, files: 1_000_000, ffree: 1_000_000, favail: 1_000_000, namemax: 255 }
  }

  // ---- files ------------------------------------------------------------------------

  #newHandle(h: Handle): number {
    const fh = this.#nextFh++
    this.#handles.set(fh, h)
    return fh
  }

  #handle(fh: number): Handle {
    const h = this.#handles.get(fh)
    if (!h) throw new VfsError('badHandle', `no open file ${fh}`)
    return h
  }

  /** The local copy of a file, made now if needed (its bytes fetched unless it is to be emptied). */
  async #localOf(entry: Entry, parent: Entry, truncate: boolean): Promise<LocalFile> {
    const existing = this.writeBack.byKey(entry.key)
    if (existing) return existing
    if (!entry.ref || !parent.ref) throw new VfsError('virtualDir', `${entry.name} cannot be written here`)
    return this.writeBack.adopt(parent.ref, parent.key, entry.name, entry.ref, { size: entry.size, mtimeMs: entry.mtimeMs, eTag: entry.eTag, cTag: entry.cTag }, truncate)
  }

  async open(path: string, flags: number): Promise<number> {
    const { entry, parent } = await this.#resolve(path)
    if (entry.folder) {
      if ((flags & O_ACCMODE) !== constants.O_RDONLY) throw new VfsError('isDir', `${path} is a folder`)
      return this.#newHandle({ key: entry.key, target: undefined, lf: undefined, cursor: this.reader.newCursor(), append: false, write: false })
    }
    const write = (flags & O_ACCMODE) !== constants.O_RDONLY
    const trunc = write && (flags & constants.O_TRUNC) !== 0
    if (write) this.#writable()
    let lf = this.writeBack.byKey(entry.key)
    if (!lf && write) lf = await this.#localOf(entry, parent!, trunc)
    if (lf) {
      lf.opens++
      if (lf.state !== 'uploading') lf.state = 'open'
      if (trunc && lf.size > 0) await lf.truncate(0, this.#clock.now())
    }
    const target = entry.ref ? { key: entry.key, ref: entry.ref, size: entry.size, version: entry.cTag ?? entry.eTag ?? String(entry.mtimeMs), ...(entry.cTag ? { pin: entry.cTag } : {}), ...(entry.quickXorHash ? { hash: entry.quickXorHash } : {}) } : undefined
    return this.#newHandle({ key: entry.key, target, lf, cursor: this.reader.newCursor(), append: (flags & constants.O_APPEND) !== 0, write })
  }

  async create(path: string, _mode: number): Promise<number> {
    this.#writable()
    const { dir, name } = await this.#parentOf(path)
    const how = { stale: false }
    const existing = await this.#child(dir, name, how)
    if (existing?.folder) throw new VfsError('isDir', `${path} is a folder`)
    if (existing) return this.open(path, constants.O_RDWR | constants.O_TRUNC)
    await this.#checkNewPath(path)
    const lf = await this.writeBack.createNew(dir.ref!, dir.key, name, this.#clock.now(), { unverified: how.stale })
    lf.opens++
    this.cache.remove(dir.key, name)
    return this.#newHandle({ key: lf.key, target: undefined, lf, cursor: this.reader.newCursor(), append: false, write: true })
  }

  async read(fh: number, buf: Buffer, len: number, offset: number): Promise<number> {
    const h = this.#handle(fh)
    // A file with pending local writes is read from its local copy, whichever handle asks.
    const lf = h.lf ?? this.writeBack.byKey(h.key)
    if (lf) return lf.read(buf, len, offset)
    if (!h.target) throw new VfsError('isDir', 'not a file')
    return this.reader.read(h.target, h.cursor, buf, len, offset)
  }

  async write(fh: number, buf: Buffer, len: number, offset: number): Promise<number> {
    const h = this.#handle(fh)
    if (!h.lf || !h.write) throw new VfsError('badHandle', 'file not open for writing')
    return h.lf.write(buf, len, h.append ? h.lf.size : offset, this.#clock.now())
  }

  async flush(fh: number): Promise<void> {
    // close(2) waits for flush but not for release: what was written must be journaled here.
    const h = this.#handles.get(fh)
    if (h?.lf && h.write) await this.writeBack.flushed(h.lf)
  }

  async fsync(fh: number): Promise<void> {
    const h = this.#handle(fh)
    const lf = h.lf ?? this.writeBack.byKey(h.key)
    if (lf) await this.writeBack.flushNow(lf)
  }

  async release(fh: number): Promise<void> {
    const h = this.#handles.get(fh)
    if (!h) return
    this.#handles.delete(fh)
    if (h.lf) {
      h.lf.opens--
      if (h.lf.opens === 0) await this.writeBack.closed(h.lf)
    }
  }

  async truncate(path: string, size: number): Promise<void> {
    this.#writable()
    if (size > MAX_FILE_SIZE) throw new VfsError('tooLarge', `${path}: OneDrive files end at 250 GB`)
    const { entry, parent } = await this.#resolve(path)
    if (entry.folder) throw new VfsError('isDir', `${path} is a folder`)
    let lf = this.writeBack.byKey(entry.key)
    if (!lf && size === entry.size && size === 0) return
    lf ??= await this.#localOf(entry, parent!, size === 0)
    if (lf.size !== size) await lf.truncate(size, this.#clock.now())
    if (lf.opens === 0) await this.writeBack.closed(lf)
  }

  async ftruncate(fh: number, size: number): Promise<void> {
    const h = this.#handle(fh)
    if (!h.lf) throw new VfsError('badHandle', 'file not open for writing')
    await h.lf.truncate(size, this.#clock.now())
  }

  /** Set the modification time ('now', or undefined to leave it); atime is not kept. */
  async utimens(path: string, _atime: number | 'now' | undefined, mtime: number | 'now' | undefined): Promise<void> {
    this.#writable()
    const { entry, parent } = await this.#resolve(path)
    if (mtime === undefined) return
    const mtimeMs = mtime === 'now' ? this.#clock.now() : mtime
    const lf = entry.folder ? undefined : this.writeBack.byKey(entry.key)
    if (lf) {
      lf.mtimeMs = mtimeMs
      await this.writeBack.touched(lf)
      return
    }
    if (!entry.ref || entry.fixed) return // virtual and top-level entries keep their times
    if (Math.floor(entry.mtimeMs) === Math.floor(mtimeMs)) return // unchanged: no Graph call (rsync -t on every file)
    const item = await this.client.setMtime(entry.ref, new Date(mtimeMs))
    if (parent) this.cache.put(parent.key, this.#entryOfItem(item, entry.ref.driveId, this.#clock.now(), entry.name))
  }

  async unlink(path: string): Promise<void> {
    this.#writable()
    const { entry, parent } = await this.#resolve(path)
    if (entry.folder) throw new VfsError('isDir', `${path} is a folder`)
    if (entry.fixed || !parent || parent.vpath) throw new VfsError('virtualDir', `${path} cannot be removed from here`)
    const lf = this.writeBack.byKey(entry.key)
    if (lf) await this.writeBack.discard(lf)
    if (entry.ref) await this.client.deleteItem(entry.ref)
    this.cache.remove(parent.key, entry.name)
    this.reader.forget(entry.key)
  }

  async mkdir(path: string, _mode: number): Promise<void> {
    this.#writable()
    const { dir, name } = await this.#parentOf(path)
    if (await this.#child(dir, name)) throw new VfsError('exists', `${path} exists`)
    const item = await this.client.createFolder(dir.ref!, toRemoteName(name), 'fail')
    const e = this.#entryOfItem(item, dir.ref!.driveId, this.#clock.now(), name)
    this.cache.put(dir.key, e)
    // A folder just made is empty: lookups in it (cp -r into it) need no call per name.
    this.cache.setListing(e.key, [], e.at)
  }

  async rmdir(path: string): Promise<void> {
    this.#writable()
    const { entry, parent } = await this.#resolve(path)
    if (!entry.folder) throw new VfsError('notDir', `${path} is not a folder`)
    if (entry.fixed || !parent || parent.vpath) throw new VfsError('virtualDir', `${path} cannot be removed from here`)
    if (this.writeBack.inDir(entry.key).length > 0) throw new VfsError('notEmpty', `${path} is not empty`)
    // Ask the service (not the cache): a folder is removed with everything in it.
    const first = await this.client.iterateChildren(entry.ref!, { top: 1 }).next()
    if (!first.done && first.value.length > 0) throw new VfsError('notEmpty', `${path} is not empty`)
    await this.client.deleteItem(entry.ref!)
    this.cache.remove(parent.key, entry.name)
    this.cache.invalidateDir(entry.key)
  }

  async rename(from: string, to: string): Promise<void> {
    this.#writable()
    const src = await this.#resolve(from)
    // A file with a local copy is renamed while no upload of it runs: an upload is
    // addressed by the name it started with, and would land beside the moved item.
    const lf = src.entry.folder ? undefined : this.writeBack.byKey(src.entry.key)
    const busy = lf && this.writeBack.busy(lf)
    if (busy) {
      // Its upload or another rename is under way: let it end, then rename what there is then.
      await busy
      return this.rename(from, to)
    }
    if (lf) return this.writeBack.exclusive(lf, () => this.#rename(from, to, src, lf))
    return this.#rename(from, to, src, undefined)
  }

  async #rename(from: string, to: string, src: Resolved, lf: LocalFile | undefined): Promise<void> {
    const { dir, name } = await this.#parentOf(to)
    if (src.entry.fixed || !src.parent || src.parent.vpath) throw new VfsError('virtualDir', `${from} cannot be moved`)
    const srcDrive = src.entry.ref?.driveId ?? lf?.parent.driveId
    if (srcDrive !== dir.ref!.driveId) throw new VfsError('crossDrive', `${from} and ${to} are on different drives`)
    // A file not uploaded yet is refused now a path OneDrive would refuse; OneDrive checks the others' moves itself.
    if (!src.entry.ref) await this.#checkNewPath(to)
    if (src.entry.folder) {
      // A folder cannot be moved into itself.
      for (let p = split(to), i = p.length - 1; i > 0; i--) {
        const up = await this.#resolve(p.slice(0, i).join('/')).catch(() => undefined)
        if (up?.entry.key === src.entry.key) throw new VfsError('invalid', `cannot move ${from} into itself`)
      }
    }
    const sameParent = src.parent.key === dir.key
    const self = sameParent && sameName(src.entry.name, name)
    if (self && src.entry.name === name) return
    let replace = false
    const how = { stale: false }
    let replaced = false
    if (!self) {
      const dst = await this.#child(dir, name, how)
      replaced = !!dst
      if (dst) {
        if (dst.key === src.entry.key) return
        if (dst.fixed) throw new VfsError('virtualDir', `${to} cannot be replaced`)
        if (src.entry.folder && !dst.folder) throw new VfsError('notDir', `${to} is not a folder`)
        if (!src.entry.folder && dst.folder) throw new VfsError('isDir', `${to} is a folder`)
        if (dst.folder) await this.rmdir(to) // POSIX: an empty folder may be replaced; ENOTEMPTY otherwise
        else {
          const dlf = this.writeBack.byKey(dst.key)
          if (dlf) await this.writeBack.discard(dlf)
          replace = !!dst.ref
          if (replace && !src.entry.ref) {
            // The waiting upload replaces it by name; until then the remote one is hidden.
            replace = false
          }
        }
        this.cache.remove(dir.key, dst.name)
        this.reader.forget(dst.key)
      }
    }
    await this.#move(src, dir, name, sameParent, self, replace, replaced, how, lf)
  }

  /** The move itself, on OneDrive, in the cache and in the spool (no upload of the file runs meanwhile). */
  async #move(src: Resolved, dir: Entry, name: string, sameParent: boolean, self: boolean, replace: boolean, replaced: boolean, how: { stale: boolean }, lf: LocalFile | undefined): Promise<void> {
    if (src.entry.ref) {
      const item = await this.client.move(src.entry.ref, {
        name: toRemoteName(name),
        ...(sameParent ? {} : { parentId: dir.ref!.itemId }),
        ...(replace ? { conflictBehavior: 'replace' as const } : {}),
      })
      this.cache.remove(src.parent!.key, src.entry.name)
      this.cache.put(dir.key, { ...this.#entryOfItem(item, dir.ref!.driveId, this.#clock.now(), name), key: src.entry.key, ref: src.entry.ref })
    } else {
      this.cache.remove(src.parent!.key, src.entry.name)
    }
    if (lf) {
      // A new file moved onto a name known absent only from a stale cache must not replace what is there.
      if (!lf.itemId && !self) lf.unverified = !replaced && how.stale
      await this.writeBack.move(lf, dir.ref!, dir.key, name)
    }
  }

  // ---- metadata-only operations -------------------------------------------------------

  async chmod(path: string, _mode: number): Promise<void> {
    await this.#resolve(path) // accepted without effect: OneDrive keeps no modes
  }

  async chown(path: string, _uid: number, _gid: number): Promise<void> {
    await this.#resolve(path) // accepted without effect
  }

  async #xattrs(path: string): Promise<Map<string, string>> {
    const { entry } = await this.#resolve(path)
    const m = new Map<string, string>()
    if (entry.ref && !entry.vpath) {
      m.set(XATTR_ID, entry.ref.itemId)
      if (entry.eTag) m.set(XATTR_ETAG, entry.eTag)
      if (entry.quickXorHash && !this.writeBack.byKey(entry.key)?.dirty) m.set(XATTR_HASH, entry.quickXorHash)
    }
    return m
  }

  async listxattr(path: string): Promise<string[]> {
    return [...(await this.#xattrs(path)).keys()]
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    const v = (await this.#xattrs(path)).get(name)
    if (v === undefined) throw new VfsError('noAttribute', `${path}: no attribute ${name}`)
    return Buffer.from(v)
  }

  async setxattr(path: string, name: string): Promise<void> {
    await this.#resolve(path)
    throw new VfsError('unsupported', `extended attributes cannot be stored on OneDrive (${name})`)
  }

  async removexattr(path: string, name: string): Promise<void> {
    await this.#resolve(path)
    throw new VfsError('unsupported', `extended attributes cannot be changed on OneDrive (${name})`)
  }

  async symlink(_target: string, _path: string): Promise<void> {
    throw new VfsError('notPermitted', 'OneDrive holds no symbolic links')
  }

  async link(_from: string, _to: string): Promise<void> {
    throw new VfsError('notPermitted', 'OneDrive holds no hard links')
  }

  async mknod(_path: string, _mode: number): Promise<void> {
    throw new VfsError('notPermitted', 'OneDrive holds only files and folders')
  }

  /** A remote change seen by the delta poll: forget the folders it touches. */
  invalidate(dirRefs: ItemRef[], itemKeys: string[] = []): void {
    for (const r of dirRefs) this.cache.invalidateDir(itemKey(r))
    for (const k of itemKeys) this.reader.forget(k)
  }

  /** For logs: one line about an operation that failed with EIO. */
  describe(err: unknown): string {
    return errorMessage(err)
  }
}
