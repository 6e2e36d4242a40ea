// The token provider's own logic (expiry margin, shared refresh, keep-alive, error
// mapping) against a scripted msal app and a ManualClock; the real flows are in
// signin.test.ts against the emulator.
import t from 'tap'
import { ManualClock } from '../../src/common/index.js'
import { MsalTokenProvider, AuthError, toAuthError, credentialDocument, accountKind } from '../../src/auth/index.js'
import type { GatewayConfig } from '../../src/config/index.js'
import type { TokenProvider } from '../../src/graph/index.js'

const config: GatewayConfig = {
  clientId: 'a0d1f5e0-0000-4000-8000-00000000a001', userApiRateLimit: 20, accountTypes: 'multitenant-and-personal',
  cloud: 'global', sharedLibraries: false, loginEndpoint: 'https://login.example', graphBaseUrl: 'https://graph.example/v1.0',
  authority: 'https://login.example/common', scopes: ['Files.ReadWrite.All'], source: ['/etc/odfs/gateway.json'],
}
const account = {
  homeAccountId: 'h', environment: 'e', tenantId: '9188040d-6c67-4c5b-b112-36a304b66dad', username: 'p@outlook.com',
  localAccountId: 'oid-1', idTokenClaims: { sub: 'sub-1', email: 'p@outlook.com' },
}

function fakeApp(script: { fail?: () => unknown; lifetimeMs?: number } = {}) {
  const calls: { forceRefresh?: boolean }[] = []
  let n = 0
  let release: (() => void) | undefined
  const app = {
    gate: false,
    async acquireTokenSilent(req: { forceRefresh?: boolean }) {
      calls.push({ forceRefresh: req.forceRefresh })
      if (app.gate) await new Promise<void>((r) => (release = r))
      const f = script.fail?.()
      if (f) throw f
      n++
      return { accessToken: `at-${n}`, expiresOn: new Date(Date.now() + (script.lifetimeMs ?? 3600_000)), scopes: ['Files.ReadWrite.All'], account }
    },
    open() {
      release?.()
    },
  }
  return { app, calls }
}

t.test('cached until the margin, then one forced refresh', async (t) => {
  const clock = new ManualClock()
  const { app, calls } = fakeApp()
  const p = new MsalTokenProvider({ app: app as any, config, account: account as any, clock })
  const asGraphSees: TokenProvider = p // structural: auth never imports graph
  t.equal(await asGraphSees.getAccessToken(), 'at-1')
  t.equal(await p.getAccessToken(), 'at-1')
  t.equal(calls.length, 1)
  t.equal(calls[0]!.forceRefresh, false, 'the first call may come from the cache')
  await clock.advance(3600_000 - 6 * 60_000)
  t.equal(await p.getAccessToken(), 'at-1', 'still more than 5 min left')
  await clock.advance(2 * 60_000)
  t.equal(await p.getAccessToken(), 'at-2', 'inside the margin: refreshed')
  t.equal(calls[1]!.forceRefresh, true)
  t.equal(await p.getAccessToken({ forceRefresh: true }), 'at-3')
})

t.test('concurrent callers share one refresh', async (t) => {
  const clock = new ManualClock()
  const { app, calls } = fakeApp()
  const p = new MsalTokenProvider({ app: app as any, config, account: account as any, clock })
  app.gate = true
  const all = Promise.all(Array.from({ length: 20 }, () => p.getAccessToken()))
  await new Promise((r) => setImmediate(r))
  app.open()
  const tokens = await all
  t.same(new Set(tokens), new Set(['at-1']))
  t.equal(calls.length, 1)
})

t.test('an aborted caller does not cancel the shared refresh', async (t) => {
  const clock = new ManualClock()
  const { app, calls } = fakeApp()
  const p = new MsalTokenProvider({ app: app as any, config, account: account as any, clock })
  app.gate = true
  const ac = new AbortController()
  const a = p.getAccessToken({ signal: ac.signal })
  const b = p.getAccessToken()
  await new Promise((r) => setImmediate(r))
  ac.abort(new Error('gave up'))
  await t.rejects(a, /gave up/)
  app.open()
  t.equal(await b, 'at-1')
  t.equal(calls.length, 1)
})

t.test('transient failure keeps the still-valid token; revoked raises REVOKED with the relogin hint', async (t) => {
  const clock = new ManualClock()
  let failWith: unknown
  const { app } = fakeApp({ fail: () => failWith })
  const p = new MsalTokenProvider({ app: app as any, config, account: account as any, clock })
  t.equal(await p.getAccessToken(), 'at-1')
  await clock.advance(3600_000 - 60_000)
  failWith = Object.assign(new Error('network'), { errorCode: 'network_error', errorMessage: 'Network request failed' })
  t.equal(await p.getAccessToken(), 'at-1', 'network trouble: the current token is still good')
  await clock.advance(120_000)
  const e1 = await p.getAccessToken().catch((e) => e)
  t.ok(e1 instanceof AuthError)
  t.equal(e1.code, 'AUTH_NETWORK', 'expired and unreachable: transient error')
  failWith = { errorCode: 'invalid_grant', errorMessage: 'AADSTS50173: The provided grant has expired due to it being revoked.', subError: 'bad_token' }
  const e2 = await p.getAccessToken().catch((e) => e)
  t.equal(e2.code, 'REVOKED')
  t.match(e2.message, 'run `odfs login` again')
  failWith = { errorCode: 'invalid_grant', errorMessage: 'AADSTS700082: The refresh token has expired due to inactivity.', subError: 'bad_token' }
  const e3 = await p.getAccessToken().catch((e) => e)
  t.equal(e3.code, 'NEEDS_LOGIN')
  t.match(e3.message, 'run `odfs login` again')
})

t.test('keep-alive refreshes an idle provider daily and reports a fatal failure', async (t) => {
  const clock = new ManualClock()
  let failWith: unknown
  const { app, calls } = fakeApp({ fail: () => failWith, lifetimeMs: 3600_000 })
  const p = new MsalTokenProvider({ app: app as any, config, account: account as any, clock, keepAliveMs: 24 * 3600_000 })
  await p.getAccessToken()
  const fatal: AuthError[] = []
  p.startKeepAlive((e) => fatal.push(e))
  t.teardown(() => p.stopKeepAlive())
  await clock.advance(23 * 3600_000)
  t.equal(calls.length, 1, 'nothing before a day has passed')
  await clock.advance(3600_000)
  await new Promise((r) => setImmediate(r))
  t.equal(calls.length, 2, 'refreshed after a day idle')
  t.equal(calls[1]!.forceRefresh, true)
  failWith = { errorCode: 'invalid_grant', errorMessage: 'AADSTS50173: revoked' }
  await clock.advance(24 * 3600_000)
  await new Promise((r) => setImmediate(r))
  t.equal(fatal.length, 1)
  t.equal(fatal[0]!.code, 'REVOKED')
})

t.test('error mapping names the setting to fix', async (t) => {
  const secretCfg = { ...config, secret: 'x' }
  const e = toAuthError({ errorCode: 'invalid_client', errorMessage: 'AADSTS7000215: Invalid client secret provided.' }, secretCfg, 'sign-in')
  t.equal(e.code, 'INVALID_CLIENT')
  t.match(e.message, /client secret \(setting "secret" in \/etc\/odfs\/gateway.json, or --ms-client-secret\) was rejected/)
  const w = toAuthError({ error: 'invalid_grant', error_description: "AADSTS50020: User account 'other1@fabrikam' does not exist in tenant 'Contoso'" }, config, 'sign-in')
  t.equal(w.code, 'ACCOUNT_NOT_ALLOWED')
  const u = toAuthError({ error: 'unauthorized_client', error_description: 'AADSTS700016: Application not found' }, config, 'sign-in')
  t.equal(u.code, 'INVALID_CLIENT')
  t.match(u.message, /setting "client_id"/)
})

t.test('credential document has the seed shape with tokens redacted', async (t) => {
  const d = credentialDocument(account as any, ['Files.ReadWrite.All'], new Date(Date.UTC(2026, 1, 4, 21, 44, 12, 345)))
  t.same(d, {
    DATA_TYPE: 'onedrive_user_credential_policies#1.0.0', sub: 'sub-1', email: 'p@outlook.com',
    access_token: '<redacted>', refresh_token: '<redacted>', scopes: ['Files.ReadWrite.All'], token_expiry: '2026-02-04T21:44:12Z',
  })
  t.equal(accountKind(account as any), 'personal')
})

t.test('a token read from the cache is used without msal; msal is loaded once, when a refresh is due', async (t) => {
  const clock = new ManualClock()
  const { app, calls } = fakeApp()
  let loads = 0
  const msalAccount = { ...account, idTokenClaims: { sub: 'sub-1', email: 'p@outlook.com', name: 'from msal' } }
  const withAccounts = { ...app, getTokenCache: () => ({ getAllAccounts: async () => [msalAccount] }) }
  const cachedAccount = { homeAccountId: 'h', environment: 'e', tenantId: account.tenantId, username: 'p@outlook.com', localAccountId: 'oid-1' }
  const p = new MsalTokenProvider({
    app: async () => (loads++, withAccounts as any),
    config,
    cached: { accessToken: 'from-cache', expiresOn: new Date(Date.now() + 3600_000), scopes: ['Files.ReadWrite.All'], account: cachedAccount },
    clock,
  })
  t.equal(await p.getAccessToken(), 'from-cache')
  t.equal(p.account, cachedAccount)
  t.equal(loads, 0, 'msal not loaded')
  t.ok(p.expiresAt > clock.now() + 3500_000)
  await clock.advance(3600_000 - 4 * 60_000)
  t.equal(await p.getAccessToken(), 'at-1', 'inside the margin: refreshed through msal')
  t.equal(loads, 1)
  t.same(calls, [{ forceRefresh: true }])
  t.equal(p.account, account, "the account msal answered with")
  t.equal(await p.getAccessToken({ forceRefresh: true }), 'at-2')
  t.equal(loads, 1, 'loaded once')
  t.throws(() => new MsalTokenProvider({ app: app as any, config }), TypeError, 'an account or a cached token is needed')
})
