/**
 * Private files (token caches, policy documents, locks) in directories that may
 * belong to someone else than the process: root writing for `--user NAME` works
 * inside a home the user controls, and the user can swap any directory or file
 * there for a symlink at any moment.
 *
 * So nothing is done by path twice. A directory is opened once, component by
 * component from `/`, each component opened without following symlinks and
 * checked on its descriptor (owned by root or the user, not writable by others
 * unless sticky); everything afterwards goes through that descriptor
 * (`/proc/self/fd/N/name`, Linux's openat). A file is created exclusively under a
 * random name with O_NOFOLLOW, owner and mode are set on its descriptor, it is
 * synced and renamed into place within the pinned directory. A swap after the
 * check changes nothing: the descriptor still names the directory that was
 * checked.
 *
 * A symlink on the way is followed only when root owns it and its directory is
 * trusted (e.g. /home -> /export/home); its target is walked by the same rules.
 */
import { constants as C } from 'node:fs'
import { lstat, mkdir, open, readlink, rename, rm, unlink, type FileHandle } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { isAbsolute, join, resolve, sep } from 'node:path'
import { OdfsError } from './errors.js'

export interface PrivateOwner {
  uid?: number
  gid?: number
}

export interface EnsureDirOptions extends PrivateOwner {
  /** Mode of directories created (default 0700). */
  mode?: number
}

export interface ReadPrivateOptions {
  /** The owner the file must have (default: the effective uid). */
  uid?: number
  /** The owner's group (a directory writable by it is accepted). */
  gid?: number
  /** What the file is, for messages (default "file"). */
  what?: string
}

/** A directory, a file or a link that is not safe to use; the message says which and why. */
export class UnsafePathError extends OdfsError {
  constructor(message: string) {
    super('UNSAFE_PATH', message)
  }
}

const MAX_LINKS = 40

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0')
}

function euid(): number {
  return process.geteuid?.() ?? 0
}

function fdPath(dir: FileHandle, name: string): string {
  return `/proc/self/fd/${dir.fd}/${name}`
}

async function openDirNoFollow(path: string): Promise<FileHandle> {
  return open(path, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW)
}

interface WalkState {
  /** The owner every component may have besides root. */
  uid: number
  gid?: number
  links: number
  create?: { mode: number; uid?: number; gid?: number }
}

/** Refuse a directory others could change under us. `final` is the directory that will hold private files. */
async function checkDir(fh: FileHandle, path: string, st: WalkState, final: boolean): Promise<void> {
  const s = await fh.stat()
  if (!s.isDirectory()) throw new UnsafePathError(`refusing ${path}: not a directory`)
  if (s.uid !== 0 && s.uid !== st.uid) {
    throw new UnsafePathError(`refusing ${path}: it is owned by uid ${s.uid}, not by uid ${st.uid} or root`)
  }
  const sticky = (s.mode & 0o1000) !== 0
  if (final && (s.mode & 0o022) !== 0) {
    throw new UnsafePathError(`refusing ${path}: it is writable by group or others (mode ${octal(s.mode)}); fix it with: chmod go-w ${path}`)
  }
  if (!sticky && ((s.mode & 0o002) !== 0 || ((s.mode & 0o020) !== 0 && s.gid !== st.gid))) {
    throw new UnsafePathError(`refusing ${path}: it is writable by others (mode ${octal(s.mode)}) without the sticky bit`)
  }
}

/**
 * Open `path` as a directory, checking every component on its descriptor.
 * Missing components are created (mode, owner) when `st.create` is set.
 */
async function walk(path: string, st: WalkState, final = true): Promise<FileHandle> {
  if (!isAbsolute(path)) path = resolve(path)
  const parts = path.split(sep).filter(Boolean)
  let cur = await openDirNoFollow('/')
  let curPath = '/'
  try {
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!
      const last = i === parts.length - 1
      await checkDir(cur, curPath, st, false)
      const nextPath = join(curPath, name)
      let next: FileHandle
      try {
        next = await openDirNoFollow(fdPath(cur, name))
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code
        if (code === 'ENOENT' && st.create) {
          try {
            await mkdir(fdPath(cur, name), { mode: st.create.mode })
          } catch (me) {
            if ((me as NodeJS.ErrnoException).code !== 'EEXIST') throw me
          }
          next = await openDirNoFollow(fdPath(cur, name))
          const s = await next.stat()
          // Only a directory we just made gets the owner and mode (a racing creator's stays as it is and is checked).
          if (st.create.uid !== undefined && s.uid === euid() && s.uid !== st.create.uid) {
            await next.chown(st.create.uid, st.create.gid ?? s.gid)
          }
          if (s.uid === euid()) await next.chmod(st.create.mode)
        } else if (code === 'ELOOP' || code === 'ENOTDIR') {
          next = await followTrustedLink(cur, curPath, name, nextPath, st)
        } else throw e
      }
      await cur.close()
      cur = next
      curPath = nextPath
      if (last) await checkDir(cur, curPath, st, final)
    }
    if (parts.length === 0) await checkDir(cur, curPath, st, final)
    return cur
  } catch (e) {
    await cur.close()
    throw e
  }
}

/** A symlink at `name` inside `parent`: followed only when root owns it (the parent was checked already). */
async function followTrustedLink(parent: FileHandle, parentPath: string, name: string, linkPath: string, st: WalkState): Promise<FileHandle> {
  // lstat through the pinned parent: the parent is root's (checked below), so nobody else can swap the link.
  const s = await lstat(fdPath(parent, name))
  if (!s.isSymbolicLink()) throw new UnsafePathError(`refusing ${linkPath}: not a directory`)
  const ps = await parent.stat()
  if (s.uid !== 0 || ps.uid !== 0 || (ps.mode & 0o022) !== 0) {
    throw new UnsafePathError(`refusing ${linkPath}: it is a symbolic link (only links that root owns in a directory only root can write are followed)`)
  }
  if (++st.links > MAX_LINKS) throw new UnsafePathError(`refusing ${linkPath}: too many levels of symbolic links`)
  const target = await readlink(fdPath(parent, name))
  // The target is walked from / under the same rules, and never created.
  return walk(resolve(parentPath, target), { ...st, create: undefined }, false)
}

/**
 * Make sure `path` is a directory fit for private files: every component safe
 * (see the module comment), the last one owned by `uid` (default: us) or root and
 * not writable by group or others. Missing directories are created with `mode`
 * (default 0700) and owned by uid/gid.
 */
export async function ensurePrivateDir(path: string, opts: EnsureDirOptions = {}): Promise<void> {
  const fh = await walk(path, { uid: opts.uid ?? euid(), gid: opts.gid ?? process.getegid?.(), links: 0, create: { mode: opts.mode ?? 0o700, uid: opts.uid, gid: opts.gid } })
  await fh.close()
}

/**
 * Write `data` to `dir/name` atomically: created exclusively under a random name
 * (O_NOFOLLOW), mode 0600, owned by uid/gid when given, synced, renamed into place
 * inside the checked directory, which must exist (see ensurePrivateDir).
 */
export async function writePrivateFile(dir: string, name: string, data: string | Uint8Array, opts: PrivateOwner = {}): Promise<void> {
  if (name.includes('/') || name === '.' || name === '..') throw new UnsafePathError(`invalid file name ${JSON.stringify(name)}`)
  const d = await walk(dir, { uid: opts.uid ?? euid(), gid: opts.gid ?? process.getegid?.(), links: 0 })
  try {
    const tmp = `.${name}.${randomBytes(6).toString('hex')}.tmp`
    const fh = await open(fdPath(d, tmp), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600)
    try {
      await fh.writeFile(data)
      if (opts.uid !== undefined) await fh.chown(opts.uid, opts.gid ?? (await fh.stat()).gid)
      await fh.chmod(0o600)
      await fh.sync()
    } catch (e) {
      await fh.close()
      await rm(fdPath(d, tmp), { force: true })
      throw e
    }
    await fh.close()
    await rename(fdPath(d, tmp), fdPath(d, name))
    await d.sync()
  } finally {
    await d.close()
  }
}

/**
 * Read `dir/name`, or null when it does not exist. Refused (UnsafePathError) when
 * it is a symlink or not a regular file, owned by anyone but `uid` (default: us),
 * or readable by group or others.
 */
export async function readPrivateFile(dir: string, name: string, opts: ReadPrivateOptions = {}): Promise<string | null> {
  const uid = opts.uid ?? euid()
  const what = opts.what ?? 'file'
  const path = join(dir, name)
  let d: FileHandle
  try {
    d = await walk(dir, { uid, gid: opts.gid ?? process.getegid?.(), links: 0 })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw e
  }
  try {
    let fh: FileHandle
    try {
      fh = await open(fdPath(d, name), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return null
      if (code === 'ELOOP') throw new UnsafePathError(`refusing ${what} ${path}: it is a symbolic link`)
      throw e
    }
    try {
      const s = await fh.stat()
      if (!s.isFile()) throw new UnsafePathError(`refusing ${what} ${path}: not a regular file`)
      if (s.uid !== uid) throw new UnsafePathError(`refusing ${what} ${path}: it is owned by uid ${s.uid}, not by uid ${uid}`)
      if ((s.mode & 0o077) !== 0) {
        throw new UnsafePathError(`refusing ${what} ${path}: it is readable by group or others (mode ${octal(s.mode)}); fix it with: chmod 600 ${path}`)
      }
      return await fh.readFile('utf8')
    } finally {
      await fh.close()
    }
  } finally {
    await d.close()
  }
}

/** Remove `dir/name` (never following a symlink on the way); resolves true if it existed. */
export async function removePrivateFile(dir: string, name: string, opts: PrivateOwner = {}): Promise<boolean> {
  let d: FileHandle
  try {
    d = await walk(dir, { uid: opts.uid ?? euid(), gid: opts.gid ?? process.getegid?.(), links: 0 })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw e
  }
  try {
    await unlink(fdPath(d, name))
    return true
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw e
  } finally {
    await d.close()
  }
}

/**
 * Create `dir/name` exclusively (O_EXCL|O_NOFOLLOW, 0600, owned by uid/gid) with
 * `data`; resolves false when it exists already. For lock files: unlike
 * writePrivateFile the file appears under its own name at once.
 */
export async function createPrivateFileExclusive(dir: string, name: string, data: string, opts: PrivateOwner = {}): Promise<boolean> {
  const d = await walk(dir, { uid: opts.uid ?? euid(), gid: opts.gid ?? process.getegid?.(), links: 0 })
  try {
    let fh: FileHandle
    try {
      fh = await open(fdPath(d, name), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false
      throw e
    }
    try {
      if (opts.uid !== undefined) await fh.chown(opts.uid, opts.gid ?? (await fh.stat()).gid)
      await fh.writeFile(data)
    } finally {
      await fh.close()
    }
    return true
  } finally {
    await d.close()
  }
}
