/**
 * What the benchmarks share: clean-up on exit and signals, the emulator as a child
 * process, device-code tokens and plain Graph calls through fetch (a baseline that
 * is not odfs's own client), and curl config files that keep URLs out of argv.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import type { Dispatcher } from '../../src/common/index.js'
import { ODFS_BIN, ROOT } from '../support/build.js'

export const PUBLIC_CLIENT = 'a0d1f5e0-0000-4000-8000-00000000a001'

export interface Info { graph: string; authority: string; ca: string; apps: { client_id: string; secret?: string; account_types: string }[] }

/** Everything to undo, newest first; run on exit, failure and Ctrl-C (synchronous on purpose). */
export const undo: (() => void)[] = []
export function cleanup(): void {
  while (undo.length) {
    try {
      undo.pop()!()
    } catch (e) {
      console.error(`bench: cleanup step failed: ${(e as Error).message}`)
    }
  }
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    cleanup()
    process.exit(130)
  })
}

export function stopChild(p: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (p.exitCode === null && p.signalCode === null && p.pid) process.kill(p.pid, signal)
}

export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(cmd, args, { env, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${(r.stderr ?? '').trim()}`)
  return r.stdout
}

/** `odfs emulator` (the built CLI) in a child process; resolves with its info line. */
/**
 * Wait until process `pid` has been idle (under 5% of a core) for half a second, or
 * `maxMs` passed. Before each timed transfer: the emulator goes on working after an
 * upload has been answered (freeing its buffers, the session's file), and a download
 * started meanwhile shares the two cores with that work; the first transfer of each
 * round measured up to 1.5x slower, with CPU time close to its wall time.
 */
export async function settle(pid: number, maxMs = 20_000): Promise<void> {
  const ticks = () => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return Number(f[11]) + Number(f[12]) // utime, stime (fields 14 and 15), in 1/100 s
  }
  const end = Date.now() + maxMs
  let last = ticks()
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 500))
    const now = ticks()
    if (now - last <= 2) return // <= 20 ms of CPU in 500 ms
    last = now
  }
}

export function startEmulator(state: string): Promise<{ info: Info; port: number; pid: number }> {
  const child = spawn(process.execPath, [ODFS_BIN, 'emulator', '--seed', 'empty', '--rate-limit', '0', '--auto-consent', 'user1', '--state', state], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'],
  })
  undo.push(() => stopChild(child))
  return new Promise((res, rej) => {
    createInterface({ input: child.stdout! }).once('line', (line) => {
      const info = JSON.parse(line) as Info
      res({ info, port: Number(new URL(info.graph).port), pid: child.pid! })
    })
    child.once('exit', (code) => rej(new Error(`emulator exited with ${code}`)))
  })
}

/**
 * fetch, again when a pooled connection was closed by the server meanwhile (minutes
 * pass between calls, and several idle connections may have gone stale).
 */
export async function fetchAgain(url: string, init: RequestInit): Promise<Response> {
  for (let i = 0; ; i++) {
    try {
      return await fetch(url, init)
    } catch (e) {
      if (i >= 3) throw e
    }
  }
}

export async function post(d: Dispatcher, url: string, form: Record<string, string>): Promise<Record<string, unknown>> {
  const r = await fetchAgain(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString(), dispatcher: d } as RequestInit)
  return (await r.json()) as Record<string, unknown>
}

/** Tokens by device code (the emulator approves at once for user1). */
export async function deviceCodeTokens(d: Dispatcher, authority: string, clientId: string, secret?: string): Promise<{ access: string; refresh: string; expiresIn: number }> {
  const dc = await post(d, `${authority}/common/oauth2/v2.0/devicecode`, { client_id: clientId, scope: 'Files.ReadWrite.All offline_access' })
  for (let i = 0; i < 60; i++) {
    const form: Record<string, string> = { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: clientId, device_code: String(dc.device_code) }
    if (secret) form.client_secret = secret
    const r = await post(d, `${authority}/common/oauth2/v2.0/token`, form)
    if (r.access_token) return { access: String(r.access_token), refresh: String(r.refresh_token ?? ''), expiresIn: Number(r.expires_in ?? 3600) }
    await new Promise((res) => setTimeout(res, Number(dc.interval ?? 1) * 1000))
  }
  throw new Error('no token from the device code flow')
}

export async function graph<T>(d: Dispatcher, token: string, url: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const r = await fetchAgain(url, {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${token}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
    body: init.body ? JSON.stringify(init.body) : undefined,
    dispatcher: d,
  } as RequestInit)
  if (!r.ok) throw new Error(`${init.method ?? 'GET'} ${new URL(url).pathname}: HTTP ${r.status}`)
  return (r.status === 204 ? undefined : await r.json()) as T
}

/** A curl config file (0600): URLs are credentials and stay out of argv. */
export function curlConfig(file: string, lines: string[]): string {
  writeFileSync(file, lines.join('\n') + '\n', { mode: 0o600 })
  return file
}
export const q = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
