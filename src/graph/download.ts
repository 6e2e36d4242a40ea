/**
 * Downloads (docs/graph-service.md §3): ranged reads from the item's pre-authenticated
 * download URL, fetched with `$select=@microsoft.graph.downloadUrl` and cached per
 * item until it expires; refreshed on 401/403/404/410. No Authorization header is
 * sent to it (the AuthMiddleware only signs Graph API URLs). Bodies are streamed.
 * A service that ignores Range and answers 200 is coped with (bytes skipped and cut).
 */
import { Readable, Transform, type TransformCallback } from 'node:stream'
import { LRUCache } from 'lru-cache'
import { GraphError, isNetworkError } from './errors.js'
import { QuickXorHash } from './quickxorhash.js'
import { backoffDelay, nodeBodyOf } from './middleware.js'
import { BulkBody } from './bulk-get.js'
import type { GraphTransport } from './transport.js'
import type { DriveItem, ItemRef } from './types.js'

export interface DownloadUrlCacheOptions {
  /** How long a download URL is reused (ms, default 10 min; the service says "a few minutes" to an hour). */
  ttlMs?: number
  max?: number
}

/** A download URL and the version of the item it serves. */
interface CachedUrl {
  url: string
  size: number | undefined
  hash: string | undefined
  /** The content version the URL was issued for (cTag, else eTag). */
  version: string | undefined
}

export interface RangeStream {
  /** The bytes [start, end] (end inclusive), streamed. */
  body: Readable
  start: number
  /** Total size of the file, when the service said. */
  total: number | undefined
  /**
   * The content version these bytes belong to (cTag, else eTag, of the item the
   * download URL was issued for). Pass it as `pin` to later reads of the same file.
   */
  version: string | undefined
  /** The server's quickXorHash of that version, when it reported one. */
  hash: string | undefined
}

export interface OpenRangeOptions {
  signal?: AbortSignal
  /** Fail with `changedDuringRead` unless the bytes belong to this version (RangeStream.version of an earlier read). */
  pin?: string
}

/** A download URL with what the same answer said of the version it serves. */
function cachedUrl(item: DriveItem, url: string): CachedUrl {
  return { url, size: item.size, hash: item.file?.hashes?.quickXorHash, version: item.cTag ?? item.eTag }
}

/** The error of a read whose file was replaced after it started. */
function changedDuringRead(ref: ItemRef, pinned: string, now: string | undefined): GraphError {
  return new GraphError({
    status: 412,
    code: 'changedDuringRead',
    message: `item ${ref.itemId} changed during read (version ${pinned} was being read, the service now serves ${now ?? 'another'}); read it again`,
    details: { itemId: ref.itemId, pinned, now },
    level: 'info',
  })
}

/** `p`, or the signal's reason as soon as it aborts (`p` itself goes on for others awaiting it). */
export function withSignal<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}

/** Skip `skip` bytes, then pass at most `limit` bytes (for a 200 answer to a ranged GET). */
class Window extends Transform {
  constructor(private skip: number, private limit: number) {
    super()
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    if (this.skip > 0) {
      if (chunk.length <= this.skip) {
        this.skip -= chunk.length
        return cb()
      }
      chunk = chunk.subarray(this.skip)
      this.skip = 0
    }
    if (this.limit <= 0) return cb()
    if (chunk.length > this.limit) chunk = chunk.subarray(0, this.limit)
    this.limit -= chunk.length
    cb(null, chunk)
  }
}

/**
 * Feed every chunk of `body` to `onChunk` through 'data' events (cheaper per chunk
 * than async iteration), pausing while an asynchronous onChunk is pending.
 */
function consume(body: Readable, onChunk: (c: Buffer) => Promise<void> | void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let failed = false
    // A write still in progress when the connection breaks is waited for: the caller
    // reopens only once it is done, so writes never overlap or reorder.
    let pending: Promise<unknown> = Promise.resolve()
    const fail = (e: unknown) => {
      if (failed) return
      failed = true
      void pending.then(() => reject(e), () => reject(e))
    }
    body.on('data', (c: Buffer) => {
      if (failed) return
      let r: Promise<void> | void
      try {
        r = onChunk(c)
      } catch (e) {
        body.destroy()
        return fail(e)
      }
      if (r && typeof (r as Promise<void>).then === 'function') {
        body.pause()
        pending = (r as Promise<void>).then(() => body.resume(), (e: unknown) => {
          body.destroy()
          failed = false // this failure, not the close it causes, is the one reported
          pending = Promise.resolve()
          fail(e)
        })
      }
    })
    body.once('end', () => {
      if (!failed) resolve()
    })
    body.once('error', fail)
    body.once('close', () => {
      if (!body.readableEnded) fail(new GraphError({ status: 0, code: 'networkError', message: 'download connection closed early' }))
    })
  })
}

/** Where a download's bytes go, chunk by chunk, each at its offset in the file. */
export type DownloadWrite = (chunk: Buffer, offset: number) => Promise<void> | void

/**
 * A download's destination that lends its own memory for the bytes. Where the
 * connection allows (a whole file read on a connection of its own, bulk-get.ts)
 * the socket reads straight into it: no byte is copied or allocated on its way to
 * the disk. Elsewhere chunks are copied into it. A space() is always followed by
 * its filled() before the next space().
 */
export interface DownloadSink {
  /**
   * Memory for the file's bytes from `offset` on, at least one byte long, lent until
   * filled(). Successive offsets are contiguous, except after a reopen and between
   * the parts of a download over several connections.
   */
  space(offset: number): Uint8Array
  /** The first `n` bytes of the memory last lent hold the file's bytes at its offset. A promise: wait for it before the next space(). */
  filled(n: number): Promise<void> | void
}

export interface DownloadToOptions {
  start?: number
  /** Exclusive end (default: the whole file). */
  end?: number
  signal?: AbortSignal
  onProgress?: (bytes: number, total: number | undefined) => void
  /** Compare the quickXorHash of a whole-file download with the server's (default true). */
  verify?: boolean
  /**
   * Connections a whole-file download uses at once (default 1). With more, the file
   * is fetched in parts of `partSize` bytes (as `rclone --multi-thread-streams` does),
   * `streams` parts at a time, each pinned to the version of the first: `write` then
   * gets chunks in order within a part but interleaved across parts (its offset says
   * where each goes), and the quickXorHash is taken at each chunk's offset. Memory
   * stays bounded: a part's connection is paused while its write is pending.
   */
  streams?: number
  /** Bytes per part of a download over several connections (default 16 MiB). */
  partSize?: number
  /** The bytes must belong to this version (a cTag the caller knows); else `changedDuringRead`. */
  pin?: string
}

/** Default part of a download over several connections (a multiple of every batch size a writer is likely to use). */
export const DEFAULT_PART = 16 << 20

export interface DownloadResult {
  bytes: number
  localHash: string | undefined
  /** The server's quickXorHash of the version downloaded (undefined when it reported none). */
  serverHash: string | undefined
  verified: boolean
  /** Why `verified` is false although nothing failed: a partial range, verification turned off, or no server hash. */
  unverified?: 'partial' | 'disabled' | 'noServerHash'
  /** The content version downloaded (cTag, else eTag). */
  version: string | undefined
  reopened: number
}

export class Downloader {
  /**
   * Download URLs by item: bounded (max), expiring (ttl, on the transport's clock),
   * and one fetch per item however many callers ask at once (lru-cache's fetchMethod
   * shares the in-flight request).
   */
  readonly #cache: LRUCache<string, CachedUrl, ItemRef>
  urlFetches = 0

  constructor(private readonly t: GraphTransport, opts: DownloadUrlCacheOptions = {}) {
    this.#cache = new LRUCache<string, CachedUrl, ItemRef>({
      max: opts.max ?? 10_000,
      ttl: opts.ttlMs ?? 10 * 60_000,
      perf: { now: () => t.clock.now() },
      ttlResolution: 0, // read the clock on every check (it is injectable)
      // A caller that gives up does not cancel the fetch others wait for.
      ignoreFetchAbort: true,
      fetchMethod: (_key, _stale, { context }) => this.#fetchUrl(context),
    })
  }

  #key(ref: ItemRef): string {
    return `${ref.driveId}\u0000${ref.itemId}`
  }

  invalidate(ref: ItemRef): void {
    this.#cache.delete(this.#key(ref))
  }

  async #fetchUrl(ref: ItemRef): Promise<CachedUrl> {
    this.urlFetches++
    const item = await this.t.json<DriveItem>(
      'GET',
      `/drives/${encodeURIComponent(ref.driveId)}/items/${encodeURIComponent(ref.itemId)}?$select=id,size,file,eTag,cTag,@microsoft.graph.downloadUrl`,
      { label: 'GET /drives/{id}/items/{id}?select=downloadUrl' },
    )
    const url = item['@microsoft.graph.downloadUrl']
    if (!url) {
      throw new GraphError({ status: 0, code: 'notAFile', message: `item ${ref.itemId} has no download URL (a folder or a package?)`, level: 'debug', local: true })
    }
    return cachedUrl(item, url)
  }

  /** Keep a download URL that came with an item fetched for another reason (the answer's size, hash and version with it). */
  keep(ref: ItemRef, item: DriveItem, url: string): void {
    this.#cache.set(this.#key(ref), cachedUrl(item, url))
  }

  /** The item's pre-authenticated download URL (cached, shared by concurrent callers). Never log it. */
  async downloadUrl(ref: ItemRef, signal?: AbortSignal): Promise<CachedUrl> {
    return withSignal(this.#cache.fetch(this.#key(ref), { context: ref }) as Promise<CachedUrl>, signal)
  }

  /**
   * Open bytes [start, endExclusive) (to the end of the file when endExclusive is
   * undefined). With `pin`, the bytes must belong to that version of the file.
   * A range that starts at or past the end of the file is empty (416 answered for
   * any range shape); the last argument may still be a bare AbortSignal.
   */
  async openRange(ref: ItemRef, start: number, endExclusive?: number, o: OpenRangeOptions | AbortSignal = {}): Promise<RangeStream> {
    const { signal, pin } = o instanceof AbortSignal ? { signal: o, pin: undefined } : o
    const empty = (u: CachedUrl, total: number | undefined): RangeStream => ({ body: Readable.from([]), start, total, version: u.version, hash: u.hash })
    for (let refreshed = false; ; refreshed = true) {
      const u = await this.downloadUrl(ref, signal)
      if (pin !== undefined && u.version !== undefined && u.version !== pin) {
        this.invalidate(ref)
        // A URL cached for an older version than the caller's: ask for a fresh one once.
        if (!refreshed) continue
        throw changedDuringRead(ref, pin, u.version)
      }
      // The whole file needs no Range header (a plain 200); anything else asks for its window.
      const whole = start === 0 && endExclusive === undefined
      const headers: Record<string, string> = whole ? {} : { Range: `bytes=${start}-${endExclusive !== undefined ? endExclusive - 1 : ''}` }
      const r = await this.t.sendUrl('GET', u.url, {
        auth: false,
        idempotent: true,
        headers,
        timeoutMs: 0, // streaming; the dispatcher times out idle sockets
        signal,
        label: 'GET {downloadUrl}',
        raw: true,
        stream: true,
        content: true,
        // A read to the end of the file streams on a connection of its own. Bounded
        // ranges (the mount's reads, the parts of a download over several connections)
        // keep to the pooled connections: a new one would cost a handshake each.
        bulk: endExclusive === undefined,
      })
      const st = r.res.status
      if ((st === 401 || st === 403 || st === 404 || st === 410) && !refreshed) {
        // Expired or revoked URL, or the version it served is gone: fetch a fresh one once.
        await r.res.body?.cancel()
        this.invalidate(ref)
        continue
      }
      if (st === 416) {
        // Unsatisfiable: the range starts at or past the end ("bytes */SIZE" says where that is).
        const m = /bytes \*\/(\d+)/.exec(r.res.headers.get('content-range') ?? '')
        const size = m ? Number(m[1]) : u.size
        if (size !== undefined && start >= size) {
          await r.res.body?.cancel()
          return empty(u, size)
        }
        throw await this.t.errorOf(r, 'GET')
      }
      if (st !== 200 && st !== 206) throw await this.t.errorOf(r, 'GET')
      if (!r.res.body) return empty(u, u.size)
      const body = nodeBodyOf(r.res) ?? Readable.fromWeb(r.res.body as never)
      if (st === 206) {
        const cr = /bytes (\d+)-(\d+)\/(\d+|\*)/.exec(r.res.headers.get('content-range') ?? '')
        if (cr && Number(cr[1]) !== start) {
          body.destroy()
          throw new GraphError({ status: 206, code: 'badContentRange', message: `asked for byte ${start}, got ${cr[1]}` })
        }
        const total = cr && cr[3] !== '*' ? Number(cr[3]) : u.size
        return { body, start, total, version: u.version, hash: u.hash }
      }
      // 200: the whole file; cut out the window.
      const total = Number(r.res.headers.get('content-length') ?? u.size)
      if (whole) return { body, start, total, version: u.version, hash: u.hash }
      const limit = (endExclusive ?? Infinity) - start
      return { body: body.pipe(new Window(start, limit)), start, total, version: u.version, hash: u.hash }
    }
  }

  /**
   * Stream [start, end) of an item into `to` (a function given each chunk, or a sink
   * lending its memory), reopening from the last byte
   * received when the connection breaks. A whole-file download is hashed and
   * compared with the server's quickXorHash; with `streams` > 1 it is fetched in
   * parts over several connections (DownloadToOptions.streams).
   */
  async downloadTo(ref: ItemRef, to: DownloadWrite | DownloadSink, opts: DownloadToOptions = {}): Promise<DownloadResult> {
    const start = opts.start ?? 0
    const whole = start === 0 && opts.end === undefined
    const hasher = whole && opts.verify !== false ? new QuickXorHash() : undefined
    const streams = whole ? Math.max(1, Math.floor(opts.streams ?? 1)) : 1
    const part = Math.max(1, opts.partSize ?? DEFAULT_PART)
    // Every read must serve the version the first answer belonged to (pinned), and
    // the hash verified against is that version's.
    const sink = typeof to === 'function' ? undefined : to
    const job: Job = { ref, pin: opts.pin, pinned: undefined, reopened: 0, received: 0, total: undefined, writeFailed: false, sink, took: () => undefined, onChunk: () => undefined }
    const expected = () => (opts.end ?? job.total ?? NaN) - start
    job.took = (bytes, at, store) => {
      hasher?.updateAt(at, bytes)
      job.received += bytes.length
      if (opts.onProgress) {
        const n = expected()
        opts.onProgress(job.received, Number.isNaN(n) ? undefined : n)
      }
      try {
        const r = store()
        return r ? r.catch((e: unknown) => { job.writeFailed = true; throw e }) : undefined
      } catch (e) {
        job.writeFailed = true
        throw e
      }
    }
    job.onChunk = sink
      ? (chunk, at) => job.took(chunk, at, () => copyInto(sink, chunk, at))
      : (chunk, at) => job.took(chunk, at, () => (to as DownloadWrite)(chunk, at))
    if (streams === 1) {
      await this.#fetchRange(job, start, opts.end, opts.signal)
    } else if ((await this.#fetchRange(job, 0, part, opts.signal)) >= part) {
      // The first part told the size and the version; the rest go `streams` at a time
      // (over one connection when the service did not say how large the file is).
      if (job.total !== undefined) await this.#fetchParts(job, part, job.total, part, streams, opts.signal)
      else await this.#fetchRange(job, part, undefined, opts.signal)
    }
    const pinned = job.pinned
    const pos = start + job.received
    const serverHash = pinned?.hash
    const localHash = hasher?.digest()
    const verified = !!(localHash && serverHash && localHash === serverHash)
    let unverified: DownloadResult['unverified']
    if (!whole) unverified = 'partial'
    else if (opts.verify === false) unverified = 'disabled'
    else if (!serverHash) {
      unverified = 'noServerHash'
      this.t.log.warn({ itemId: ref.itemId, bytes: pos - start }, 'download not verified: the service reported no quickXorHash for this version')
    }
    if (hasher && serverHash && localHash !== serverHash) {
      this.invalidate(ref)
      throw new GraphError({
        status: 0,
        code: 'hashMismatch',
        message: `downloaded bytes hash to ${localHash} but the server reports ${serverHash}`,
        details: { itemId: ref.itemId, localHash, serverHash, bytes: pos - start },
        level: 'error',
      })
    }
    return { bytes: pos - start, localHash, serverHash, verified, unverified, version: pinned?.version, reopened: job.reopened }
  }

  /** Parts [from, to) of `part` bytes each, fetched by `streams` connections at once; the first failure stops the others. */
  async #fetchParts(job: Job, from: number, to: number, part: number, streams: number, outer: AbortSignal | undefined): Promise<void> {
    const stop = new AbortController()
    const signal = outer ? AbortSignal.any([outer, stop.signal]) : stop.signal
    let next = from
    let first: { error: unknown } | undefined
    const worker = async () => {
      while (next < to && !first) {
        const a = next
        next = Math.min(to, a + part)
        try {
          await this.#fetchRange(job, a, next, signal)
        } catch (e) {
          first ??= { error: e }
          stop.abort(e)
        }
      }
    }
    // Every connection is waited for, so no write is still running when this returns or throws.
    await Promise.all(Array.from({ length: Math.min(streams, Math.ceil((to - from) / part)) }, worker))
    if (first) throw first.error
  }

  /**
   * Fetch [from, to) (to the end of the file when `to` is undefined or past it) into
   * job.onChunk, reopening from the last byte received when the connection breaks;
   * the retry budget counts consecutive failures without progress. Returns where the
   * range ended (the file's size when it reached the end).
   */
  async #fetchRange(job: Job, from: number, to: number | undefined, signal: AbortSignal | undefined): Promise<number> {
    const retry = this.t.retry
    let pos = from
    let end = to
    let failures = 0
    for (;;) {
      if (end !== undefined && pos >= end) break
      const openedAt = pos
      let rs: RangeStream
      try {
        // A read to the end of the file stays one when reopened (`bytes=POS-`), so it keeps
        // to a connection of its own (openRange) once the size is known.
        rs = await this.openRange(job.ref, pos, to === undefined ? undefined : end, { signal, pin: job.pinned?.version ?? job.pin })
      } catch (e) {
        if (isNetworkError(e) && !signal?.aborted && ++failures < retry.maxAttempts) {
          await this.t.clock.sleep(backoffDelay(failures, retry), signal)
          job.reopened++
          continue
        }
        throw e
      }
      job.pinned ??= { version: rs.version, hash: rs.hash }
      if (rs.total !== undefined) {
        job.total ??= rs.total
        if (end === undefined || end > rs.total) end = rs.total
      }
      try {
        const sink = job.sink
        if (sink && rs.body instanceof BulkBody) {
          // The socket reads into the sink's memory.
          let lent: Uint8Array | undefined
          await rs.body.readInto({
            space: () => (lent = sink.space(pos)),
            filled: (n) => {
              const at = pos
              pos += n
              return job.took(lent!.subarray(0, n), at, () => sink.filled(n))
            },
          })
        } else {
          await consume(rs.body, (chunk) => {
            const at = pos
            pos += chunk.length
            return job.onChunk(chunk, at)
          })
        }
        if (end === undefined || pos >= end) break
        // Body ended early: resume from where it stopped.
        throw new GraphError({ status: 0, code: 'networkError', message: `download ended at byte ${pos} of ${end}` })
      } catch (e) {
        rs.body.destroy()
        // A local write failure is not the network's fault: never retried.
        if (signal?.aborted || job.writeFailed) throw e
        // A connection that delivered bytes before breaking was progress: the budget
        // counts consecutive failures without progress (as upload fragments do), so a
        // slow, flaky link that keeps advancing finishes a large file.
        if (pos > openedAt) failures = 0
        if (++failures >= retry.maxAttempts) {
          throw new GraphError({ status: 0, code: 'downloadFailed', message: `download kept breaking at byte ${pos}`, exhausted: true, cause: e })
        }
        this.t.log.debug({ pos, error: (e as Error).message }, 'download broke: reopening from the last byte received')
        job.reopened++
        await this.t.clock.sleep(backoffDelay(failures, retry), signal)
      }
    }
    return pos
  }
}

/** One download in progress, shared by the connections fetching its parts. */
interface Job {
  /** The version the caller asked for (DownloadToOptions.pin), until the first answer pins one. */
  pin: string | undefined
  ref: ItemRef
  pinned: { version: string | undefined; hash: string | undefined } | undefined
  reopened: number
  /** Bytes handed to onChunk so far (all parts). */
  received: number
  total: number | undefined
  writeFailed: boolean
  /** The destination, when it lends memory. */
  sink: DownloadSink | undefined
  /** Bytes that arrived at `at`: hashed and counted, then stored by `store` (a write failure is never retried). */
  took: (bytes: Uint8Array, at: number, store: () => Promise<void> | void) => Promise<void> | undefined
  /** A chunk that arrived at `at`, for the destination. */
  onChunk: (chunk: Buffer, at: number) => Promise<void> | void
}

/** Copy `chunk` (the file's bytes at `at`) into a sink's memory, as many times as it takes. */
function copyInto(sink: DownloadSink, chunk: Buffer, at: number): Promise<void> | void {
  let off = 0
  while (off < chunk.length) {
    const m = sink.space(at + off)
    if (m.length === 0) throw new RangeError('the download sink lent no memory')
    const k = Math.min(m.length, chunk.length - off)
    m.set(chunk.subarray(off, off + k))
    off += k
    const r = sink.filled(k)
    if (r && off < chunk.length) return r.then(() => copyInto(sink, chunk.subarray(off), at + off))
    if (r) return r
  }
}
