/**
 * `odfs get PATH LOCAL`: download a file of the virtual tree. LOCAL may be an
 * existing folder (the file keeps its name) or a file name in an existing folder.
 *
 * The bytes go to a temporary file created exclusively (O_EXCL|O_NOFOLLOW, mode
 * 0600, a random name next to LOCAL, so nobody can aim a symlink or a file of
 * their own at it), written through its file descriptor in large batches; the
 * quickXorHash is verified, the mtime set, the mode widened to what the umask
 * allows, and only then is it renamed onto LOCAL, so LOCAL is never a half-written
 * file. A failed or interrupted download removes the temporary file; running the
 * command again starts over (no partial state is kept between runs).
 */
import type { CommandModule } from 'yargs'
import { constants, writeSync } from 'node:fs'
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { basename, dirname, join, resolve } from 'node:path'
import { OdfsError } from '../../common/index.js'
import type { DownloadSink } from '../../graph/index.js'
import { sessionOptions, userOption, type SessionArgv } from '../options.js'

interface GetArgv extends SessionArgv {
  path: string
  local: string
  streams: number
}

/** A name from the service used as a local file name: one path segment, nothing else. */
export function checkLocalName(name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new OdfsError('EINVAL', `the service named this file ${JSON.stringify(name)}, which is not a safe local file name: give LOCAL as a file name`)
  }
  return name
}

/** Bytes written at most per write: chunks are gathered and written with one writev. */
const BATCH = 8 << 20

/**
 * Writes chunks to a file descriptor at their offsets, gathered into batches that
 * end on multiples of `batch` bytes of the file (a chunk across such a boundary is
 * split, not copied), then written with one writev of the chunks themselves. The
 * chunks of each connection of a parallel download (in order within a connection,
 * interleaved across them) gather into batches of their own. At most `inflight`
 * batches are on their way to the disk while the next ones fill; write() returns a
 * promise only when the caller must wait, and a failed write is reported by the
 * next write() or by end().
 */
export class BatchWriter {
  /** Batches being gathered, by the file offset their next chunk will have. */
  readonly #runs = new Map<number, { pos: number; bufs: Buffer[]; bytes: number }>()
  /** Writes under way, oldest first. */
  readonly #inflight = new Set<Promise<void>>()
  #error: { e: unknown } | undefined

  constructor(private readonly fh: FileHandle, private readonly batch = BATCH, private readonly inflight = 1) {}

  write(chunk: Buffer, offset: number): Promise<void> | undefined {
    if (this.#error) throw this.#error.e
    let run = this.#runs.get(offset)
    if (run) this.#runs.delete(offset)
    else run = { pos: offset, bufs: [], bytes: 0 }
    let flushed = false
    let at = offset
    let rest = chunk
    for (let boundary = (Math.floor(at / this.batch) + 1) * this.batch; at + rest.length >= boundary; boundary += this.batch) {
      const head = rest.subarray(0, boundary - at)
      run.bufs.push(head)
      run.bytes += head.length
      this.#flush(run)
      flushed = true
      rest = rest.subarray(head.length)
      at = boundary
      run = { pos: at, bufs: [], bytes: 0 }
    }
    if (rest.length > 0) {
      run.bufs.push(rest)
      run.bytes += rest.length
      this.#runs.set(at + rest.length, run)
    }
    // Too many batches on their way: the caller waits for the oldest.
    return flushed && this.#inflight.size > this.inflight ? this.#inflight.values().next().value : undefined
  }

  /** Write what is left and wait for every write to finish. */
  async end(): Promise<void> {
    for (const run of this.#runs.values()) this.#flush(run)
    this.#runs.clear()
    await Promise.allSettled([...this.#inflight])
    if (this.#error) throw this.#error.e
  }

  /** Start writing a batch (its failure is kept for the next write() or end()). */
  #flush(run: { pos: number; bufs: Buffer[] }): void {
    const p: Promise<void> = this.#writeAll(run.bufs, run.pos).then(
      () => void this.#inflight.delete(p),
      (e: unknown) => {
        this.#inflight.delete(p)
        this.#error ??= { e }
        throw e
      },
    )
    p.catch(() => {}) // reported through #error
    this.#inflight.add(p)
  }

  async #writeAll(bufs: Buffer[], pos: number): Promise<void> {
    while (bufs.length > 0) {
      let { bytesWritten } = await this.fh.writev(bufs, pos)
      pos += bytesWritten
      while (bufs.length > 0 && bytesWritten >= bufs[0]!.length) bytesWritten -= bufs.shift()!.length
      if (bytesWritten > 0) bufs[0] = bufs[0]!.subarray(bytesWritten)
    }
  }
}

/** Bytes a single-connection download gathers per write. */
const SINK_BATCH = 1 << 20

/**
 * The destination of a download over one connection. It lends the socket a buffer
 * of its own (DownloadSink), so the bytes arrive in it without a copy or an
 * allocation, and writes the buffer to the file descriptor when it is full,
 * synchronously, as curl and wget do: the command has nothing else to do
 * meanwhile, and on the bench (docs/performance.md) writing from the receiving
 * thread cost less CPU and time than handing each batch to libuv's threads.
 * A write error (a full disk) is thrown from filled() and ends the download.
 */
export class FileSink implements DownloadSink {
  readonly #buf: Buffer
  /** The file offset of the buffer's first byte. */
  #pos = 0
  #fill = 0

  constructor(private readonly fd: number, size = SINK_BATCH) {
    this.#buf = Buffer.allocUnsafeSlow(size)
  }

  space(offset: number): Uint8Array {
    if (offset !== this.#pos + this.#fill) {
      // Not where the buffer goes on (a reopen that resumed elsewhere, a part of a parallel download).
      this.flush()
      this.#pos = offset
    }
    return this.#buf.subarray(this.#fill)
  }

  filled(n: number): void {
    this.#fill += n
    if (this.#fill === this.#buf.length) this.flush()
  }

  /** Write what the buffer holds. */
  flush(): void {
    for (let off = 0; off < this.#fill; ) off += writeSync(this.fd, this.#buf, off, this.#fill - off, this.#pos + off)
    this.#pos += this.#fill
    this.#fill = 0
  }
}

/** Where to write: LOCAL itself, or LOCAL/NAME when LOCAL is a folder; its folder must exist. */
async function targetOf(local: string, name: string, given: string): Promise<string> {
  const st = await stat(local).catch(() => undefined)
  if (st?.isDirectory()) return join(local, checkLocalName(name))
  if (st && !st.isFile()) throw new OdfsError('EEXIST', `${given} exists and is not a regular file`)
  if (given.endsWith('/')) throw new OdfsError('ENOENT', `${given}: no such local folder`)
  const dir = await stat(dirname(local)).catch(() => undefined)
  if (!dir) throw new OdfsError('ENOENT', `${dirname(local)}: no such local folder`)
  if (!dir.isDirectory()) throw new OdfsError('ENOTDIR', `${dirname(local)} is not a folder`)
  return local
}

/** Create a fresh private file next to `target`; never opens anything that already exists. */
async function createTemp(target: string): Promise<{ path: string; fh: FileHandle }> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW
  for (let i = 0; ; i++) {
    const path = join(dirname(target), `.${basename(target)}.${randomBytes(8).toString('hex')}.odfs-partial`)
    try {
      return { path, fh: await open(path, flags, 0o600) }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === 'EEXIST' && i < 5) continue
      throw new OdfsError(code ?? 'EIO', `cannot create a file in ${dirname(target)}: ${(e as Error).message}`, { cause: e })
    }
  }
}

export const getCommand: CommandModule<object, GetArgv> = {
  builder: (y) =>
    y.positional('path', { type: 'string', demandOption: true }).positional('local', { type: 'string', demandOption: true })
      .options({ ...sessionOptions, ...userOption })
      .option('streams', {
        type: 'number',
        default: 1,
        // One is the default: on the bench (docs/performance.md) more connections cost CPU and gained nothing.
        describe: 'Connections to download over at once, in parts of 16 MiB (helps where one connection is slow)',
      }) as never,
  handler: async (argv) => {
    const { mtimeOf } = await import('../../graph/index.js')
    const { progressBar } = await import('../output.js')
    const { withDrive } = await import('../session.js')
    await withDrive(argv, async ({ client, tree, signal }) => {
      const r = await tree.resolve(argv.path)
      if (r.kind !== 'item') throw new OdfsError('ENOENT', `${argv.path}: no such file`)
      if (r.folder) throw new OdfsError('EISDIR', `${argv.path} is a folder`)
      const local = await targetOf(resolve(argv.local), r.name, argv.local)
      const { path: partial, fh } = await createTemp(local)
      const size = r.item.size ?? r.item.remoteItem?.size ?? 0
      const bar = progressBar(r.name, size)
      let closed = false
      try {
        const streams = Math.max(1, Math.min(16, Math.floor(argv.streams) || 1))
        // One connection reads into the sink's buffer; several interleave their chunks,
        // gathered per connection into batches (parts are DEFAULT_PART bytes, a multiple
        // of BATCH, so each part's batches end on its boundaries).
        const sink = streams === 1 ? new FileSink(fh.fd) : undefined
        const batches = sink ? undefined : new BatchWriter(fh, BATCH, streams)
        const res = await client.download(r.ref, sink ?? ((chunk, at) => batches!.write(chunk, at)), { signal, streams, onProgress: (n) => bar.update(n) })
        if (sink) sink.flush()
        else await batches!.end()
        bar.stop()
        const mtime = mtimeOf(r.item)
        if (mtime) await fh.utimes(mtime, mtime)
        // The mode a newly created file gets (0666 less the umask), now that it is complete.
        await fh.chmod(0o666 & ~process.umask())
        closed = true
        await fh.close()
        await rename(partial, local)
        process.stderr.write(`odfs: downloaded ${res.bytes} bytes to ${local}; ${res.verified ? 'quickXorHash verified' : 'hash not verified (server reports none)'}\n`)
      } catch (e) {
        bar.stop()
        if (!closed) await fh.close().catch(() => {})
        await rm(partial, { force: true })
        throw e
      }
    })
  },
}
