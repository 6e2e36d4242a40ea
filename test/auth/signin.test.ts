// Sign-in flows end to end against the emulator's identity platform over real
// HTTPS, through msal-node and the shared dispatcher (ca_file, no NODE_EXTRA_CA_CERTS).
import t, { type Test } from 'tap'
import { PassThrough, Writable } from 'node:stream'
import { createLogger, ManualClock } from '../../src/common/index.js'
import {
  AuthError, createMsalApp, findSignedInAccount, loginWithBrowser, loginWithDeviceCode, MsalTokenProvider,
  credentialDocument, removeOtherAccounts, type TokenStore,
} from '../../src/auth/index.js'
import {
  startAuthEmulator, sandboxGateway, captureOutput, secretsOfCache, assertNoSecrets,
  PUBLIC_APP, CONFIDENTIAL_APP, SINGLE_TENANT_APP, ORGS_APP, PERSONAL_APP, type AuthEmulator,
} from '../support/auth.js'

const output = captureOutput()
let logText = ''
const logSink = new Writable({ write(c, _e, cb) { logText += c.toString(); cb() } })
const log = createLogger({ level: 'debug', destination: logSink as any })
const APP_SECRETS = [CONFIDENTIAL_APP.secret!, SINGLE_TENANT_APP.secret!]

/** What a subtest handled that must never be printed or logged: tokens of its stores and secrets. */
interface Handled {
  secrets: Set<string>
  stores: TokenStore[]
}
const handledBy = new WeakMap<object, Handled>()

/** Note secrets `t` handled (a serialized token cache, or secrets given as such). */
function handled(t: object, cache: string | null | undefined, extra: string[] = []): void {
  for (const s of secretsOfCache(cache, extra)) handledBy.get(t)!.secrets.add(s)
}

/**
 * A subtest that ends by checking that nothing printed or logged so far carries a
 * token or secret it handled: each one checks its own, none relies on another.
 */
function test(name: string, fn: (t: Test) => Promise<void>): void {
  t.test(name, async (t) => {
    const h: Handled = { secrets: new Set(APP_SECRETS), stores: [] }
    handledBy.set(t, h)
    await fn(t)
    for (const st of h.stores) handled(t, await st.load().catch(() => null))
    assertNoSecrets(t, output.text() + logText, h.secrets)
  })
}

let emu: AuthEmulator
t.before(async () => {
  emu = await startAuthEmulator()
})
t.teardown(async () => {
  await emu?.close()
})

/** A gateway for `app` at `on` (default: the shared emulator), signed in to nothing yet. */
async function gateway(t: Test, app: typeof PUBLIC_APP, extra: Record<string, unknown> = {}, on: AuthEmulator = emu) {
  const g = await sandboxGateway(t, on, app, { extra, log })
  handledBy.get(t)?.stores.push(g.store)
  return { ...g, msal: g.app, emu: on }
}

async function deviceLogin(g: Awaited<ReturnType<typeof gateway>>, account: string) {
  let prompt: { userCode: string; verificationUri: string } | undefined
  const approvals: Promise<unknown>[] = []
  const r = await loginWithDeviceCode({
    app: g.msal, config: g.config, dispatcher: g.dispatcher, log,
    onPrompt: (p) => {
      prompt = p
      approvals.push(g.emu.hook('approve', { user_code: p.userCode, account }))
    },
  })
  await Promise.all(approvals)
  return { r, prompt }
}

test('device code sign-in, public client: tokens land in the store, provider works', async (t) => {
  const g = await gateway(t, PUBLIC_APP)
  const { r, prompt } = await deviceLogin(g, 'user1')
  t.ok(prompt?.verificationUri.startsWith(emu.authority), 'verification URL from the server')
  t.match(prompt?.userCode, /^[A-Z0-9-]{6,}$/)
  t.equal(r.account!.username, 'user1@contoso.onmicrosoft.com')
  const stored = await g.store.load()
  t.ok(stored, 'token cache saved')
  const acc = await findSignedInAccount(g.msal, g.config)
  t.equal(acc.username, 'user1@contoso.onmicrosoft.com')
  const p = new MsalTokenProvider({ app: g.msal, config: g.config, account: acc, log })
  const tok = await p.getAccessToken()
  t.ok(tok.length > 20)
  // Graph accepts it (the emulator checks the token it issued)
  const me = await fetch(`${g.config.graphBaseUrl}/me`, { headers: { authorization: `Bearer ${tok}` }, dispatcher: g.dispatcher } as RequestInit)
  t.equal(me.status, 200, 'GET /me with the token')
  t.match(await me.json(), { userPrincipalName: 'user1@contoso.onmicrosoft.com' })
  const doc = credentialDocument(acc, p.scopes, new Date(p.expiresAt))
  t.equal(doc.email, 'user1@contoso.onmicrosoft.com')
  t.equal(doc.access_token, '<redacted>')
  t.ok(doc.scopes.some((s) => /Files\.ReadWrite\.All/i.test(s)))
  handled(t, stored)
})

test('device code sign-in, confidential client with secret', async (t) => {
  const g = await gateway(t, CONFIDENTIAL_APP)
  const { r } = await deviceLogin(g, 'personal1')
  t.equal(r.account!.username, 'personal1@outlook.com')
  const p = new MsalTokenProvider({ app: g.msal, config: g.config, account: r.account!, log })
  t.ok(await p.getAccessToken({ forceRefresh: true }), 'refresh with the secret works')
  handled(t, await g.store.load())
})

test('wrong client secret: a clear error naming the setting', async (t) => {
  const g = await gateway(t, { ...CONFIDENTIAL_APP, secret: 'wrong~secret-value-000000000000' })
  handled(t, undefined, ['wrong~secret-value-000000000000'])
  const err = await deviceLogin(g, 'user1').catch((e) => e)
  t.ok(err instanceof AuthError, 'typed error')
  t.equal(err.code, 'INVALID_CLIENT')
  t.match(err.message, /client secret \(setting "secret" in .*gateway\.json, or --ms-client-secret\) was rejected/)
  t.match(err.message, /AADSTS7000215/)
})

test('authorization code with PKCE over a real loopback redirect', async (t) => {
  const g = await gateway(t, PUBLIC_APP)
  emu.setAutoConsent('user2')
  t.teardown(() => emu.setAutoConsent(undefined))
  let redirect = ''
  const r = await loginWithBrowser({
    app: g.msal, config: g.config, dispatcher: g.dispatcher, log,
    onAuthorizeUrl: (url, redirectUri) => {
      redirect = redirectUri
      const u = new URL(url)
      t.equal(u.searchParams.get('code_challenge_method'), 'S256')
      t.ok(u.searchParams.get('code_challenge'))
      t.ok(u.searchParams.get('state'))
      // play the browser: the authorize endpoint redirects to our loopback listener
      void (async () => {
        const a = await fetch(url, { redirect: 'manual', dispatcher: g.dispatcher } as RequestInit)
        const loc = a.headers.get('location')!
        t.match(loc, /^http:\/\/localhost:\d+\/\?/, 'redirected to the loopback listener')
        const back = await fetch(loc.replace('//localhost:', '//127.0.0.1:'))
        t.equal(back.status, 200)
        t.match(await back.text(), /sign-in complete/)
      })()
    },
  })
  t.match(redirect, /^http:\/\/localhost:\d+\/$/)
  t.equal(r.account!.username, 'user2@contoso.onmicrosoft.com')
  handled(t, await g.store.load())
})

test('configured auth_callback: the user pastes the address the browser ended on', async (t) => {
  const g = await gateway(t, CONFIDENTIAL_APP, { auth_callback: 'https://gateway.example.org/api/v1/authcallback' })
  emu.setAutoConsent('user1')
  t.teardown(() => emu.setAutoConsent(undefined))
  const paste = new PassThrough()
  const r = await loginWithBrowser({
    app: g.msal, config: g.config, dispatcher: g.dispatcher, log, pasteInput: paste,
    onAuthorizeUrl: (url, redirectUri) => {
      t.equal(redirectUri, 'https://gateway.example.org/api/v1/authcallback')
      void (async () => {
        const a = await fetch(url, { redirect: 'manual', dispatcher: g.dispatcher } as RequestInit)
        const loc = a.headers.get('location')!
        t.match(loc, /^https:\/\/gateway\.example\.org\/api\/v1\/authcallback\?code=/)
        paste.write('not an address\n')
        paste.write(loc + '\n')
      })()
    },
  })
  t.equal(r.account!.username, 'user1@contoso.onmicrosoft.com')
  handled(t, await g.store.load())
})

test('a pasted redirect with a foreign state is refused', async (t) => {
  const g = await gateway(t, PUBLIC_APP)
  const paste = new PassThrough()
  const err = await loginWithBrowser({
    app: g.msal, config: g.config, dispatcher: g.dispatcher, log, pasteInput: paste,
    onAuthorizeUrl: (_url, redirectUri) => { paste.write(`${redirectUri}?code=abc&state=forged\n`) },
  }).catch((e) => e)
  t.equal(err.code, 'LOGIN_FAILED')
  t.match(err.message, /state that does not belong to this sign-in/)
})

test('without ca_file the private CA is not trusted: a clear error with the fix', async (t) => {
  const g = await gateway(t, PUBLIC_APP, { ca_file: '' })
  t.equal(g.config.caFile, undefined)
  const err = await deviceLogin(g, 'user1').catch((e) => e)
  t.equal(err.code, 'AUTH_NETWORK')
  t.match(err.message, /cannot reach the identity platform at https:\/\/127\.0\.0\.1:\d+: \S+ \(the server certificate is not trusted: set ca_file/)
})

test('a second sign-in replaces the first account', async (t) => {
  const g = await gateway(t, PUBLIC_APP)
  await deviceLogin(g, 'user1')
  const { r } = await deviceLogin(g, 'user2')
  await removeOtherAccounts(g.msal, r.account!.homeAccountId)
  const all = await g.msal.getTokenCache().getAllAccounts()
  t.same(all.map((a) => a.username), ['user2@contoso.onmicrosoft.com'])
  handled(t, await g.store.load())
})

test('silent refresh after the access token expires; refresh token rotates', async (t) => {
  const g = await gateway(t, PUBLIC_APP)
  const { r } = await deviceLogin(g, 'user1')
  const p = new MsalTokenProvider({ app: g.msal, config: g.config, account: r.account!, log })
  const first = await p.getAccessToken()
  const rt1 = secretsOfCache(await g.store.load()).join(' ')
  await emu.hook('expire-access-tokens', { account: 'user1' })
  // graph answers 401 on an expired token and asks again with forceRefresh
  const me = (tok: string) => fetch(`${g.config.graphBaseUrl}/me`, { headers: { authorization: `Bearer ${tok}` }, dispatcher: g.dispatcher } as RequestInit).then((r) => r.status)
  t.equal(await me(first), 401, 'Graph refuses the expired token')
  const second = await p.getAccessToken({ forceRefresh: true })
  t.not(second, first, 'a new access token')
  t.equal(await me(second), 200, 'Graph accepts the refreshed token')
  const after = await g.store.load()
  const rtAfter = JSON.parse(after!).RefreshToken
  t.ok(Object.values(rtAfter).every((e: any) => !rt1.includes(e.secret)), 'the stored refresh token was rotated')
  handled(t, after)
  // a fresh provider (a restarted daemon) refreshes from the stored cache
  const g2msal = await createMsalApp({ config: g.config, store: g.store, dispatcher: g.dispatcher, log })
  const p2 = new MsalTokenProvider({ app: g2msal, config: g.config, account: await findSignedInAccount(g2msal, g.config), log })
  t.ok(await p2.getAccessToken({ forceRefresh: true }))
  handled(t, await g.store.load())
})

test('short-lived access tokens are refreshed before they expire, without being asked', async (t) => {
  const short = await startAuthEmulator({ accessTokenTtlSec: 120 })
  t.teardown(() => short.close())
  const g = await gateway(t, PUBLIC_APP, {}, short)
  const { r } = await deviceLogin(g, 'user2')
  const p = new MsalTokenProvider({ app: g.msal, config: g.config, account: r.account!, log })
  const a = await p.getAccessToken()
  t.ok(p.expiresAt - Date.now() <= 121_000, 'the emulator issued a 2-minute token (msal rounds to seconds)')
  const before = p.refreshCount
  const b = await p.getAccessToken()
  t.not(b, a, 'inside the 5-minute margin: a fresh token, silently')
  t.equal(p.refreshCount, before + 1)
  handled(t, await g.store.load())
})

test('identity platform unreachable: the current token is kept, then a transient AUTH_NETWORK error', async (t) => {
  const gone = await startAuthEmulator()
  const g = await gateway(t, PUBLIC_APP, {}, gone)
  const { r } = await deviceLogin(g, 'user1')
  const clock = new ManualClock(Date.now())
  const p = new MsalTokenProvider({ app: g.msal, config: g.config, account: r.account!, log, clock })
  const tok = await p.getAccessToken()
  handled(t, await g.store.load())
  await gone.close()
  await clock.advance(3600_000 - 60_000)
  t.equal(await p.getAccessToken(), tok, 'still valid: kept while the refresh fails')
  await clock.advance(120_000)
  const err = await p.getAccessToken().catch((e) => e)
  t.ok(err instanceof AuthError)
  t.equal(err.code, 'AUTH_NETWORK', String(err.message))
})

test('revoked grant: typed REVOKED error telling the user to run odfs login', async (t) => {
  const g = await gateway(t, PUBLIC_APP)
  const { r } = await deviceLogin(g, 'personal2')
  const p = new MsalTokenProvider({ app: g.msal, config: g.config, account: r.account!, log })
  await p.getAccessToken()
  handled(t, await g.store.load())
  const rev = await emu.hook('revoke', { account: 'personal2' })
  t.equal(rev.status, 200)
  const err = await p.getAccessToken({ forceRefresh: true }).catch((e) => e)
  t.ok(err instanceof AuthError)
  t.equal(err.code, 'REVOKED')
  t.match(err.message, 'run `odfs login` again')
})

test('a user of another tenant is rejected by a single-tenant app', async (t) => {
  const g = await gateway(t, SINGLE_TENANT_APP)
  t.equal(g.config.authority, `${emu.authority}/${SINGLE_TENANT_APP.tenantId}`)
  const err = await deviceLogin(g, 'other1').catch((e) => e)
  t.ok(err instanceof AuthError)
  t.equal(err.code, 'ACCOUNT_NOT_ALLOWED')
  t.match(err.message, /may not use the app registration \(account_types single-tenant, tenant /)
  t.match(err.message, /AADSTS50020/)
  // the home tenant's user is fine
  const ok = await deviceLogin(g, 'user1')
  t.equal(ok.r.account!.tenantId, SINGLE_TENANT_APP.tenantId)
  handled(t, await g.store.load())
})

test('a personal account is rejected for an organizations-only app', async (t) => {
  const g = await gateway(t, ORGS_APP)
  t.equal(g.config.authority, `${emu.authority}/organizations`)
  const err = await deviceLogin(g, 'personal1').catch((e) => e)
  t.equal(err.code, 'ACCOUNT_NOT_ALLOWED')
  t.match(err.message, /account_types multitenant/)
  // and a work account is rejected by the personal-only app
  const gp = await gateway(t, PERSONAL_APP)
  t.equal(gp.config.authority, `${emu.authority}/consumers`)
  const err2 = await deviceLogin(gp, 'user1').catch((e) => e)
  t.equal(err2.code, 'ACCOUNT_NOT_ALLOWED')
})
