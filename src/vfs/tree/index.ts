/**
 * The virtual tree the mount and the transfer commands show:
 *
 *   My files/...                          the user's drive
 *   Shared with me/<item>/...             items shared with the user (sharedWithMe while it
 *                                         answers, then shortcuts, search and sharing links)
 *   Shared libraries/<site>/<library>/... followed SharePoint sites' document libraries
 *                                         (absent on personal accounts)
 *
 * TreeResolver.resolve() turns a virtual path into a drive address with as few calls as it
 * can: one path lookup relative to the base item, and a walk up only when that
 * fails (paths through a shortcut to a shared folder are not traversed by the
 * service, docs/graph-service.md §1.1). Does not import fuse-native.
 */
import { LRUCache } from 'lru-cache'
import { systemClock, type Clock } from '../../common/index.js'
import {
  GraphError, isFolder, isGraphError, splitPath, targetOf, type Drive, type DriveClient, type DriveItem, type ItemRef,
  type SharedEntry, type Site,
} from '../../graph/index.js'

export const MY_FILES = 'My files'
export const SHARED_WITH_ME = 'Shared with me'
export const SHARED_LIBRARIES = 'Shared libraries'

export type Resolved =
  | { kind: 'root' }
  /** A directory that exists only in the virtual tree (Shared with me, Shared libraries, a site). */
  | { kind: 'virtual'; path: string[] }
  /** A real item; `ref` is where it really lives (a shortcut's remote item). */
  | { kind: 'item'; ref: ItemRef; item: DriveItem; folder: boolean; name: string }
  /** The parent exists, the leaf does not (where `put` creates it). */
  | { kind: 'missing'; parent: ItemRef; name: string }

export interface VirtualEntry {
  name: string
  folder: boolean
  size?: number
  mtime?: string
  ref?: ItemRef
  item?: DriveItem
}

export interface TreeOptions {
  /** Sharing links the user registered; shown under Shared with me. */
  links?: string[]
  signal?: AbortSignal
  /** How long the drive, shared entries, followed sites and site libraries are reused (ms, default 60 s). */
  cacheTtlMs?: number
  /** Clock of the cache's expiry (default the system clock). */
  clock?: Clock
}

function notFound(path: string): GraphError {
  return new GraphError({ status: 404, code: 'itemNotFound', message: `no such path: ${path}`, level: 'debug' })
}

function uniqueNames<T extends { name: string }>(list: T[]): T[] {
  const used = new Map<string, number>()
  return list.map((e) => {
    const k = e.name.toLowerCase()
    const n = (used.get(k) ?? 0) + 1
    used.set(k, n)
    return n === 1 ? e : { ...e, name: `${e.name} (${n})` }
  })
}

/**
 * Shared entries in an order that does not depend on which source found them or
 * the order the service answered: two items of one name keep their "(2)" suffix
 * across runs and mounts.
 */
function stableOrder(list: SharedEntry[]): SharedEntry[] {
  const key = (e: SharedEntry) => `${e.name.toLowerCase()}\u0000${e.ref.driveId}\u0000${e.ref.itemId}`
  return [...list].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
}

export class TreeResolver {
  /**
   * The drive, the shared entries, the followed sites and each site's libraries:
   * reused for cacheTtlMs, and fetched once however many callers ask at once
   * (lru-cache's fetchMethod shares the in-flight request).
   */
  readonly #cache: LRUCache<string, { v: unknown }>

  constructor(private readonly client: DriveClient, private readonly opts: TreeOptions = {}) {
    const clock = opts.clock ?? systemClock
    this.#cache = new LRUCache<string, { v: unknown }>({
      max: 1000,
      ttl: opts.cacheTtlMs ?? 60_000,
      perf: { now: () => clock.now() },
      ttlResolution: 0, // read the clock on every check (it is injectable)
      fetchMethod: async (key) => ({ v: await this.#load(key) }),
    })
  }

  async #cached<T>(key: string): Promise<T> {
    return (await this.#cache.fetch(key))!.v as T
  }

  async #load(key: string): Promise<unknown> {
    const signal = this.opts.signal
    if (key === 'drive') return this.client.getMyDrive(signal)
    if (key === 'shared') return uniqueNames(stableOrder(await this.client.listSharedWithMe({ links: this.opts.links, signal })))
    if (key === 'sites') {
      const drive = await this.myDrive()
      if (drive.driveType === 'personal') return []
      try {
        const sites = await this.client.listFollowedSites(signal)
        return uniqueNames(sites.map((s) => ({ ...s, name: s.displayName ?? s.name ?? s.id })))
      } catch (e) {
        if (!isGraphError(e) || !['badRequest', 'notFound', 'accessDenied'].includes(e.classify())) throw e
        return []
      }
    }
    const siteId = key.slice('siteDrives:'.length)
    const drives = await this.client.listSiteDrives(siteId, signal)
    return uniqueNames(drives.map((d) => ({ ...d, name: d.name ?? d.id })))
  }

  myDrive(): Promise<Drive> {
    return this.#cached<Drive>('drive')
  }

  sharedEntries(): Promise<SharedEntry[]> {
    return this.#cached<SharedEntry[]>('shared')
  }

  sites(): Promise<Site[]> {
    return this.#cached<Site[]>('sites')
  }

  siteDrives(site: Site): Promise<Drive[]> {
    return this.#cached<Drive[]>(`siteDrives:${site.id}`)
  }

  /** Resolve a virtual path ("My files/a/b", "Shared libraries/Site/Lib/x"). */
  async resolve(virtualPath: string): Promise<Resolved> {
    const segs = splitPath(virtualPath)
    if (segs.length === 0) return { kind: 'root' }
    const [top, ...rest] = segs
    const eq = (a: string, b: string) => a.toLowerCase() === b.toLowerCase()
    if (eq(top!, MY_FILES)) {
      // Until the drive's id is known, paths are looked up under /me/drive: a command
      // that resolves one path makes no request for the drive (see #under).
      const known = this.#cache.get('drive')?.v as Drive | undefined
      return this.#under(known ? { driveId: known.id, itemId: 'root' } : undefined, rest, virtualPath)
    }
    if (eq(top!, SHARED_WITH_ME)) {
      if (rest.length === 0) return { kind: 'virtual', path: [SHARED_WITH_ME] }
      const entry = (await this.sharedEntries()).find((e) => eq(e.name, rest[0]!))
      if (!entry) throw notFound(virtualPath)
      if (rest.length === 1) {
        const item = await this.client.getItem(entry.ref, this.opts.signal)
        return { kind: 'item', ref: entry.ref, item, folder: isFolder(item), name: entry.name }
      }
      return this.#under(entry.ref, rest.slice(1), virtualPath)
    }
    if (eq(top!, SHARED_LIBRARIES)) {
      const sites = await this.sites()
      if (sites.length === 0) throw notFound(virtualPath)
      if (rest.length === 0) return { kind: 'virtual', path: [SHARED_LIBRARIES] }
      const site = sites.find((s) => eq(s.name!, rest[0]!))
      if (!site) throw notFound(virtualPath)
      if (rest.length === 1) return { kind: 'virtual', path: [SHARED_LIBRARIES, site.name!] }
      const lib = (await this.siteDrives(site)).find((d) => eq(d.name!, rest[1]!))
      if (!lib) throw notFound(virtualPath)
      return this.#under({ driveId: lib.id, itemId: 'root' }, rest.slice(2), virtualPath)
    }
    throw notFound(virtualPath)
  }

  #fromItem(item: DriveItem, fallbackDrive: string): Resolved {
    const ref = item.remoteItem ? targetOf(item) : { driveId: item.parentReference?.driveId ?? fallbackDrive, itemId: item.id }
    return { kind: 'item', ref, item, folder: isFolder(item), name: item.name ?? item.remoteItem?.name ?? item.id }
  }

  /**
   * `segs` under `base`; base undefined: the root of the user's own drive, whose id
   * is asked for only where a path lookup cannot do without it (the root itself, or
   * the parent of a missing item at the top).
   */
  async #under(base: ItemRef | undefined, segs: string[], full: string): Promise<Resolved> {
    const root = async (): Promise<ItemRef> => base ?? { driveId: (await this.myDrive()).id, itemId: 'root' }
    if (segs.length === 0) {
      const at = await root()
      return this.#fromItem(await this.client.getItem(at, this.opts.signal), at.driveId)
    }
    let found: DriveItem | undefined
    try {
      found = base
        ? await this.client.getItemByPath(base.driveId, segs.join('/'), { relativeTo: base.itemId, signal: this.opts.signal })
        : await this.client.getMyItemByPath(segs.join('/'), { signal: this.opts.signal })
    } catch (e) {
      if (!isGraphError(e) || e.classify() !== 'notFound') throw e
    }
    // (The drive is asked for only if the item does not name its own.)
    if (found) return this.#fromItem(found, base?.driveId ?? found.parentReference?.driveId ?? (await root()).driveId)
    const leaf = segs[segs.length - 1]!
    if (segs.length === 1) return { kind: 'missing', parent: await root(), name: leaf }
    // Walk up: the parent may be a shortcut into another drive, which path lookups do not cross.
    const parent = await this.#under(base, segs.slice(0, -1), full)
    if (parent.kind !== 'item') throw notFound(full)
    if (!parent.folder) throw new GraphError({ status: 400, code: 'notAFolder', message: `${segs.slice(0, -1).join('/')} is not a folder`, level: 'debug' })
    const crossed = parent.item.remoteItem !== undefined || parent.ref.driveId !== (base?.driveId ?? parent.item.parentReference?.driveId)
    if (crossed) {
      try {
        const item = await this.client.getItemByPath(parent.ref.driveId, leaf, { relativeTo: parent.ref.itemId, signal: this.opts.signal })
        return this.#fromItem(item, parent.ref.driveId)
      } catch (e) {
        if (!isGraphError(e) || e.classify() !== 'notFound') throw e
      }
    }
    return { kind: 'missing', parent: parent.ref, name: leaf }
  }

  /**
   * The entries of a directory in the virtual tree, page by page as the service
   * answers (a folder of many thousand children is never held whole: a mount's
   * readdir can hand each page on).
   */
  async *iterate(virtualPath: string): AsyncGenerator<VirtualEntry[]> {
    const r = await this.resolve(virtualPath)
    if (r.kind === 'root') {
      const out: VirtualEntry[] = [{ name: MY_FILES, folder: true }, { name: SHARED_WITH_ME, folder: true }]
      if ((await this.sites()).length > 0) out.push({ name: SHARED_LIBRARIES, folder: true })
      yield out
      return
    }
    if (r.kind === 'virtual') {
      if (r.path.length === 1 && r.path[0] === SHARED_WITH_ME) {
        yield (await this.sharedEntries()).map((e) => ({ name: e.name, folder: e.folder, size: e.size, mtime: e.mtime, ref: e.ref }))
      } else if (r.path.length === 1) {
        yield (await this.sites()).map((s) => ({ name: s.name!, folder: true }))
      } else {
        const site = (await this.sites()).find((s) => s.name === r.path[1])!
        yield (await this.siteDrives(site)).map((d) => ({ name: d.name!, folder: true, ref: { driveId: d.id, itemId: 'root' } }))
      }
      return
    }
    if (r.kind === 'missing') throw notFound(virtualPath)
    if (!r.folder) {
      yield [entryOf(r.item, r.name)]
      return
    }
    for await (const page of this.client.iterateChildren(r.ref, { signal: this.opts.signal })) yield page.map((c) => entryOf(c))
  }

  /** The entries of a directory in the virtual tree, gathered (see iterate()). */
  async list(virtualPath: string): Promise<VirtualEntry[]> {
    const out: VirtualEntry[] = []
    for await (const page of this.iterate(virtualPath)) out.push(...page)
    return out
  }
}

export function entryOf(item: DriveItem, name?: string): VirtualEntry {
  return {
    name: name ?? item.name ?? item.id,
    folder: isFolder(item),
    size: item.remoteItem?.size ?? item.size,
    mtime: item.fileSystemInfo?.lastModifiedDateTime ?? item.remoteItem?.fileSystemInfo?.lastModifiedDateTime ?? item.lastModifiedDateTime,
    ref: targetOf(item),
    item,
  }
}
