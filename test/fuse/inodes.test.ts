// Stable inode numbers (docs/semantics.md "Modes, owners, times"): a file keeps its
// number when its metadata is dropped and fetched again, and has the same number on
// the next mount, whatever order the files are looked up in; `find -inum` finds it.
import t from 'tap'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { apiCalls, sh, world, type World } from './support.js'

let w: World
t.before(async () => {
  w = await world(t)
  for (const p of ['inodes/x.txt', 'inodes/y.txt', 'inodes/sub/z.txt']) await w.emu.store.writeFile('user1', p, `${p}\n`)
})

const NAMES = ['x.txt', 'y.txt', 'sub/z.txt', 'sub']
const inos = async (mnt: string, names: string[]) => {
  const out: Record<string, number> = {}
  for (const n of names) out[n] = (await stat(join(mnt, 'My files', 'inodes', n))).ino
  return out
}

t.test('within a mount, across the metadata being dropped and fetched again', async (t) => {
  const m = await w.mount(['--dir-cache-time', '0'])
  const before = await inos(m.mnt, NAMES)
  t.equal(new Set(Object.values(before)).size, NAMES.length, 'distinct numbers')
  await w.resetStats()
  await sh('echo 2 > /proc/sys/vm/drop_caches') // the kernel forgets the dentries and inodes too
  const after = await inos(m.mnt, [...NAMES].reverse())
  const calls = Object.values(apiCalls(await w.stats())).reduce((a, b) => a + b, 0)
  t.ok(calls > 0, `the metadata was fetched again (${calls} Graph calls)`)
  t.same(after, before, 'every file kept its number')
  const find = await sh(`find '${join(m.mnt, 'My files')}' -inum ${before['sub/z.txt']}`)
  t.equal(find.stdout.trim(), join(m.mnt, 'My files', 'inodes', 'sub', 'z.txt'), `find -inum: ${find.stderr}`)
  await m.stop()
})

t.test('the same numbers on the next mount, looked up in another order', async (t) => {
  const a = await w.mount()
  const first = await inos(a.mnt, NAMES)
  await a.stop()
  const b = await w.mount()
  const again = await inos(b.mnt, [...NAMES].reverse())
  t.same(again, first)
  await b.stop()
})
