/**
 * A download's destination in the daemon: a spool file written through its handle
 * (DownloadSink). Two buffers: the socket reads into one while the other is being
 * written, asynchronously, so the event loop goes on serving other FUSE requests
 * and the download waits for the disk only when both are busy. (odfs get writes
 * synchronously instead, cli/commands/get.ts FileSink: a command with nothing else
 * to do.)
 */
import type { FileHandle } from 'node:fs/promises'
import type { DownloadSink } from '../graph/index.js'

const BUFFER = 1 << 20

export class HandleSink implements DownloadSink {
  readonly #free: Buffer[]
  #buf: Buffer
  /** The file offset of #buf's first byte. */
  #pos = 0
  #fill = 0
  /** Writes under way. */
  readonly #writes = new Set<Promise<void>>()
  #error: { e: unknown } | undefined

  constructor(private readonly fh: FileHandle, size = BUFFER) {
    this.#buf = Buffer.allocUnsafeSlow(size)
    this.#free = [Buffer.allocUnsafeSlow(size)]
  }

  space(offset: number): Uint8Array {
    if (this.#error) throw this.#error.e
    if (offset !== this.#pos + this.#fill) {
      // Elsewhere in the file (a reopen that resumed elsewhere): what is gathered goes out first.
      if (this.#fill > 0) this.#flush(true)
      this.#pos = offset
    }
    return this.#buf.subarray(this.#fill)
  }

  filled(n: number): Promise<void> | void {
    this.#fill += n
    if (this.#fill < this.#buf.length) return
    this.#flush(false)
    // No free buffer: the download waits for the oldest write.
    if (this.#buf.length === 0) return this.#writes.values().next().value
  }

  /** Write what is gathered and wait for every write; rejects with the first write error. */
  async end(): Promise<void> {
    if (this.#fill > 0 && !this.#error) this.#flush(false)
    while (this.#writes.size > 0) await Promise.allSettled([...this.#writes])
    if (this.#error) throw this.#error.e
  }

  /**
   * Start writing the gathered bytes and take a free buffer: with none free, an empty
   * one until a write completes (filled() returns that write), or, for a jump to
   * another offset (`grow`), a new one.
   */
  #flush(grow: boolean): void {
    const buf = this.#buf
    const bytes = this.#fill
    const pos = this.#pos
    const w: Promise<void> = (async () => {
      for (let off = 0; off < bytes; ) off += (await this.fh.write(buf, off, bytes - off, pos + off)).bytesWritten
    })().then(
      () => {
        this.#writes.delete(w)
        this.#give(buf)
      },
      (e: unknown) => {
        this.#writes.delete(w)
        this.#error ??= { e }
        throw e
      },
    )
    w.catch(() => {}) // reported by the next space(), filled() or end()
    this.#writes.add(w)
    this.#pos += bytes
    this.#fill = 0
    this.#buf = this.#free.pop() ?? (grow ? Buffer.allocUnsafeSlow(buf.length) : Buffer.alloc(0))
  }

  #give(buf: Buffer): void {
    if (this.#buf.length === 0 && this.#fill === 0) this.#buf = buf
    else this.#free.push(buf)
  }
}
