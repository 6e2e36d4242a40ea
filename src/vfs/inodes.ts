/**
 * Inode numbers: derived from an entry's identity (its cache key: drive and item
 * id, virtual path, or local id), so a file keeps its number however often its
 * metadata is evicted and fetched again, and gets the same number on the next mount
 * (`find -inum`, `tar`, `git` and rsync compare them).
 *
 * fuse-native passes st_ino to the kernel as 32 bits, so the number is a 32-bit
 * hash, and two identities can meet on one number: the later one takes the next
 * free number (then only it depends on the order of lookups). A number, once given
 * to an identity, stays with it for the life of the mount. 1 is the root's.
 */
import { createHash } from 'node:crypto'

const SPAN = 0xffff_fffe // numbers 2 .. 2^32-1

function hashOf(key: string): number {
  return 2 + (createHash('sha256').update(key).digest().readUInt32BE(0) % SPAN)
}

export class InodeTable {
  readonly #byKey = new Map<string, number>()
  readonly #taken = new Map<number, string>()

  /** `hash` is for tests (to make numbers meet); the default is the identity's SHA-256. */
  constructor(private readonly hash: (key: string) => number = hashOf) {}

  /** The number of an identity (given now if it has none yet). */
  of(key: string): number {
    const known = this.#byKey.get(key)
    if (known !== undefined) return known
    let n = this.hash(key)
    while (this.#taken.has(n)) n = n >= SPAN + 1 ? 2 : n + 1
    this.#give(key, n)
    return n
  }

  /** Give `key` a fixed number (the root: 1). */
  set(key: string, n: number): void {
    this.#give(key, n)
  }

  /** `to` is the same file as `from` under a new identity (a new file's first upload): it keeps the number. */
  carry(from: string, to: string): void {
    const n = this.#byKey.get(from)
    if (n === undefined || from === to) return
    const had = this.#byKey.get(to)
    if (had !== undefined && this.#taken.get(had) === to) this.#taken.delete(had)
    this.#byKey.set(to, n)
  }

  #give(key: string, n: number): void {
    this.#byKey.set(key, n)
    if (!this.#taken.has(n)) this.#taken.set(n, key)
  }
}
