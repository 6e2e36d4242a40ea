// A write-back spool that fills up (--cache-max-size) through a real mount: the
// writer gets ENOSPC and the daemon logs why; every file closed before stays in
// the spool, reaches OneDrive whole, and only then leaves the spool.
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { world, sh } from './support.js'
import { makeSource, remoteSums } from './sums.js'

t.test('--cache-max-size: a copy past it gets ENOSPC; everything closed before arrives', async (t) => {
  const w = await world(t)
  const { src, sums } = await makeSource(w, 60) // 1–7 KB each, about 230 KB in all
  const m = await w.mount(['--write-back', '600', '--cache-max-size', '128K'])
  const dst = join(m.mnt, 'My files/limit')
  const log = join(w.dir, 'closed.log')
  // One cp per file; a name is logged only after its cp exited.
  const copy = await sh(`mkdir '${dst}' && for f in '${src}'/*; do cp "$f" '${dst}'/ || exit 7; echo "$(basename "$f")" >> '${log}'; done`)
  t.equal(copy.code, 7, 'the copy stopped at a failed cp')
  t.match(copy.stderr, /No space left on device/, 'with ENOSPC')
  const closed = (await readFile(log, 'utf8')).split('\n').filter(Boolean)
  t.ok(closed.length > 5 && closed.length < 60, `${closed.length} files were closed before the spool was full`)
  // The file that failed is removed, as after any ENOSPC.
  const failed = (await sh(`ls '${dst}'`)).stdout.split('\n').filter((n) => n && !closed.includes(n))
  for (const n of failed) t.equal((await sh(`rm '${join(dst, n)}'`)).code, 0, `rm ${n}`)
  const sync = await w.odfs(['sync', m.mnt])
  t.equal(sync.code, 0, sync.stderr)
  // Uploaded copies left the spool: the same files fit again.
  const again = await sh(`cp '${src}/${closed[0]}' '${dst}/again.bin'`)
  t.equal(again.code, 0, again.stderr)
  const r = await m.stop()
  t.equal(r.code, 0, r.stderr)
  t.match(r.stderr, /write refused: the write-back spool holds \d+ bytes of its 131072 \(--cache-max-size\)/, 'the daemon said why')
  const remote = await remoteSums(w, 'limit')
  const missing = closed.filter((n) => remote.get(n) !== sums.get(n))
  t.same(missing, [], `every closed file is on OneDrive with its bytes (${closed.length} checked)`)
  t.equal(remote.get('again.bin'), sums.get(closed[0]!), 'and the copy made after the sync')
})
