// The built CLI (node bin/odfs) as a child process, the way a user runs it, under
// temporary XDG dirs, and signed in to a test emulator the way a user signs in:
// `odfs gateway create` pointed at the emulator, then `odfs login` (device code,
// auto-consent, file token store). Used by the CLI and mount tests.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTestEmulator, PUBLIC_CLIENT, type TestEmulator } from './emulator.js'
import { ensureBuilt, ODFS_BIN, ROOT } from './build.js'

export interface Run { code: number | null; stdout: string; stderr: string }

/** The token store option every command gets (a test never touches the keychain). */
export const FILE_STORE = ['--token-store', 'file']

/** Start `odfs ARGS`; `done` resolves with its exit code and everything it printed. */
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

/** An environment whose XDG dirs (config, state, cache) and system policy file are all under `dir`. */
export function cliEnv(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), XDG_STATE_HOME: join(dir, 'state'), XDG_CACHE_HOME: join(dir, 'cache'),
    ODFS_SYSTEM_CONFIG: join(dir, 'etc-gateway.json'), ODFS_LOG_LEVEL: 'warn',
  }
  // Control sockets go under the cache dir too, not the runtime dir of whoever runs the tests.
  delete env.XDG_RUNTIME_DIR
  return env
}

/** Write the gateway policy for `emu` into env's XDG config dir and sign `account` in (file token store). */
export async function signIn(emu: TestEmulator, env: NodeJS.ProcessEnv, account = 'user1'): Promise<void> {
  const cfg = await startOdfs(['gateway', 'create', '--config', join(env.XDG_CONFIG_HOME!, 'odfs', 'gateway.json'), '--ms-client-id', PUBLIC_CLIENT,
    '--ms-login-endpoint', emu.info.authority, '--ms-graph-endpoint', emu.info.graph, '--ca-file', emu.info.ca], env).done
  if (cfg.code !== 0) throw new Error(`gateway create failed: ${cfg.stderr}`)
  emu.identity.setAutoConsent(account)
  try {
    const login = await startOdfs(['login', ...FILE_STORE], env).done
    if (login.code !== 0) throw new Error(`login failed: ${login.stderr}`)
  } finally {
    emu.identity.setAutoConsent(undefined)
  }
}

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

/** An emulator (demo data) and the CLI signed in to it as user1. */
export async function signedInCli(prefix: string): Promise<SignedInCli> {
  await ensureBuilt() // bin/odfs loads dist/
  const emu = await startTestEmulator({ seed: 'demo' })
  const dir = await mkdtemp(join(tmpdir(), prefix))
  const env = cliEnv(dir)
  const close = async () => {
    await emu.close()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await signIn(emu, env)
  } catch (e) {
    await close()
    throw e
  }
  return { emu, dir, env, store: FILE_STORE, start: (args) => startOdfs(args, env), odfs: (args) => startOdfs(args, env).done, close }
}

/** `signedInCli` for every subtest of a test file: made before the first one, closed after the last. */
export function signedInCliForFile(t: { before(f: () => Promise<void>): void; teardown(f: () => Promise<void>): void }, prefix: string): SignedInCli {
  const cli = {} as SignedInCli
  t.before(async () => {
    Object.assign(cli, await signedInCli(prefix))
  })
  t.teardown(async () => {
    await cli.close?.()
  })
  return cli
}
