/**
 * Downloads (graph-drive-api.md §3): ranged reads from the item's pre-authenticated
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
import type { GraphTransport } from './transport.js'
import type { DriveItem, ItemRef } from './types.js'

export interface DownloadUrlCacheOptions {
  /** How long a download URL is reused (ms, default 10 min; the service says "a few minutes" to an hour). */
  ttlMs?: number
  max?: number
}

interface CachedUrl {
  url: string
  size: number | undefined
  hash: string | undefined
}

export interface RangeStream {
  /** The bytes [start, end] (end inclusive), streamed. */
  body: Readable
  start: number
  /** Total size of the file, when the service said. */
  total: number | undefined
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
    const fail = (e: unknown) => {
      if (failed) return
      failed = true
      reject(e)
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
        ;(r as Promise<void>).then(() => body.resume(), (e: unknown) => {
          body.destroy()
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

export interface DownloadToOptions {
  start?: number
  /** Exclusive end (default: the whole file). */
  end?: number
  signal?: AbortSignal
  onProgress?: (bytes: number, total: number | undefined) => void
  /** Compare the quickXorHash of a whole-file download with the server's (default true). */
  verify?: boolean
}

export interface DownloadResult {
  bytes: number
  localHash: string | undefined
  serverHash: string | undefined
  verified: boolean
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
      `/drives/${encodeURIComponent(ref.driveId)}/items/${encodeURIComponent(ref.itemId)}?$select=id,size,file,@microsoft.graph.downloadUrl`,
      { label: 'GET /drives/{id}/items/{id}?select=downloadUrl' },
    )
    const url = item['@microsoft.graph.downloadUrl']
    if (!url) {
      throw new GraphError({ status: 0, code: 'notAFile', message: `item ${ref.itemId} has no download URL (a folder or a package?)`, level: 'debug', local: true })
    }
    return { url, size: item.size, hash: item.file?.hashes?.quickXorHash }
  }

  /** The item's pre-authenticated download URL (cached, shared by concurrent callers). Never log it. */
  async downloadUrl(ref: ItemRef, signal?: AbortSignal): Promise<CachedUrl> {
    return withSignal(this.#cache.fetch(this.#key(ref), { context: ref }) as Promise<CachedUrl>, signal)
  }

  /** Open bytes [start, endExclusive) (to the end of the file when endExclusive is undefined). */
  async openRange(ref: ItemRef, start: number, endExclusive?: number, signal?: AbortSignal): Promise<RangeStream> {
    for (let refreshed = false; ; refreshed = true) {
      const u = await this.downloadUrl(ref, signal)
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
      })
      const st = r.res.status
      if ((st === 401 || st === 403 || st === 404 || st === 410) && !refreshed) {
        // Expired or revoked URL: fetch a fresh one once.
        await r.res.body?.cancel()
        this.invalidate(ref)
        continue
      }
      if (st === 416 && endExclusive === undefined && u.size !== undefined && start >= u.size) {
        await r.res.body?.cancel()
        return { body: Readable.from([]), start, total: u.size }
      }
      if (st !== 200 && st !== 206) throw await this.t.errorOf(r, 'GET')
      if (!r.res.body) return { body: Readable.from([]), start, total: u.size }
      const body = nodeBodyOf(r.res) ?? Readable.fromWeb(r.res.body as never)
      if (st === 206) {
        const cr = /bytes (\d+)-(\d+)\/(\d+|\*)/.exec(r.res.headers.get('content-range') ?? '')
        if (cr && Number(cr[1]) !== start) {
          body.destroy()
          throw new GraphError({ status: 206, code: 'badContentRange', message: `asked for byte ${start}, got ${cr[1]}` })
        }
        const total = cr && cr[3] !== '*' ? Number(cr[3]) : u.size
        return { body, start, total }
      }
      // 200: the whole file; cut out the window.
      const total = Number(r.res.headers.get('content-length') ?? u.size)
      if (start === 0 && endExclusive === undefined) return { body, start, total }
      const limit = (endExclusive ?? Infinity) - start
      return { body: body.pipe(new Window(start, limit)), start, total }
    }
  }

  /**
   * Stream [start, end) of an item into `write`, reopening from the last byte
   * received when the connection breaks. A whole-file download is hashed and
   * compared with the server's quickXorHash.
   */
  async downloadTo(ref: ItemRef, write: (chunk: Buffer) => Promise<void> | void, opts: DownloadToOptions = {}): Promise<DownloadResult> {
    const start = opts.start ?? 0
    let pos = start
    let end = opts.end
    const whole = start === 0 && end === undefined
    const hasher = whole && opts.verify !== false ? new QuickXorHash() : undefined
    let reopened = 0
    const retry = this.t.retry
    let failures = 0
    let writeFailed = false
    for (;;) {
      if (end !== undefined && pos >= end) break
      const openedAt = pos
      let rs: RangeStream
      try {
        rs = await this.openRange(ref, pos, end, opts.signal)
      } catch (e) {
        if (isNetworkError(e) && !opts.signal?.aborted && ++failures < retry.maxAttempts) {
          await this.t.clock.sleep(backoffDelay(failures, retry), opts.signal)
          reopened++
          continue
        }
        throw e
      }
      if (end === undefined && rs.total !== undefined) end = rs.total
      try {
        await consume(rs.body, (chunk) => {
          hasher?.update(chunk)
          pos += chunk.length
          opts.onProgress?.(pos - start, end !== undefined ? end - start : undefined)
          try {
            const r = write(chunk)
            return r ? r.catch((e: unknown) => { writeFailed = true; throw e }) : undefined
          } catch (e) {
            writeFailed = true
            throw e
          }
        })
        if (end === undefined || pos >= end) break
        // Body ended early: resume from where it stopped.
        throw new GraphError({ status: 0, code: 'networkError', message: `download ended at byte ${pos} of ${end}` })
      } catch (e) {
        rs.body.destroy()
        // A local write failure is not the network's fault: never retried.
        if (opts.signal?.aborted || writeFailed) throw e
        // A connection that delivered bytes before breaking was progress: the budget
        // counts consecutive failures without progress (as upload fragments do), so a
        // slow, flaky link that keeps advancing finishes a large file.
        if (pos > openedAt) failures = 0
        if (++failures >= retry.maxAttempts) {
          throw new GraphError({ status: 0, code: 'downloadFailed', message: `download kept breaking at byte ${pos}`, exhausted: true, cause: e })
        }
        this.t.log.debug({ pos, error: (e as Error).message }, 'download broke: reopening from the last byte received')
        reopened++
        await this.t.clock.sleep(backoffDelay(failures, retry), opts.signal)
      }
    }
    const serverHash = this.#cache.get(this.#key(ref), { allowStale: true })?.hash
    const localHash = hasher?.digest()
    const verified = !!(localHash && serverHash && localHash === serverHash)
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
    return { bytes: pos - start, localHash, serverHash, verified, reopened }
  }
}
