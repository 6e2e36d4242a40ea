// A 429/503/reset storm during a copy through a real mount of the emulator: the
// copy completes and the emulator holds every byte (sha256 compared).
import t from 'tap'
import { join } from 'node:path'
import { world, sh } from './support.js'
import { makeSource, remoteSums } from './sums.js'

t.test('a 429 storm with 503s and connection resets during cp -r of 200 files: the copy completes, every file is correct', async (t) => {
  const w = await world(t)
  const { src, sums } = await makeSource(w)
  const m = await w.mount(['--write-back', '1'])
  const seen = () => w.emu.stats.throttled429 + w.emu.stats.unavailable503 + w.emu.stats.resets
  const start0 = seen()
  w.emu.setFaults({ rateLimit: 20, rateWindowSec: 1, failRate: 0.1, resetRate: 0.1 })
  const cp = await sh(`cp -r '${src}' '${join(m.mnt, 'My files/storm')}'`)
  t.equal(cp.code, 0, cp.stderr)
  const sync = await w.odfs(['sync', m.mnt])
  t.equal(sync.code, 0, sync.stderr)
  const injected = seen() - start0
  w.emu.setFaults({ rateLimit: 0, failRate: 0, resetRate: 0 })
  t.ok(injected > 0, `faults were injected during the copy (${injected})`)
  const r = await m.stop()
  t.equal(r.code, 0, r.stderr)
  const remote = await remoteSums(w, 'storm')
  t.same(Object.fromEntries(remote), Object.fromEntries(sums), 'all 200 files on OneDrive with their bytes')
})
