// Basic mount behaviour through the CLI: the virtual root, create/read/write,
// close-to-open upload, mkdir/rmdir, rename, unlink, errnos.
import t from 'tap'
import { readdir, readFile, writeFile, mkdir, stat, rm, rename, open } from 'node:fs/promises'
import { join } from 'node:path'
import { world, sh, type World, type Mounted } from './support.js'

let w: World
let m: Mounted
t.before(async () => {
  w = await world(t, { seed: 'demo' })
  m = await w.mount()
})

t.test('the root shows the virtual tree', async (t) => {
  const top = await readdir(m.mnt)
  t.same(top.sort(), ['My files', 'Shared libraries', 'Shared with me'])
  const mine = await readdir(join(m.mnt, 'My files'))
  t.ok(mine.includes('Documents') && mine.includes('README.txt'), mine.join(','))
  t.equal(await readFile(join(m.mnt, 'My files/README.txt'), 'utf8'), 'Welcome to the odfs emulator, user1.\nThis drive holds demo data.\n')
  t.equal(await readFile(join(m.mnt, 'my files/readme.TXT'), 'utf8'), 'Welcome to the odfs emulator, user1.\nThis drive holds demo data.\n', 'case-insensitive lookup')
})

t.test('write a file, read it back, find it on OneDrive after sync', async (t) => {
  const p = join(m.mnt, 'My files/hello.txt')
  await writeFile(p, 'hello world\n')
  t.equal(await readFile(p, 'utf8'), 'hello world\n')
  t.equal((await stat(p)).size, 12)
  const s = await w.odfs(['sync', m.mnt])
  t.equal(s.code, 0, s.stderr)
  const got = await w.odfs(['get', '--token-store', 'file', 'My files/hello.txt', join(w.dir, 'back.txt')])
  t.equal(got.code, 0, got.stderr)
  t.equal(await readFile(join(w.dir, 'back.txt'), 'utf8'), 'hello world\n')
})

t.test('errnos', async (t) => {
  await t.rejects(mkdir(join(m.mnt, 'Shared with me', 'x')), { code: 'EACCES' })
  await t.rejects(writeFile(join(m.mnt, 'new.txt'), 'x'), { code: 'EACCES' })
  await mkdir(join(m.mnt, 'My files/d1'))
  await writeFile(join(m.mnt, 'My files/d1/f'), 'x')
  const r = await sh(`rmdir '${join(m.mnt, 'My files/d1')}'`)
  t.match(r.stderr, /not empty/i)
  await t.rejects(open(join(m.mnt, 'My files/d1/f'), 'wx'), { code: 'EEXIST' })
  await rename(join(m.mnt, 'My files/d1/f'), join(m.mnt, 'My files/d1/g'))
  t.same(await readdir(join(m.mnt, 'My files/d1')), ['g'])
  await rm(join(m.mnt, 'My files/d1'), { recursive: true })
  await t.rejects(stat(join(m.mnt, 'My files/d1')), { code: 'ENOENT' })
})

t.test('unmount on SIGTERM after uploads', async (t) => {
  await writeFile(join(m.mnt, 'My files/last.txt'), 'last')
  const r = await m.stop()
  t.equal(r.code, 0, r.stderr)
  const ls = await w.odfs(['ls', '--token-store', 'file', 'My files'])
  t.match(ls.stdout, /last\.txt/)
})
