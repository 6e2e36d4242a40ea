/**
 * The identity platform inside the real emulator server (startEmulator): msal
 * signs in by device code and refreshes; the Graph side accepts its access
 * token, and answers 401 once the test hooks expired or revoked it.
 */
import t from 'tap'
import { InteractionRequiredAuthError, PublicClientApplication, type INetworkModule, type NetworkResponse } from '@azure/msal-node'
import { createDispatcher } from '../../src/common/index.js'
import { startEmulator } from '../../src/emulator/server.js'
import { APPS } from '../../src/emulator/directory.js'

const PUBLIC = APPS.find((a) => a.clientId.endsWith('a001'))!
const SCOPES = ['Files.ReadWrite.All', 'User.Read']

t.test('msal + Graph through startEmulator', async (t) => {
  const emu = await startEmulator({ port: 0, seed: 'empty', deviceCodeIntervalSec: 0 })
  const dispatcher = await createDispatcher({ caFile: emu.info.ca })
  t.teardown(async () => {
    await emu.close()
    await dispatcher.close()
  })
  const authority = emu.info.authority
  const call = (url: string, init: RequestInit = {}) => fetch(url, { ...init, dispatcher } as RequestInit)
  const networkClient: INetworkModule = {
    async sendGetRequestAsync<T>(url: string, o?: { headers?: Record<string, string> }) {
      const r = await call(url, { headers: o?.headers })
      return { status: r.status, headers: Object.fromEntries(r.headers), body: await r.json() } as NetworkResponse<T>
    },
    async sendPostRequestAsync<T>(url: string, o?: { headers?: Record<string, string>; body?: string }) {
      const r = await call(url, { method: 'POST', headers: o?.headers, body: o?.body })
      return { status: r.status, headers: Object.fromEntries(r.headers), body: await r.json() } as NetworkResponse<T>
    },
  }
  const pca = new PublicClientApplication({
    auth: { clientId: PUBLIC.clientId, authority: `${authority}/common`, knownAuthorities: [new URL(authority).host] },
    system: { networkClient },
  })
  const me = (token: string) => call(`${emu.info.graph}/me`, { headers: { authorization: `Bearer ${token}` } })
  const hook = (name: string, body: unknown) => call(`${authority}/_emulator/identity/${name}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  })

  const first = await pca.acquireTokenByDeviceCode({
    scopes: SCOPES,
    deviceCodeCallback: (r) => {
      // the person, by hand: approve through the test hook over HTTPS
      void hook('approve', { user_code: r.userCode, account: 'user1' }).then((x) => x.text())
    },
  })
  t.equal(first?.account?.username, 'user1@contoso.onmicrosoft.com')
  const r1 = await me(first!.accessToken)
  t.equal(r1.status, 200)
  t.equal(((await r1.json()) as { userPrincipalName?: string }).userPrincipalName, 'user1@contoso.onmicrosoft.com')

  const exp = await hook('expire-access-tokens', { account: 'user1' })
  t.equal(exp.status, 200)
  await exp.text()
  const r2 = await me(first!.accessToken)
  t.equal(r2.status, 401, 'expired token refused by Graph')
  t.match(r2.headers.get('www-authenticate') ?? '', /Bearer/)
  await r2.text()

  const second = await pca.acquireTokenSilent({ account: first!.account!, scopes: SCOPES, forceRefresh: true })
  const r3 = await me(second.accessToken)
  t.equal(r3.status, 200, 'refreshed token accepted')
  await r3.text()

  const rv = await hook('revoke', { account: 'user1' })
  t.equal(rv.status, 200)
  await rv.text()
  const r4 = await me(second.accessToken)
  t.equal(r4.status, 401, 'revoked token refused by Graph')
  await r4.text()
  const err = await pca.acquireTokenSilent({ account: first!.account!, scopes: SCOPES, forceRefresh: true }).then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof InteractionRequiredAuthError)

  const disc = await call(`${authority}/organizations/v2.0/.well-known/openid-configuration`)
  t.equal(disc.status, 200)
  t.equal(((await disc.json()) as { issuer: string }).issuer, `${authority}/{tenantid}/v2.0`)
})
