/**
 * Reads of remote files: fixed-size chunks fetched with ranged GETs, kept in one
 * bounded in-memory cache shared by every open file, so memory stays bounded
 * whatever the file size.
 *
 * Each open handle watches its own offsets. A read that starts where the previous
 * one ended is sequential: the read-ahead window doubles (from 2 chunks up to
 * --read-ahead) and the chunks ahead of the reader are fetched in parallel. Any
 * other read resets the window and fetches only the chunks it touches.
 *
 * Whole-file verification: every chunk of a pinned version (its cTag) is also fed,
 * at its offset and exactly once, into a quickXorHash of that version; when the
 * last one arrives the digest is compared with the hash OneDrive reported with the
 * same cTag. A mismatch (bytes damaged on the way, or a service answering wrongly)
 * fails that read and every later read of the version with EIO and an error log
 * line, so `cp` and `sha256sum` of the whole file exit non-zero instead of keeping
 * wrong bytes. A file read only in parts is not verified (its hash covers the whole).
 */
import { LRUCache } from 'lru-cache'
import pLimit from 'p-limit'
import { QuickXorHash, type DriveClient, type ItemRef } from '../graph/index.js'
import { VfsError } from './errors.js'

/** 1 MiB: Linux sends 128 KiB reads; one chunk serves 8 of them with one request. */
export const CHUNK = 1 << 20

export interface ReadTarget {
  key: string
  ref: ItemRef
  size: number
  /** Content version: chunks of another version are never mixed in. */
  version: string
  /** The service's content tag (cTag) when known: every range must belong to it (graph's pin). */
  pin?: string
  /** The service's quickXorHash of that version (whole-file verification; needs `pin`). */
  hash?: string
}

/** Progress of one version's whole-file hash. */
interface Verifier {
  hash: QuickXorHash
  /** One byte per chunk: fed already. */
  fed: Uint8Array
  count: number
  /** undefined until every chunk is fed; then whether the digest matched. */
  ok: boolean | undefined
}

export interface ReadCursor {
  nextOffset: number
  window: number
}

export interface ChunkReaderOptions {
  /** Largest read-ahead window (bytes). */
  readAhead: number
  /** Bytes the chunk cache may hold. */
  cacheBytes: number
  /** Range requests in flight at once. */
  parallel?: number
}

export class ChunkReader {
  readonly #cache: LRUCache<string, Promise<Buffer>>
  readonly #limit: ReturnType<typeof pLimit>
  readonly #readAhead: number
  /** Whole-file hashes in progress, by `key@version` (bounded: an evicted one is simply not verified). */
  readonly #verifiers = new LRUCache<string, Verifier>({ max: 32 })
  requests = 0

  constructor(private readonly client: DriveClient, o: ChunkReaderOptions) {
    const cacheBytes = Math.max(4 * CHUNK, o.cacheBytes)
    this.#cache = new LRUCache<string, Promise<Buffer>>({ maxSize: cacheBytes, sizeCalculation: () => CHUNK })
    // The window must fit in the cache, or chunks would be evicted before they are read.
    this.#readAhead = Math.max(0, Math.min(o.readAhead, Math.floor(cacheBytes / 2)))
    this.#limit = pLimit(o.parallel ?? 8)
  }

  newCursor(): ReadCursor {
    return { nextOffset: 0, window: 0 }
  }

  #chunk(t: ReadTarget, idx: number): Promise<Buffer> {
    const k = `${t.key}@${t.version}#${idx}`
    let p = this.#cache.get(k)
    if (!p) {
      const start = idx * CHUNK
      const end = Math.min(t.size, start + CHUNK)
      p = this.#limit(async () => {
        this.requests++
        const r = await this.client.openRange(t.ref, start, end, { pin: t.pin })
        const parts: Buffer[] = []
        for await (const c of r.body) parts.push(c as Buffer)
        const b = Buffer.concat(parts)
        if (b.length === end - start) this.#verify(t, idx, b)
        return b
      })
      p.catch(() => this.#cache.delete(k))
      this.#cache.set(k, p)
    }
    return p
  }

  /** Feed a whole chunk of a pinned version into its file's hash; compare when the last one is in. */
  #verify(t: ReadTarget, idx: number, chunk: Buffer): void {
    if (!t.hash || !t.pin || t.size === 0) return
    const k = `${t.key}@${t.version}`
    let v = this.#verifiers.get(k)
    if (!v) {
      v = { hash: new QuickXorHash(), fed: new Uint8Array(Math.ceil(t.size / CHUNK)), count: 0, ok: undefined }
      this.#verifiers.set(k, v)
    }
    if (v.ok !== undefined || v.fed[idx]) return
    v.fed[idx] = 1
    v.count++
    v.hash.updateAt(idx * CHUNK, chunk)
    if (v.count === v.fed.length) v.ok = v.hash.digest() === t.hash
  }

  /** Read up to `len` bytes at `offset` into `buf`; returns the byte count. */
  async read(t: ReadTarget, cur: ReadCursor, buf: Buffer, len: number, offset: number): Promise<number> {
    if (offset >= t.size || len <= 0) return 0
    const end = Math.min(t.size, offset + len)
    if (offset === cur.nextOffset) cur.window = Math.min(this.#readAhead, Math.max(2 * CHUNK, cur.window * 2))
    else cur.window = 0
    cur.nextOffset = end
    const first = Math.floor(offset / CHUNK)
    const last = Math.floor((end - 1) / CHUNK)
    if (cur.window > 0) {
      const aheadEnd = Math.min(t.size, end + cur.window)
      for (let i = last + 1; i * CHUNK < aheadEnd; i++) this.#chunk(t, i).catch(() => undefined)
    }
    let n = 0
    for (let i = first; i <= last; i++) {
      const c = await this.#chunk(t, i)
      const from = Math.max(offset, i * CHUNK) - i * CHUNK
      const to = Math.min(end, (i + 1) * CHUNK) - i * CHUNK
      if (c.length < Math.min(t.size, (i + 1) * CHUNK) - i * CHUNK) {
        // The service said the file (this version of it) is longer than the bytes it
        // serves: a wrong size, or a truncated body. Never hand out a short or padded file.
        throw new VfsError('badData', `${t.key}: OneDrive serves ${i * CHUNK + c.length} bytes of a file it says holds ${t.size}`, { level: 'error' })
      }
      n += c.copy(buf, n, from, to)
    }
    if (t.hash && this.#verifiers.get(`${t.key}@${t.version}`)?.ok === false) {
      throw new VfsError('badData', `${t.key}: the bytes OneDrive serves do not match the quickXorHash it reports for them`, { level: 'error' })
    }
    return n
  }

  /** Drop every cached chunk. */
  clear(): void {
    this.#cache.clear()
    this.#verifiers.clear()
  }

  /** Drop cached chunks of a file (its content changed). */
  forget(key: string): void {
    for (const k of this.#cache.keys()) if (k.startsWith(`${key}@`)) this.#cache.delete(k)
    for (const k of this.#verifiers.keys()) if (k.startsWith(`${key}@`)) this.#verifiers.delete(k)
  }
}
