// What programs see besides data: errnos (EEXIST for O_EXCL, ENOTEMPTY, EXDEV
// between drives, EACCES in virtual folders, EPERM for links, EFBIG past 250 GB,
// EROFS on a read-only mount), the user.onedrive.* extended attributes, and
// chmod/chown accepted without effect.
import t from 'tap'
import { chmod, chown, mkdir, open, rename, rmdir, stat, symlink, link, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { world, sh, type Mounted, type World } from './support.js'

let w: World
let m: Mounted
t.before(async () => {
  w = await world(t)
  m = await w.mount()
})

const py = (code: string) => sh(`python3 -c ${JSON.stringify(code)}`)

t.test('errnos', async (t) => {
  const mine = join(m.mnt, 'My files')
  await writeFile(join(mine, 'a.txt'), 'a')
  await t.rejects(open(join(mine, 'a.txt'), 'wx'), { code: 'EEXIST' }, 'O_EXCL create of an existing name')
  await t.rejects(open(join(mine, 'A.TXT'), 'wx'), { code: 'EEXIST' }, 'in any case')
  await mkdir(join(mine, 'full'))
  await writeFile(join(mine, 'full/x'), 'x')
  await t.rejects(rmdir(join(mine, 'full')), { code: 'ENOTEMPTY' })
  await t.rejects(mkdir(join(mine, 'full')), { code: 'EEXIST' })
  await t.rejects(rename(join(mine, 'a.txt'), join(m.mnt, 'Shared with me/Project X/a.txt')), { code: 'EXDEV' }, 'between drives')
  await t.rejects(writeFile(join(m.mnt, 'Shared with me/new.txt'), 'x'), { code: 'EACCES' }, 'virtual folders hold no files')
  await t.rejects(mkdir(join(m.mnt, 'Shared libraries/x')), { code: 'EACCES' })
  await t.rejects(symlink('a.txt', join(mine, 'link')), { code: 'EPERM' })
  await t.rejects(link(join(mine, 'a.txt'), join(mine, 'hard')), { code: 'EPERM' })
  await t.rejects(truncate(join(mine, 'a.txt'), 251 * 1024 ** 3), { code: 'EFBIG' }, 'past 250 GB')
  await t.rejects(stat(join(mine, 'nope')), { code: 'ENOENT' })
  await t.rejects(open(join(mine, 'a.txt/x'), 'r'), { code: 'ENOTDIR' })
})

t.test('names and paths too long for OneDrive: ENAMETOOLONG', async (t) => {
  // The service's only length rule: a decoded path (with the drive's server-relative
  // prefix on Business) of at most 399 characters (docs/names.md).
  const mine = join(m.mnt, 'My files')
  await t.rejects(writeFile(join(mine, 'n'.repeat(399)), 'x'), { code: 'ENAMETOOLONG' }, 'a file name no path can hold, at create')
  await t.rejects(stat(join(mine, 'n'.repeat(399))), { code: 'ENOENT' }, 'nothing is left behind')
  await t.rejects(mkdir(join(mine, 'd'.repeat(399))), { code: 'ENAMETOOLONG' }, 'a folder name too')
  const deep = join(mine, 'a'.repeat(150), 'b'.repeat(150))
  await mkdir(deep, { recursive: true })
  await t.rejects(mkdir(join(deep, 'c'.repeat(100))), { code: 'ENAMETOOLONG' }, 'a folder past the path limit')
  // A file stays local until its upload: its path is checked at create, not refused only then.
  await t.rejects(writeFile(join(deep, 'c'.repeat(100)), 'x'), { code: 'ENAMETOOLONG' }, 'a new file past the path limit, at create')
  await t.rejects(stat(join(deep, 'c'.repeat(100))), { code: 'ENOENT' }, 'and nothing is left behind')
  await writeFile(join(mine, 'local.txt'), 'not uploaded yet')
  await t.rejects(rename(join(mine, 'local.txt'), join(deep, 'c'.repeat(100))), { code: 'ENAMETOOLONG' }, 'a rename of a file not uploaded yet past the limit')
  t.ok((await stat(join(mine, 'local.txt'))).isFile(), 'it stays where it was')
  await writeFile(join(mine, 'short.txt'), 'x')
  t.equal((await w.odfs(['sync', m.mnt])).code, 0)
  await t.rejects(rename(join(mine, 'short.txt'), join(deep, 'c'.repeat(100))), { code: 'ENAMETOOLONG' }, 'a rename past the path limit')
  t.ok((await stat(join(mine, 'short.txt'))).isFile(), 'the file stays where it was')
  await writeFile(join(deep, 'c'.repeat(20)), 'x')
  t.equal((await w.odfs(['sync', m.mnt])).code, 0, 'within the limit a file reaches OneDrive')
})

t.test('chmod and chown succeed without effect', async (t) => {
  const f = join(m.mnt, 'My files/a.txt')
  const before = await stat(f)
  await chmod(f, 0o600)
  await chown(f, 0, 0)
  t.equal((await stat(f)).mode, before.mode)
  t.equal(before.mode & 0o777, 0o644, 'files are 0666 minus the umask 022')
  t.equal((await stat(join(m.mnt, 'My files'))).mode & 0o777, 0o755)
  t.equal((await stat(m.mnt)).mode & 0o777, 0o555, 'virtual folders are read-only')
})

t.test('extended attributes', async (t) => {
  const f = join(m.mnt, 'My files/x.bin')
  await writeFile(f, 'hello xattr')
  t.equal((await w.odfs(['sync', m.mnt])).code, 0)
  const l = await py(`import os; print(sorted(os.listxattr(${JSON.stringify(f)})))`)
  t.equal(l.stdout.trim(), "['user.onedrive.etag', 'user.onedrive.id', 'user.onedrive.quickxorhash']", l.stderr)
  const hash = await w.odfs(['hash', '--token-store', 'file', 'My files/x.bin'])
  const h = await py(`import os; print(os.getxattr(${JSON.stringify(f)}, 'user.onedrive.quickxorhash').decode())`)
  t.ok(h.stdout.trim().length > 10 && hash.stdout.includes(h.stdout.trim()), `quickxorhash ${h.stdout} in ${hash.stdout}`)
  const gf = await sh(`getfattr --only-values -n user.onedrive.quickxorhash '${f}'`)
  t.equal(gf.stdout, h.stdout.trim(), `getfattr -n user.onedrive.quickxorhash: ${gf.stderr}`)
  const set = await py(`import os; os.setxattr(${JSON.stringify(f)}, 'user.test', b'1')`)
  t.match(set.stderr, /Operation not supported/, 'setxattr: ENOTSUP')
  const cpa = await sh(`cp -a '${f}' '${join(m.mnt, 'My files/x-copy.bin')}'`)
  t.equal(cpa.code, 0, `cp -a accepts it: ${cpa.stderr}`)
})

t.test('df shows the drive quota', async (t) => {
  const drive = await w.odfs(['status', '--token-store', 'file'])
  t.equal(drive.code, 0, drive.stderr)
  const df = await sh(`df -B1 --output=size,avail '${m.mnt}' | tail -1`)
  const [size, avail] = df.stdout.trim().split(/\s+/).map(Number)
  t.ok(size! > 0 && avail! > 0 && avail! <= size!, `df: ${df.stdout}`)
})

t.test('read-only mount: EROFS', async (t) => {
  const ro = await w.mount(['--read-only', '--cache-dir', join(w.dir, 'cache-ro')])
  await t.rejects(writeFile(join(ro.mnt, 'My files/new.txt'), 'x'), { code: 'EROFS' })
  t.ok((await stat(join(ro.mnt, 'My files/a.txt'))).isFile())
  await ro.stop()
})
