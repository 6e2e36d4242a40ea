/**
 * The emulator's drive model: drives (personal, business, SharePoint document
 * libraries), their items, the recycle bin, sharing grants and links, and the
 * change log that delta reads. Metadata lives in memory; file content lives in
 * the state directory, one file per content version, never whole in memory.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { mkdirSync, createWriteStream, rmSync, copyFileSync, linkSync } from 'node:fs'
import { join } from 'node:path'
import { once, setMaxListeners } from 'node:events'
import type { Account } from '../directory.js'
import { ACCOUNTS, CONTOSO, findAccount } from '../directory.js'
import { QuickXorHash } from '../quickxor.js'
import { systemClock, type Clock } from '../../common/index.js'
import { EmuError, accessDenied, invalidRequest, nameConflict, notFound } from './errors.js'
import { checkName, foldName, MAX_PATH_LENGTH, renameCandidate, type DriveKind } from './names.js'

export type ConflictBehavior = 'fail' | 'replace' | 'rename'
export type Role = 'read' | 'write'
export type Access = 'owner' | Role

export interface IdentitySet { user?: { id: string; displayName: string; email?: string }; group?: { id: string; displayName: string } }

export interface Drive {
  id: string
  kind: DriveKind
  name: string
  /** Owning account (personal/business drives); libraries have none. */
  owner?: Account
  siteId?: string
  tenantId: string
  rootId: string
  webUrl: string
  /** Server-relative prefix counted in the path length limit (Business/SPO). */
  pathPrefix: string
  createdDateTime: string
  quotaTotal: number
  /** Change counter: every mutation takes the next value. */
  seq: number
  /** Delta tokens older than this are stale (410). */
  minSeq: number
  /** Next legacy item number (personal). */
  counter: number
  itemIds: Set<string>
  tombstones: Tombstone[]
  recycle: RecycleEntry[]
  /** Bytes of the earlier versions of the drive's live files (they count in quota.used). */
  versionBytes: number
}

export interface Blob {
  path: string
  size: number
  quickXorHash: string
}

/** An earlier version of a file's content (docs/emulator/versions.md). */
export interface Version {
  id: string
  blob: Blob
  lastModifiedDateTime: string
  lastModifiedBy: IdentitySet
}

/** SharePoint keeps at most this many versions of a file by default; older ones are dropped. */
export const MAX_VERSIONS = 500

export interface Item {
  id: string
  driveId: string
  name: string
  parentId: string | null
  kind: 'folder' | 'file' | 'shortcut'
  /** Folder children by folded name. */
  children?: Map<string, string>
  /** File: content size; folder: recursive total. */
  size: number
  blob?: Blob
  mimeType?: string
  etagGuid: string
  etagVer: number
  ctagVer: number
  createdDateTime: string
  lastModifiedDateTime: string
  fsCreated: string
  fsModified: string
  createdBy: IdentitySet
  lastModifiedBy: IdentitySet
  seq: number
  /** Shortcut ("Add to OneDrive"): the item it points at. */
  remote?: { driveId: string; itemId: string }
  /** Hashes are reported only from this time on (fault hashDelayMs, docs/graph-service.md §1.3). */
  hashReadyAt?: number
  /** Files: earlier versions, newest first. */
  versions?: Version[]
  /** Files: number of the current version (Business ids "N.0"); Personal: counter for old version ids. */
  versionNo?: number
}

export interface Tombstone {
  id: string
  driveId: string
  parentId: string | null
  ancestors: string[]
  seq: number
  /** When it was deleted (ms). */
  at: number
  kind: Item['kind']
  name: string
}

export interface RecycleEntry { root: Item; items: Item[]; bytes: number; deletedAt: string }

export interface Site {
  id: string
  name: string
  displayName: string
  webUrl: string
  tenantId: string
  driveIds: string[]
  createdDateTime: string
}

export interface Grant { role: Role; invited: boolean; sharedBy: Account; sharedAt: string }

export interface SharingLink {
  id: string
  driveId: string
  itemId: string
  type: 'view' | 'edit'
  scope: 'anonymous' | 'organization' | 'users'
  webUrl: string
  createdBy: Account
}

export interface StoreOptions {
  dir: string
  /** The store's time: timestamps, and the eTag settling after an upload (tests pass a ManualClock). */
  clock?: Clock
  /** Tombstones kept per drive before old delta tokens go stale. */
  maxTombstones?: number
  /** Delay after an upload before the item's eTag changes on its own (docs/graph-service.md §4.3); 0 disables. */
  etagSettleMs?: number
  /** Delay after an upload before its hashes are reported (docs/graph-service.md §1.3); 0 = at once. */
  hashDelayMs?: () => number
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
const MIME: Record<string, string> = {
  txt: 'text/plain', md: 'text/markdown', json: 'application/json', pdf: 'application/pdf', jpg: 'image/jpeg',
  jpeg: 'image/jpeg', png: 'image/png', gif: 'image/gif', mp4: 'video/mp4', zip: 'application/zip', csv: 'text/csv',
  html: 'text/html', xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
}

const LINK_KINDS: [RegExp, string][] = [
  [/^(docx?|docm|dotx|odt|rtf)$/, 'w'], [/^(xlsx?|xlsm|xlsb|ods)$/, 'x'], [/^(pptx?|pptm|ppsx|odp)$/, 'p'],
  [/^(one|onetoc2)$/, 'o'], [/^pdf$/, 'b'], [/^txt$/, 't'], [/^(jpe?g|png|gif|bmp|heic|tiff?|webp)$/, 'i'],
  [/^(mp4|mov|avi|wmv|mkv|m4v|webm)$/, 'v'],
]

/** The letter of a sharing link that says what it points at: f folder, w Word, x Excel, … u other. */
export function linkKindOf(item: { kind: string; name: string }): string {
  if (item.kind === 'folder') return 'f'
  const ext = item.name.includes('.') ? item.name.slice(item.name.lastIndexOf('.') + 1).toLowerCase() : ''
  return LINK_KINDS.find(([re]) => re.test(ext))?.[1] ?? 'u'
}

export function mimeTypeOf(name: string): string {
  const ext = name.includes('.') ? name.slice(name.lastIndexOf('.') + 1).toLowerCase() : ''
  return MIME[ext] ?? 'application/octet-stream'
}

function stable(seed: string, bytes: number): Buffer {
  return createHash('sha512').update(seed).digest().subarray(0, bytes)
}

function guidFrom(buf: Buffer): string {
  const h = buf.toString('hex').padEnd(32, '0')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`
}

export function identityOf(a: Account): IdentitySet {
  return { user: { id: a.oid, displayName: a.displayName, email: a.email } }
}

export class Store {
  readonly drives = new Map<string, Drive>()
  readonly items = new Map<string, Item>()
  readonly sites = new Map<string, Site>()
  /** itemId → account oid → grant. */
  readonly grants = new Map<string, Map<string, Grant>>()
  /** webUrl → link. */
  readonly links = new Map<string, SharingLink>()
  /** account oid → site ids followed. */
  readonly followed = new Map<string, string[]>()
  /** Random per process: delta tokens of an earlier run are stale. */
  readonly epoch = randomBytes(4).toString('hex')
  readonly blobDir: string
  readonly uploadDir: string
  readonly now: () => number
  etagSettleMs: number
  readonly maxTombstones: number
  readonly #clock: Clock
  /** Aborts the pending eTag settlements when the store closes. */
  /** Aborted at close: every pending eTag settle waits on it (one listener each, removed when it fires). */
  readonly #closing = (() => {
    const ac = new AbortController()
    setMaxListeners(0, ac.signal)
    return ac
  })()

  constructor(readonly opts: StoreOptions) {
    this.#clock = opts.clock ?? systemClock
    this.now = () => this.#clock.now()
    this.blobDir = join(opts.dir, 'blobs')
    this.uploadDir = join(opts.dir, 'uploads')
    mkdirSync(this.blobDir, { recursive: true })
    mkdirSync(this.uploadDir, { recursive: true })
    this.maxTombstones = opts.maxTombstones ?? 10_000
    this.etagSettleMs = opts.etagSettleMs ?? 1000
  }

  iso(ms = this.now()): string {
    return new Date(ms).toISOString()
  }

  close(): void {
    this.#closing.abort()
  }

  // ---------------------------------------------------------------- drives

  #newDrive(id: string, kind: DriveKind, name: string, tenantId: string, webUrl: string, pathPrefix: string, quotaTotal: number, owner?: Account, siteId?: string): Drive {
    const drive: Drive = {
      id, kind, name, owner, siteId, tenantId, rootId: '', webUrl, pathPrefix, quotaTotal,
      createdDateTime: this.iso(), seq: 1, minSeq: 0, counter: 101, itemIds: new Set(), tombstones: [], recycle: [], versionBytes: 0,
    }
    this.drives.set(kind === 'personal' ? id.toLowerCase() : id, drive)
    const root = this.#newItem(drive, 'root', null, 'folder', owner ? identityOf(owner) : { user: { id: 'system', displayName: 'System Account' } })
    drive.rootId = root.id
    return drive
  }

  /** Provision the account's OneDrive (idempotent). */
  ensureUserDrive(account: Account): Drive {
    const existing = [...this.drives.values()].find((d) => d.owner?.oid === account.oid && !d.siteId)
    if (existing) return existing
    if (account.kind === 'personal') {
      let id = stable(`drive:${account.oid}`, 8).toString('hex')
      // personal2's drive id starts with 0 so clients meet the dropped-leading-zero quirk (docs/graph-service.md §7.4)
      if (account.handle === 'personal2') id = '0' + id.slice(1)
      return this.#newDrive(id, 'personal', 'OneDrive', account.tenantId, `https://onedrive.live.com/?cid=${id}`, '', 5 * 1024 ** 3, account)
    }
    const id = 'b!' + stable(`drive:${account.oid}`, 48).toString('base64url')
    const tenantHost = (account.upn.split('@')[1] ?? 'contoso.onmicrosoft.com').split('.')[0]!
    const slug = account.upn.replace(/[@.]/g, '_')
    return this.#newDrive(id, 'business', 'OneDrive', account.tenantId,
      `https://${tenantHost}-my.sharepoint.com/personal/${slug}/Documents`, `/personal/${slug}/Documents/`, 1024 ** 4, account)
  }

  createSite(name: string, displayName: string, tenantId: string, libraries: string[]): Site {
    const host = 'contoso.sharepoint.com'
    const id = `${host},${guidFrom(stable(`site:${name}:a`, 16))},${guidFrom(stable(`site:${name}:b`, 16))}`
    const webUrl = `https://${host}/sites/${name}`
    const site: Site = { id, name, displayName, webUrl, tenantId, driveIds: [], createdDateTime: this.iso() }
    for (const lib of libraries) {
      const did = 'b!' + stable(`library:${name}:${lib}`, 48).toString('base64url')
      const urlName = lib === 'Documents' ? 'Shared Documents' : lib
      this.#newDrive(did, 'documentLibrary', lib, tenantId, `${webUrl}/${encodeURIComponent(urlName)}`, `/sites/${name}/${urlName}/`, 25 * 1024 ** 4, undefined, id)
      site.driveIds.push(did)
    }
    this.sites.set(id, site)
    return site
  }

  follow(account: Account, siteId: string): void {
    const l = this.followed.get(account.oid) ?? []
    if (!l.includes(siteId)) l.push(siteId)
    this.followed.set(account.oid, l)
  }

  getDrive(id: string): Drive | undefined {
    const lower = id.toLowerCase()
    return this.drives.get(id) ?? this.drives.get(lower) ?? (/^[0-9a-f]{15}$/.test(lower) ? this.drives.get('0' + lower) : undefined)
  }

  /** The drive of an account handle (admin helper). */
  driveOf(handle: string): Drive {
    const a = findAccount(handle)
    if (!a) throw new Error(`unknown account ${handle}`)
    return this.ensureUserDrive(a)
  }

  root(drive: Drive): Item {
    return this.items.get(drive.rootId)!
  }

  /** Bytes in use: live content, earlier versions and the recycle bin. */
  #used(drive: Drive): number {
    return this.root(drive).size + drive.versionBytes + drive.recycle.reduce((s, e) => s + e.bytes, 0)
  }

  quota(drive: Drive): { total: number; used: number; remaining: number; deleted: number; state: string; fileCount?: number } {
    const deleted = drive.recycle.reduce((s, e) => s + e.bytes, 0)
    const used = this.#used(drive)
    const remaining = Math.max(0, drive.quotaTotal - used)
    const state = remaining <= 0 ? 'exceeded' : remaining < drive.quotaTotal * 0.01 ? 'critical' : remaining < drive.quotaTotal * 0.1 ? 'nearing' : 'normal'
    const q: ReturnType<Store['quota']> = { total: drive.quotaTotal, used, remaining, deleted, state }
    if (drive.kind !== 'personal') {
      let files = 0
      for (const id of drive.itemIds) if (this.items.get(id)?.kind === 'file') files++
      q.fileCount = files
    }
    return q
  }

  /** Bytes left in the drive (earlier versions and the recycle bin included in use). */
  remaining(drive: Drive): number {
    return Math.max(0, drive.quotaTotal - this.#used(drive))
  }

  setQuota(handleOrDriveId: string, total: number): void {
    const d = this.getDrive(handleOrDriveId) ?? this.driveOf(handleOrDriveId)
    d.quotaTotal = total
  }

  // ---------------------------------------------------------------- items

  #newId(drive: Drive): string {
    if (drive.kind === 'personal') return `${drive.id.toUpperCase()}!${drive.counter++}`
    const b = randomBytes(32)
    let s = '01'
    for (let i = 0; i < 32; i++) s += BASE32[b[i]! % 32]
    return s
  }

  #newItem(drive: Drive, name: string, parent: Item | null, kind: Item['kind'], by: IdentitySet, fs?: { createdDateTime?: string; lastModifiedDateTime?: string }): Item {
    const now = this.iso()
    const item: Item = {
      id: this.#newId(drive), driveId: drive.id, name, parentId: parent?.id ?? null, kind, size: 0,
      etagGuid: randomUUID().toUpperCase(), etagVer: 1, ctagVer: 1, createdDateTime: now, lastModifiedDateTime: now,
      fsCreated: fs?.createdDateTime ?? now, fsModified: fs?.lastModifiedDateTime ?? now,
      createdBy: by, lastModifiedBy: by, seq: ++drive.seq,
    }
    if (kind === 'folder') item.children = new Map()
    this.items.set(item.id, item)
    drive.itemIds.add(item.id)
    if (parent) {
      parent.children!.set(foldName(name), item.id)
      this.#touchAncestors(parent, drive)
    }
    return item
  }

  get(id: string): Item | undefined {
    return this.items.get(id) ?? (id.includes('!') ? this.items.get(id.replace(/^[^!]+/, (s) => s.toUpperCase())) : undefined)
  }

  driveOfItem(item: Item): Drive {
    return this.getDrive(item.driveId)!
  }

  parentOf(item: Item): Item | undefined {
    return item.parentId ? this.items.get(item.parentId) : undefined
  }

  childByName(folder: Item, name: string): Item | undefined {
    const id = folder.children?.get(foldName(name))
    return id ? this.items.get(id) : undefined
  }

  /** Children ordered by name (the service's default order). */
  children(folder: Item): Item[] {
    if (!folder.children) return []
    return [...folder.children.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, id]) => this.items.get(id)!)
  }

  ancestors(item: Item): Item[] {
    const out: Item[] = []
    let p = this.parentOf(item)
    while (p) {
      out.push(p)
      p = this.parentOf(p)
    }
    return out
  }

  /** Decoded path below the root: '' for the root, '/A/b.txt' otherwise. */
  pathOf(item: Item): string {
    const parts: string[] = []
    let cur: Item | undefined = item
    while (cur && cur.parentId) {
      parts.unshift(cur.name)
      cur = this.parentOf(cur)
    }
    return parts.length ? '/' + parts.join('/') : ''
  }

  resolvePath(start: Item, segments: string[]): Item | undefined {
    let cur: Item | undefined = start
    for (const s of segments) {
      if (!cur || cur.kind !== 'folder') return undefined
      cur = this.childByName(cur, s)
    }
    return cur
  }

  isDescendant(item: Item, ancestor: Item): boolean {
    return item.id === ancestor.id || this.ancestors(item).some((a) => a.id === ancestor.id)
  }

  *descendants(folder: Item): Generator<Item> {
    for (const c of this.children(folder)) {
      yield c
      if (c.kind === 'folder') yield* this.descendants(c)
    }
  }

  // ------------------------------------------------------------- changes

  /** Record a change of `item` (eTag always, cTag when content changed). */
  touch(item: Item, opts: { content?: boolean; by?: IdentitySet } = {}): void {
    const drive = this.driveOfItem(item)
    item.etagVer++
    if (opts.content) item.ctagVer++
    item.seq = ++drive.seq
    item.lastModifiedDateTime = this.iso()
    if (opts.by) item.lastModifiedBy = opts.by
  }

  /** A child of these folders changed: Personal folders change cTag (and show in delta). */
  #touchAncestors(parent: Item, drive: Drive): void {
    const chain = [parent, ...this.ancestors(parent)]
    for (const a of chain) {
      if (drive.kind === 'personal') a.ctagVer++
      a.seq = drive.seq
    }
  }

  #addSize(from: Item | undefined, delta: number): void {
    for (let p = from; p; p = this.parentOf(p)) p.size += delta
  }

  /** Throws unless `name` is a valid new name for a child of `parent`. */
  validateName(parent: Item, name: string, folder: boolean): void {
    const drive = this.driveOfItem(parent)
    const problem = checkName(name, { folder, kind: drive.kind, atLibraryRoot: parent.parentId === null })
    if (problem) throw invalidRequest(problem.message, problem.inner)
    const full = drive.pathPrefix.replace(/\/$/, '') + this.pathOf(parent) + '/' + name
    if (full.length >= MAX_PATH_LENGTH) throw invalidRequest('The path is too long.', 'pathIsTooLong')
  }

  /** A folder renamed or moved must not push any descendant's decoded path past the limit (docs/graph-service.md §8). */
  #checkSubtreePathLength(folder: Item, newParent: Item, newName: string): void {
    const drive = this.driveOfItem(newParent)
    const base = drive.pathPrefix.replace(/\/$/, '') + this.pathOf(newParent) + '/' + newName
    let longest = 0
    const walk = (f: Item, rel: number) => {
      for (const c of this.children(f)) {
        const len = rel + 1 + c.name.length
        if (len > longest) longest = len
        if (c.kind === 'folder') walk(c, len)
      }
    }
    walk(folder, 0)
    if (base.length + longest >= MAX_PATH_LENGTH) throw invalidRequest('The path is too long.', 'pathIsTooLong')
  }

  /** Resolve a name clash per conflictBehavior; returns the name to use and the item to replace, if any. */
  #resolveConflict(parent: Item, name: string, conflict: ConflictBehavior, self?: Item): { name: string; existing?: Item } {
    const existing = this.childByName(parent, name)
    if (!existing || existing === self) return { name }
    if (conflict === 'fail') throw nameConflict(name)
    if (conflict === 'replace') return { name, existing }
    for (let n = 1; ; n++) {
      const cand = renameCandidate(name, n)
      if (!this.childByName(parent, cand)) return { name: cand }
    }
  }

  createFolder(parent: Item, name: string, conflict: ConflictBehavior, by: IdentitySet, fs?: { createdDateTime?: string; lastModifiedDateTime?: string }): { item: Item; created: boolean } {
    if (parent.kind !== 'folder') throw invalidRequest('The parent is not a folder.')
    this.validateName(parent, name, true)
    const r = this.#resolveConflict(parent, name, conflict)
    if (r.existing) {
      // replace onto an existing folder answers the existing folder untouched (learn Q&A).
      if (r.existing.kind === 'folder') return { item: r.existing, created: false }
      this.remove(r.existing, by)
    }
    return { item: this.#newItem(this.driveOfItem(parent), r.name, parent, 'folder', by, fs), created: true }
  }

  /** Put content (already on disk as `blob`) into `target` (replace) or into a new child `name` of `parent`. */
  commitContent(args: { parent: Item; name: string; target?: Item; blob: Blob; conflict: ConflictBehavior; by: IdentitySet; fs?: { createdDateTime?: string; lastModifiedDateTime?: string } }): { item: Item; created: boolean } {
    const { parent, blob, by } = args
    const drive = this.driveOfItem(parent)
    let target = args.target
    let name = args.name
    if (!target) {
      if (parent.kind !== 'folder') throw invalidRequest('The parent is not a folder.')
      const existing = this.childByName(parent, name)
      if (existing) {
        if (args.conflict === 'fail') throw nameConflict(name)
        if (args.conflict === 'replace') {
          if (existing.kind !== 'file') throw nameConflict(name)
          target = existing
        } else {
          name = this.#resolveConflict(parent, name, 'rename').name
        }
      }
      if (!target) this.validateName(parent, name, false)
    }
    const oldSize = target?.size ?? 0
    // the replaced content stays as an earlier version, so the new content needs room of its own
    if (blob.size > this.remaining(drive)) {
      throw new EmuError(507, 'quotaLimitReached', 'Insufficient Space Available')
    }
    let created = false
    if (!target) {
      target = this.#newItem(drive, name, parent, 'file', by, args.fs)
      created = true
    } else {
      if (target.kind !== 'file') throw invalidRequest('The target is not a file.')
      this.#keepVersion(target, drive)
      this.touch(target, { content: true, by })
      this.#touchAncestors(this.parentOf(target)!, drive)
      const now = this.iso()
      target.fsModified = args.fs?.lastModifiedDateTime ?? now
      if (args.fs?.createdDateTime) target.fsCreated = args.fs.createdDateTime
    }
    target.blob = blob
    const delay = this.opts.hashDelayMs?.() ?? 0
    target.hashReadyAt = delay > 0 ? this.now() + delay : undefined
    target.mimeType = mimeTypeOf(target.name)
    target.size = blob.size
    this.#addSize(this.parentOf(target), blob.size - oldSize)
    this.#scheduleSettle(target)
    return { item: target, created }
  }

  /** The file's current content becomes its newest earlier version (docs/emulator/versions.md). */
  #keepVersion(item: Item, drive: Drive): void {
    if (!item.blob) return
    const no = item.versionNo ?? 1
    const id = drive.kind === 'personal' ? `${item.id.slice(item.id.indexOf('!') + 1)}-${no}` : `${no}.0`
    const versions = (item.versions ??= [])
    versions.unshift({ id, blob: item.blob, lastModifiedDateTime: item.lastModifiedDateTime, lastModifiedBy: item.lastModifiedBy })
    drive.versionBytes += item.blob.size
    item.versionNo = no + 1
    while (versions.length > MAX_VERSIONS - 1) this.#dropVersion(drive, versions.pop()!)
  }

  #dropVersion(drive: Drive | undefined, v: Version): void {
    if (drive) drive.versionBytes -= v.blob.size
    this.#dropBlob(v.blob)
  }

  /** Id of the current version: Business "N.0", Personal "current" (docs/emulator/versions.md). */
  currentVersionId(item: Item): string {
    return this.driveOfItem(item).kind === 'personal' ? 'current' : `${item.versionNo ?? 1}.0`
  }

  /** A new blob with the same content as `b` (a hard link: no bytes copied). */
  #cloneBlob(b: Blob): Blob {
    const path = this.newBlobPath()
    try {
      linkSync(b.path, path)
    } catch {
      copyFileSync(b.path, path)
    }
    return { ...b, path }
  }

  /** Make an earlier version current again: a new version with that content; all others are kept. */
  restoreVersion(item: Item, version: Version, by: IdentitySet): Item {
    const parent = this.parentOf(item)!
    const blob = this.#cloneBlob(version.blob)
    try {
      return this.commitContent({ parent, name: item.name, target: item, blob, conflict: 'replace', by }).item
    } catch (e) {
      this.#dropBlob(blob)
      throw e
    }
  }

  /** Delete an earlier version (the current one cannot be: callers check). */
  deleteVersion(item: Item, version: Version): void {
    item.versions = (item.versions ?? []).filter((v) => v !== version)
    this.#dropVersion(this.driveOfItem(item), version)
  }

  /** docs/graph-service.md §4.3: the eTag changes on its own shortly after an upload. */
  #scheduleSettle(item: Item): void {
    if (this.etagSettleMs <= 0) return
    const ver = item.etagVer
    this.#clock.sleep(this.etagSettleMs, this.#closing.signal).then(() => {
      if (this.items.get(item.id) !== item || item.etagVer !== ver) return
      // a metadata change like any other: delta reports the item with its new eTag (docs/graph-service.md §1.3, §6)
      item.etagVer++
      const drive = this.getDrive(item.driveId)
      if (drive) item.seq = ++drive.seq
    }, () => undefined) // the store closed first
  }

  /** Rename / move / set times. */
  update(item: Item, patch: { name?: string; parent?: Item; fs?: { createdDateTime?: string; lastModifiedDateTime?: string } }, conflict: ConflictBehavior, by: IdentitySet): Item {
    const drive = this.driveOfItem(item)
    if (!item.parentId && (patch.name !== undefined || patch.parent)) throw invalidRequest('The root cannot be renamed or moved.')
    const oldParent = this.parentOf(item)
    const newParent = patch.parent ?? oldParent
    const newName = patch.name ?? item.name
    if (newParent && (newParent !== oldParent || patch.name !== undefined)) {
      if (newParent.driveId !== item.driveId) throw invalidRequest('Cross-drive moves are not supported.', 'invalidReference')
      if (newParent.kind !== 'folder') throw invalidRequest('The destination is not a folder.')
      if (this.isDescendant(newParent, item)) throw invalidRequest('An item cannot be moved into itself.')
      this.validateName(newParent, newName, item.kind === 'folder')
      if (item.kind === 'folder') this.#checkSubtreePathLength(item, newParent, newName)
      const existing = this.childByName(newParent, newName)
      if (existing && existing !== item) {
        if (conflict !== 'replace') throw nameConflict(newName)
        if (existing.kind === 'folder' || item.kind === 'folder') {
          throw new EmuError(409, 'nameAlreadyExists', 'Replacing a folder is not supported.')
        }
        this.remove(existing, by)
      }
      oldParent!.children!.delete(foldName(item.name))
      newParent.children!.set(foldName(newName), item.id)
      if (newParent !== oldParent) {
        this.#addSize(oldParent, -item.size)
        this.#addSize(newParent, item.size)
      }
      item.name = newName
      item.parentId = newParent.id
      if (item.kind === 'file') item.mimeType = mimeTypeOf(newName)
    }
    if (patch.fs && item.kind === 'file' && item.blob && drive.kind !== 'personal') {
      // Business keeps a new version when only the times change (Personal does not): the
      // same content counts twice in quota.used (rclone docs, docs/emulator/versions.md)
      const copy = this.#cloneBlob(item.blob)
      this.#keepVersion(item, drive)
      item.blob = copy
    }
    if (patch.fs?.lastModifiedDateTime) item.fsModified = patch.fs.lastModifiedDateTime
    if (patch.fs?.createdDateTime) item.fsCreated = patch.fs.createdDateTime
    this.touch(item, { by })
    if (oldParent) this.#touchAncestors(oldParent, drive)
    if (newParent && newParent !== oldParent) this.#touchAncestors(newParent, drive)
    return item
  }

  /** Delete into the recycle bin (counted in quota.deleted). */
  remove(item: Item, _by?: IdentitySet, opts: { permanent?: boolean } = {}): void {
    const drive = this.driveOfItem(item)
    if (!item.parentId) throw new EmuError(403, 'accessDenied', 'The root cannot be deleted.')
    const parent = this.parentOf(item)!
    const all = [item, ...(item.kind === 'folder' ? this.descendants(item) : [])]
    parent.children!.delete(foldName(item.name))
    this.#addSize(parent, -item.size)
    const seq = ++drive.seq
    const outer = [parent.id, ...this.ancestors(parent).map((a) => a.id)]
    const stones: Tombstone[] = all.map((it) => ({ id: it.id, driveId: drive.id, parentId: it.parentId, ancestors: [...outer, ...this.#innerAncestors(it, item)], seq, at: this.now(), kind: it.kind, name: it.name }))
    for (const it of all) {
      this.items.delete(it.id)
      drive.itemIds.delete(it.id)
    }
    drive.tombstones.push(...stones)
    this.#touchAncestors(parent, drive)
    this.#pruneTombstones(drive)
    // earlier versions go to the recycle bin with their file
    const versionBytes = all.reduce((s, it) => s + (it.versions ?? []).reduce((n, v) => n + v.blob.size, 0), 0)
    drive.versionBytes -= versionBytes
    const bytes = all.reduce((s, it) => s + (it.kind === 'file' ? it.size : 0), 0) + versionBytes
    if (opts.permanent) for (const it of all) this.#dropContent(it)
    else drive.recycle.push({ root: item, items: all, bytes, deletedAt: this.iso() })
  }

  #innerAncestors(it: Item, top: Item): string[] {
    const out: string[] = []
    let p = it.parentId ? this.items.get(it.parentId) : undefined
    while (p && p !== top) {
      out.push(p.id)
      p = p.parentId ? this.items.get(p.parentId) : undefined
    }
    if (it !== top) out.push(top.id)
    return out
  }

  #pruneTombstones(drive: Drive): void {
    while (drive.tombstones.length > this.maxTombstones) {
      const t = drive.tombstones.shift()!
      drive.minSeq = Math.max(drive.minSeq, t.seq)
    }
  }

  /** Make every delta token issued so far for `drive` stale (test hook). */
  expireDeltaTokens(drive: Drive): void {
    drive.seq++
    drive.minSeq = drive.seq
  }

  emptyRecycleBin(drive: Drive): void {
    for (const e of drive.recycle) for (const it of e.items) this.#dropContent(it)
    drive.recycle = []
  }

  #dropBlob(b: Blob): void {
    rmSync(b.path, { force: true })
  }

  /** Remove a deleted item's content and its earlier versions from disk. */
  #dropContent(it: Item): void {
    if (it.blob) this.#dropBlob(it.blob)
    for (const v of it.versions ?? []) this.#dropBlob(v.blob)
  }

  newBlobPath(): string {
    return join(this.blobDir, randomUUID())
  }

  /** Copy `item` (recursively) under `parent` as `name`. Content files are copied on disk. */
  copy(item: Item, parent: Item, name: string, conflict: ConflictBehavior, by: IdentitySet): Item {
    const srcDrive = this.driveOfItem(item)
    const dstDrive = this.driveOfItem(parent)
    if ((srcDrive.kind === 'personal') !== (dstDrive.kind === 'personal')) throw invalidRequest('Copies between personal and work accounts are not supported.')
    if (item.kind === 'folder' && this.isDescendant(parent, item)) throw invalidRequest('A folder cannot be copied into itself.')
    const r = this.#resolveConflict(parent, name, conflict)
    const walk = (src: Item, dstParent: Item, nm: string, existing?: Item): Item => {
      if (src.kind === 'folder') {
        if (existing) this.remove(existing, by)
        const f = this.#newItem(dstDrive, nm, dstParent, 'folder', by)
        for (const c of this.children(src)) walk(c, f, c.name)
        return f
      }
      const path = this.newBlobPath()
      if (src.blob) copyFileSync(src.blob.path, path)
      const blob: Blob = { path, size: src.blob?.size ?? 0, quickXorHash: src.blob?.quickXorHash ?? new QuickXorHash().digest() }
      // Copies do not keep the source's mtime (rclone).
      return this.commitContent({ parent: dstParent, name: nm, target: existing?.kind === 'file' ? existing : undefined, blob, conflict: 'replace', by }).item
    }
    if (r.existing && r.existing.kind !== item.kind) throw nameConflict(name)
    return walk(item, parent, r.name, r.existing)
  }

  createShortcut(owner: Account, target: Item, name?: string): Item {
    const drive = this.ensureUserDrive(owner)
    const root = this.root(drive)
    const it = this.#newItem(drive, name ?? target.name, root, 'shortcut', identityOf(owner))
    it.remote = { driveId: target.driveId, itemId: target.id }
    return it
  }

  // ------------------------------------------------------------ sharing

  grant(item: Item, to: Account, role: Role, sharedBy: Account, invited = true): void {
    const m = this.grants.get(item.id) ?? new Map<string, Grant>()
    const prev = m.get(to.oid)
    if (prev && prev.role === 'write' && role === 'read') return
    m.set(to.oid, { role, invited: invited || (prev?.invited ?? false), sharedBy, sharedAt: this.iso() })
    this.grants.set(item.id, m)
  }

  /** What `user` may do with `item`: owner, write, read, or nothing. */
  access(user: Account, item: Item): Access | undefined {
    const drive = this.driveOfItem(item)
    if (drive.owner?.oid === user.oid) return 'owner'
    if (drive.kind === 'documentLibrary' && drive.tenantId === user.tenantId) return 'write'
    let best: Access | undefined
    for (const it of [item, ...this.ancestors(item)]) {
      const g = this.grants.get(it.id)?.get(user.oid)
      if (g?.role === 'write') return 'write'
      if (g) best = 'read'
    }
    return best
  }

  /** Throws 404 (invisible) or 403 (read-only) unless `user` may read / write `item`. */
  require(user: Account, item: Item, need: 'read' | 'write'): Access {
    const a = this.access(user, item)
    if (!a) throw notFound()
    if (need === 'write' && a === 'read') throw accessDenied('You do not have permission to modify this item.')
    return a
  }

  /** Items shared with `user` (directly granted), newest first. */
  sharedWith(user: Account): { item: Item; grant: Grant }[] {
    const out: { item: Item; grant: Grant }[] = []
    for (const [itemId, m] of this.grants) {
      const g = m.get(user.oid)
      const item = this.items.get(itemId)
      if (g && item) out.push({ item, grant: g })
    }
    return out.sort((a, b) => (a.grant.sharedAt < b.grant.sharedAt ? 1 : -1))
  }

  createLink(item: Item, type: 'view' | 'edit', scope: SharingLink['scope'], by: Account): SharingLink {
    for (const l of this.links.values()) {
      if (l.itemId === item.id && l.type === type && l.scope === scope) return l
    }
    const { id, webUrl } = this.#linkUrl(item)
    const link: SharingLink = { id, driveId: item.driveId, itemId: item.id, type, scope, webUrl, createdBy: by }
    this.links.set(webUrl, link)
    return link
  }

  /**
   * A sharing link in the service's shape (docs/emulator/sharing-links.md): Personal
   * `https://1drv.ms/{k}/s!{token}`, OneDrive for Business
   * `https://{tenant}-my.sharepoint.com/:{k}:/g/personal/{user}/{token}`, a site library
   * `https://{tenant}.sharepoint.com/:{k}:/s/{site}/{token}`. The hosts are not served
   * here: the link is an identifier that /shares/{u!…} resolves.
   */
  #linkUrl(item: Item): { id: string; webUrl: string } {
    const drive = this.driveOfItem(item)
    const k = linkKindOf(item)
    if (drive.kind === 'personal') {
      const id = 'A' + randomBytes(21).toString('base64url')
      return { id, webUrl: `https://1drv.ms/${k}/s!${id}` }
    }
    const id = 'E' + randomBytes(34).toString('base64url').slice(0, 45)
    const site = drive.siteId ? this.sites.get(drive.siteId) : undefined
    if (site) {
      const u = new URL(site.webUrl)
      return { id, webUrl: `${u.origin}/:${k}:/s/${site.name}/${id}` }
    }
    const u = new URL(drive.webUrl)
    return { id, webUrl: `${u.origin}/:${k}:/g/personal/${u.pathname.split('/')[2]}/${id}` }
  }

  // --------------------------------------------------------- admin helpers

  #accountFor(handle: string): Account {
    const a = findAccount(handle)
    if (!a) throw new Error(`unknown account ${handle}`)
    return a
  }

  #splitPath(path: string): string[] {
    return path.split('/').filter((s) => s.length > 0)
  }

  /** Create the folders of `path` in the drive of `handleOrDriveId` that are missing. */
  mkdirp(handleOrDriveId: string, path: string): Item {
    const drive = this.getDrive(handleOrDriveId) ?? this.driveOf(handleOrDriveId)
    const by = drive.owner ? identityOf(drive.owner) : { user: { id: 'system', displayName: 'System Account' } }
    let cur = this.root(drive)
    for (const seg of this.#splitPath(path)) {
      cur = this.childByName(cur, seg) ?? this.createFolder(cur, seg, 'fail', by).item
    }
    return cur
  }

  /** Write a file (creating folders) from a Buffer or a generated pattern; streams to disk. */
  async writeFile(handleOrDriveId: string, path: string, content: Buffer | string | { size: number; pattern: 'ramp' | 'zero' }, fs?: { createdDateTime?: string; lastModifiedDateTime?: string }): Promise<Item> {
    const drive = this.getDrive(handleOrDriveId) ?? this.driveOf(handleOrDriveId)
    const segs = this.#splitPath(path)
    const name = segs.pop()
    if (!name) throw new Error('writeFile needs a file name')
    const parent = this.mkdirp(drive.id, segs.join('/'))
    const by = drive.owner ? identityOf(drive.owner) : { user: { id: 'system', displayName: 'System Account' } }
    const blobPath = this.newBlobPath()
    const out = createWriteStream(blobPath)
    const h = new QuickXorHash()
    const write = async (b: Buffer) => {
      h.update(b)
      if (!out.write(b)) await once(out, 'drain')
    }
    if (Buffer.isBuffer(content) || typeof content === 'string') {
      await write(Buffer.from(content))
    } else {
      const chunk = 1 << 20
      for (let off = 0; off < content.size; off += chunk) {
        const n = Math.min(chunk, content.size - off)
        const b = Buffer.allocUnsafe(n)
        if (content.pattern === 'zero') b.fill(0)
        else for (let i = 0; i < n; i++) b[i] = (off + i) & 0xff
        await write(b)
      }
    }
    out.end()
    await once(out, 'finish')
    const existing = this.childByName(parent, name)
    return this.commitContent({
      parent, name, target: existing?.kind === 'file' ? existing : undefined,
      blob: { path: blobPath, size: h.length, quickXorHash: h.digest() }, conflict: 'replace', by, fs,
    }).item
  }

  /** `count` small files named file-00000.txt … in `folder` (created if missing). */
  async createMany(handleOrDriveId: string, folder: string, count: number, prefix = 'file-'): Promise<Item[]> {
    const out: Item[] = []
    for (let i = 0; i < count; i++) {
      out.push(await this.writeFile(handleOrDriveId, `${folder}/${prefix}${String(i).padStart(5, '0')}.txt`, `file ${i}\n`))
    }
    return out
  }

  accountByOid(oid: string): Account | undefined {
    return ACCOUNTS.find((a) => a.oid === oid)
  }

  /** The Contoso tenant (home of the demo site). */
  static readonly SITE_TENANT = CONTOSO.id

  itemByPath(handleOrDriveId: string, path: string): Item | undefined {
    const drive = this.getDrive(handleOrDriveId) ?? this.driveOf(handleOrDriveId)
    return this.resolvePath(this.root(drive), this.#splitPath(path))
  }

  account(handle: string): Account {
    return this.#accountFor(handle)
  }
}
