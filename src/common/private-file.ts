/**
 * Private files on a shared machine (tokens, pre-authenticated upload URLs): kept in
 * a directory the user owns with mode 0700 (checked with lstat, so a symlink planted
 * in its place is refused), written through an exclusively created temporary file
 * with a random name (O_EXCL|O_NOFOLLOW, 0600, fsync, rename), and read back only
 * when they are regular files the user owns that nobody else can read or write.
 */
import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { lstat, mkdir, open, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { OdfsError } from './errors.js'

function mode(m: number): string {
  return (m & 0o777).toString(8).padStart(4, '0')
}

function uid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined
}

/**
 * Refuse `dir` unless it is a real directory (not a symlink) owned by this user with
 * no access for group or others. Creates it (mode 0700) when missing and `create` is set.
 * Resolves false when it is missing and not created.
 */
export async function checkPrivateDir(dir: string, opts: { create?: boolean } = {}): Promise<boolean> {
  if (opts.create) await mkdir(dir, { recursive: true, mode: 0o700 })
  let st
  try {
    st = await lstat(dir)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !opts.create) return false
    throw e
  }
  if (!st.isDirectory()) {
    throw new OdfsError('PRIVATE_DIR_UNSAFE', `refusing ${dir}: it is not a directory (a symbolic link or a file is in its place); remove it and run again`)
  }
  const me = uid()
  if (me !== undefined && st.uid !== me) {
    throw new OdfsError('PRIVATE_DIR_UNSAFE', `refusing ${dir}: it is owned by uid ${st.uid}, not by you (uid ${me})`)
  }
  if ((st.mode & 0o077) !== 0) {
    throw new OdfsError('PRIVATE_DIR_UNSAFE', `refusing ${dir}: others have access to it (mode ${mode(st.mode)}); fix it with: chmod 700 ${dir}`)
  }
  return true
}

/** Write `data` to `file` privately (see the module comment); its directory is created or checked first. */
export async function writePrivateFile(file: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(file)
  await checkPrivateDir(dir, { create: true })
  const tmp = join(dir, `.${basename(file)}.${randomBytes(8).toString('hex')}.tmp`)
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } catch (e) {
    await fh.close()
    await unlink(tmp).catch(() => {})
    throw e
  }
  await fh.close()
  await rename(tmp, file)
}

/**
 * The text of a private file, or undefined when it does not exist. Throws an
 * OdfsError PRIVATE_FILE_UNSAFE when it is a symlink, not a regular file, owned by
 * someone else, or open to group or others.
 */
export async function readPrivateFile(file: string): Promise<string | undefined> {
  let fh
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    if (code === 'ELOOP') throw new OdfsError('PRIVATE_FILE_UNSAFE', `refusing ${file}: it is a symbolic link`)
    throw e
  }
  try {
    const st = await fh.stat()
    const me = uid()
    if (!st.isFile()) throw new OdfsError('PRIVATE_FILE_UNSAFE', `refusing ${file}: not a regular file`)
    if (me !== undefined && st.uid !== me) throw new OdfsError('PRIVATE_FILE_UNSAFE', `refusing ${file}: owned by uid ${st.uid}, not by you (uid ${me})`)
    if ((st.mode & 0o077) !== 0) throw new OdfsError('PRIVATE_FILE_UNSAFE', `refusing ${file}: others have access to it (mode ${mode(st.mode)})`)
    return await fh.readFile('utf8')
  } finally {
    await fh.close()
  }
}
