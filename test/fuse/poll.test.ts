// Remote changes: with --poll-interval the mount follows each drive in use with
// delta and drops what changed, so a file added, changed or removed behind the
// mount's back shows even inside a long directory cache time.
import t from 'tap'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { world } from './support.js'

/** Wait (polling, at most ~20 s) until `f` holds; the poll runs on the daemon's own clock. */
async function eventually(f: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (await f().catch(() => false)) return true
    await sleep(200)
  }
  return false
}

t.test('the delta poll shows remote changes inside the directory cache time', async (t) => {
  const w = await world(t)
  await w.emu.store.writeFile('user1', 'polled/one.txt', 'one\n')
  const m = await w.mount(['--poll-interval', '1', '--dir-cache-time', '3600'])
  const dir = join(m.mnt, 'My files/polled')
  t.same(await readdir(dir), ['one.txt'])
  t.same((await readdir(join(m.mnt, 'My files'))).sort(), ['polled'])
  await sleep(1500) // let the poll take its starting point
  await w.emu.store.writeFile('user1', 'polled/two.txt', 'two\n')
  await w.emu.store.writeFile('user1', 'top.txt', 'top\n')
  await w.emu.store.writeFile('user1', 'polled/one.txt', 'one, changed\n')
  t.ok(await eventually(async () => (await readdir(dir)).sort().join() === 'one.txt,two.txt'), 'a new file in a folder')
  t.ok(await eventually(async () => (await readdir(join(m.mnt, 'My files'))).includes('top.txt')), 'a new file at the top of My files')
  t.ok(await eventually(async () => (await readFile(join(dir, 'one.txt'), 'utf8')) === 'one, changed\n'), 'changed content')
  await m.stop()
})
