// The data-integrity exerciser (test/faults/exerciser.ts) on a real mount, in CI:
// seeded random writes at random offsets, truncates, sparse extends, reads, renames,
// replace-by-rename, closes, reopens and fsyncs, each checked against a reference
// copy on local disk. Between a close and the reopen after it, the kernel's page
// cache is dropped (as root) and so are the daemon's own caches (its control
// socket's drop-caches), so reopened files are read back from the spool or from
// OneDrive. At the end every file left must be on the emulator with the reference's
// bytes.
//
// CI runs 4 x 5,000 operations (test/fuse/exercise-*.test.ts, one mount and seed
// each, so tap runs them side by side within its per-file time limit).
// ODFS_EXERCISER_OPS and ODFS_EXERCISER_SEED replay or lengthen a run;
// `npm run test:faults -- --case exerciser` runs it inside the fault suite.
import { join } from 'node:path'
import type { Test } from 'tap'
import { askControl, controlSocketPath } from '../../src/cli/control.js'
import { emulatorGraphReader, verifyRemoteFolder } from '../faults/harness.js'
import { runExerciser } from '../faults/exerciser.js'
import { tokenFor } from '../support/emulator.js'
import { world } from './support.js'

export const EXERCISE_OPS = Number(process.env.ODFS_EXERCISER_OPS ?? 5000)

export async function exerciseMount(t: Test, defaultSeed: number): Promise<void> {
  const seed = Number(process.env.ODFS_EXERCISER_SEED ?? defaultSeed)
  const w = await world(t)
  // At debug level, so that a divergence comes with the daemon's account of it.
  const m = await w.mount(['--write-back', '1', '--log-level', 'debug'])
  const lines: string[] = []
  const root = process.getuid?.() === 0
  const r = await runExerciser({
    dir: join(m.mnt, 'My files'), seed, ops: EXERCISE_OPS, keep: true, log: (l) => lines.push(l),
    dropKernelCaches: root,
    dropCaches: async () => {
      const reply = await askControl(controlSocketPath(m.mnt, w.env), { op: 'drop-caches' })
      if (!reply?.done) throw new Error(`the daemon did not drop its caches: ${JSON.stringify(reply)}`)
    },
  })
  t.comment(lines.filter((l) => !l.startsWith('  #')).join('\n'))
  if (r.divergence) t.comment(`the daemon's last log lines:\n${m.output().stderr.trim().split('\n').slice(-80).join('\n')}`)
  t.equal(r.divergence, undefined, 'no divergence from the reference copy')
  t.equal(r.ops, EXERCISE_OPS, 'every operation ran')
  t.equal(r.bytesLost, 0, 'no byte lost')
  t.ok(r.callerCacheDrops > 10, `the daemon dropped its caches ${r.callerCacheDrops} times`)
  if (root) t.equal(r.kernelCacheDrops, r.callerCacheDrops, 'and the kernel its page cache each time')
  const sync = await w.odfs(['sync', m.mnt])
  t.equal(sync.code, 0, `odfs sync: ${sync.stderr.trim()}`)
  const v = await verifyRemoteFolder(emulatorGraphReader(w.emu, await tokenFor(w.emu, 'user1')), `/${r.workDir.split('/').pop()}`, r.expected)
  t.same(v.problems, [], 'every file on OneDrive holds the reference bytes')
  t.equal(v.filesChecked, r.expected.length, 'every file the run left was checked')
  t.equal(v.bytesLost, 0)
}
