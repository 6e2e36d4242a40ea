/**
 * The exerciser against a plain local directory and against a private tmpfs: the
 * baseline every mount case is compared with (no faults; nothing may be lost).
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { runExerciser, type ExerciserResult } from './exerciser.js'
import { defineCase, verifyLocalFolder, type CaseContext } from './harness.js'

const run = promisify(execFile)

interface State { dir: string; mounted: boolean; result?: ExerciserResult }

async function exercise(ctx: CaseContext, state: State) {
  // tmpfs pages are the data itself: dropping the kernel's caches there only slows the machine
  const r = await runExerciser({ dir: state.dir, seed: ctx.seed, ops: ctx.ops, keep: true, log: ctx.log, dropKernelCaches: state.mounted ? false : undefined })
  state.result = r
  return { operations: r.ops, expected: r.expected, problems: r.divergence ? [r.divergence] : [], bytesLost: r.bytesLost }
}

async function verify(_ctx: CaseContext, state: State, work: { expected: Parameters<typeof verifyLocalFolder>[1] }) {
  const v = await verifyLocalFolder(state.result!.workDir, work.expected)
  // the exerciser's own whole-file checks count too
  return { ...v, filesChecked: v.filesChecked + state.result!.filesChecked }
}

async function cleanup(state: State) {
  if (state.result) await rm(state.result.refDir, { recursive: true, force: true })
  if (state.mounted) await run('umount', [state.dir])
  await rm(state.dir, { recursive: true, force: true })
}

export default [
  defineCase<State>({
    name: 'exerciser: local directory',
    description: 'the data-integrity exerciser on a directory of the local disk (os.tmpdir()); no faults',
    async setup() {
      return { dir: await mkdtemp(join(tmpdir(), 'odfs-faults-local-')), mounted: false }
    },
    workload: exercise,
    verify,
    teardown: async (_ctx, state) => cleanup(state),
  }),
  defineCase<State>({
    name: 'exerciser: tmpfs',
    description: 'the data-integrity exerciser on a private 256 MiB tmpfs mounted for the case; no faults',
    requires() {
      return process.getuid?.() === 0 ? undefined : 'mounting a tmpfs needs root'
    },
    async setup() {
      const dir = await mkdtemp(join(tmpdir(), 'odfs-faults-tmpfs-'))
      await run('mount', ['-t', 'tmpfs', '-o', 'size=256m,mode=0700', 'odfs-faults', dir])
      return { dir, mounted: true }
    },
    workload: exercise,
    verify,
    teardown: async (_ctx, state) => cleanup(state),
  }),
]
