// The access token read from msal's serialized cache without msal: it is the one
// msal itself returns for a cache msal wrote (checked against the emulator), and
// any doubt (another client, tenant, host, scope set, two accounts or tokens, a
// bound or expiring token, a cache that does not parse) gives undefined.
import t from 'tap'
import { cachedAccessToken, findSignedInAccount, loginWithDeviceCode, type CachedAccessToken } from '../../src/auth/index.js'
import type { GatewayConfig } from '../../src/config/index.js'
import { silentLogger } from '../../src/common/index.js'
import { PUBLIC_APP, sandboxGateway, startAuthEmulator } from '../support/auth.js'

const NOW = Date.UTC(2026, 11, 1, 12, 0, 0)
const MARGIN = 5 * 60_000
const HOME = 'oid-1.tid-1'
const config: Pick<GatewayConfig, 'clientId' | 'loginEndpoint' | 'authority' | 'scopes'> = {
  clientId: 'client-1',
  loginEndpoint: 'https://login.example:8443',
  authority: 'https://login.example:8443/common',
  scopes: ['Files.ReadWrite.All', 'User.Read', 'offline_access', 'openid', 'profile', 'email'],
}

function account(over: Record<string, unknown> = {}) {
  return {
    home_account_id: HOME, environment: 'login.example:8443', realm: 'tid-1', local_account_id: 'oid-1',
    username: 'u@contoso.example', authority_type: 'MSSTS', name: 'U', ...over,
  }
}
function token(over: Record<string, unknown> = {}) {
  return {
    home_account_id: HOME, environment: 'login.example:8443', credential_type: 'AccessToken', client_id: 'client-1',
    secret: 'the-token', realm: 'tid-1', target: 'files.readwrite.all User.Read', cached_at: String(NOW / 1000 - 60),
    expires_on: String(NOW / 1000 + 3600), extended_expires_on: String(NOW / 1000 + 7200), token_type: 'Bearer', ...over,
  }
}
function cache(tokens: Record<string, unknown>[] = [token()], accounts: Record<string, unknown>[] = [account()]): string {
  return JSON.stringify({
    Account: Object.fromEntries(accounts.map((a, i) => [`a${i}`, a])),
    AccessToken: Object.fromEntries(tokens.map((x, i) => [`t${i}`, x])),
    RefreshToken: { r: { home_account_id: HOME, credential_type: 'RefreshToken', secret: 'rt' } },
  })
}

t.test('a valid token of this client, host, tenant and scopes is taken, with its account', async (t) => {
  const got = cachedAccessToken(cache(), config, NOW, MARGIN)
  t.equal(got?.accessToken, 'the-token')
  t.equal(got?.expiresOn.getTime(), NOW + 3600_000)
  t.same(got?.scopes, ['files.readwrite.all', 'User.Read'])
  t.match(got?.account, { homeAccountId: HOME, environment: 'login.example:8443', tenantId: 'tid-1', username: 'u@contoso.example', localAccountId: 'oid-1', name: 'U' })
  t.equal(cachedAccessToken(cache([token({ token_type: undefined })]), config, NOW, MARGIN)?.accessToken, 'the-token', 'no token_type is a bearer token')
  t.equal(cachedAccessToken(cache([token({ key_id: '', additionalCacheKeyComponents: {} })]), config, NOW, MARGIN)?.accessToken, 'the-token', 'empty extras')
})

t.test('anything msal might answer otherwise gives undefined', async (t) => {
  const none = (what: string, c: string | null, at = NOW) => t.equal(cachedAccessToken(c, config, at, MARGIN), undefined, what)
  none('no cache', null)
  none('an empty cache', '')
  none('not JSON', '{"Account":')
  none('not an object', '42')
  none('no account', cache([token()], []))
  none('two accounts', cache([token()], [account(), account({ home_account_id: 'other', local_account_id: 'o' })]))
  none('an account of another login host', cache([token()], [account({ environment: 'login.microsoftonline.com' })]))
  none('no token', cache([]))
  none('two matching tokens', cache([token(), token({ secret: 'second' })]))
  none('another client', cache([token({ client_id: 'client-2' })]))
  none('another tenant', cache([token({ realm: 'tid-2' })]))
  none('another account', cache([token({ home_account_id: 'other' })]))
  none('another host', cache([token({ environment: 'login.microsoftonline.com' })]))
  none('a refresh token entry', cache([token({ credential_type: 'RefreshToken' })]))
  none('a PoP token', cache([token({ token_type: 'pop', key_id: 'k' })]))
  none('bound to a key', cache([token({ key_id: 'k' })]))
  none('an on-behalf-of token', cache([token({ userAssertionHash: 'h' })]))
  none('extra cache key components', cache([token({ additionalCacheKeyComponents: { a: 1 } })]))
  none('a scope missing', cache([token({ target: 'User.Read' })]))
  none('no secret', cache([token({ secret: '' })]))
  none('no expiry', cache([token({ expires_on: undefined })]))
  none('expiry not a number', cache([token({ expires_on: 'soon' })]))
  none('expired', cache([token({ expires_on: String(NOW / 1000 - 1) })]))
  none('inside the refresh margin', cache([token({ expires_on: String((NOW + MARGIN) / 1000) })]))
  none('due for an early refresh', cache([token({ refresh_on: String(NOW / 1000 - 1) })]))
  none('cached in the future (clock skew)', cache([token({ cached_at: String(NOW / 1000 + 600) })]))
  t.ok(cachedAccessToken(cache([token({ expires_on: String((NOW + MARGIN) / 1000 + 1) })]), config, NOW, MARGIN), 'one second past the margin is enough')
  const at = (authority: string) => ({ ...config, authority: `https://login.example:8443/${authority}` })
  const personal = '9188040d-6c67-4c5b-b112-36a304b66dad'
  const ofTenant = (tid: string) => cache([token({ realm: tid })], [account({ realm: tid })])
  t.ok(cachedAccessToken(ofTenant('tid-1'), at('TID-1'), NOW, MARGIN), 'a single-tenant authority: its own tenant')
  t.equal(cachedAccessToken(ofTenant('tid-2'), at('tid-1'), NOW, MARGIN), undefined, 'a single-tenant authority: another tenant')
  t.equal(cachedAccessToken(ofTenant('tid-1'), at('contoso.example'), NOW, MARGIN), undefined, 'a tenant named by domain: no id to compare, so msal')
  t.ok(cachedAccessToken(ofTenant('tid-1'), at('organizations'), NOW, MARGIN), 'organizations: a work account')
  t.equal(cachedAccessToken(ofTenant(personal), at('organizations'), NOW, MARGIN), undefined, 'organizations: not a personal account')
  t.ok(cachedAccessToken(ofTenant(personal), at('consumers'), NOW, MARGIN), 'consumers: a personal account')
  t.equal(cachedAccessToken(ofTenant('tid-1'), at('consumers'), NOW, MARGIN), undefined, 'consumers: not a work account')
  t.ok(cachedAccessToken(cache([token(), token({ client_id: 'client-2', secret: 'x' })]), config, NOW, MARGIN), 'a token of another client beside it does not matter')
})

t.test('for a cache msal wrote, the token and account are the ones msal returns', async (t) => {
  const emu = await startAuthEmulator()
  t.teardown(() => emu.close())
  emu.setAutoConsent('user1')
  const g = await sandboxGateway(t, emu, PUBLIC_APP)
  await loginWithDeviceCode({ app: g.app, config: g.config, dispatcher: g.dispatcher, log: silentLogger, onPrompt: () => {} })
  const account = await findSignedInAccount(g.app, g.config)
  const viaMsal = await g.app.acquireTokenSilent({ account, scopes: g.config.scopes })
  const ours: CachedAccessToken | undefined = cachedAccessToken(await g.store.load(), g.config, Date.now(), MARGIN)
  t.ok(ours, 'read without msal')
  t.equal(ours!.accessToken, viaMsal.accessToken, 'the same token')
  t.equal(Math.floor(ours!.expiresOn.getTime() / 1000), Math.floor(viaMsal.expiresOn!.getTime() / 1000), 'the same expiry')
  t.match(ours!.account, { homeAccountId: account.homeAccountId, environment: account.environment, tenantId: account.tenantId, username: account.username, localAccountId: account.localAccountId })
  t.equal(cachedAccessToken(await g.store.load(), g.config, viaMsal.expiresOn!.getTime() - MARGIN, MARGIN), undefined, 'not once inside the margin')
})
