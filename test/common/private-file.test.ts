// Private files written by root for another user inside a directory that user
// controls: every symlink the user can plant is refused or harmless, and no file
// outside the user's directory is created, chowned or chmodded.
import t from 'tap'
import { chmod, chown, lchown, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensurePrivateDir, readPrivateFile, removePrivateFile, UnsafePathError, writePrivateFile } from '../../src/common/index.js'
import { FileTokenStore } from '../../src/auth/index.js'

const root = process.getuid?.() === 0
const USER = { uid: 41234, gid: 41234 }

/** A home owned by USER and a root-owned victim directory with one file. */
async function scene(t: any) {
  const base = await mkdtemp(join(tmpdir(), 'odfs-priv-'))
  t.teardown(() => rm(base, { recursive: true, force: true }))
  const home = join(base, 'home')
  await mkdir(home, { mode: 0o700 })
  await chown(home, USER.uid, USER.gid)
  const victim = join(base, 'victim')
  await mkdir(victim, { mode: 0o755 })
  const victimFile = join(victim, 'passwd')
  await writeFile(victimFile, 'root:x:0:0\n', { mode: 0o644 })
  return { base, home, victim, victimFile }
}

/** The user plants a symlink (owned by the user, as one they made would be). */
async function plant(target: string, path: string) {
  await symlink(target, path)
  await lchown(path, USER.uid, USER.gid)
}

async function untouched(t: any, victim: string, victimFile: string) {
  t.same(await readdir(victim), ['passwd'], 'nothing created in the victim directory')
  const s = await stat(victimFile)
  t.equal(s.uid, 0, 'victim still owned by root')
  t.equal(s.mode & 0o777, 0o644, 'victim mode unchanged')
  t.equal(await readFile(victimFile, 'utf8'), 'root:x:0:0\n', 'victim content unchanged')
}

t.test('root writing for a user: a symlinked state directory is refused, the victim untouched', { skip: !root && 'needs root' }, async (t) => {
  const { home, victim, victimFile } = await scene(t)
  await mkdir(join(home, '.local', 'state'), { recursive: true })
  await chown(join(home, '.local'), USER.uid, USER.gid)
  await chown(join(home, '.local', 'state'), USER.uid, USER.gid)
  await plant(victim, join(home, '.local', 'state', 'odfs'))
  const store = new FileTokenStore(join(home, '.local', 'state', 'odfs', 'tokens-x.json'), { name: 'alice', ...USER, home, other: true })
  const err = await store.save('{"tokens":1}').catch((e) => e)
  t.equal(err?.code, 'TOKEN_STORE')
  t.match(err?.message, /refusing .*odfs: it is a symbolic link/)
  await untouched(t, victim, victimFile)
})

t.test('root writing for a user: a symlink higher up is refused, nothing created or chowned through it', { skip: !root && 'needs root' }, async (t) => {
  const { home, victim, victimFile } = await scene(t)
  await plant(victim, join(home, '.local'))
  const store = new FileTokenStore(join(home, '.local', 'state', 'odfs', 'tokens-x.json'), { name: 'alice', ...USER, home, other: true })
  const err = await store.save('{"tokens":1}').catch((e) => e)
  t.equal(err?.code, 'TOKEN_STORE')
  t.match(err?.message, /\.local: it is a symbolic link/)
  await untouched(t, victim, victimFile)
})

t.test('root writing for a user: a symlink at the file name is replaced, never followed', { skip: !root && 'needs root' }, async (t) => {
  const { home, victim, victimFile } = await scene(t)
  await plant(victimFile, join(home, 'tokens.json'))
  await writePrivateFile(home, 'tokens.json', 'secret-cache', USER)
  await untouched(t, victim, victimFile)
  const s = await lstat(join(home, 'tokens.json'))
  t.ok(s.isFile(), 'a regular file now')
  t.equal(s.uid, USER.uid)
  t.equal(s.gid, USER.gid)
  t.equal(s.mode & 0o777, 0o600)
  t.same((await readdir(home)).sort(), ['tokens.json'], 'no temporary file left behind')
  t.equal(await readPrivateFile(home, 'tokens.json', USER), 'secret-cache')
})

t.test('reading refuses a symlink, a foreign owner and loose modes', { skip: !root && 'needs root' }, async (t) => {
  const { home, victimFile } = await scene(t)
  await plant(victimFile, join(home, 'link.json'))
  const e1 = await readPrivateFile(home, 'link.json', { ...USER, what: 'token file' }).catch((e) => e)
  t.ok(e1 instanceof UnsafePathError)
  t.match(e1.message, /refusing token file .*link\.json: it is a symbolic link/)
  await writeFile(join(home, 'root.json'), 'x', { mode: 0o600 })
  t.match((await readPrivateFile(home, 'root.json', USER).catch((e) => e)).message, /owned by uid 0, not by uid 41234/)
  await writePrivateFile(home, 'loose.json', 'x', USER)
  await chmod(join(home, 'loose.json'), 0o640)
  t.match((await readPrivateFile(home, 'loose.json', USER).catch((e) => e)).message, /readable by group or others \(mode 0640\); fix it with: chmod 600/)
  t.equal(await readPrivateFile(home, 'absent.json', USER), null)
  t.equal(await removePrivateFile(home, 'link.json', USER), true, 'the link itself is removed')
  t.equal(await readFile(victimFile, 'utf8'), 'root:x:0:0\n')
})

t.test('directories: created 0700 for the user; group-writable or foreign ones refused', { skip: !root && 'needs root' }, async (t) => {
  const { base, home } = await scene(t)
  const dir = join(home, '.local', 'state', 'odfs')
  await ensurePrivateDir(dir, USER)
  for (const d of [join(home, '.local'), join(home, '.local', 'state'), dir]) {
    const s = await lstat(d)
    t.equal(s.uid, USER.uid, `${d} owned by the user`)
    t.equal(s.mode & 0o777, 0o700)
  }
  await chmod(dir, 0o770)
  t.match((await ensurePrivateDir(dir, USER).catch((e) => e)).message, /odfs: it is writable by group or others \(mode 0770\)/)
  const other = join(base, 'other')
  await mkdir(other, { mode: 0o700 })
  await chown(other, 4242, 4242)
  t.match((await ensurePrivateDir(join(other, 'odfs'), USER).catch((e) => e)).message, /other: it is owned by uid 4242, not by uid 41234 or root/)
})

t.test('a root-owned symlink in a root-owned directory is followed (e.g. /home -> /export/home)', { skip: !root && 'needs root' }, async (t) => {
  const { base } = await scene(t)
  await mkdir(join(base, 'export', 'alice'), { recursive: true })
  await chown(join(base, 'export', 'alice'), USER.uid, USER.gid)
  await chmod(join(base, 'export', 'alice'), 0o700)
  await symlink(join(base, 'export'), join(base, 'homes'))
  await ensurePrivateDir(join(base, 'homes', 'alice', 'state'), USER)
  await writePrivateFile(join(base, 'homes', 'alice', 'state'), 'f', 'data', USER)
  t.equal(await readFile(join(base, 'export', 'alice', 'state', 'f'), 'utf8'), 'data')
})
