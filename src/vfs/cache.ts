/**
 * The metadata cache: one lru-cache of directories, each holding the children the
 * mount knows (from a listing or from single lookups) and short-lived negative
 * entries. Bounded by entries (a directory of 5,000 children weighs 5,001).
 *
 * A directory whose listing is younger than the dir TTL answers every lookup in it,
 * including "no such name", with no Graph call; that is what makes `ls -l` cost the
 * listing pages only. Outside a fresh listing, a child fetched on its own is trusted
 * for the same TTL, and a miss for the negative TTL.
 *
 * Every change the mount makes itself is applied here at once (read-your-writes),
 * and remote changes seen by the delta poll drop what they touch: all invalidation
 * goes through the methods of this class.
 */
import { LRUCache } from 'lru-cache'
import type { Clock } from '../common/index.js'
import type { ItemRef } from '../graph/index.js'

export interface Entry {
  /** Name as shown locally (case preserved). */
  name: string
  /** Identity: `i:<drive>:<item>`, `v:<virtual path>` or `l:<local id>`. */
  key: string
  folder: boolean
  /** Where a real item lives (a shortcut's or shared entry's target). */
  ref?: ItemRef
  /** Path segments of a virtual directory. */
  vpath?: string[]
  size: number
  mtimeMs: number
  ctimeMs: number
  eTag?: string
  cTag?: string
  quickXorHash?: string
  /** The entry itself cannot be renamed or removed (virtual dirs, drive roots, shared tops). */
  fixed?: boolean
  /** Fetched at (clock ms). */
  at: number
}

interface DirState {
  /** When the last complete listing was taken (undefined: only single lookups known). */
  listedAt?: number
  entries: Map<string, Entry>
  /** lower-case name -> expiry of a "no such name" answer. */
  negative: Map<string, number>
  /**
   * A remote change inside was seen at this time: the listing and every child known
   * before it must be asked again, but they stay as the last known state, which
   * answers while the service cannot be reached (staleLookup, staleListing).
   */
  invalidAt?: number
}

export interface MetadataCacheOptions {
  clock: Clock
  dirTtlMs: number
  negativeTtlMs: number
  maxEntries: number
}

export type Lookup = { hit: true; entry: Entry | undefined } | { hit: false }

const lower = (s: string) => s.toLowerCase()

export class MetadataCache {
  readonly #dirs: LRUCache<string, DirState>
  readonly #o: MetadataCacheOptions

  constructor(o: MetadataCacheOptions) {
    this.#o = o
    this.#dirs = new LRUCache<string, DirState>({
      maxSize: Math.max(1, o.maxEntries),
      sizeCalculation: (d) => 1 + d.entries.size + d.negative.size,
    })
  }

  #fresh(d: DirState, at: number | undefined, ttl: number): boolean {
    return at !== undefined && this.#o.clock.now() - at < ttl && (d.invalidAt === undefined || at > d.invalidAt)
  }

  /** A child by name: a hit (entry, or undefined = known absent) or a miss (ask the service). */
  lookup(dirKey: string, name: string): Lookup {
    const d = this.#dirs.get(dirKey)
    if (!d) return { hit: false }
    const k = lower(name)
    const e = d.entries.get(k)
    if (this.#fresh(d, d.listedAt, this.#o.dirTtlMs)) return { hit: true, entry: e }
    if (e && this.#fresh(d, e.at, this.#o.dirTtlMs)) return { hit: true, entry: e }
    const neg = d.negative.get(k)
    if (neg !== undefined && neg > this.#o.clock.now()) return { hit: true, entry: undefined }
    return { hit: false }
  }

  /**
   * What the cache last knew of a name, however old (the service cannot be reached):
   * a child known, or absent from the last complete listing; a miss otherwise.
   */
  staleLookup(dirKey: string, name: string): Lookup {
    const d = this.#dirs.get(dirKey)
    if (!d) return { hit: false }
    const e = d.entries.get(lower(name))
    if (e || d.listedAt !== undefined) return { hit: true, entry: e }
    return { hit: false }
  }

  /** The children of the last complete listing, however old (the service cannot be reached). */
  staleListing(dirKey: string): Entry[] | undefined {
    const d = this.#dirs.get(dirKey)
    return d?.listedAt === undefined ? undefined : [...d.entries.values()]
  }

  /** The children of a fresh listing, or undefined when the directory must be listed. */
  listing(dirKey: string): Entry[] | undefined {
    const d = this.#dirs.get(dirKey)
    if (!d || !this.#fresh(d, d.listedAt, this.#o.dirTtlMs)) return undefined
    return [...d.entries.values()]
  }

  /** Store a complete listing taken at `at`. */
  setListing(dirKey: string, entries: Entry[], at: number): void {
    const map = new Map<string, Entry>()
    for (const e of entries) map.set(lower(e.name), e)
    this.#set(dirKey, { listedAt: at, entries: map, negative: new Map() })
  }

  #set(dirKey: string, d: DirState): void {
    this.#dirs.set(dirKey, d)
  }

  #dir(dirKey: string): DirState | undefined {
    return this.#dirs.get(dirKey)
  }

  /** Record one child (a lookup answer or the mount's own create/rename/upload). */
  put(dirKey: string, entry: Entry): void {
    const d = this.#dir(dirKey) ?? { entries: new Map(), negative: new Map() }
    const k = lower(entry.name)
    d.entries.set(k, entry)
    d.negative.delete(k)
    this.#set(dirKey, d)
  }

  /** Record that a name does not exist (for the negative TTL, or as long as a fresh listing says so). */
  putMissing(dirKey: string, name: string): void {
    const d = this.#dir(dirKey) ?? { entries: new Map(), negative: new Map() }
    d.entries.delete(lower(name))
    d.negative.set(lower(name), this.#o.clock.now() + this.#o.negativeTtlMs)
    this.#set(dirKey, d)
  }

  /** The mount removed or renamed away a child. */
  remove(dirKey: string, name: string): void {
    const d = this.#dir(dirKey)
    if (!d) return
    d.entries.delete(lower(name))
    if (d.listedAt === undefined) d.negative.set(lower(name), this.#o.clock.now() + this.#o.negativeTtlMs)
    this.#set(dirKey, d)
  }

  /** Update a child's attributes where it is known (size, mtime, eTag after an upload or utimens). */
  update(dirKey: string, name: string, patch: Partial<Entry>): void {
    const d = this.#dir(dirKey)
    const e = d?.entries.get(lower(name))
    if (!d || !e) return
    d.entries.set(lower(name), { ...e, ...patch })
  }

  /**
   * A remote change inside a directory: its listing and children are asked again
   * before they answer a lookup, and are kept only as the last known state.
   */
  invalidateDir(dirKey: string): void {
    const d = this.#dirs.get(dirKey)
    if (!d) return
    d.invalidAt = this.#o.clock.now()
    d.negative.clear()
  }

  /** Forget everything (a delta resync). */
  clear(): void {
    this.#dirs.clear()
  }

  /** Entries held (for tests and status). */
  get size(): number {
    return this.#dirs.calculatedSize ?? 0
  }
}
