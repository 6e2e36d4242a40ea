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
 */
import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { copyFile, lstat, mkdir, open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { OdfsError } from '../common/index.js'

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
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** Create (or check) a private directory: ours, a directory, not a symlink, 0700. */
export async function privateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const st = await lstat(dir)
  if (!st.isDirectory()) throw new OdfsError('EINVAL', `${dir} is not a directory`)
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw new OdfsError('EACCES', `${dir} belongs to another user; choose another --cache-dir`)
  }
  if ((st.mode & 0o077) !== 0) {
    const { chmod } = await import('node:fs/promises')
    await chmod(dir, 0o700)
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export class Spool {
  readonly sessionsDir: string
  #locked = false

  constructor(readonly dir: string) {
    this.sessionsDir = join(dir, 'sessions')
  }

  /** Make the directories and take the lock; refuses when another live daemon holds it. */
  async open(): Promise<void> {
    await privateDir(this.dir)
    await privateDir(this.sessionsDir)
    const lock = join(this.dir, 'lock')
    for (let i = 0; i < 2; i++) {
      try {
        const fh = await open(lock, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | constants.O_NOFOLLOW, 0o600)
        await fh.writeFile(`${process.pid}\n`)
        await fh.close()
        this.#locked = true
        return
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      }
      const pid = Number((await readFile(lock, 'utf8').catch(() => '')).trim())
      if (pid && pid !== process.pid && alive(pid)) {
        throw new OdfsError('EBUSY', `another odfs mount (pid ${pid}) uses the write-back spool ${this.dir}; unmount it first or give this mount another --cache-dir`)
      }
      await rm(lock, { force: true }) // left by a daemon that died
    }
    throw new OdfsError('EBUSY', `cannot lock the write-back spool ${this.dir}`)
  }

  async close(): Promise<void> {
    if (this.#locked) await rm(join(this.dir, 'lock'), { force: true })
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
    return open(this.dataPath(id), constants.O_CREAT | constants.O_EXCL | constants.O_RDWR | constants.O_NOFOLLOW, 0o600)
  }

  /** A private copy of a data file under a new id (the copy is created exclusively). */
  async clone(fromId: string, toId: string): Promise<void> {
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
  }

  /** Drop the record only (the bytes are on OneDrive but the copy is still open). */
  async removeRecord(id: string): Promise<void> {
    await this.#writes.get(id)?.catch(() => undefined)
    await rm(join(this.dir, `${id}.json`), { force: true })
    await fsyncDir(this.dir)
  }

  /** Forget a copy: record first (it must never point at missing data), then data. */
  async remove(id: string): Promise<void> {
    await this.#writes.get(id)?.catch(() => undefined)
    await rm(join(this.dir, `${id}.json`), { force: true })
    await rm(this.dataPath(id), { force: true })
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
        }
      } catch {
        // a torn tmp never gets this name: rename is atomic; skip anything unreadable
      }
    }
    const orphans = names.filter((n) => n.endsWith('.data') && !ids.has(n.slice(0, -5))).map((n) => n.slice(0, -5))
    return { records, orphans }
  }
}
