/**
 * Test support for the whole emulator: start it in-process on a free port, talk
 * to it over real HTTPS (fetch with a dispatcher that trusts the emulator's CA),
 * and get access tokens the way a client does (device-code flow, auto-consent).
 */
import { createDispatcher, type Dispatcher } from '../../src/common/index.js'
import { startEmulator, type Emulator, type EmulatorOptions } from '../../src/emulator/index.js'

export const PUBLIC_CLIENT = 'a0d1f5e0-0000-4000-8000-00000000a001'
export const SCOPES = 'Files.ReadWrite.All Sites.ReadWrite.All User.Read offline_access openid profile'

export interface TestEmulator extends Emulator {
  dispatcher: Dispatcher
  /** fetch a path on the emulator (or an absolute URL); redirects are not followed. */
  fetch(pathOrUrl: string, init?: RequestInit): Promise<Response>
}

export interface CallResult {
  status: number
  headers: Headers
  body: any
  text: string
}

export async function startTestEmulator(opts: EmulatorOptions = {}): Promise<TestEmulator> {
  const emu = await startEmulator({ seed: 'empty', deviceCodeIntervalSec: 0, ...opts })
  const dispatcher = await createDispatcher({ caFile: emu.info.ca })
  const close = emu.close.bind(emu)
  const t = emu as TestEmulator
  t.dispatcher = dispatcher
  t.fetch = (pathOrUrl, init = {}) =>
    fetch(pathOrUrl.startsWith('https://') ? pathOrUrl : emu.info.authority + pathOrUrl, { redirect: 'manual', ...init, dispatcher } as RequestInit)
  t.close = async () => {
    await close()
    await (dispatcher as unknown as { close(): Promise<void> }).close()
  }
  return t
}

let queue: Promise<unknown> = Promise.resolve()

/** An access token for `handle`, obtained through the real device-code endpoints. */
export function tokenFor(emu: TestEmulator, handle: string, clientId = PUBLIC_CLIENT): Promise<string> {
  const run = async (): Promise<string> => {
    emu.identity.setAutoConsent(handle)
    try {
      const form = (f: Record<string, string>) => ({ method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(f).toString() })
      const dc = await emu.fetch('/common/oauth2/v2.0/devicecode', form({ client_id: clientId, scope: SCOPES }))
      const code = (await dc.json()) as { device_code?: string }
      if (dc.status !== 200 || !code.device_code) throw new Error(`devicecode failed: ${dc.status}`)
      for (let i = 0; i < 20; i++) {
        const r = await emu.fetch('/common/oauth2/v2.0/token', form({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: clientId, device_code: code.device_code }))
        const body = (await r.json()) as { access_token?: string; error?: string }
        if (r.status === 200 && body.access_token) return body.access_token
        if (body.error !== 'authorization_pending' && body.error !== 'slow_down') throw new Error(`token failed: ${r.status} ${body.error}`)
      }
      throw new Error('device code never approved')
    } finally {
      emu.identity.setAutoConsent(undefined)
    }
  }
  const p = queue.then(run, run)
  queue = p.catch(() => undefined)
  return p
}

/** A tiny Graph caller for tests: JSON in, JSON (or text) out, no redirects followed. */
export function graphCaller(emu: TestEmulator, token: string | undefined) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<CallResult> => {
    const h: Record<string, string> = { ...headers }
    if (token) h.authorization = `Bearer ${token}`
    let payload: RequestInit['body']
    if (body instanceof Uint8Array) {
      payload = body
      h['content-type'] ??= 'application/octet-stream'
    } else if (body !== undefined) {
      payload = JSON.stringify(body)
      h['content-type'] ??= 'application/json'
    }
    const url = path.startsWith('https://') ? path : `${emu.info.graph}${path}`
    const r = await emu.fetch(url, { method, headers: h, body: payload })
    const text = await r.text()
    let parsed: any
    try {
      parsed = text ? JSON.parse(text) : undefined
    } catch {
      parsed = undefined
    }
    return { status: r.status, headers: r.headers, body: parsed, text }
  }
}
