// The built CLI (node bin/odfs) as child processes against a test emulator, signed
// in as user1 with `odfs login` (device code, auto-consent, file token store) under
// temporary XDG dirs. Used by the CLI transfer tests (ls / put / get / hash).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTestEmulator, PUBLIC_CLIENT, type TestEmulator } from './emulator.js'
import { ensureBuilt, ODFS_BIN, ROOT } from './build.js'

export interface Run { code: number | null; stdout: string; stderr: string }

export interface SignedInCli {
  emu: TestEmulator
  /** A private temporary directory (removed by close()). */
  dir: string
  env: NodeJS.ProcessEnv
  /** Token store option every command gets. */
  store: string[]
  start(args: string[]): { p: ChildProcess; done: Promise<Run> }
  odfs(args: string[]): Promise<Run>
  close(): Promise<void>
}

export function startOdfs(args: string[], env: NodeJS.ProcessEnv): { p: ChildProcess; done: Promise<Run> } {
  const p = spawn(process.execPath, [ODFS_BIN, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  p.stdout!.on('data', (d) => (stdout += d))
  p.stderr!.on('data', (d) => (stderr += d))
  const done = new Promise<Run>((resolve, reject) => {
    p.on('error', reject)
    p.on('close', (code) => resolve({ code, stdout, stderr }))
  })
  return { p, done }
}

/** An emulator (demo data) and the CLI signed in to it as user1. */
export async function signedInCli(prefix: string): Promise<SignedInCli> {
  await ensureBuilt() // bin/odfs loads dist/
  const emu = await startTestEmulator({ seed: 'demo' })
  const dir = await mkdtemp(join(tmpdir(), prefix))
  const env = { ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), XDG_STATE_HOME: join(dir, 'state'), ODFS_SYSTEM_CONFIG: join(dir, 'etc-gateway.json'), ODFS_LOG_LEVEL: 'warn' }
  const store = ['--token-store', 'file']
  const odfs = (args: string[]) => startOdfs(args, env).done
  const close = async () => {
    await emu.close()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const cfg = await odfs(['gateway', 'create', '--config', join(dir, 'config', 'odfs', 'gateway.json'), '--ms-client-id', PUBLIC_CLIENT,
      '--ms-login-endpoint', emu.info.authority, '--ms-graph-endpoint', emu.info.graph, '--ca-file', emu.info.ca])
    if (cfg.code !== 0) throw new Error(`gateway create failed: ${cfg.stderr}`)
    emu.identity.setAutoConsent('user1')
    const login = await odfs(['login', ...store])
    emu.identity.setAutoConsent(undefined)
    if (login.code !== 0) throw new Error(`login failed: ${login.stderr}`)
  } catch (e) {
    await close()
    throw e
  }
  return { emu, dir, env, store, start: (args) => startOdfs(args, env), odfs, close }
}
