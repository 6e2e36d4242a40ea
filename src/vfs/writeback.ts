/**
 * Write-back: every file written through the mount is a local copy in the spool
 * (see spool.ts) until OneDrive holds its bytes.
 *
 *   open for writing   the copy is made (empty for O_TRUNC or a new file, else the
 *                      remote bytes are fetched first); every handle of one file
 *                      shares one LocalFile
 *   last close         the copy is fsync'd and journaled atomically before close
 *                      returns, then uploaded after the write-back delay
 *   fsync              uploads at once and returns when OneDrive holds the bytes
 *   rename / unlink    of a waiting copy change its target / cancel its upload
 *   crash              the next mount uploads every journaled copy before it answers
 *
 * Uploads run through DriveClient.upload (upload session, simple PUT for empty
 * files, mtime in the same request, quickXorHash verified), at most `transfers` at
 * once; a failed upload stays journaled and is retried with a growing delay.
 *
 * Locking: none needed beyond the event loop; a LocalFile's fields change only in
 * this module and in Vfs, never across an await that assumes them unchanged
 * (the upload snapshots size, name, parent and generation before it starts).
 */
import type { FileHandle } from 'node:fs/promises'
import { hostname } from 'node:os'
import pLimit from 'p-limit'
import { errorMessage, silentLogger, systemClock, type Clock, type Logger } from '../common/index.js'
import { FileUploadSessionStore, isGraphError, QuickXorHash, type DriveClient, type DriveItem, type ItemRef, type UploadResult, type UploadSource, type ConflictBehavior } from '../graph/index.js'
import { VfsError } from './errors.js'
import { HandleSink } from './handle-sink.js'
import { toRemoteName } from './names.js'
import { Spool, type JournalRecord, type LocalState } from './spool.js'

/** OneDrive's largest file (docs/graph-service.md §4): writes beyond it fail with EFBIG. */
export const MAX_FILE_SIZE = 250 * 1024 ** 3

export const itemKey = (ref: ItemRef): string => `i:${ref.driveId}:${ref.itemId}`

/** The version of a file at its last close, kept while the live copy is written again. */
interface Snapshot {
  dataId: string
  fh: FileHandle
  size: number
  mtimeMs: number
}

export class LocalFile {
  opens = 0
  /** The spool data file being written (changes when the copy is detached from its journaled version). */
  dataId: string
  /** A journal record points at dataId's bytes as they are now: they must not change in place. */
  journaled = false
  /** The last closed version, journaled, while the live copy (not journaled) is written again. */
  snapshot: Snapshot | undefined
  detaching: Promise<void> | undefined
  /** A rename is moving the file (WriteBack.exclusive): no upload starts and the copy is not dropped meanwhile. */
  moving: Promise<void> | undefined
  /** A journal of the live copy in progress (#journal): the bytes must not change until it is written. */
  journaling: Promise<void> | undefined
  /** Run before the bytes change (WriteBack.beforeChange). */
  beforeChange: ((lf: LocalFile) => Promise<void>) | undefined
  /** Bumped by every change of the bytes. */
  dataGen = 0
  /** dataGen OneDrive holds (-1: nothing uploaded yet, a new file). */
  syncedGen: number
  /** mtime OneDrive holds (after the last upload or utimens). */
  syncedMtimeMs: number
  state: LocalState = 'open'
  deleted = false
  error: string | undefined
  /** What fixes the last failure, when its cause is permanent (FIXES). */
  fix: string | undefined
  failures = 0
  running: Promise<void> | undefined
  wake: AbortController | undefined
  readonly ctimeMs: number
  /** cTag (content tag) of the remote file the copy started from: a different one now is a conflict. */
  baseCTag: string | undefined
  /** The spool that accounts for the copy's space (set when it is indexed). */
  spool: Spool | undefined
  /** Created on a name checked only against a stale cache (offline): never replace what is there. */
  unverified = false

  constructor(
    readonly id: string,
    public fh: FileHandle,
    public parent: ItemRef,
    public parentKey: string,
    public name: string,
    public size: number,
    public mtimeMs: number,
    public itemId: string | undefined,
    public baseETag: string | undefined,
    synced: boolean,
  ) {
    this.dataId = id
    this.syncedGen = synced ? 0 : -1
    this.syncedMtimeMs = synced ? mtimeMs : -1
    this.ctimeMs = mtimeMs
  }

  /** The file's identity while it is local: its remote item's key, or its own. */
  get key(): string {
    return this.itemId ? itemKey({ driveId: this.parent.driveId, itemId: this.itemId }) : `l:${this.id}`
  }

  get dirty(): boolean {
    return this.dataGen !== this.syncedGen || this.mtimeMs !== this.syncedMtimeMs
  }

  async read(buf: Buffer, len: number, offset: number): Promise<number> {
    if (offset >= this.size) return 0
    const n = Math.min(len, this.size - offset)
    const { bytesRead } = await this.fh.read(buf, 0, n, offset)
    // Bytes past the data file's end (a sparse extension) read as zeros.
    if (bytesRead < n) buf.fill(0, bytesRead, n)
    return n
  }

  async write(buf: Buffer, len: number, offset: number, now: number): Promise<number> {
    if (offset + len > MAX_FILE_SIZE) throw new VfsError('tooLarge', `${this.name}: OneDrive files end at 250 GB`)
    await this.beforeChange?.(this)
    if (offset + len > this.size) await this.spool?.claim(this.dataId, offset + len)
    let done = 0
    while (done < len) {
      const { bytesWritten } = await this.fh.write(buf, done, len - done, offset + done)
      done += bytesWritten
    }
    this.size = Math.max(this.size, offset + len)
    this.mtimeMs = now
    this.dataGen++
    return len
  }

  async truncate(size: number, now: number): Promise<void> {
    if (size > MAX_FILE_SIZE) throw new VfsError('tooLarge', `${this.name}: OneDrive files end at 250 GB`)
    await this.beforeChange?.(this)
    if (size > this.size) await this.spool?.claim(this.dataId, size)
    await this.fh.truncate(size)
    if (size < this.size) await this.spool?.claim(this.dataId, size)
    this.size = size
    this.mtimeMs = now
    this.dataGen++
  }

  record(over: Partial<JournalRecord> = {}): JournalRecord {
    return {
      v: 1, id: this.dataId, driveId: this.parent.driveId, parentId: this.parent.itemId, name: this.name,
      ...(this.itemId ? { itemId: this.itemId } : {}), ...(this.baseETag ? { baseETag: this.baseETag } : {}),
      ...(this.baseCTag ? { baseCTag: this.baseCTag } : {}),
      ...(this.unverified && !this.itemId ? { unverified: true as const } : {}),
      size: this.size, mtimeMs: this.mtimeMs, state: this.state, sessionKey: this.dataId,
      ...(this.error ? { error: this.error } : {}), journaledAt: Date.now(), ...over,
    }
  }
}

export interface WriteBackOptions {
  client: DriveClient
  spool: Spool
  clock?: Clock
  log?: Logger
  /** Delay between the last close and the upload (ms). */
  delayMs: number
  /** Uploads at once. */
  transfers: number
  /** A copy reached OneDrive and is no longer local (or is still open). */
  onUploaded(lf: LocalFile, item: DriveItem, oldKey: string): void
  /** A copy went up beside a file changed on OneDrive meanwhile. */
  onConflict?(lf: LocalFile): void
}

export interface Conflict {
  name: string
  conflictName: string
  parentId: string
  at: number
}

/** `NAME (conflict YYYY-MM-DD HHMMSS HOST).ext` */
export function conflictName(name: string, at: Date, host: string): string {
  const dot = name.lastIndexOf('.')
  const [base, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, '']
  const p = (n: number) => String(n).padStart(2, '0')
  const stamp = `${at.getUTCFullYear()}-${p(at.getUTCMonth() + 1)}-${p(at.getUTCDate())} ${p(at.getUTCHours())}${p(at.getUTCMinutes())}${p(at.getUTCSeconds())}`
  return `${base} (conflict ${stamp} ${host.split('.')[0]})${ext}`
}

export interface PendingUpload {
  name: string
  parentId: string
  size: number
  state: LocalState
  error?: string
  /** What fixes it (a permanent cause: quota, access, sign-in, name). */
  fix?: string
}

/** What fixes a permanent upload failure, by its kind (logged with it). */
const FIXES: Partial<Record<string, string>> = {
  quotaExceeded: 'OneDrive is full: free space there (df on the mount shows the quota); the upload resumes by itself',
  accessDenied: 'no write access there: ask the owner for it, or move the file to a folder you can write (mv on the mount)',
  unauthenticated: 'sign-in lost: run `odfs login`; the upload resumes without a remount',
  invalidName: 'OneDrive refuses this name: rename the file on the mount',
  pathTooLong: 'the path is too long for OneDrive: rename or move the file higher on the mount',
  tooLarge: 'the file is larger than OneDrive accepts',
}

const lower = (s: string) => s.toLowerCase()

export class WriteBack {
  readonly #o: WriteBackOptions
  readonly #clock: Clock
  readonly #log: Logger
  readonly #limit: ReturnType<typeof pLimit>
  readonly #sessions: FileUploadSessionStore
  readonly #byId = new Map<string, LocalFile>()
  readonly #byName = new Map<string, LocalFile>()
  readonly #byItem = new Map<string, LocalFile>()
  #closing = false
  uploads = 0
  readonly conflicts: Conflict[] = []

  constructor(o: WriteBackOptions) {
    this.#o = o
    this.#clock = o.clock ?? systemClock
    this.#log = o.log ?? silentLogger
    this.#limit = pLimit(Math.max(1, o.transfers))
    this.#sessions = new FileUploadSessionStore(o.spool.sessionsDir)
  }

  #index(lf: LocalFile): void {
    lf.beforeChange ??= (f) => this.beforeChange(f)
    lf.spool = this.#o.spool
    this.#byId.set(lf.id, lf)
    this.#byName.set(`${lf.parentKey}\0${lower(lf.name)}`, lf)
    if (lf.itemId) this.#byItem.set(lf.key, lf)
  }

  #unindex(lf: LocalFile): void {
    this.#byId.delete(lf.id)
    const k = `${lf.parentKey}\0${lower(lf.name)}`
    if (this.#byName.get(k) === lf) this.#byName.delete(k)
    if (lf.itemId && this.#byItem.get(lf.key) === lf) this.#byItem.delete(lf.key)
  }

  /** The local copy shown under this name in this directory, if any. */
  find(parentKey: string, name: string): LocalFile | undefined {
    return this.#byName.get(`${parentKey}\0${lower(name)}`)
  }

  /** The local copy of a file by its key (item key or l:id). */
  byKey(key: string): LocalFile | undefined {
    if (key.startsWith('l:')) return this.#byId.get(key.slice(2))
    return this.#byItem.get(key)
  }

  /** Local copies in one directory (merged into its listing). */
  inDir(parentKey: string): LocalFile[] {
    return [...this.#byId.values()].filter((lf) => lf.parentKey === parentKey)
  }

  all(): LocalFile[] {
    return [...this.#byId.values()]
  }

  /** A new file (create): empty, not on OneDrive yet. */
  async createNew(parent: ItemRef, parentKey: string, name: string, now: number, opts: { unverified?: boolean } = {}): Promise<LocalFile> {
    toRemoteName(name) // refuse a name OneDrive can never hold before any byte is written
    const id = this.#o.spool.newId()
    const fh = await this.#o.spool.create(id)
    const lf = new LocalFile(id, fh, parent, parentKey, name, 0, now, undefined, undefined, false)
    lf.unverified = opts.unverified ?? false
    this.#index(lf)
    return lf
  }

  /** A local copy of an existing remote file, its bytes fetched first unless it is being truncated. */
  async adopt(parent: ItemRef, parentKey: string, name: string, ref: ItemRef, remote: { size: number; mtimeMs: number; eTag?: string; cTag?: string }, truncate: boolean): Promise<LocalFile> {
    const id = this.#o.spool.newId()
    const fh = await this.#o.spool.create(id)
    let size = truncate ? 0 : remote.size
    let cTag = remote.cTag
    try {
      if (!truncate && remote.size > 0) {
        await this.#o.spool.claim(id, remote.size)
        const fetch = async (pin: string | undefined) => {
          await fh.truncate(0)
          // The socket reads into the sink's buffers, written while the next one fills.
          const sink = new HandleSink(fh)
          try {
            const res = await this.#o.client.download(ref, sink, { pin })
            await sink.end()
            return res
          } catch (e) {
            // No write of this attempt may land after the next one has truncated the file.
            await sink.end().catch(() => {})
            throw e
          }
        }
        // The copy must hold the version the caller saw (its cTag), not whatever a
        // download URL cached earlier serves; if OneDrive holds a newer one, the copy
        // starts from that, and its size and cTag are the ones downloaded.
        const res = await fetch(remote.cTag).catch((e: unknown) => {
          if (isGraphError(e) && e.code === 'changedDuringRead') return fetch(undefined)
          throw e
        })
        if (res.version !== remote.cTag) {
          size = res.bytes
          cTag = res.version
          await this.#o.spool.claim(id, size).catch(() => undefined) // accounted; the bytes are already there
        }
      }
    } catch (e) {
      await fh.close().catch(() => undefined)
      await this.#o.spool.remove(id)
      throw e
    }
    const lf = new LocalFile(id, fh, parent, parentKey, name, size, remote.mtimeMs, ref.itemId, remote.eTag, true)
    lf.baseCTag = cTag
    if (truncate && remote.size > 0) lf.dataGen++
    this.#index(lf)
    return lf
  }

  /** Follow a rename: the copy will be uploaded under its new name and folder. */
  /**
   * Run `f` (a rename: the move on OneDrive, then `move`) while no upload of `lf`
   * runs or starts, so that an upload addressed by the old name cannot land beside
   * the moved item, and the copy is not dropped under the rename's feet. The caller
   * must have checked that none runs (`busy`); a last close meanwhile is settled after.
   */
  async exclusive<T>(lf: LocalFile, f: () => Promise<T>): Promise<T> {
    if (this.busy(lf)) throw new Error('WriteBack.exclusive: an upload or a move of this file is under way')
    let release!: () => void
    lf.moving = new Promise<void>((r) => (release = r))
    try {
      return await f()
    } finally {
      lf.moving = undefined
      release()
      if (lf.opens === 0 && this.#byId.get(lf.id) === lf) await this.closed(lf).catch(() => undefined)
    }
  }

  /** An upload or a move of `lf` is under way; resolves when it ends (undefined: none). */
  busy(lf: LocalFile): Promise<void> | undefined {
    const p = lf.running ?? lf.moving
    return p?.then(() => undefined, () => undefined)
  }

  async move(lf: LocalFile, parent: ItemRef, parentKey: string, name: string): Promise<void> {
    if (this.#byId.get(lf.id) !== lf) return // dropped or discarded meanwhile: nothing local to move
    this.#unindex(lf)
    lf.parent = parent
    lf.parentKey = parentKey
    lf.name = name
    this.#index(lf)
    // Every record of the file names its new place: a crash now must not bring back the old name.
    if (lf.journaled) await this.#o.spool.writeRecord(lf.record())
    if (lf.snapshot) await this.#o.spool.writeRecord(this.#snapshotRecord(lf, lf.snapshot))
  }

  #snapshotRecord(lf: LocalFile, s: Snapshot): JournalRecord {
    return lf.record({ id: s.dataId, sessionKey: s.dataId, size: s.size, mtimeMs: s.mtimeMs, state: 'waiting' })
  }

  /** Journal the live copy as it is now (it must be complete: closed or fsync'd); it supersedes a snapshot. */
  async #journal(lf: LocalFile): Promise<void> {
    // One at a time, never during a detach, and no write meanwhile (beforeChange waits):
    // the record must name the bytes that were synced, in the data file they are in.
    while (lf.detaching || lf.journaling) await (lf.detaching ?? lf.journaling)
    const run = (async () => {
      await lf.fh.sync()
      await this.#o.spool.writeRecord(lf.record(lf.snapshot ? { supersedes: lf.snapshot.dataId } : {}))
      lf.journaled = true
      await this.#dropSnapshot(lf)
    })()
    const done = run.then(() => undefined, () => undefined).finally(() => {
      if (lf.journaling === done) lf.journaling = undefined
    })
    lf.journaling = done
    await run
  }

  async #dropSnapshot(lf: LocalFile): Promise<void> {
    const s = lf.snapshot
    if (!s) return
    lf.snapshot = undefined
    await s.fh.close().catch(() => undefined)
    await this.#o.spool.remove(s.dataId)
  }

  /**
   * Called before the bytes of a copy change (write, truncate). A journaled copy is
   * what a crash would deliver, so it must stay as it was closed: the live copy moves
   * to a fresh data file and the journaled one stays, untouched, as the snapshot the
   * next close (or a successful upload) supersedes. Files still open at a crash are
   * thus recovered as of their last close or fsync, never half-written.
   */
  async beforeChange(lf: LocalFile): Promise<void> {
    // A journal being written describes the bytes as they are: wait for it, then detach from them.
    while (lf.detaching || lf.journaling) await (lf.detaching ?? lf.journaling)
    if (!lf.journaled) return
    lf.detaching = this.#detach(lf).finally(() => {
      lf.detaching = undefined
    })
    await lf.detaching
  }

  async #detach(lf: LocalFile): Promise<void> {
    await this.#dropSnapshot(lf) // superseded by the live record already
    const spool = this.#o.spool
    const dataId = spool.newId()
    await spool.clone(lf.dataId, dataId, lf.size)
    const fh = await spool.reopen(dataId)
    lf.snapshot = { dataId: lf.dataId, fh: lf.fh, size: lf.size, mtimeMs: lf.mtimeMs }
    lf.dataId = dataId
    lf.fh = fh
    lf.journaled = false
  }

  /** The last handle closed: journal a changed copy and schedule its upload, or drop an unchanged one. */
  async closed(lf: LocalFile): Promise<void> {
    if (lf.opens > 0 || lf.deleted) return
    if (!lf.dirty) {
      if (!lf.running && !lf.moving) await this.#drop(lf)
      return
    }
    if (lf.state !== 'uploading') lf.state = 'waiting'
    if (!lf.journaled) await this.#journal(lf)
    this.#schedule(lf, this.#closing ? 0 : this.#o.delayMs)
  }

  /**
   * A writer's close(2) (FUSE flush, which close waits for; the release that ends
   * the last handle comes later, asynchronously): journal the bytes so far, so a
   * crash right after close returns loses nothing. The next mount uploads them.
   */
  async flushed(lf: LocalFile): Promise<void> {
    if (lf.deleted || !lf.dirty || lf.journaled) return
    await this.#journal(lf)
  }

  /** Metadata-only change (utimens) of a closed copy: keep the journal in step. */
  async touched(lf: LocalFile): Promise<void> {
    if (lf.opens === 0 && (lf.state === 'waiting' || lf.state === 'failed')) await this.#journal(lf)
    else if (lf.opens === 0 && !lf.running) await this.closed(lf)
  }

  #schedule(lf: LocalFile, delayMs: number): void {
    lf.wake?.abort()
    const ac = new AbortController()
    lf.wake = ac
    this.#clock.sleep(delayMs, ac.signal).then(
      () => {
        if (lf.wake === ac) lf.wake = undefined
        // A failed run is logged and rescheduled by #upload; unhandled, it would end the daemon.
        this.#start(lf).catch(() => undefined)
      },
      () => undefined,
    )
  }

  /** Start every failed upload now (the service answers again); returns how many. */
  resume(): number {
    let n = 0
    for (const lf of this.#byId.values()) {
      if (lf.state !== 'failed' || lf.opens > 0 || lf.running || lf.deleted) continue
      this.#schedule(lf, 0)
      n++
    }
    return n
  }

  /** Start the upload if it is due and none is running; resolves when that run ends. */
  #start(lf: LocalFile): Promise<void> {
    if (lf.moving) return lf.moving.then(() => this.#start(lf))
    if (lf.running) return lf.running
    if (lf.deleted || !lf.dirty) return Promise.resolve()
    lf.wake?.abort()
    lf.wake = undefined
    const run = this.#limit(() => this.#upload(lf)).finally(() => {
      if (lf.running === run) lf.running = undefined
    })
    lf.running = run
    return run
  }

  async #upload(lf: LocalFile): Promise<void> {
    if (lf.deleted) return
    const gen = lf.dataGen
    const mtimeMs = lf.mtimeMs
    const size = lf.size
    const name = lf.name
    const parent = lf.parent
    const oldKey = lf.key
    lf.state = 'uploading'
    // The upload reads its own descriptor of the data file: if the copy is written
    // meanwhile it is detached first (beforeChange), so these bytes never change.
    let fh: FileHandle | undefined
    const source: UploadSource = {
      size,
      // Into the uploader's own fragment buffers when it passes them (no 10 MiB garbage per fragment).
      read: async (offset, length, into) => {
        const buf = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length)
        let got = 0
        while (got < length) {
          const { bytesRead } = await fh!.read(buf, got, length - got, offset + got)
          if (bytesRead === 0) break
          got += bytesRead
        }
        buf.fill(0, got) // past the data file's end: zeros (a sparse tail)
        return buf
      },
    }
    try {
      // What goes up is journaled first (a close's or an fsync's version): a crash during
      // the upload recovers exactly these bytes, and writes meanwhile detach from them.
      if (!lf.journaled) await this.#journal(lf)
      fh = await this.#o.spool.reopen(lf.dataId)
      let target = name
      let conflict = false
      if (lf.itemId && lf.baseCTag) {
        // Changed on OneDrive since the local copy was taken? Then keep both (docs/graph-service.md §4.3:
        // compare content tags, not eTags, which also change on metadata edits).
        const cur = await this.#o.client.getItem({ driveId: parent.driveId, itemId: lf.itemId }).catch((e: unknown) => {
          if (isGraphError(e) && e.classify() === 'notFound') return undefined
          throw e
        })
        if (cur?.cTag && cur.cTag !== lf.baseCTag) {
          if (await this.#holds(cur, source)) {
            // OneDrive already holds these bytes: an upload of ours that committed just
            // before a crash or a stop (its record outlived it). Not a conflict.
            const remoteMtime = Date.parse(cur.fileSystemInfo?.lastModifiedDateTime ?? '')
            await this.#uploadedAs(lf, cur, { gen, mtimeMs: Number.isNaN(remoteMtime) ? mtimeMs : remoteMtime, name, parent, oldKey }, true)
            return
          }
          conflict = true
          target = conflictName(name, new Date(this.#clock.now()), hostname())
        }
      }
      this.uploads++
      const send = (to: string, cb: ConflictBehavior) => this.#o.client.upload(parent, toRemoteName(to), source, {
        mtime: new Date(mtimeMs),
        conflictBehavior: cb,
        sessionStore: this.#sessions,
        sessionKey: lf.dataId,
        // A session saved for another target or behaviour is never resumed for this one.
        sourceId: `${lf.dataId}:${gen}:${size}:${mtimeMs}:${cb}:${to}`,
      })
      let res: UploadResult
      if (conflict) res = await send(target, 'rename')
      else if (lf.unverified && !lf.itemId) {
        // Created while OneDrive could not be reached: a file of that name may have
        // appeared there meanwhile; then both are kept.
        res = await send(target, 'fail').catch((e: unknown) => {
          if (!(isGraphError(e) && e.classify() === 'nameConflict')) throw e
          conflict = true
          target = conflictName(name, new Date(this.#clock.now()), hostname())
          return send(target, 'rename')
        })
      } else res = await send(target, 'replace')
      const item = res.item
      if (conflict) {
        this.#log.warn({ name, conflictName: item.name ?? target, parentId: parent.itemId }, 'changed on OneDrive while a local copy waited: the local version was uploaded beside it')
        this.conflicts.push({ name, conflictName: item.name ?? target, parentId: parent.itemId, at: this.#clock.now() })
        this.#o.onConflict?.(lf)
        if (lf.opens === 0 && lf.dataGen === gen) await this.#drop(lf)
        else {
          // Written again meanwhile: the next upload is a new file under the conflict name.
          this.#unindex(lf)
          lf.name = item.name ?? target
          lf.itemId = item.id
          lf.baseCTag = item.cTag
          lf.syncedGen = gen
          this.#index(lf)
        }
        return
      }
      await this.#uploadedAs(lf, res.item, { gen, mtimeMs, name, parent, oldKey }, res.verified)
    } catch (e) {
      lf.failures++
      const error = errorMessage(e)
      const again = lf.error === error
      lf.error = error
      lf.state = 'failed'
      // A permanent cause is logged once, at error level, with what fixes it; the same
      // failure again is only a debug line (it is retried with a growing delay).
      const fix = isGraphError(e) && !e.exhausted ? FIXES[e.classify()] : undefined
      lf.fix = fix
      const level = again ? 'debug' : fix ? 'error' : 'warn'
      this.#log[level]({ name, parentId: parent.itemId, size, attempt: lf.failures, err: error, ...(fix ? { fix } : {}) }, 'upload failed; the file stays in the write-back spool and is retried')
      // The record names the failure (for odfs status and the next mount); a copy being
      // written has no record of its live bytes, only of its snapshot, which stays as it is.
      if (lf.journaled) await this.#o.spool.writeRecord(lf.record()).catch(() => undefined)
      if (!this.#closing && lf.opens === 0) this.#schedule(lf, Math.min(600_000, 5_000 * 2 ** Math.min(7, lf.failures)))
      throw e
    } finally {
      await fh?.close().catch(() => undefined)
    }
  }


  /** OneDrive holds generation `gen` of the copy as `item`: follow renames and mtime changes made meanwhile, then drop or keep the copy. */
  async #uploadedAs(lf: LocalFile, arrived: DriveItem, at: { gen: number; mtimeMs: number; name: string; parent: ItemRef; oldKey: string }, verified: boolean): Promise<void> {
    const { gen, mtimeMs, name, parent, oldKey } = at
    let item = arrived
    const ref = { driveId: parent.driveId, itemId: item.id }
    if (lf.deleted) {
      // Unlinked while it was on the wire: remove what just arrived.
      await this.#o.client.deleteItem(ref).catch((e) => this.#log.warn({ name, err: errorMessage(e) }, 'could not remove a file deleted during its upload'))
      return
    }
    // Re-keyed (it has an item id now) without an await in between: lookups never miss
    // the local copy, and a failure below cannot leave it out of the index.
    this.#unindex(lf)
    lf.itemId = item.id
    lf.baseETag = item.eTag
    lf.baseCTag = item.cTag
    lf.syncedGen = gen
    lf.syncedMtimeMs = mtimeMs
    lf.failures = 0
    lf.error = undefined
    lf.fix = undefined
    this.#index(lf)
    await this.#dropSnapshot(lf) // OneDrive holds this version or a newer one
    // Renamed during the upload: move what arrived to where the file now is; again if it
    // is renamed while that move is on the wire (the last rename wins, as locally).
    for (let at = { name, parentId: parent.itemId }; lf.name !== at.name || lf.parent.itemId !== at.parentId;) {
      at = { name: lf.name, parentId: lf.parent.itemId }
      item = await this.#o.client.move(ref, { name: toRemoteName(at.name), parentId: at.parentId, conflictBehavior: 'replace' })
    }
    if (lf.dirty && lf.dataGen === gen && lf.opens === 0) {
      // Only the mtime changed meanwhile: set it, no second upload.
      item = await this.#o.client.setMtime(ref, new Date(lf.mtimeMs))
      lf.syncedMtimeMs = lf.mtimeMs
    }
    this.#o.onUploaded(lf, item, oldKey)
    this.#log.debug({ name: lf.name, size: lf.size, verified }, 'uploaded')
    if (lf.dirty) {
      lf.state = lf.opens > 0 ? 'open' : 'waiting'
      if (lf.opens === 0) {
        await this.#journal(lf)
        this.#schedule(lf, this.#closing ? 0 : this.#o.delayMs)
      }
      return
    }
    if (lf.opens > 0) {
      lf.state = 'open'
      // Still open: OneDrive holds these bytes, so the record goes; the data file stays for the handles.
      await this.#o.spool.removeRecord(lf.dataId).then(() => {
        lf.journaled = false
      }, () => undefined)
      return
    }
    await this.#drop(lf)
  }

  /** Does OneDrive's item hold exactly the bytes of `source` (size and quickXorHash)? */
  async #holds(cur: DriveItem, source: UploadSource): Promise<boolean> {
    const remote = cur.file?.hashes?.quickXorHash
    if (!remote || cur.size !== source.size) return false
    const h = new QuickXorHash()
    const step = 4 << 20
    for (let off = 0; off < source.size; off += step) h.update(await source.read(off, Math.min(step, source.size - off)))
    return h.digest() === remote
  }

  async #drop(lf: LocalFile): Promise<void> {
    this.#unindex(lf)
    lf.wake?.abort()
    await lf.fh.close().catch(() => undefined)
    await this.#o.spool.remove(lf.dataId)
    lf.journaled = false
    await this.#dropSnapshot(lf)
  }

  /** fsync: upload now and return when OneDrive holds the bytes. */
  async flushNow(lf: LocalFile): Promise<void> {
    if (lf.deleted) return
    for (let i = 0; i < 3 && (lf.running || lf.dirty); i++) {
      if (lf.running) await lf.running.catch(() => undefined)
      if (!lf.dirty) break
      try {
        await this.#start(lf)
      } catch (e) {
        throw new VfsError('uploadFailed', `${lf.name}: upload failed: ${errorMessage(e)}`, { cause: e, level: 'error' })
      }
    }
  }

  /** unlink: cancel the upload and forget the copy (the remote item, if any, is the caller's). */
  async discard(lf: LocalFile): Promise<void> {
    lf.deleted = true
    lf.wake?.abort()
    this.#unindex(lf)
    if (lf.running) await lf.running.catch(() => undefined)
    await lf.fh.close().catch(() => undefined)
    await this.#o.spool.remove(lf.dataId)
    lf.journaled = false
    await this.#dropSnapshot(lf)
  }

  /** Upload everything now and wait; returns the copies still not on OneDrive. */
  async drain(opts: { closing?: boolean } = {}): Promise<LocalFile[]> {
    if (opts.closing) this.#closing = true
    const runs: Promise<void>[] = []
    for (const lf of this.#byId.values()) {
      if (lf.opens > 0 && !opts.closing) continue
      if (lf.running || lf.dirty) runs.push(this.#start(lf).catch(() => undefined))
    }
    await Promise.all(runs)
    // Uploads that started meanwhile (renames, retries) are awaited too.
    const again = [...this.#byId.values()].filter((lf) => lf.running)
    await Promise.all(again.map((lf) => lf.running!.catch(() => undefined)))
    return [...this.#byId.values()].filter((lf) => lf.dirty && !lf.deleted)
  }

  /** On shutdown: journal copies that are still open so nothing written is lost. */
  async journalOpen(): Promise<void> {
    for (const lf of this.#byId.values()) {
      if (lf.dirty && lf.state === 'open') {
        lf.state = 'waiting'
        await this.#journal(lf).catch(() => undefined)
      }
    }
  }

  /** Re-read the journal of an earlier run and upload every copy; resolves when all are done or failed. */
  async recover(keyOf: (ref: ItemRef) => string): Promise<{ recovered: number; failed: LocalFile[] }> {
    const { records: all, orphans } = await this.#o.spool.records()
    for (const id of orphans) await this.#o.spool.remove(id)
    // A crash between a close's record and the removal of the version it replaced left both.
    const superseded = new Set(all.map((r) => r.supersedes).filter((id): id is string => !!id))
    for (const id of superseded) await this.#o.spool.remove(id)
    const records = all.filter((r) => !superseded.has(r.id))
    const lfs: LocalFile[] = []
    for (const r of records) {
      const fh = await this.#o.spool.reopen(r.id)
      const parent = { driveId: r.driveId, itemId: r.parentId }
      const lf = new LocalFile(r.id, fh, parent, keyOf(parent), r.name, r.size, r.mtimeMs, r.itemId, r.baseETag, false)
      lf.baseCTag = r.baseCTag
      lf.unverified = r.unverified === true
      lf.state = 'waiting'
      lf.journaled = true
      this.#index(lf)
      lfs.push(lf)
    }
    await Promise.all(lfs.map((lf) => this.#start(lf).catch(() => undefined)))
    return { recovered: lfs.length, failed: lfs.filter((lf) => lf.dirty) }
  }

  pending(): PendingUpload[] {
    return [...this.#byId.values()].filter((lf) => lf.dirty && !lf.deleted).map((lf) => ({
      name: lf.name, parentId: lf.parent.itemId, size: lf.size, state: lf.state, ...(lf.error ? { error: lf.error } : {}), ...(lf.fix ? { fix: lf.fix } : {}),
    }))
  }

  async close(): Promise<void> {
    for (const lf of this.#byId.values()) {
      lf.wake?.abort()
      await lf.fh.close().catch(() => undefined)
      await lf.snapshot?.fh.close().catch(() => undefined)
    }
  }
}
