/**
 * Test support for sign-in tests: a running emulator (real HTTPS) seen the way
 * odfs sees Microsoft: an authority, a Graph URL and a CA file, plus the test
 * hooks. Uses `startEmulator` from src/emulator when it is there; until then the
 * identity platform alone (test/emulator/identity-support.ts).
 *
 * Also: a policy file for one of the seeded app registrations, and a capture of
 * everything a test prints so it can be scanned for tokens and secrets.
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { APPS } from '../../src/emulator/directory.js'
import { startEmulator } from '../../src/emulator/index.js'
import { createDispatcher, ManualClock, silentLogger, type Logger } from '../../src/common/index.js'
import { loadGatewayConfig } from '../../src/config/index.js'
import { createMsalApp, resolveTokenStore } from '../../src/auth/index.js'
import { startIdp } from '../emulator/identity-support.js'

export const PUBLIC_APP = APPS.find((a) => a.clientId.endsWith('a001'))!
export const CONFIDENTIAL_APP = APPS.find((a) => a.clientId.endsWith('a002'))!
export const SINGLE_TENANT_APP = APPS.find((a) => a.accountTypes === 'single-tenant')!
export const ORGS_APP = APPS.find((a) => a.accountTypes === 'multitenant')!
export const PERSONAL_APP = APPS.find((a) => a.accountTypes === 'personal')!

export interface AuthEmulator {
  authority: string
  graph: string
  ca: string
  hook(name: 'approve' | 'revoke' | 'expire-access-tokens', body: Record<string, unknown>): Promise<{ status: number; body: any }>
  setAutoConsent(handle: string | undefined): void
  close(): Promise<void>
}

export async function startAuthEmulator(opts: { autoConsent?: string; accessTokenTtlSec?: number } = {}): Promise<AuthEmulator> {
  const emu = await startEmulator({ port: 0, seed: 'demo', deviceCodeIntervalSec: 0, ...opts })
  const dispatcher = await createDispatcher({ caFile: emu.info.ca })
  return {
    authority: emu.info.authority,
    graph: emu.info.graph,
    ca: emu.info.ca,
    async hook(name, body) {
      const r = await fetch(`${emu.info.authority}/_emulator/identity/${name}`, {
        method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, dispatcher,
      } as RequestInit)
      const text = await r.text()
      let parsed: unknown = text
      try { parsed = JSON.parse(text) } catch { /* text */ }
      return { status: r.status, body: parsed }
    },
    setAutoConsent: (h) => emu.identity.setAutoConsent(h),
    async close() {
      await dispatcher.close()
      await emu.close()
    },
  }
}

/**
 * The identity platform alone on a ManualClock shared with the client, and a
 * gateway (policy file, file token store, dispatcher, msal app) signed in to
 * nothing yet: for tests that move time (device-code polling, token lifetimes).
 */
export async function manualClockGateway(t: { teardown(f: () => unknown): void }, idpOpts: Parameters<typeof startIdp>[0] = {}) {
  const clock = new ManualClock(Date.now())
  const idp = await startIdp({ clock, deviceCodeIntervalSec: 0, ...idpOpts })
  t.teardown(() => idp.close())
  const g = await sandboxGateway(t, { authority: idp.base, graph: `${idp.base}/v1.0`, ca: idp.caFile }, PUBLIC_APP)
  return { clock, idp, ...g }
}

/**
 * A gateway for `app` at `emu` in a sandbox (see `sandbox`): its configuration,
 * file token store, dispatcher and msal app, signed in to nothing yet; all
 * removed or closed when `t` ends.
 */
export async function sandboxGateway(
  t: { teardown(f: () => unknown): void },
  emu: Pick<AuthEmulator, 'authority' | 'graph' | 'ca'>,
  app: Parameters<typeof sandbox>[1],
  opts: { extra?: Record<string, unknown>; log?: Logger } = {},
) {
  const sb = await sandbox(emu, app, opts.extra)
  t.teardown(sb.cleanup)
  const config = await loadGatewayConfig({ configFile: sb.configFile, env: sb.env })
  const store = await resolveTokenStore({ mode: 'file', config, env: sb.env })
  const dispatcher = await createDispatcher({ caFile: config.caFile! })
  t.teardown(() => dispatcher.close())
  const msal = await createMsalApp({ config, store, dispatcher, log: opts.log ?? silentLogger })
  return { sb, config, store, dispatcher, app: msal }
}

export interface Sandbox {
  dir: string
  env: NodeJS.ProcessEnv
  configFile: string
}

/** Temp XDG dirs and a 0600 policy file for `app` pointed at the emulator. */
export async function sandbox(emu: Pick<AuthEmulator, 'authority' | 'graph' | 'ca'>, app: { clientId: string; secret?: string; accountTypes: string; tenantId: string }, extra: Record<string, unknown> = {}): Promise<Sandbox & { cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'odfs-auth-'))
  const env = { ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), XDG_STATE_HOME: join(dir, 'state'), ODFS_SYSTEM_CONFIG: join(dir, 'etc', 'gateway.json') }
  const configFile = join(dir, 'gateway.json')
  await mkdir(dir, { recursive: true })
  const doc: Record<string, unknown> = {
    DATA_TYPE: 'onedrive_storage_policies#1.0.0',
    client_id: app.clientId,
    account_types: app.accountTypes,
    login_endpoint: emu.authority,
    graph_endpoint: emu.graph,
    ca_file: emu.ca,
    ...(app.secret ? { secret: app.secret } : {}),
    ...(app.accountTypes === 'single-tenant' ? { tenant: app.tenantId } : {}),
    ...extra,
  }
  await writeFile(configFile, JSON.stringify(doc, null, 2), { mode: 0o600 })
  return { dir, env, configFile, cleanup: () => rm(dir, { recursive: true, force: true }) }
}

/** Collects everything written to stdout/stderr from now on (still passed through). */
export function captureOutput(): { text(): string } {
  let captured = ''
  for (const stream of [process.stdout, process.stderr]) {
    const orig = stream.write.bind(stream) as (...a: unknown[]) => boolean
    ;(stream as unknown as { write: (...a: unknown[]) => boolean }).write = (chunk: unknown, ...rest: unknown[]) => {
      captured += typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString()
      return orig(chunk, ...rest)
    }
  }
  return { text: () => captured }
}

/** Every secret-looking value in a serialized msal cache (tokens) plus extra secrets. */
export function secretsOfCache(serialized: string | null | undefined, extra: string[] = []): string[] {
  const out = new Set(extra.filter(Boolean))
  if (serialized) {
    const c = JSON.parse(serialized)
    for (const section of ['AccessToken', 'RefreshToken', 'IdToken']) {
      for (const e of Object.values(c[section] ?? {}) as { secret?: string }[]) if (e.secret) out.add(e.secret)
    }
  }
  return [...out]
}

/** Fails `t` when `text` holds any of `secrets` (the message gives lengths, never a secret). */
export function assertNoSecrets(t: { same(found: unknown, wanted: unknown, message: string): unknown }, text: string, secrets: Iterable<string>): void {
  const leaked = [...secrets].filter((s) => s && text.includes(s))
  t.same(leaked.map((s) => `a secret of length ${s.length}`), [], 'no token or secret in anything printed or logged')
}
