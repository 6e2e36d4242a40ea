/**
 * The emulator's identity platform over real HTTPS, driven the way curl or a
 * hand-written client would: discovery, device code, auth code + PKCE,
 * confidential clients, account-type rules, refresh rotation, revocation and
 * access-token checks. Secrets seen are collected and the test output is
 * checked not to contain any of them.
 */
import t, { type Test } from 'tap'
import { createPublicKey, verify } from 'node:crypto'
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import { ManualClock } from '../../src/common/index.js'
import { APPS, CONTOSO, FABRIKAM, PERSONAL_TENANT_ID, findAccount, type AccountTypes, type RedirectPlatform } from '../../src/emulator/directory.js'
import { registrationProblems } from '../../src/emulator/identity/rules.js'
import { startIdp, cleanupCerts, pkcePair, decodeJwt, type IdpServer } from './identity-support.js'
import { captureOutput } from '../support/auth.js'

const execFileP = promisify(execFile)
const PUBLIC = APPS.find((a) => a.clientId.endsWith('a001'))!
const CONF = APPS.find((a) => a.clientId.endsWith('a002'))!
const SINGLE = APPS.find((a) => a.accountTypes === 'single-tenant')!
const ORGS = APPS.find((a) => a.accountTypes === 'multitenant')!
const PERSONAL = APPS.find((a) => a.accountTypes === 'personal')!

// ---- output capture: no secret may ever reach stdout/stderr -----------------
const secrets = new Set<string>()
const output = captureOutput()
const keep = <T extends Record<string, any>>(body: T): T => {
  for (const k of ['access_token', 'refresh_token', 'id_token', 'device_code', 'code']) {
    if (typeof body?.[k] === 'string') secrets.add(body[k])
  }
  return body
}

t.teardown(cleanupCerts)

async function deviceLogin(s: IdpServer, opts: { tenant?: string; clientId?: string; scope?: string; account?: string; secret?: string } = {}) {
  const tenant = opts.tenant ?? 'common'
  const clientId = opts.clientId ?? PUBLIC.clientId
  const dc = keep(await s.form(`/${tenant}/oauth2/v2.0/devicecode`, { client_id: clientId, scope: opts.scope ?? 'openid profile offline_access Files.ReadWrite.All User.Read' }))
  if (dc.status !== 200) return { dc, approve: undefined, token: undefined }
  const approve = await s.hook('approve', { user_code: dc.body.user_code, account: opts.account ?? 'user1' })
  const form: Record<string, string> = { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: clientId, device_code: dc.body.device_code }
  if (opts.secret) form.client_secret = opts.secret
  const token = await s.form(`/${tenant}/oauth2/v2.0/token`, form)
  keep(token.body)
  return { dc, approve, token }
}

function assertAadError(t: Test, r: { status: number; body: any }, status: number, error: string, code?: number) {
  t.equal(r.status, status, `status ${status}`)
  t.equal(r.body.error, error, `error ${error}`)
  if (code !== undefined) {
    t.match(r.body.error_description, new RegExp(`^AADSTS${code}: `), `AADSTS${code}`)
    t.same(r.body.error_codes, [code])
  }
  t.match(r.body, { timestamp: /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/, trace_id: /^[0-9a-f-]{36}$/, correlation_id: /^[0-9a-f-]{36}$/ })
}

t.test('openid-configuration and keys per tenant', async (t) => {
  const s = await startIdp()
  t.teardown(() => s.close())
  const cases: [string, string, string][] = [
    ['common', `${s.base}/{tenantid}/v2.0`, 'common'],
    ['organizations', `${s.base}/{tenantid}/v2.0`, 'organizations'],
    ['consumers', `${s.base}/${PERSONAL_TENANT_ID}/v2.0`, 'consumers'],
    [CONTOSO.id, `${s.base}/${CONTOSO.id}/v2.0`, CONTOSO.id],
    [CONTOSO.domain, `${s.base}/${CONTOSO.id}/v2.0`, CONTOSO.id],
  ]
  for (const [seg, issuer, epSeg] of cases) {
    const r = await s.fetch(`/${seg}/v2.0/.well-known/openid-configuration`)
    t.equal(r.status, 200, seg)
    const c: any = await r.json()
    t.equal(c.issuer, issuer, `${seg} issuer`)
    t.equal(c.token_endpoint, `${s.base}/${epSeg}/oauth2/v2.0/token`)
    t.equal(c.authorization_endpoint, `${s.base}/${epSeg}/oauth2/v2.0/authorize`)
    t.equal(c.device_authorization_endpoint, `${s.base}/${epSeg}/oauth2/v2.0/devicecode`)
    t.equal(c.end_session_endpoint, `${s.base}/${epSeg}/oauth2/v2.0/logout`)
    t.equal(c.jwks_uri, `${s.base}/${epSeg}/discovery/v2.0/keys`)
    t.ok(c.response_types_supported.includes('code'))
    t.same(c.scopes_supported, ['openid', 'profile', 'email', 'offline_access'])
  }
  const bad = await s.fetch('/nosuch.onmicrosoft.com/v2.0/.well-known/openid-configuration')
  assertAadError(t, { status: bad.status, body: await bad.json() }, 400, 'invalid_tenant', 90002)

  // id_token signatures verify with the published key
  const keys: any = await (await s.fetch('/common/discovery/v2.0/keys')).json()
  t.equal(keys.keys.length, 1)
  t.match(keys.keys[0], { kty: 'RSA', use: 'sig', kid: String, n: String, e: String })
  const { token } = await deviceLogin(s)
  const idt = token!.body.id_token as string
  const { header } = decodeJwt(idt)
  t.equal(header.kid, keys.keys[0].kid)
  const [h, p, sig] = idt.split('.')
  const pub = createPublicKey({ key: keys.keys[0], format: 'jwk' })
  t.ok(verify('sha256', Buffer.from(`${h}.${p}`), pub, Buffer.from(sig!, 'base64url')), 'id_token signature verifies')
  t.notOk(verify('sha256', Buffer.from(`${h}.${p}x`), pub, Buffer.from(sig!, 'base64url')), 'a changed payload does not')
})

t.test('device code flow by hand', async (t) => {
  const s = await startIdp()
  t.teardown(() => s.close())
  const dc = keep(await s.form('/common/oauth2/v2.0/devicecode', { client_id: PUBLIC.clientId, scope: 'openid profile email offline_access https://graph.microsoft.com/Files.ReadWrite.All User.Read' }))
  t.equal(dc.status, 200)
  t.match(dc.body.user_code, /^[A-Z2-9]{8}$/)
  t.equal(dc.body.verification_uri, `${s.base}/devicelogin`)
  t.equal(dc.body.expires_in, 900)
  t.equal(dc.body.interval, 0)
  t.equal(dc.body.message, `To sign in, use a web browser to open the page ${s.base}/devicelogin and enter the code ${dc.body.user_code} to authenticate.`)
  t.notOk('verification_uri_complete' in dc.body)

  const poll = (grant = 'device_code') => s.form('/common/oauth2/v2.0/token', { grant_type: grant, client_id: PUBLIC.clientId, device_code: dc.body.device_code })
  assertAadError(t, await poll(), 400, 'authorization_pending', 70016)
  assertAadError(t, await poll('urn:ietf:params:oauth:grant-type:device_code'), 400, 'authorization_pending', 70016)

  // the page a person uses
  const page = await s.fetch(`/devicelogin?otc=${dc.body.user_code}`)
  t.equal(page.status, 200)
  const html = await page.text()
  t.match(html, /<form method="post" action="\/devicelogin">/)
  t.match(html, new RegExp(`value="${dc.body.user_code}"`))
  const wrong = await s.form('/devicelogin', { user_code: 'ZZZZ9999', account: 'user1', action: 'approve' })
  t.equal(wrong.status, 400)
  t.match(wrong.body, /code didn&#39;t work/)
  const ok = await s.form('/devicelogin', { user_code: dc.body.user_code.toLowerCase().replace(/^(....)/, '$1-'), account: 'user1', action: 'approve' })
  t.equal(ok.status, 200)
  t.match(ok.body, /You have signed in to the odfs public client application on your device/)

  const tok = keep(await poll('urn:ietf:params:oauth:grant-type:device_code'))
  t.equal(tok.status, 200)
  t.match(tok.body, { token_type: 'Bearer', scope: 'Files.ReadWrite.All User.Read', expires_in: 3600, ext_expires_in: 3600, access_token: String, refresh_token: String, id_token: String, client_info: String })
  const user1 = findAccount('user1')!
  t.same(JSON.parse(Buffer.from(tok.body.client_info, 'base64url').toString()), { uid: user1.oid, utid: user1.tenantId })
  const { payload } = decodeJwt(tok.body.id_token)
  t.match(payload, { aud: PUBLIC.clientId, iss: `${s.base}/${CONTOSO.id}/v2.0`, oid: user1.oid, tid: CONTOSO.id, preferred_username: user1.upn, email: user1.email, name: user1.displayName, ver: '2.0', sub: /^[A-Za-z0-9_-]{43}$/ })
  t.ok(payload.exp > payload.iat && payload.nbf <= payload.iat + 1)
  t.equal(cacheHeader(tok.headers), 'no-store, no-cache')
  const check = s.idp.verifyAccessToken(`Bearer ${tok.body.access_token}`)
  t.ok(check.ok, 'access token verifies')
  if (check.ok) {
    t.equal(check.account.handle, 'user1')
    t.equal(check.clientId, PUBLIC.clientId)
    t.same(check.scopes, ['Files.ReadWrite.All', 'User.Read'])
  }
  // a device code is single use
  assertAadError(t, await poll(), 400, 'invalid_grant', 54005)
  // sub is pairwise: stable per app+user, different for another app
  const again = await deviceLogin(s)
  t.equal(decodeJwt(again.token!.body.id_token).payload.sub, payload.sub)
  const other = await deviceLogin(s, { clientId: ORGS.clientId })
  t.not(decodeJwt(other.token!.body.id_token).payload.sub, payload.sub)
  // without offline_access no refresh token; without openid no id_token
  const bare = await deviceLogin(s, { scope: 'Files.ReadWrite.All' })
  t.equal(bare.token!.status, 200)
  t.notOk('refresh_token' in bare.token!.body)
  t.notOk('id_token' in bare.token!.body)
})

function cacheHeader(h: Headers): string | null {
  return h.get('cache-control')
}

const haveCurl = (() => {
  try {
    execFileSync('curl', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

t.test('device code flow with curl, as a person does it by hand', { skip: haveCurl ? false : 'curl is not installed' }, async (t) => {
  const s = await startIdp()
  t.teardown(() => s.close())
  const curl = async (path: string, ...data: string[]) => {
    const args = ['-sS', '--cacert', s.caFile, '-w', '\n%{http_code}']
    for (const d of data) args.push('--data-urlencode', d)
    args.push(s.base + path)
    const { stdout } = await execFileP('curl', args)
    const nl = stdout.lastIndexOf('\n')
    const text = stdout.slice(0, nl)
    let body: any = text
    try { body = JSON.parse(text) } catch { /* html */ }
    return { status: Number(stdout.slice(nl + 1)), body }
  }
  const dc = await curl('/organizations/oauth2/v2.0/devicecode', `client_id=${PUBLIC.clientId}`, 'scope=Files.ReadWrite.All offline_access')
  keep(dc.body)
  t.equal(dc.status, 200)
  const pending = await curl('/organizations/oauth2/v2.0/token', 'grant_type=urn:ietf:params:oauth:grant-type:device_code', `client_id=${PUBLIC.clientId}`, `device_code=${dc.body.device_code}`)
  assertAadError(t, pending, 400, 'authorization_pending', 70016)
  const page = await curl('/devicelogin', `user_code=${dc.body.user_code}`, 'account=user2', 'action=approve')
  t.equal(page.status, 200)
  const tok = await curl('/organizations/oauth2/v2.0/token', 'grant_type=urn:ietf:params:oauth:grant-type:device_code', `client_id=${PUBLIC.clientId}`, `device_code=${dc.body.device_code}`)
  keep(tok.body)
  t.equal(tok.status, 200)
  const check = s.idp.verifyAccessToken(`Bearer ${tok.body.access_token}`)
  t.equal(check.ok && check.account.handle, 'user2')
})

t.test('device code errors: decline, slow_down, expired, bad code, bad requests', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1))
  const s = await startIdp({ clock, deviceCodeIntervalSec: 5, deviceCodeTtlSec: 60 })
  t.teardown(() => s.close())
  const start = async () => keep(await s.form('/organizations/oauth2/v2.0/devicecode', { client_id: PUBLIC.clientId, scope: 'Files.ReadWrite.All offline_access' })).body
  const poll = (dc: any) => s.form('/organizations/oauth2/v2.0/token', { grant_type: 'device_code', client_id: PUBLIC.clientId, device_code: dc.device_code })

  const a = await start()
  t.equal(a.interval, 5)
  assertAadError(t, await poll(a), 400, 'authorization_pending', 70016)
  assertAadError(t, await poll(a), 400, 'slow_down')
  await clock.advance(5000)
  assertAadError(t, await poll(a), 400, 'authorization_pending', 70016)
  await clock.advance(56_000)
  assertAadError(t, await poll(a), 400, 'expired_token', 70019)
  t.equal((await s.hook('approve', { user_code: a.user_code, account: 'user1' })).status, 404, 'an expired code cannot be approved')

  const b = await start()
  const declined = await s.form('/devicelogin', { user_code: b.user_code, account: 'user1', action: 'decline' })
  t.equal(declined.status, 200)
  assertAadError(t, await poll(b), 400, 'authorization_declined')

  const c = await start()
  t.equal((await s.hook('decline', { user_code: c.user_code })).status, 200)
  assertAadError(t, await poll(c), 400, 'authorization_declined')

  assertAadError(t, await poll({ device_code: 'DAQABnotarealcode' }), 400, 'bad_verification_code')
  const d = await start()
  const otherClient = await s.form('/organizations/oauth2/v2.0/token', { grant_type: 'device_code', client_id: ORGS.clientId, device_code: d.device_code })
  assertAadError(t, otherClient, 400, 'bad_verification_code')

  assertAadError(t, await s.form('/organizations/oauth2/v2.0/devicecode', { client_id: '0000aaaa-0000-4000-8000-000000000000', scope: 'User.Read' }), 400, 'unauthorized_client', 700016)
  assertAadError(t, await s.form('/organizations/oauth2/v2.0/devicecode', { scope: 'User.Read' }), 400, 'invalid_request', 900144)
  assertAadError(t, await s.form('/organizations/oauth2/v2.0/devicecode', { client_id: PUBLIC.clientId }), 400, 'invalid_request', 900144)
  assertAadError(t, await s.form('/organizations/oauth2/v2.0/devicecode', { client_id: PUBLIC.clientId, scope: 'Mail.Send' }), 400, 'invalid_scope', 70011)
  assertAadError(t, await s.form('/nosuchtenant/oauth2/v2.0/devicecode', { client_id: PUBLIC.clientId, scope: 'User.Read' }), 400, 'invalid_tenant', 90002)
  // token endpoint: form-encoded only, known grants only, POST only
  const json = await s.fetch('/organizations/oauth2/v2.0/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ grant_type: 'device_code' }) })
  assertAadError(t, { status: json.status, body: await json.json() }, 400, 'invalid_request', 900144)
  assertAadError(t, await s.form('/organizations/oauth2/v2.0/token', { grant_type: 'password', client_id: PUBLIC.clientId }), 400, 'unsupported_grant_type', 70003)
  assertAadError(t, await s.form('/organizations/oauth2/v2.0/token', { grant_type: 'device_code' }), 400, 'invalid_request', 900144)
  const get = await s.fetch('/organizations/oauth2/v2.0/token')
  t.equal(get.status, 405)
  // the client-request-id header comes back as correlation_id
  const corr = '0b5e4d1c-1111-4222-8333-444455556666'
  const withCorr = await s.form('/organizations/oauth2/v2.0/token', { grant_type: 'device_code', client_id: PUBLIC.clientId, device_code: 'x' }, { 'client-request-id': corr })
  t.equal(withCorr.body.correlation_id, corr)
  // unknown routes are not ours
  t.equal((await s.fetch('/v1.0/me')).status, 404)
})

t.test('authorization code with PKCE', async (t) => {
  const s = await startIdp()
  t.teardown(() => s.close())
  const { verifier, challenge } = pkcePair()
  const redirectUri = 'http://localhost:54321/'
  const authorizeUrl = (extra: Record<string, string> = {}) => `/common/oauth2/v2.0/authorize?${new URLSearchParams({
    client_id: PUBLIC.clientId, response_type: 'code', redirect_uri: redirectUri, scope: 'openid profile offline_access Files.ReadWrite.All',
    state: 'st-123', nonce: 'n-456', code_challenge: challenge, code_challenge_method: 'S256', client_info: '1', ...extra,
  })}`

  // interactive: the account picker, then accept
  const page = await s.fetch(authorizeUrl({ login_hint: 'user2@contoso.onmicrosoft.com' }))
  t.equal(page.status, 200)
  const html = await page.text()
  t.match(html, /<form method="post" action="\/common\/oauth2\/v2.0\/authorize">/)
  t.match(html, /<option value="user2" selected>/)
  const params = Object.fromEntries(new URL(s.base + authorizeUrl()).searchParams)
  const accepted = await s.fetch('/common/oauth2/v2.0/authorize', {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...params, emulator_account: 'user2', emulator_action: 'accept' }).toString(),
  })
  t.equal(accepted.status, 302)
  const loc = new URL(accepted.headers.get('location')!)
  t.equal(`${loc.origin}${loc.pathname}`, 'http://localhost:54321/')
  t.equal(loc.searchParams.get('state'), 'st-123', 'state echoed')
  t.ok(loc.searchParams.get('client_info'))
  const code = loc.searchParams.get('code')!
  secrets.add(code)

  const redeem = (fields: Record<string, string>) => s.form('/common/oauth2/v2.0/token', {
    grant_type: 'authorization_code', client_id: PUBLIC.clientId, code, redirect_uri: redirectUri, code_verifier: verifier,
    scope: 'openid profile offline_access Files.ReadWrite.All', ...fields,
  })
  assertAadError(t, await redeem({ code_verifier: pkcePair().verifier }), 400, 'invalid_grant', 501481)
  assertAadError(t, await redeem({ code_verifier: '' }), 400, 'invalid_grant', 501481)
  assertAadError(t, await redeem({ redirect_uri: 'http://localhost:54322/' }), 400, 'invalid_grant', 500112)
  const tok = keep(await redeem({}))
  t.equal(tok.status, 200)
  t.match(tok.body, { token_type: 'Bearer', scope: 'Files.ReadWrite.All', access_token: String, refresh_token: String, id_token: String })
  const claims = decodeJwt(tok.body.id_token).payload
  t.equal(claims.nonce, 'n-456', 'nonce in id_token')
  t.equal(claims.preferred_username, 'user2@contoso.onmicrosoft.com')
  assertAadError(t, await redeem({}), 400, 'invalid_grant', 54005)
  assertAadError(t, await redeem({ code: 'not-a-code' }), 400, 'invalid_grant', 9002313)

  // auto consent: immediate redirect; form_post and fragment modes
  s.idp.setAutoConsent('user1')
  const fp = await s.fetch(authorizeUrl({ response_mode: 'form_post' }))
  t.equal(fp.status, 200)
  const fpHtml = await fp.text()
  t.match(fpHtml, /<form method="POST" name="hiddenform" action="http:\/\/localhost:54321\/">/)
  t.match(fpHtml, /name="code" value="[^"]+"/)
  t.match(fpHtml, /name="state" value="st-123"/)
  const frag = await s.fetch(authorizeUrl({ response_mode: 'fragment' }))
  t.equal(frag.status, 302)
  t.match(new URL(frag.headers.get('location')!).hash, /^#code=/)
  // loopback rule: any port, same path
  const portOk = await s.fetch(authorizeUrl({ redirect_uri: 'http://127.0.0.1:1/' }))
  t.equal(portOk.status, 302)
  t.match(portOk.headers.get('location'), /^http:\/\/127\.0\.0\.1:1\/\?code=/)
  const pathBad = await s.fetch(authorizeUrl({ redirect_uri: 'http://localhost:54321/callback' }))
  t.equal(pathBad.status, 400)
  t.match(await pathBad.text(), /AADSTS50011/)
  const foreign = await s.fetch(authorizeUrl({ redirect_uri: 'https://evil.example.com/' }))
  t.equal(foreign.status, 400, 'unregistered redirect URI: error page, no redirect')
  t.equal(foreign.headers.get('location'), null)
  // errors go back to a valid redirect URI
  const back = async (extra: Record<string, string>) => {
    const r = await s.fetch(authorizeUrl(extra))
    t.equal(r.status, 302)
    return new URL(r.headers.get('location')!).searchParams
  }
  let e = await back({ code_challenge_method: 'S512' })
  t.equal(e.get('error'), 'invalid_request')
  t.equal(e.get('state'), 'st-123')
  e = await back({ code_challenge: 'too-short', code_challenge_method: 'S256' })
  t.equal(e.get('error'), 'invalid_request')
  t.match(e.get('error_description'), /AADSTS501491/)
  e = await back({ response_type: 'token' })
  t.equal(e.get('error'), 'unsupported_response_type')
  e = await back({ scope: 'openid Calendars.Read' })
  t.equal(e.get('error'), 'invalid_scope')
  s.idp.setAutoConsent(undefined)
  e = await back({ prompt: 'none' })
  t.equal(e.get('error'), 'login_required')
  const declined = await s.fetch('/common/oauth2/v2.0/authorize', {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...params, emulator_account: 'user1', emulator_action: 'decline' }).toString(),
  })
  t.equal(declined.status, 302)
  t.equal(new URL(declined.headers.get('location')!).searchParams.get('error'), 'access_denied')
  // test flag: login_hint + emulator_consent=1 signs that account in at once
  const hinted = await s.fetch(authorizeUrl({ login_hint: 'personal1@outlook.com', emulator_consent: '1' }))
  t.equal(hinted.status, 302)
  const hcode = new URL(hinted.headers.get('location')!).searchParams.get('code')!
  secrets.add(hcode)
  const ht = keep(await redeem({ code: hcode }))
  t.equal(decodeJwt(ht.body.id_token).payload.tid, PERSONAL_TENANT_ID)
  t.match(ht.body.access_token, /^EwB/, 'personal accounts get opaque access tokens')
  t.ok(s.idp.verifyAccessToken(`Bearer ${ht.body.access_token}`).ok)
  // the real host's native-client redirect URI lands on the emulator's own page
  s.idp.setAutoConsent('user1')
  const nc = await s.fetch(authorizeUrl({ redirect_uri: 'https://login.microsoftonline.com/common/oauth2/nativeclient' }))
  t.equal(nc.status, 302)
  const ncLoc = new URL(nc.headers.get('location')!)
  t.equal(`${ncLoc.origin}${ncLoc.pathname}`, `${s.base}/common/oauth2/nativeclient`)
  const ncCode = ncLoc.searchParams.get('code')!
  secrets.add(ncCode)
  t.equal((await s.fetch(ncLoc.toString())).status, 200)
  const ncTok = keep(await redeem({ code: ncCode, redirect_uri: 'https://login.microsoftonline.com/common/oauth2/nativeclient' }))
  t.equal(ncTok.status, 200, 'redeemed with the registered (real) redirect URI')
  s.idp.setAutoConsent(undefined)
  // unknown client: error page
  const unk = await s.fetch(authorizeUrl({ client_id: '0000aaaa-0000-4000-8000-000000000000' }))
  t.equal(unk.status, 400)
  t.match(await unk.text(), /AADSTS700016/)
})

t.test('redirect URI platforms: PKCE only for SPA, cross-origin only for SPA', async (t) => {
  // docs/emulator/redirect-uri-platforms.md
  const clock = new ManualClock(Date.UTC(2026, 5, 1))
  const s = await startIdp({ clock, autoConsent: 'user1' })
  t.teardown(() => s.close())
  const NATIVE = 'https://login.microsoftonline.com/common/oauth2/nativeclient'
  const SPA = PUBLIC.redirectUris.find((r) => r.platform === 'spa')!.uri
  const ORIGIN = new URL(SPA).origin
  const scope = 'openid offline_access Files.ReadWrite Files.ReadWrite.All Sites.ReadWrite.All'
  const getCode = async (redirectUri: string, pkce?: string) => {
    const q: Record<string, string> = { client_id: PUBLIC.clientId, response_type: 'code', redirect_uri: redirectUri, scope }
    if (pkce) Object.assign(q, { code_challenge: pkce, code_challenge_method: 'S256' })
    const r = await s.fetch(`/common/oauth2/v2.0/authorize?${new URLSearchParams(q)}`)
    t.equal(r.status, 302, `authorize ${redirectUri}${pkce ? ' with PKCE' : ' without PKCE'}`)
    const code = new URL(r.headers.get('location')!).searchParams.get('code')!
    t.ok(code, 'a code, not an error')
    secrets.add(code)
    return code
  }
  const token = (fields: Record<string, string>, headers?: Record<string, string>) =>
    s.form('/common/oauth2/v2.0/token', { client_id: PUBLIC.clientId, scope, ...fields }, headers).then((r) => keep(r.body) && r)

  // Mobile/desktop (native) redirect URI, no code_challenge: what abraunegg/onedrive 2.4.23 sends.
  const nativeCode = await getCode(NATIVE)
  const native = await token({ grant_type: 'authorization_code', code: nativeCode, redirect_uri: NATIVE })
  t.equal(native.status, 200, 'a public client completes the code flow without PKCE')
  t.match(native.body, { access_token: String, refresh_token: String })
  t.ok(s.idp.verifyAccessToken(`Bearer ${native.body.access_token}`).ok)
  // its tokens are never redeemed from a browser origin, and never with a secret
  assertAadError(t, await token({ grant_type: 'refresh_token', refresh_token: native.body.refresh_token }, { origin: ORIGIN }), 400, 'invalid_request', 9002326)
  assertAadError(t, await token({ grant_type: 'refresh_token', refresh_token: native.body.refresh_token, client_secret: 'x' }), 400, 'invalid_client', 700025)
  t.equal((await token({ grant_type: 'refresh_token', refresh_token: native.body.refresh_token })).status, 200)
  const loopCode = await getCode('http://127.0.0.1:43123/')
  assertAadError(t, await token({ grant_type: 'authorization_code', code: loopCode, redirect_uri: 'http://127.0.0.1:43123/' }, { origin: ORIGIN }), 400, 'invalid_request', 9002326)
  t.equal((await token({ grant_type: 'authorization_code', code: loopCode, redirect_uri: 'http://127.0.0.1:43123/' })).status, 200, 'loopback native URI: no PKCE needed either')

  // `plain` PKCE, also when no method is named: the verifier is the challenge itself
  const plain = pkcePair().verifier
  for (const method of ['plain', undefined]) {
    const q: Record<string, string> = { client_id: PUBLIC.clientId, response_type: 'code', redirect_uri: NATIVE, scope, code_challenge: plain }
    if (method) q.code_challenge_method = method
    const r = await s.fetch(`/common/oauth2/v2.0/authorize?${new URLSearchParams(q)}`)
    const c = new URL(r.headers.get('location')!).searchParams.get('code')!
    t.ok(c, `plain challenge accepted (method ${method ?? 'left out'})`)
    secrets.add(c)
    assertAadError(t, await token({ grant_type: 'authorization_code', code: c, redirect_uri: NATIVE, code_verifier: pkcePair().verifier }), 400, 'invalid_grant', 501481)
    t.equal((await token({ grant_type: 'authorization_code', code: c, redirect_uri: NATIVE, code_verifier: plain })).status, 200)
  }

  // SPA redirect URI: PKCE required (checked when the code is redeemed), and only cross-origin.
  const spaNoPkce = await getCode(SPA)
  assertAadError(t, await token({ grant_type: 'authorization_code', code: spaNoPkce, redirect_uri: SPA }, { origin: ORIGIN }), 400, 'invalid_request', 9002325)
  assertAadError(t, await token({ grant_type: 'authorization_code', code: spaNoPkce, redirect_uri: SPA }), 400, 'invalid_request', 9002325)
  const { verifier, challenge } = pkcePair()
  const spaCode = await getCode(SPA, challenge)
  assertAadError(t, await token({ grant_type: 'authorization_code', code: spaCode, redirect_uri: SPA, code_verifier: verifier }), 400, 'invalid_request', 9002327)
  const spa = await token({ grant_type: 'authorization_code', code: spaCode, redirect_uri: SPA, code_verifier: verifier }, { origin: ORIGIN })
  t.equal(spa.status, 200, 'SPA with PKCE from its origin')
  assertAadError(t, await token({ grant_type: 'refresh_token', refresh_token: spa.body.refresh_token }), 400, 'invalid_request', 9002327)
  await clock.advance(12 * 3600_000)
  const rotated = await token({ grant_type: 'refresh_token', refresh_token: spa.body.refresh_token }, { origin: ORIGIN })
  t.equal(rotated.status, 200)
  // a SPA refresh token's 24 h do not restart on rotation
  await clock.advance(12 * 3600_000)
  assertAadError(t, await token({ grant_type: 'refresh_token', refresh_token: rotated.body.refresh_token }, { origin: ORIGIN }), 400, 'invalid_grant', 700084)

  // Web redirect URI of a confidential app: no PKCE needed, the secret is; not cross-origin.
  const web = 'https://gateway.example.org/api/v1/authcallback'
  const r = await s.fetch(`/organizations/oauth2/v2.0/authorize?${new URLSearchParams({ client_id: CONF.clientId, response_type: 'code', redirect_uri: web, scope })}`)
  const webCode = new URL(r.headers.get('location')!).searchParams.get('code')!
  secrets.add(webCode)
  const webForm = { grant_type: 'authorization_code', client_id: CONF.clientId, code: webCode, redirect_uri: web, client_secret: CONF.secret! }
  assertAadError(t, await s.form('/organizations/oauth2/v2.0/token', webForm, { origin: ORIGIN }), 400, 'invalid_request', 9002326)
  t.equal(keep((await s.form('/organizations/oauth2/v2.0/token', webForm)).body) && 200, 200)
})

t.test('redirect URI platform rules of app registrations', async (t) => {
  for (const app of APPS) t.same(registrationProblems(app), [], `${app.displayName}: registered URIs fit their platform`)
  const app = (platform: RedirectPlatform, uri: string, accountTypes: AccountTypes = 'multitenant-and-personal') =>
    registrationProblems({ ...PUBLIC, accountTypes, redirectUris: [{ uri, platform }] })
  t.same(app('publicClient', 'myapp://auth'), [], 'custom schemes for mobile/desktop')
  t.same(app('publicClient', 'http://localhost/cb'), [])
  t.match(app('web', 'myapp://auth'), [/must use https/])
  t.match(app('spa', 'http://app.example.org/'), [/must use https/])
  t.same(app('spa', 'http://localhost:3000/'), [], 'http on localhost for SPA and web')
  t.match(app('publicClient', 'http://app.example.org/'), [/loopback hosts only/])
  t.match(app('web', 'https://app.example.org/cb?x=1'), [/query parameters/])
  t.same(app('web', 'https://app.example.org/cb?x=1', 'multitenant'), [], 'query allowed for work-or-school-only apps')
  t.match(registrationProblems({ ...PUBLIC, redirectUris: [{ uri: 'https://a.example/', platform: 'web' }, { uri: 'https://a.example/', platform: 'spa' }] }), [/more than one platform/])
})

t.test('confidential app: client secret checked', async (t) => {
  const s = await startIdp({ autoConsent: 'user1' })
  t.teardown(() => s.close())
  const redirectUri = 'https://gateway.example.org/api/v1/authcallback'
  const getCode = async () => {
    const r = await s.fetch(`/organizations/oauth2/v2.0/authorize?${new URLSearchParams({ client_id: CONF.clientId, response_type: 'code', redirect_uri: redirectUri, scope: 'openid offline_access Files.ReadWrite.All' })}`)
    t.equal(r.status, 302)
    const c = new URL(r.headers.get('location')!).searchParams.get('code')!
    secrets.add(c)
    return c
  }
  const code = await getCode()
  const redeem = (extra: Record<string, string>) => s.form('/organizations/oauth2/v2.0/token', { grant_type: 'authorization_code', client_id: CONF.clientId, code, redirect_uri: redirectUri, ...extra })
  assertAadError(t, await redeem({ client_secret: 'wrong' }), 401, 'invalid_client', 7000215)
  assertAadError(t, await redeem({}), 401, 'invalid_client', 7000218)
  const good = keep(await redeem({ client_secret: CONF.secret! }))
  t.equal(good.status, 200)
  // client_secret_basic works too
  const code2 = await getCode()
  const basic = Buffer.from(`${encodeURIComponent(CONF.clientId)}:${encodeURIComponent(CONF.secret!)}`).toString('base64')
  const viaBasic = keep(await s.form('/organizations/oauth2/v2.0/token', { grant_type: 'authorization_code', code: code2, redirect_uri: redirectUri }, { authorization: `Basic ${basic}` }))
  t.equal(viaBasic.status, 200)
  // a public client must not send a secret
  const pub = await deviceLogin(s, { secret: 'anything' })
  assertAadError(t, pub.token!, 400, 'invalid_client', 700025)
  // client credentials: tenant authority and .default only
  const cc = (tenant: string, scope: string, secret = CONF.secret!) => s.form(`/${tenant}/oauth2/v2.0/token`, { grant_type: 'client_credentials', client_id: CONF.clientId, client_secret: secret, scope })
  const app = keep(await cc(CONTOSO.id, 'https://graph.microsoft.com/.default'))
  t.equal(app.status, 200)
  t.match(app.body, { token_type: 'Bearer', expires_in: 3600, access_token: String })
  t.notOk('refresh_token' in app.body || 'id_token' in app.body)
  t.equal(decodeJwt(app.body.access_token).payload.idtyp, 'app')
  t.same(s.idp.verifyAccessToken(`Bearer ${app.body.access_token}`), { ok: false, reason: 'invalid' }, 'app-only tokens cannot act as a user')
  assertAadError(t, await cc('common', 'https://graph.microsoft.com/.default'), 400, 'invalid_request', 50059)
  assertAadError(t, await cc(CONTOSO.id, 'Files.ReadWrite.All'), 400, 'invalid_scope', 1002012)
  assertAadError(t, await cc(CONTOSO.id, 'https://graph.microsoft.com/.default', 'nope'), 401, 'invalid_client', 7000215)
})

t.test('account-type rules', async (t) => {
  const s = await startIdp()
  t.teardown(() => s.close())
  // single-tenant app: only its tenant's authority, only its tenant's users
  const st = await deviceLogin(s, { tenant: CONTOSO.id, clientId: SINGLE.clientId, account: 'other1', secret: SINGLE.secret! })
  t.equal(st.dc.status, 200)
  assertAadError(t, st.approve!, 400, 'invalid_grant', 50020)
  t.match(st.approve!.body.error_description, /other1@fabrikam\.onmicrosoft\.com/)
  assertAadError(t, st.token!, 400, 'invalid_grant', 50020)
  const stOk = await deviceLogin(s, { tenant: CONTOSO.domain, clientId: SINGLE.clientId, account: 'user2', secret: SINGLE.secret! })
  t.equal(stOk.token!.status, 200, 'user2 of Contoso signs in to the Contoso single-tenant app')
  assertAadError(t, (await deviceLogin(s, { tenant: 'common', clientId: SINGLE.clientId })).dc, 400, 'invalid_request', 50194)
  assertAadError(t, (await deviceLogin(s, { tenant: 'organizations', clientId: SINGLE.clientId })).dc, 400, 'invalid_request', 50194)
  assertAadError(t, (await deviceLogin(s, { tenant: FABRIKAM.id, clientId: SINGLE.clientId })).dc, 400, 'unauthorized_client', 700016)
  // authorities
  assertAadError(t, (await deviceLogin(s, { tenant: 'organizations', account: 'personal1' })).token!, 400, 'invalid_grant', 50020)
  assertAadError(t, (await deviceLogin(s, { tenant: 'consumers', account: 'user1' })).token!, 400, 'invalid_grant', 50020)
  assertAadError(t, (await deviceLogin(s, { tenant: FABRIKAM.domain, account: 'user1' })).token!, 400, 'invalid_grant', 50020)
  t.equal((await deviceLogin(s, { tenant: 'consumers', account: 'personal1' })).token!.status, 200)
  t.equal((await deviceLogin(s, { tenant: PERSONAL_TENANT_ID, account: 'personal2' })).token!.status, 200, 'the MSA tenant id acts as consumers')
  t.equal((await deviceLogin(s, { tenant: FABRIKAM.id, account: 'other1' })).token!.status, 200)
  // multitenant (organizations) app rejects personal accounts, even via common
  assertAadError(t, (await deviceLogin(s, { clientId: ORGS.clientId, account: 'personal1' })).token!, 400, 'invalid_grant', 50020)
  assertAadError(t, (await deviceLogin(s, { tenant: 'consumers', clientId: ORGS.clientId })).dc, 400, 'unauthorized_client', 700016)
  t.equal((await deviceLogin(s, { clientId: ORGS.clientId, account: 'other1' })).token!.status, 200)
  // personal-only app
  assertAadError(t, (await deviceLogin(s, { clientId: PERSONAL.clientId, account: 'user1' })).token!, 400, 'invalid_grant', 50020)
  assertAadError(t, (await deviceLogin(s, { tenant: 'organizations', clientId: PERSONAL.clientId })).dc, 400, 'invalid_request', 9002331)
  t.equal((await deviceLogin(s, { tenant: 'consumers', clientId: PERSONAL.clientId, account: 'personal1' })).token!.status, 200)
  // the interactive page shows the rejection and lets the person pick again
  const { challenge } = pkcePair()
  const params = { client_id: PUBLIC.clientId, response_type: 'code', redirect_uri: 'http://localhost', scope: 'User.Read', code_challenge: challenge, code_challenge_method: 'S256' }
  const r = await s.fetch('/consumers/oauth2/v2.0/authorize', {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ ...params, emulator_account: 'user1', emulator_action: 'accept' }).toString(),
  })
  t.equal(r.status, 400)
  const html = await r.text()
  t.match(html, /AADSTS50020/)
  t.match(html, /<select name="emulator_account">/)
  // with auto consent the rejection goes back to the app
  s.idp.setAutoConsent('user1')
  const auto = await s.fetch(`/consumers/oauth2/v2.0/authorize?${new URLSearchParams(params)}`)
  t.equal(auto.status, 302)
  const q = new URL(auto.headers.get('location')!).searchParams
  t.equal(q.get('error'), 'access_denied')
  t.match(q.get('error_description'), /^AADSTS50020: /)
  // a code redeemed through an authority the account may not use
  s.idp.setAutoConsent('personal1')
  const ok = await s.fetch(`/common/oauth2/v2.0/authorize?${new URLSearchParams({ ...params, code_challenge: pkcePair().challenge })}`)
  const pcode = new URL(ok.headers.get('location')!).searchParams.get('code')!
  secrets.add(pcode)
  const red = await s.form('/organizations/oauth2/v2.0/token', { grant_type: 'authorization_code', client_id: PUBLIC.clientId, code: pcode, redirect_uri: 'http://localhost', code_verifier: 'x'.repeat(43) })
  t.equal(red.status, 400)
})

t.test('refresh rotates, outlives access tokens, and fails after revocation', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1))
  const s = await startIdp({ clock, accessTokenTtlSec: 300 })
  t.teardown(() => s.close())
  const first = (await deviceLogin(s)).token!
  t.equal(first.status, 200)
  t.equal(first.body.expires_in, 300)
  const refresh = (rt: string, extra: Record<string, string> = {}) =>
    s.form('/common/oauth2/v2.0/token', { grant_type: 'refresh_token', client_id: PUBLIC.clientId, refresh_token: rt, ...extra }).then((r) => { keep(r.body); return r })

  await clock.advance(301_000)
  t.same(s.idp.verifyAccessToken(`Bearer ${first.body.access_token}`), { ok: false, reason: 'expired' })
  const second = await refresh(first.body.refresh_token, { scope: 'Files.ReadWrite.All openid profile offline_access' })
  t.equal(second.status, 200)
  t.ok(second.body.refresh_token && second.body.refresh_token !== first.body.refresh_token, 'a new refresh token each time')
  t.ok(second.body.access_token !== first.body.access_token)
  t.ok(second.body.id_token)
  t.equal(second.body.scope, 'Files.ReadWrite.All')
  t.ok(s.idp.verifyAccessToken(`Bearer ${second.body.access_token}`).ok)
  // old refresh tokens stay valid until revoked (as on the real service)
  const third = await refresh(first.body.refresh_token)
  t.equal(third.status, 200)
  t.equal(third.body.scope, 'Files.ReadWrite.All User.Read', 'no scope parameter: the consented scopes')
  // the test hook expires access tokens at once
  const exp = await s.hook('expire-access-tokens', { account: 'user1' })
  t.equal(exp.status, 200)
  t.ok(exp.body.expired >= 1)
  t.same(s.idp.verifyAccessToken(`Bearer ${third.body.access_token}`), { ok: false, reason: 'expired' })
  // scopes beyond the consent need interaction
  const more = await refresh(third.body.refresh_token, { scope: 'Sites.ReadWrite.All' })
  assertAadError(t, more, 400, 'invalid_grant', 65001)
  t.equal(more.body.suberror, 'consent_required')
  // another client cannot use it
  assertAadError(t, await s.form('/common/oauth2/v2.0/token', { grant_type: 'refresh_token', client_id: ORGS.clientId, refresh_token: third.body.refresh_token }), 400, 'invalid_grant', 70000)
  assertAadError(t, await refresh('1.AQgarbage'), 400, 'invalid_grant', 9002313)
  // other users are not affected by user1's revocation
  const u2 = (await deviceLogin(s, { account: 'user2' })).token!
  const fresh = await refresh(third.body.refresh_token)
  t.equal(fresh.status, 200)
  const rv = await s.hook('revoke', { account: 'user1' })
  t.equal(rv.status, 200)
  t.ok(rv.body.revoked.refreshTokens >= 3)
  for (const rt of [first.body.refresh_token, fresh.body.refresh_token]) {
    const r = await refresh(rt)
    assertAadError(t, r, 400, 'invalid_grant', 50173)
    t.equal(r.body.suberror, 'bad_token')
  }
  t.same(s.idp.verifyAccessToken(`Bearer ${fresh.body.access_token}`), { ok: false, reason: 'revoked' })
  t.ok(s.idp.verifyAccessToken(`Bearer ${u2.body.access_token}`).ok)
  t.equal((await refresh(u2.body.refresh_token)).status, 200)
  // signing in again after revocation works
  const back = (await deviceLogin(s)).token!
  t.equal(back.status, 200)
  t.ok(s.idp.verifyAccessToken(`Bearer ${back.body.access_token}`).ok)
  // refresh tokens die after 90 days without use
  await clock.advance(91 * 24 * 3600_000)
  assertAadError(t, await refresh(back.body.refresh_token), 400, 'invalid_grant', 700082)
  t.equal((await s.hook('revoke', { account: 'nobody' })).status, 400)
})

t.test('verifyAccessToken reasons', async (t) => {
  const s = await startIdp()
  t.teardown(() => s.close())
  const v = (h: string | undefined) => s.idp.verifyAccessToken(h)
  t.same(v(undefined), { ok: false, reason: 'missing' })
  t.same(v(''), { ok: false, reason: 'missing' })
  t.same(v('Basic dXNlcjpwYXNz'), { ok: false, reason: 'malformed' })
  t.same(v('Bearer'), { ok: false, reason: 'malformed' })
  t.same(v('Bearer abc'), { ok: false, reason: 'malformed' })
  t.same(v('Bearer a b'), { ok: false, reason: 'malformed' })
  const tok = (await deviceLogin(s)).token!.body.access_token as string
  const [h, p, sig] = tok.split('.')
  t.same(v(`Bearer ${h}.${p}.${sig!.slice(0, -4)}AAAA`), { ok: false, reason: 'invalid' }, 'tampered signature')
  t.same(v(`Bearer EwB${'A'.repeat(200)}`), { ok: false, reason: 'invalid' })
  t.ok(v(`bearer ${tok}`).ok, 'the scheme is case-insensitive')
  s.idp.expireAccessTokens('user1')
  t.same(v(`Bearer ${tok}`), { ok: false, reason: 'expired' })
  const tok2 = (await deviceLogin(s)).token!.body.access_token as string
  s.idp.revoke('user1')
  t.same(v(`Bearer ${tok2}`), { ok: false, reason: 'revoked' })
  const dc = keep(await s.form('/common/oauth2/v2.0/devicecode', { client_id: PUBLIC.clientId, scope: 'User.Read' })).body
  t.notOk(s.idp.approveDeviceCode('NOPE1234', 'user1'))
  t.ok(s.idp.approveDeviceCode(dc.user_code, 'user1'))
  t.notOk(s.idp.approveDeviceCode(dc.user_code, 'user1'), 'no longer pending')
  t.throws(() => s.idp.setAutoConsent('nobody'))
})

t.test('code lifetime, logout, test hooks', async (t) => {
  const clock = new ManualClock(Date.UTC(2026, 5, 1))
  const s = await startIdp({ clock })
  t.teardown(() => s.close())
  // the auto-consent hook
  let h = await s.hook('auto-consent', { account: 'user1' })
  t.same(h, { status: 200, body: { autoConsent: 'user1' } })
  t.equal((await s.hook('auto-consent', { account: 'nobody' })).status, 400)
  const { verifier, challenge } = pkcePair()
  const r = await s.fetch(`/common/oauth2/v2.0/authorize?${new URLSearchParams({ client_id: PUBLIC.clientId, response_type: 'code', redirect_uri: 'http://localhost', scope: 'User.Read', code_challenge: challenge, code_challenge_method: 'S256' })}`)
  t.equal(r.status, 302)
  const code = new URL(r.headers.get('location')!).searchParams.get('code')!
  secrets.add(code)
  await clock.advance(10 * 60_000 + 1)
  const late = await s.form('/common/oauth2/v2.0/token', { grant_type: 'authorization_code', client_id: PUBLIC.clientId, code, redirect_uri: 'http://localhost', code_verifier: verifier })
  assertAadError(t, late, 400, 'invalid_grant', 70008)
  h = await s.hook('auto-consent', { account: null })
  t.same(h.body, { autoConsent: null })
  const page = await s.fetch(`/common/oauth2/v2.0/authorize?${new URLSearchParams({ client_id: PUBLIC.clientId, response_type: 'code', redirect_uri: 'http://localhost', scope: 'User.Read', code_challenge: challenge, code_challenge_method: 'S256' })}`)
  t.equal(page.status, 200, 'no auto consent: the account picker again')
  await page.text()
  // logout
  const out = await s.fetch(`/common/oauth2/v2.0/logout?${new URLSearchParams({ client_id: PUBLIC.clientId, post_logout_redirect_uri: 'http://localhost:8400/' })}`)
  t.equal(out.status, 302)
  t.equal(out.headers.get('location'), 'http://localhost:8400/')
  const out2 = await s.fetch(`/common/oauth2/v2.0/logout?${new URLSearchParams({ client_id: PUBLIC.clientId, post_logout_redirect_uri: 'https://evil.example.com/' })}`)
  t.equal(out2.status, 200)
  t.match(await out2.text(), /You signed out/)
  // hook input errors
  t.equal((await s.hook('approve', { user_code: 'ABCDEFGH', account: 'user1' })).status, 404)
  t.equal((await s.hook('approve', {})).status, 400)
  t.equal((await s.hook('expire-access-tokens', { account: 'nobody' })).status, 400)
  t.same(await s.hook('expire-access-tokens', {}), { status: 200, body: { expired: 0 } })
  t.equal((await s.hook('nosuch', {})).status, 404)
  const get = await s.fetch('/_emulator/identity/revoke')
  t.equal(get.status, 405)
  const badJson = await s.fetch('/_emulator/identity/revoke', { method: 'POST', body: '{', headers: { 'content-type': 'application/json' } })
  t.equal(badJson.status, 400)
})

t.test('no token, code or secret appears in the test output', async (t) => {
  t.ok(secrets.size > 20, `collected ${secrets.size} secrets`)
  const captured = output.text()
  t.ok(captured.includes('# Subtest: verifyAccessToken reasons'), 'the earlier test output was captured')
  const leaked = [...secrets].filter((x) => captured.includes(x))
  t.equal(leaked.length, 0, 'no secret in stdout/stderr')
  for (const app of APPS) if (app.secret) t.notOk(captured.includes(app.secret), 'client secret not printed')
})
