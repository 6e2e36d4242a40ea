// `odfs emulator` standalone: first stdout line is the info JSON, a device-code
// sign-in and a children listing work by hand (plain HTTPS, as curl would), and
// SIGTERM closes it cleanly.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { join } from 'node:path'
import { createDispatcher } from '../../src/common/index.js'
import { PUBLIC_CLIENT } from '../support/emulator.js'

t.test('odfs emulator --seed demo', async (t) => {
  const child = spawn(process.execPath, [...process.execArgv, join(import.meta.dirname, '../support/cli-child.ts'),
    'emulator', '--seed', 'demo', '--port', '0', '--auto-consent', 'user1', '--rate-limit', '50', '--latency', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (d) => { stderr += d })
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve)
    child.once('exit', () => reject(new Error(`emulator exited: ${stderr}`)))
  })
  const info = JSON.parse(line)
  t.match(info, { graph: /^https:\/\/127\.0\.0\.1:\d+\/v1\.0$/, authority: /^https:\/\/127\.0\.0\.1:\d+$/, ca: /ca\.pem$/, state: String })
  t.ok(info.apps.some((a: any) => a.client_id === PUBLIC_CLIENT && !a.secret && a.account_types === 'multitenant-and-personal'))
  t.ok(info.apps.some((a: any) => a.secret), 'confidential app carries its secret')
  t.same(info.accounts.map((a: any) => a.handle).sort(), ['other1', 'personal1', 'personal2', 'user1', 'user2'])
  t.match(info.accounts[0], { handle: String, username: String, kind: String, tenant: String })
  t.ok(existsSync(info.ca))
  const dispatcher = await createDispatcher({ caFile: info.ca })
  t.teardown(() => (dispatcher as any).close())
  const f = (url: string, init: RequestInit = {}) => fetch(url, { ...init, dispatcher } as RequestInit)
  const form = (body: Record<string, string>) => ({ method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body).toString() })
  const dc = (await (await f(`${info.authority}/common/oauth2/v2.0/devicecode`, form({ client_id: PUBLIC_CLIENT, scope: 'Files.ReadWrite.All offline_access' }))).json()) as any
  t.ok(dc.device_code && dc.user_code && dc.verification_uri)
  let tok: any
  for (let i = 0; i < 30; i++) {
    const r = await f(`${info.authority}/common/oauth2/v2.0/token`, form({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: PUBLIC_CLIENT, device_code: dc.device_code }))
    tok = await r.json()
    if (r.status === 200) break
    t.match(tok.error, /authorization_pending|slow_down/)
    await new Promise((res) => setTimeout(res, (dc.interval ?? 1) * 1000))
  }
  t.ok(tok.access_token, 'device-code sign-in')
  const kids = await f(`${info.graph}/me/drive/root/children`, { headers: { authorization: `Bearer ${tok.access_token}` } })
  t.equal(kids.status, 200)
  const names = ((await kids.json()) as any).value.map((i: any) => i.name)
  t.ok(names.includes('Documents') && names.includes('README.txt'), 'demo data listed')
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'clean exit on SIGTERM')
  t.notOk(existsSync(info.state), 'temp state dir removed')
  t.match(stderr, /emulator listening/)
  t.notMatch(stderr, /access_token|eyJ/, 'no token in the log')
})
