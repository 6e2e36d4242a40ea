/**
 * Fault cases through the FUSE mount against the emulator. The mount is not on this
 * branch yet: every case says so in `requires` and is reported "not run", never
 * passed. To fill a case once the mount lands:
 *
 *   setup     start the emulator (startTestEmulator from test/support/emulator.ts), sign in
 *             (tokenFor), mount odfs on a fresh directory (a child process where the case kills it)
 *   faults    emulatorFaultInjector(emu, FAULTS[name]) (harness.ts), or the case's own (SIGKILL, full spool)
 *   workload  runExerciser({ dir: <mountpoint>/<My files>, seed: ctx.seed, ops: ctx.ops, keep: true,
 *             dropCaches: <ask the daemon to drop its caches> })
 *   verify    verifyRemoteFolder(emulatorGraphReader(emu, token), '/' + basename(result.workDir), result.expected)
 *             after the mount has flushed (unmount first): sha256 of each file against the emulator's content
 */
import { existsSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Faults } from '../../src/emulator/index.js'
import { defineCase, type FaultCase } from './harness.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** Emulator settings each case injects while the workload runs. */
export const FAULTS: Record<string, Partial<Faults>> = {
  '429 storm': { rateLimit: 5 },
  '503s': { failRate: 0.2 },
  'connection resets': { resetRate: 0.2 },
}

const CASES: Array<{ name: string; description: string }> = [
  { name: 'mount: 429 storm', description: 'exerciser through the mount while the emulator allows 5 requests/s per user (429 activityLimitReached with Retry-After)' },
  { name: 'mount: 503s', description: 'exerciser through the mount while 20% of Graph requests answer 503 with Retry-After' },
  { name: 'mount: connection resets', description: 'exerciser through the mount while 20% of downloads and upload fragments are cut mid-body' },
  { name: 'mount: SIGKILL + remount', description: 'the daemon is killed with SIGKILL mid-workload and remounted; fsynced data must survive, the rest must be whole or absent' },
  { name: 'mount: full spool tmpfs', description: 'the upload spool is a small tmpfs that fills up: writes must fail with ENOSPC, nothing written before may be lost' },
  { name: 'mount: conflict', description: 'another client changes files behind the mount (eTag changes, 409/412): the mount keeps both versions, never silently overwrites' },
]

function whyNotRun(): string {
  if (!existsSync(resolve(ROOT, 'src/fuse'))) return 'no FUSE mount on this branch: src/fuse is missing'
  return 'the mount exists but this case is not written yet (test/faults/mount.case.ts)'
}

const notWritten = async (): Promise<never> => {
  throw new Error('case not written yet')
}

export default CASES.map(({ name, description }): FaultCase<never> => defineCase<never>({
  name,
  description,
  requires: whyNotRun,
  setup: notWritten,
  workload: notWritten,
  verify: notWritten,
}))
