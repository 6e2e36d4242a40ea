/**
 * Mount tests: the emulator runs in the test process, odfs runs as a user runs it
 * (`node bin/odfs mount MNT` as a child, signed in with `odfs login` under
 * temporary XDG dirs), and the checks are ordinary programs (cp, rsync, tar, git)
 * run asynchronously: a synchronous exec would stall the in-process emulator.
 */
import { execFile, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ensureBuilt } from '../support/build.js'
import { startTestEmulator, type TestEmulator } from '../support/emulator.js'
import { cliEnv, FILE_STORE, signIn, startOdfs, type Run } from '../support/odfs-cli.js'
import type { EmulatorOptions } from '../../src/emulator/index.js'

const execFileP = promisify(execFile)

export type { Run }

/** Start `odfs ARGS` (see test/support/odfs-cli.ts). */
export const start = startOdfs

/** Run a shell command line (bash -c) without blocking the event loop. */
export async function sh(cmd: string, opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  try {
    const r = await execFileP('bash', ['-c', cmd], { cwd: opts.cwd, env: opts.env ?? process.env, maxBuffer: 64 << 20 })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string }
    return { code: typeof x.code === 'number' ? x.code : 1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' }
  }
}

export interface Mounted {
  mnt: string
  proc: ChildProcess
  done: Promise<Run>
  output(): { stdout: string; stderr: string }
  /** SIGTERM and wait (uploads finish first). */
  stop(signal?: NodeJS.Signals): Promise<Run>
}

export interface World {
  emu: TestEmulator
  dir: string
  env: NodeJS.ProcessEnv
  odfs(args: string[]): Promise<Run>
  mount(extra?: string[], mnt?: string): Promise<Mounted>
  /** Graph API stats of the emulator since the last reset. */
  stats(): Promise<{ total: number; routes: Record<string, number> }>
  resetStats(): Promise<void>
}

export async function world(t: { teardown(f: () => unknown): void }, emuOpts: EmulatorOptions = {}): Promise<World> {
  await ensureBuilt()
  const emu = await startTestEmulator({ seed: 'empty', rateLimit: 0, ...emuOpts })
  const dir = await mkdtemp(join(tmpdir(), 'odfs-mount-'))
  const mounts: Mounted[] = []
  t.teardown(async () => {
    for (const m of mounts) {
      if (m.proc.exitCode === null) m.proc.kill('SIGKILL')
      await m.done.catch(() => undefined)
      await sh(`fusermount -uz '${m.mnt}' 2>/dev/null; true`)
    }
    await emu.close()
    await rm(dir, { recursive: true, force: true })
  })
  const env = cliEnv(dir)
  const odfs = (args: string[]) => start(args, env).done
  await signIn(emu, env)
  let n = 0
  return {
    emu, dir, env, odfs,
    async mount(extra = [], mnt?: string) {
      mnt ??= join(dir, `mnt${n++}`)
      // A stale mount point answers ENOTCONN: leave it for odfs mount to clear.
      await mkdir(mnt, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOTCONN') throw e
      })
      const defaults = extra.includes('--write-back') ? [] : ['--write-back', '1']
      const { p, done } = start(['mount', mnt, ...FILE_STORE, ...defaults, ...extra], env)
      let stdout = ''
      let stderr = ''
      p.stdout!.on('data', (d) => (stdout += d))
      p.stderr!.on('data', (d) => (stderr += d))
      const m: Mounted = {
        mnt, proc: p, done,
        output: () => ({ stdout, stderr }),
        async stop(signal = 'SIGTERM') {
          if (p.exitCode === null) p.kill(signal)
          return done
        },
      }
      mounts.push(m)
      await new Promise<void>((resolve, reject) => {
        const check = () => {
          if (stdout.includes(`ready: ${mnt}`)) resolve()
        }
        p.stdout!.on('data', check)
        p.on('close', (code) => reject(new Error(`mount exited (${code}) before it was ready: ${stderr.slice(0, 2000)}`)))
      })
      return m
    },
    async stats() {
      const r = await emu.fetch('/_emulator/stats')
      return (await r.json()) as { total: number; routes: Record<string, number> }
    },
    async resetStats() {
      await emu.fetch('/_emulator/stats/reset', { method: 'POST' })
    },
  }
}

/** Graph API calls in a stats snapshot (content transfers and identity excluded). */
export function apiCalls(s: { routes: Record<string, number> }): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(s.routes)) if (/ \/(me|drives|sites|shares|search)\b/.test(k)) out[k] = v
  return out
}
