/**
 * @azure/msal-node runs its real flows against the emulator's identity platform
 * over HTTPS: device code, silent refresh (forced, after expiry, after the
 * emulator expired the token), revocation → InteractionRequiredAuthError,
 * auth code with PKCE (getAuthCodeUrl + acquireTokenByCode, and
 * acquireTokenInteractive with its loopback listener), client credentials.
 * msal's own log is checked not to contain any token.
 */
import t from 'tap'
import {
  ConfidentialClientApplication, CryptoProvider, InteractionRequiredAuthError, LogLevel, PublicClientApplication,
  type AuthenticationResult, type Configuration, type INetworkModule, type NetworkResponse,
} from '@azure/msal-node'
import { APPS, CONTOSO } from '../../src/emulator/directory.js'
import { startIdp, cleanupCerts, decodeJwt, type IdpServer } from './identity-support.js'

const PUBLIC = APPS.find((a) => a.clientId.endsWith('a001'))!
const CONF = APPS.find((a) => a.clientId.endsWith('a002'))!
const SCOPES = ['Files.ReadWrite.All', 'User.Read']

t.teardown(cleanupCerts)

const msalLog: string[] = []
const seen = new Set<string>()
const keep = (r: AuthenticationResult | null): AuthenticationResult => {
  if (!r) throw new Error('no result')
  seen.add(r.accessToken)
  if (r.idToken) seen.add(r.idToken)
  return r
}

function networkClient(s: IdpServer): INetworkModule {
  const send = async <T>(method: string, url: string, options?: { headers?: Record<string, string>; body?: string }): Promise<NetworkResponse<T>> => {
    const r = await fetch(url, { method, headers: options?.headers, body: options?.body, dispatcher: s.dispatcher } as RequestInit)
    const headers: Record<string, string> = {}
    r.headers.forEach((v, k) => { headers[k] = v })
    return { status: r.status, headers, body: (await r.json()) as T }
  }
  return {
    sendGetRequestAsync: (url, options) => send('GET', url, options),
    sendPostRequestAsync: (url, options) => send('POST', url, options),
  }
}

function config(s: IdpServer, tenant = 'common', clientId = PUBLIC.clientId): Configuration {
  return {
    auth: { clientId, authority: `${s.base}/${tenant}`, knownAuthorities: [s.host] },
    system: {
      networkClient: networkClient(s),
      loggerOptions: { logLevel: LogLevel.Verbose, piiLoggingEnabled: false, loggerCallback: (_l, m) => { msalLog.push(m) } },
    },
  }
}

t.test('device code, silent and forced refresh, expiry, revocation', async (t) => {
  const s = await startIdp()
  t.teardown(() => s.close())
  const pca = new PublicClientApplication(config(s))
  let message = ''
  const first = keep(await pca.acquireTokenByDeviceCode({
    scopes: SCOPES,
    deviceCodeCallback: (r) => {
      message = r.message
      // the person at the browser
      t.ok(s.idp.approveDeviceCode(r.userCode, 'user1'), 'approved')
    },
  }))
  t.match(message, /^To sign in, use a web browser to open the page https:\/\/127\.0\.0\.1:\d+\/devicelogin and enter the code [A-Z2-9]{8} to authenticate\.$/)
  t.equal(first.account?.username, 'user1@contoso.onmicrosoft.com')
  t.equal(first.account?.tenantId, CONTOSO.id)
  t.equal(first.account?.homeAccountId, `11111111-1111-4111-8111-111111111111.${CONTOSO.id}`)
  t.ok(s.idp.verifyAccessToken(`Bearer ${first.accessToken}`).ok)

  const cached = keep(await pca.acquireTokenSilent({ account: first.account!, scopes: SCOPES }))
  t.equal(cached.fromCache, true)
  t.ok(cached.accessToken === first.accessToken, 'same token from the cache')

  const forced = keep(await pca.acquireTokenSilent({ account: first.account!, scopes: SCOPES, forceRefresh: true }))
  t.equal(forced.fromCache, false)
  t.ok(forced.accessToken !== first.accessToken, 'a new access token')
  t.ok(s.idp.verifyAccessToken(`Bearer ${forced.accessToken}`).ok)

  // the service expired the token (as after a CAE event); the client refreshes on the 401
  t.ok(s.idp.expireAccessTokens('user1') >= 1)
  t.same(s.idp.verifyAccessToken(`Bearer ${forced.accessToken}`), { ok: false, reason: 'expired' })
  const afterExpiry = keep(await pca.acquireTokenSilent({ account: first.account!, scopes: SCOPES, forceRefresh: true }))
  t.ok(s.idp.verifyAccessToken(`Bearer ${afterExpiry.accessToken}`).ok, 'refresh works after the access token expired')

  // a new application instance with the same cache refreshes with the stored refresh token
  const pca2 = new PublicClientApplication(config(s))
  pca2.getTokenCache().deserialize(pca.getTokenCache().serialize())
  const [acc2] = await pca2.getTokenCache().getAllAccounts()
  const again = keep(await pca2.acquireTokenSilent({ account: acc2!, scopes: SCOPES, forceRefresh: true }))
  t.ok(s.idp.verifyAccessToken(`Bearer ${again.accessToken}`).ok)

  s.idp.revoke('user1')
  const err = await pca.acquireTokenSilent({ account: first.account!, scopes: SCOPES, forceRefresh: true }).then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof InteractionRequiredAuthError, 'revoked: interaction required')
  t.equal((err as InteractionRequiredAuthError).errorCode, 'invalid_grant')
  t.match((err as InteractionRequiredAuthError).errorMessage, /AADSTS50173/)
})

t.test('short-lived access tokens: acquireTokenSilent refreshes by itself', async (t) => {
  // msal renews tokens that expire within 5 minutes; 60 s tokens are always due
  const s = await startIdp({ accessTokenTtlSec: 60 })
  t.teardown(() => s.close())
  const pca = new PublicClientApplication(config(s, 'consumers'))
  const first = keep(await pca.acquireTokenByDeviceCode({ scopes: SCOPES, deviceCodeCallback: (r) => { s.idp.approveDeviceCode(r.userCode, 'personal1') } }))
  t.equal(first.account?.username, 'personal1@outlook.com')
  t.equal(first.expiresOn!.getTime() - Date.now() < 61_000, true)
  const next = keep(await pca.acquireTokenSilent({ account: first.account!, scopes: SCOPES }))
  t.equal(next.fromCache, false, 'refreshed without forceRefresh')
  t.ok(next.accessToken !== first.accessToken)
  t.ok(s.idp.verifyAccessToken(`Bearer ${next.accessToken}`).ok)
})

t.test('device code rejected by the account-type rules surfaces as an msal error', async (t) => {
  const s = await startIdp()
  t.teardown(() => s.close())
  const pca = new PublicClientApplication(config(s, 'organizations'))
  const err = await pca.acquireTokenByDeviceCode({ scopes: SCOPES, deviceCodeCallback: (r) => { s.idp.approveDeviceCode(r.userCode, 'personal1') } })
    .then(() => undefined, (e: unknown) => e as { errorCode?: string; errorMessage?: string })
  // msal's device-code poller reports any error but authorization_pending as post_request_failed
  // carrying the `error` field (the AADSTS description is dropped by msal, not by the emulator)
  t.equal(err?.errorCode, 'post_request_failed')
  t.match(err?.errorMessage, /invalid_grant/)
})

t.test('auth code with PKCE: getAuthCodeUrl + acquireTokenByCode', async (t) => {
  const s = await startIdp({ autoConsent: 'user2' })
  t.teardown(() => s.close())
  const pca = new PublicClientApplication(config(s))
  const crypto = new CryptoProvider()
  const { verifier, challenge } = await crypto.generatePkceCodes()
  const redirectUri = 'http://localhost:49152/'
  const state = crypto.createNewGuid()
  const url = await pca.getAuthCodeUrl({ scopes: SCOPES, redirectUri, codeChallenge: challenge, codeChallengeMethod: 'S256', state })
  t.match(url, new RegExp(`^${s.base}/common/oauth2/v2.0/authorize\\?`))
  const r = await s.fetch(url)
  t.equal(r.status, 302)
  const back = new URL(r.headers.get('location')!)
  t.equal(back.searchParams.get('state'), state)
  const code = back.searchParams.get('code')!
  seen.add(code)
  const res = keep(await pca.acquireTokenByCode({ code, scopes: SCOPES, redirectUri, codeVerifier: verifier, state }))
  t.equal(res.account?.username, 'user2@contoso.onmicrosoft.com')
  t.ok(s.idp.verifyAccessToken(`Bearer ${res.accessToken}`).ok)
  const bad = await pca.acquireTokenByCode({ code, scopes: SCOPES, redirectUri, codeVerifier: verifier }).then(() => undefined, (e: unknown) => e as { errorCode?: string })
  t.equal(bad?.errorCode, 'invalid_grant', 'a code is single use')
})

t.test('acquireTokenInteractive with the loopback listener (any port)', async (t) => {
  const s = await startIdp({ autoConsent: 'user1' })
  t.teardown(() => s.close())
  const pca = new PublicClientApplication(config(s))
  const res = keep(await pca.acquireTokenInteractive({
    scopes: SCOPES,
    openBrowser: async (url) => {
      // the browser: msal asks for response_mode=form_post, so submit the emulator's
      // auto-posting form to msal's loopback listener
      t.equal(new URL(url).searchParams.get('response_mode'), 'form_post')
      const r = await s.fetch(url)
      t.equal(r.status, 200)
      const html = await r.text()
      const action = /<form method="POST" name="hiddenform" action="([^"]+)">/.exec(html)?.[1]
      t.match(action, /^http:\/\/localhost:\d+$/, 'loopback redirect URI on the port msal picked')
      const fields = new URLSearchParams()
      for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) fields.set(m[1]!, m[2]!)
      t.ok(fields.has('code') && fields.has('state'))
      const done = await fetch(action!, { method: 'POST', body: fields.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } })
      await done.text()
    },
    successTemplate: 'signed in',
    errorTemplate: 'failed',
  }))
  t.equal(res.account?.username, 'user1@contoso.onmicrosoft.com')
  t.ok(s.idp.verifyAccessToken(`Bearer ${res.accessToken}`).ok)
})

t.test('client credentials with ConfidentialClientApplication', async (t) => {
  const s = await startIdp()
  t.teardown(() => s.close())
  const cfg = config(s, CONTOSO.id, CONF.clientId)
  const cca = new ConfidentialClientApplication({ ...cfg, auth: { ...cfg.auth, clientSecret: CONF.secret! } })
  const r = keep(await cca.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] }))
  t.equal(r.account, null)
  t.equal(decodeJwt(r.accessToken).payload.appid, CONF.clientId)
  const bad = new ConfidentialClientApplication({ ...cfg, auth: { ...cfg.auth, clientSecret: 'wrong' } })
  const err = await bad.acquireTokenByClientCredential({ scopes: ['https://graph.microsoft.com/.default'] }).then(() => undefined, (e: unknown) => e as { errorCode?: string; errorMessage?: string })
  t.equal(err?.errorCode, 'invalid_client')
  t.match(err?.errorMessage, /AADSTS7000215/)
})

t.test('msal logged no token', async (t) => {
  t.ok(msalLog.length > 10, 'msal logged')
  t.ok(seen.size >= 10)
  const leaked = [...seen].filter((s) => msalLog.some((m) => m.includes(s)))
  t.equal(leaked.length, 0)
})
