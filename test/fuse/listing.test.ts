// Metadata costs: `ls -l` on a folder of 5,000 files makes as many Graph calls as
// the listing has pages (5 of 1,000) and nothing per file; a second `ls -l` within
// the directory cache time makes none.
import t from 'tap'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { world, sh, apiCalls } from './support.js'

t.test('ls -l of 5,000 files costs the listing pages only', async (t) => {
  const w = await world(t)
  for (let i = 0; i < 5000; i++) await w.emu.store.writeFile('user1', `many/f-${String(i).padStart(4, '0')}.txt`, `${i}\n`)
  const m = await w.mount(['--dir-cache-time', '600'])
  const dir = join(m.mnt, 'My files/many')
  t.ok((await stat(dir)).isDirectory())
  await w.resetStats()
  const first = await sh(`ls -l '${dir}' | tail -n +2 | wc -l`)
  t.equal(first.stdout.trim(), '5000')
  const calls1 = apiCalls(await w.stats())
  t.same(calls1, { 'GET /drives/{id}/items/{id}/children': 5 }, 'five listing pages and nothing per file')
  await w.resetStats()
  const second = await sh(`ls -l '${dir}' | tail -n +2 | wc -l`)
  t.equal(second.stdout.trim(), '5000')
  t.same(apiCalls(await w.stats()), {}, 'the second ls -l makes no Graph call')
  const sizes = await sh(`ls -l '${dir}' | awk '$9=="f-0123.txt" {print $5}'`)
  t.equal(sizes.stdout.trim(), '4', 'attributes come from the listing')
  await m.stop()
})
