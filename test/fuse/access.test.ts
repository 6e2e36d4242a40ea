// Other users and the mount (docs/semantics.md "Modes, owners, times"): with
// --allow-other the kernel lets them in and enforces --file-mode/--dir-mode
// (default_permissions); without it they cannot reach the mount at all. The mount
// runs as root (no user_allow_other needed in /etc/fuse.conf); the other user is
// `nobody`, reached with setpriv.
import t from 'tap'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sh, world, type World } from './support.js'

const NOBODY = 65534
const as = (cmd: string) => sh(`setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups bash -c ${JSON.stringify(cmd)}`)

let w: World
let top: string
t.before(async () => {
  if (process.getuid?.() !== 0) throw new Error('these tests mount as root and act as another user')
  w = await world(t)
  // The world's own dir is private (0700, it holds the token): mount points go where others can reach.
  top = await mkdtemp(join(tmpdir(), 'odfs-access-'))
  await chmod(top, 0o755)
  t.teardown(() => rm(top, { recursive: true, force: true }))
})

t.test('--allow-other: another user reads what --file-mode allows, and nothing more', async (t) => {
  const m = await w.mount(['--allow-other', '--file-mode', '0644', '--dir-mode', '0755'], join(top, 'open'))
  await writeFile(join(m.mnt, 'My files', 'readable.txt'), 'for everyone\n')
  const f = join(m.mnt, 'My files', 'readable.txt')
  const cat = await as(`cat '${f}'`)
  t.equal(cat.code, 0, `another user reads a 0644 file: ${cat.stderr}`)
  t.equal(cat.stdout, 'for everyone\n')
  const ls = await as(`ls '${join(m.mnt, 'My files')}'`)
  t.match(ls.stdout, /readable\.txt/, 'and lists a 0755 folder')
  const write = await as(`echo x >> '${f}'`)
  t.not(write.code, 0)
  t.match(write.stderr, /Permission denied/, 'writing a 0644 file of another owner is EACCES')
  const create = await as(`touch '${join(m.mnt, 'My files', 'new.txt')}'`)
  t.match(create.stderr, /Permission denied/, 'creating in a 0755 folder of another owner is EACCES')
  t.equal((await sh(`test -e '${join(m.mnt, 'My files', 'new.txt')}'`)).code, 1, 'nothing was created')
  await m.stop()
})

t.test('--allow-other with modes that do not allow it: EACCES', async (t) => {
  const m = await w.mount(['--allow-other', '--file-mode', '0600', '--dir-mode', '0711'], join(top, 'closed'))
  await writeFile(join(m.mnt, 'My files', 'private.txt'), 'owner only\n')
  const cat = await as(`cat '${join(m.mnt, 'My files', 'private.txt')}'`)
  t.not(cat.code, 0)
  t.match(cat.stderr, /Permission denied/, 'reading a 0600 file of another owner is EACCES')
  t.equal(cat.stdout, '')
  const ls = await as(`ls '${join(m.mnt, 'My files')}'`)
  t.match(ls.stderr, /Permission denied/, 'listing a 0711 folder of another owner is EACCES')
  t.equal((await sh(`cat '${join(m.mnt, 'My files', 'private.txt')}'`)).stdout, 'owner only\n', 'the owner still reads it')
  await m.stop()
})

t.test('without --allow-other another user cannot reach the mount at all', async (t) => {
  const m = await w.mount(['--file-mode', '0644'], join(top, 'mine'))
  await writeFile(join(m.mnt, 'My files', 'a.txt'), 'a\n')
  const st = await as(`stat '${m.mnt}'`)
  t.not(st.code, 0)
  t.match(st.stderr, /Permission denied/, 'stat of the mount point is EACCES')
  const cat = await as(`cat '${join(m.mnt, 'My files', 'a.txt')}'`)
  t.match(cat.stderr, /Permission denied/, 'so is any path below it, whatever the file mode')
  t.equal((await sh(`cat '${join(m.mnt, 'My files', 'a.txt')}'`)).stdout, 'a\n', 'the mounting user reads it')
  await m.stop()
})
