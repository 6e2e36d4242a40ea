/**
 * The write-back spool: local copies of files being written, and their journal.
 *
 * Layout under the spool directory (0700, created by us; files 0600, created
 * exclusively):
 *   lock            pid of the daemon using this spool (one daemon per spool)
 *   <id>.data       the file's bytes
 *   <id>.json       the journal record, present from the last close until OneDrive
 *                   holds the bytes; written atomically (write, fsync, rename,
 *                   fsync of the directory) before close returns
 *   sessions/       upload sessions in progress (uploadUrl is a credential)
 *
 * On the next mount every record is uploaded before the mount answers.
 *
 * Space: a copy's bytes are accepted only while they fit (claim()): under
 * `maxBytes` (--cache-max-size) and on the disk with a reserve left over for the
 * bookkeeping that gets them to OneDrive (a journal page per copy not journaled
 * yet, record rewrites, upload-session files). So a full spool, or a full disk,
 * gives ENOSPC to the writer only; every copy closed before still journals and
 * uploads, and the space comes back as copies reach OneDrive (a copy leaves the
 * spool only then).
 */
import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { copyFile, open, readdir, readFile, rename, rm, statfs, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import {
  createPrivateFileExclusive, ensurePrivateDir, OdfsError, processAlive, readPrivateFile, removePrivateFile, silentLogger, type Logger,
} from '../common/index.js'
import { VfsError } from './errors.js'

export type LocalState = 'open' | 'waiting' | 'uploading' | 'failed'

/** What survives a crash: enough to upload the copy to the right place. */
export interface JournalRecord {
  v: 1
  id: string
  driveId: string
  parentId: string
  name: string
  /** The remote item this copy replaces, when it was based on one. */
  itemId?: string
  /** eTag of the remote item the local copy started from. */
  baseETag?: string
  /** cTag of that item: a different one at upload time is a conflict. */
  baseCTag?: string
  size: number
  mtimeMs: number
  state: LocalState
  /** The upload session is kept in sessions/ under this key (resumed after a crash). */
  sessionKey: string
  error?: string
  journaledAt: number
  /**
   * The record of an earlier version of the same file (its last close) that this one
   * replaces; recovery drops it if a crash left both.
   */
  supersedes?: string
  /**
   * A new file created while OneDrive could not be reached, on a name the mount could
   * only check against its cache: its upload must not replace a file someone else
   * put there meanwhile (it goes up beside it, as a conflict copy).
   */
  unverified?: true
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

export interface SpoolOptions {
  /** Most bytes the copies and their records may take (--cache-max-size); 0 or undefined: the disk's free space. */
  maxBytes?: number
  log?: Logger
  /** Free bytes for this process on the spool's disk (injectable for tests; default statfs). */
  freeBytes?: (dir: string) => Promise<{ free: number; blockSize: number }>
}

/** Disk space kept for bookkeeping of copies already accepted: record rewrites (tmp, then rename) and upload-session files. */
export const BOOKKEEPING_RESERVE = 256 * 1024

/** Below this much free space (estimated), the disk is asked again before every claim. */
const RECHECK_BELOW = 64 * 1024 * 1024
const RECHECK_MS = 1_000

async function diskFree(dir: string): Promise<{ free: number; blockSize: number }> {
  const s = await statfs(dir)
  return { free: s.bavail * s.bsize, blockSize: s.bsize }
}

export class Spool {
  readonly sessionsDir: string
  #locked = false
  readonly #maxBytes: number
  readonly #log: Logger
  readonly #freeBytes: (dir: string) => Promise<{ free: number; blockSize: number }>
  /** Accounted size of every copy (its data rounded up to blocks). */
  readonly #sizes = new Map<string, number>()
  /** Copies whose record is on disk. */
  readonly #journaled = new Set<string>()
  /** Copies refused for space already logged (one line per copy). */
  readonly #refused = new Set<string>()
  #used = 0
  #block = 4096
  /** Free bytes on the disk at the last check, less what was claimed since. */
  #disk: { at: number; free: number } | undefined

  constructor(readonly dir: string, o: SpoolOptions = {}) {
    this.sessionsDir = join(dir, 'sessions')
    this.#maxBytes = o.maxBytes ?? 0
    this.#log = o.log ?? silentLogger
    this.#freeBytes = o.freeBytes ?? diskFree
  }

  #round(n: number): number {
    return Math.ceil(n / this.#block) * this.#block
  }

  /** Bytes the copies and their records take, as accounted against --cache-max-size. */
  get usedBytes(): number {
    return this.#used + this.#sizes.size * this.#block
  }

  #account(id: string, size: number): void {
    this.#used += size - (this.#sizes.get(id) ?? 0)
    this.#sizes.set(id, size)
  }

  #forget(id: string): void {
    this.#used -= this.#sizes.get(id) ?? 0
    this.#sizes.delete(id)
    this.#journaled.delete(id)
    this.#refused.delete(id)
  }

  async #free(): Promise<number> {
    const now = Date.now()
    if (!this.#disk || this.#disk.free < RECHECK_BELOW || now - this.#disk.at > RECHECK_MS) {
      const d = await this.#freeBytes(this.dir)
      this.#block = Math.max(4096, d.blockSize)
      this.#disk = { at: now, free: d.free }
    }
    return this.#disk.free
  }

  /**
   * Copy `id` is about to hold `size` bytes (a write past its end, a truncate, the
   * download of the file it starts from). Refused with ENOSPC (and a log line) when
   * that passes --cache-max-size or would eat into the disk's bookkeeping reserve.
   */
  async claim(id: string, size: number): Promise<void> {
    const before = this.#sizes.get(id) ?? 0
    const after = this.#round(size)
    if (after <= before) {
      this.#account(id, after)
      return
    }
    const grow = after - before
    let why: string | undefined
    if (this.#maxBytes > 0 && this.usedBytes + grow > this.#maxBytes) {
      why = `the write-back spool holds ${this.usedBytes} bytes of its ${this.#maxBytes} (--cache-max-size)`
    } else {
      const free = await this.#free()
      // Every copy not journaled yet will need a page for its record when it is closed.
      const unjournaled = this.#sizes.size - this.#journaled.size + (this.#sizes.has(id) ? 0 : 1)
      const reserve = BOOKKEEPING_RESERVE + unjournaled * this.#block
      if (free - grow < reserve) why = `the disk of the write-back spool has ${Math.max(0, free)} bytes free, ${reserve} of them kept for uploading the files already written`
    }
    if (why) {
      if (!this.#refused.has(id)) {
        this.#refused.add(id)
        this.#log.warn({ spool: this.dir, id, size }, `write refused: ${why}; the files already written stay and are uploaded`)
      }
      throw new VfsError('noSpace', `no space for ${size} bytes: ${why}`, { level: 'warn' })
    }
    if (this.#disk) this.#disk.free -= grow
    this.#account(id, after)
  }

  /** Make the directories and take the lock; refuses when another live daemon holds it. */
  async open(): Promise<void> {
    await ensurePrivateDir(this.dir)
    await ensurePrivateDir(this.sessionsDir)
    for (let i = 0; i < 2; i++) {
      if (await createPrivateFileExclusive(this.dir, 'lock', `${process.pid}\n`)) {
        this.#locked = true
        return
      }
      const pid = Number((await readPrivateFile(this.dir, 'lock', { what: 'spool lock' }))?.trim())
      if (pid && pid !== process.pid && processAlive(pid)) {
        throw new OdfsError('EBUSY', `another odfs mount (pid ${pid}) uses the write-back spool ${this.dir}; unmount it first or give this mount another --cache-dir`)
      }
      await removePrivateFile(this.dir, 'lock') // left by a daemon that died
    }
    throw new OdfsError('EBUSY', `cannot lock the write-back spool ${this.dir}`)
  }

  async close(): Promise<void> {
    if (this.#locked) await removePrivateFile(this.dir, 'lock')
    this.#locked = false
  }

  newId(): string {
    return randomBytes(12).toString('hex')
  }

  dataPath(id: string): string {
    return join(this.dir, `${id}.data`)
  }

  /** A new, empty, private data file (never an existing one). */
  async create(id: string): Promise<FileHandle> {
    const fh = await open(this.dataPath(id), constants.O_CREAT | constants.O_EXCL | constants.O_RDWR | constants.O_NOFOLLOW, 0o600)
    this.#account(id, 0)
    return fh
  }

  /** A private copy of a data file under a new id (the copy is created exclusively). */
  async clone(fromId: string, toId: string, size: number): Promise<void> {
    await this.claim(toId, size)
    await copyFile(this.dataPath(fromId), this.dataPath(toId), constants.COPYFILE_EXCL)
  }

  /** Reopen a data file of ours (recovery). */
  async reopen(id: string): Promise<FileHandle> {
    return open(this.dataPath(id), constants.O_RDWR | constants.O_NOFOLLOW)
  }

  /** Record writes of one copy run one after another (the last one written wins). */
  readonly #writes = new Map<string, Promise<void>>()

  /** Write a record atomically: tmp file, fsync, rename, fsync of the directory. */
  writeRecord(r: JournalRecord): Promise<void> {
    const prev = this.#writes.get(r.id) ?? Promise.resolve()
    const next = prev.catch(() => undefined).then(() => this.#writeRecord(r))
    this.#writes.set(r.id, next)
    void next.finally(() => {
      if (this.#writes.get(r.id) === next) this.#writes.delete(r.id)
    }).catch(() => undefined)
    return next
  }

  async #writeRecord(r: JournalRecord): Promise<void> {
    const final = join(this.dir, `${r.id}.json`)
    const tmp = join(this.dir, `${r.id}.json.tmp`)
    await rm(tmp, { force: true })
    const fh = await open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600)
    try {
      await fh.writeFile(JSON.stringify(r) + '\n')
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, final)
    await fsyncDir(this.dir)
    if (this.#sizes.has(r.id)) this.#journaled.add(r.id)
  }

  /** Drop the record only (the bytes are on OneDrive but the copy is still open). */
  async removeRecord(id: string): Promise<void> {
    await this.#writes.get(id)?.catch(() => undefined)
    await rm(join(this.dir, `${id}.json`), { force: true })
    await fsyncDir(this.dir)
    this.#journaled.delete(id)
  }

  /** Forget a copy: record first (it must never point at missing data), then data. */
  async remove(id: string): Promise<void> {
    await this.#writes.get(id)?.catch(() => undefined)
    await rm(join(this.dir, `${id}.json`), { force: true })
    await rm(this.dataPath(id), { force: true })
    this.#forget(id)
  }

  /** Every journaled record, and data files without a record (copies never closed: dropped). */
  async records(): Promise<{ records: JournalRecord[]; orphans: string[] }> {
    const names = await readdir(this.dir)
    const records: JournalRecord[] = []
    const ids = new Set<string>()
    for (const n of names) {
      if (!n.endsWith('.json')) continue
      try {
        const r = JSON.parse(await readFile(join(this.dir, n), 'utf8')) as JournalRecord
        if (r.v === 1 && r.id && names.includes(`${r.id}.data`)) {
          records.push(r)
          ids.add(r.id)
          this.#account(r.id, this.#round(r.size))
          this.#journaled.add(r.id)
        }
      } catch {
        // a torn tmp never gets this name: rename is atomic; skip anything unreadable
      }
    }
    const orphans = names.filter((n) => n.endsWith('.data') && !ids.has(n.slice(0, -5))).map((n) => n.slice(0, -5))
    return { records, orphans }
  }
}
