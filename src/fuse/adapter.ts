/**
 * The fuse-native adapter: a thin layer that turns fuse-native's callbacks into
 * Vfs calls and errors into errnos (chosen by errnoFor, never here). Every
 * callback is async and never blocks the event loop; an EIO gets a log line.
 *
 * Mount options fuse-native has no switch for are added by overriding
 * `_fuseOptions()`:
 *   big_writes                 128 KiB writes instead of 4 KiB (libfuse 2's ceiling)
 *   use_ino                    the kernel shows the Vfs's inode numbers
 *   attr/entry/negative_timeout how long the kernel trusts an answer (the Vfs's own
 *                              cache does the rest)
 *   default_permissions        with allow_other: the kernel checks modes for other users
 *   ro                         --read-only
 */
import Fuse from 'fuse-native'
import { silentLogger, type Logger } from '../common/index.js'
import { errnoFor, errnoValue, type ErrnoName, type Vfs } from '../vfs/index.js'

export interface FuseMountOptions {
  allowOther?: boolean
  readOnly?: boolean
  /** Seconds the kernel keeps attributes / names / "no such name" (default 1 / 1 / 1). */
  attrTimeout?: number
  entryTimeout?: number
  negativeTimeout?: number
  /** Per-operation timeout (ms) for metadata calls; data calls never time out (uploads may be slow). */
  metadataTimeoutMs?: number
  log?: Logger
  fsname?: string
}

/** fuse-native with the options it has no switch for. */
class TunedFuse extends Fuse {
  extra = ''
  protected override _fuseOptions(): string {
    const base = super._fuseOptions()
    if (!this.extra) return base
    return base ? `${base},${this.extra}` : `-o${this.extra}`
  }
}

type Cb = (code: number, ...rest: any[]) => void

/**
 * fuse-native hands utimens times as ms (tv_sec * 1000 + tv_nsec / 1e6). Its addon,
 * as scripts/fuse-native-fix.sh builds it, sends UTIME_NOW as 1073 ms and
 * UTIME_OMIT as 1072 ms (a real time of 1970-01-01T00:00:01.072Z cannot be set).
 */
function timeOf(ms: number): number | 'now' | undefined {
  if (ms === 1073) return 'now'
  if (ms === 1072) return undefined
  return ms
}

export function fuseOps(vfs: Vfs, log: Logger = silentLogger): Record<string, (...a: any[]) => void> {
  /**
   * Run one operation and answer the kernel exactly once, whatever happens: a
   * synchronous throw, a rejection, or a throw while answering. An exception that
   * escaped here would reach fuse-native's native callback and end the daemon; a
   * callback never called would leave the caller hanging until the FUSE timeout.
   */
  const run = <T>(op: string, path: string, cb: Cb, f: () => Promise<T>, ok: (v: T) => unknown[]) => {
    let answered = false
    const reply = (...a: [number, ...unknown[]]) => {
      if (answered) return
      answered = true
      try {
        cb(...a)
      } catch (e) {
        log.error({ op, path, err: String(e) }, 'answering the kernel failed')
      }
    }
    const fail = (err: unknown) => {
      let name: ErrnoName = 'EIO'
      try {
        name = errnoFor(err)
        if (name === 'EIO') log.error({ op, path, err: vfs.describe(err) }, 'I/O error')
        else log.debug({ op, path, errno: name, err: vfs.describe(err) }, 'operation failed')
      } catch {
        log.error({ op, path }, 'I/O error (the error could not be described)')
      }
      reply(-errnoValue(name))
    }
    let p: Promise<T>
    try {
      p = f()
    } catch (e) {
      fail(e)
      return
    }
    Promise.resolve(p).then((v) => {
      let args: unknown[]
      try {
        args = ok(v)
      } catch (e) {
        fail(e)
        return
      }
      reply(...(args as [number, ...unknown[]]))
    }, fail)
  }
  const done = (op: string, path: string, cb: Cb, f: () => Promise<unknown>) => run(op, path, cb, f, () => [0])
  return {
    getattr: (path: string, cb: Cb) => run('getattr', path, cb, () => vfs.getattr(path), (a) => [0, a]),
    fgetattr: (path: string, _fd: number, cb: Cb) => run('getattr', path, cb, () => vfs.getattr(path), (a) => [0, a]),
    readdir: (path: string, cb: Cb) => run('readdir', path, cb, () => vfs.readdir(path), (r) => [0, r.names, r.attrs]),
    statfs: (path: string, cb: Cb) => run('statfs', path, cb, () => vfs.statfs(), (s) => [0, s]),
    open: (path: string, flags: number, cb: Cb) => run('open', path, cb, () => vfs.open(path, flags), (fd) => [0, fd]),
    create: (path: string, mode: number, cb: Cb) => run('create', path, cb, () => vfs.create(path, mode), (fd) => [0, fd]),
    read: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) =>
      run('read', path, cb, () => vfs.read(fd, buf, len, pos), (n) => [n]),
    write: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) =>
      run('write', path, cb, () => vfs.write(fd, buf, len, pos), (n) => [n]),
    flush: (path: string, fd: number, cb: Cb) => done('flush', path, cb, () => vfs.flush(fd)),
    fsync: (path: string, _datasync: number, fd: number, cb: Cb) => done('fsync', path, cb, () => vfs.fsync(fd)),
    release: (path: string, fd: number, cb: Cb) => done('release', path, cb, () => vfs.release(fd)),
    truncate: (path: string, size: number, cb: Cb) => done('truncate', path, cb, () => vfs.truncate(path, size)),
    ftruncate: (path: string, fd: number, size: number, cb: Cb) => done('ftruncate', path, cb, () => vfs.ftruncate(fd, size)),
    utimens: (path: string, atime: number, mtime: number, cb: Cb) => done('utimens', path, cb, () => vfs.utimens(path, timeOf(atime), timeOf(mtime))),
    unlink: (path: string, cb: Cb) => done('unlink', path, cb, () => vfs.unlink(path)),
    mkdir: (path: string, mode: number, cb: Cb) => done('mkdir', path, cb, () => vfs.mkdir(path, mode)),
    rmdir: (path: string, cb: Cb) => done('rmdir', path, cb, () => vfs.rmdir(path)),
    rename: (src: string, dest: string, cb: Cb) => done('rename', src, cb, () => vfs.rename(src, dest)),
    chmod: (path: string, mode: number, cb: Cb) => done('chmod', path, cb, () => vfs.chmod(path, mode)),
    chown: (path: string, uid: number, gid: number, cb: Cb) => done('chown', path, cb, () => vfs.chown(path, uid, gid)),
    symlink: (target: string, path: string, cb: Cb) => done('symlink', path, cb, () => vfs.symlink(target, path)),
    link: (from: string, to: string, cb: Cb) => done('link', to, cb, () => vfs.link(from, to)),
    mknod: (path: string, mode: number, _dev: number, cb: Cb) => done('mknod', path, cb, () => vfs.mknod(path, mode)),
    getxattr: (path: string, name: string, _pos: number, cb: Cb) => run('getxattr', path, cb, () => vfs.getxattr(path, name), (v) => [0, v]),
    listxattr: (path: string, cb: Cb) => run('listxattr', path, cb, () => vfs.listxattr(path), (l) => [0, l]),
    setxattr: (path: string, name: string, _v: Buffer, _pos: number, _flags: number, cb: Cb) => done('setxattr', path, cb, () => vfs.setxattr(path, name)),
    removexattr: (path: string, name: string, cb: Cb) => done('removexattr', path, cb, () => vfs.removexattr(path, name)),
  }
}

export interface MountedFs {
  readonly mountpoint: string
  unmount(): Promise<void>
}

/** Mount `vfs` at `mountpoint`; resolves once the kernel mount exists. */
export async function mountVfs(vfs: Vfs, mountpoint: string, o: FuseMountOptions = {}): Promise<MountedFs> {
  const meta = o.metadataTimeoutMs ?? 120_000
  // Data and close calls may wait for a download or an fsync'd upload: no timeout.
  const timeout: Record<string, number | false> = {
    default: meta, read: false, write: false, open: false, create: false, release: false, flush: false, fsync: false,
    truncate: false, ftruncate: false, rename: false, unlink: false,
  }
  const fuse = new TunedFuse(mountpoint, fuseOps(vfs, o.log), {
    autoUnmount: true, force: true, allowOther: !!o.allowOther, defaultPermissions: !!o.allowOther,
    fsname: o.fsname ?? 'odfs', subtype: 'odfs', timeout,
  })
  const extra = [
    'big_writes', 'use_ino',
    `attr_timeout=${o.attrTimeout ?? 1}`, `entry_timeout=${o.entryTimeout ?? 1}`, `negative_timeout=${o.negativeTimeout ?? 1}`,
  ]
  if (o.readOnly) extra.push('ro')
  fuse.extra = extra.join(',')
  await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())))
  let unmounted: Promise<void> | undefined
  return {
    mountpoint: fuse.mnt,
    unmount() {
      unmounted ??= new Promise<void>((resolve, reject) => fuse.unmount((err) => (err ? reject(err) : resolve())))
      return unmounted
    },
  }
}

/** Unmount whatever is mounted at `mountpoint` (lazy: `fusermount -uz`). */
export function unmountPath(mountpoint: string): Promise<void> {
  return new Promise<void>((resolve, reject) => Fuse.unmount(mountpoint, (err) => (err ? reject(err) : resolve())))
}
