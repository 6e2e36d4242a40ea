/**
 * The emulator's Microsoft identity platform (OAuth 2.0 / OpenID Connect v2.0
 * endpoints of login.microsoftonline.com): discovery, keys, authorize (code +
 * PKCE), device code, token (authorization_code, refresh_token, device code
 * under both grant names, client_credentials), plus test hooks under
 * /_emulator/identity/. State is in memory; tokens and codes are kept only as
 * hashes. Nothing here logs a token, code or secret.
 */
import type http from 'node:http'
import { createHash, randomInt, randomUUID, timingSafeEqual } from 'node:crypto'
import { OdfsError, systemClock, type Clock } from '../../common/index.js'
import { APPS, findAccount, findApp, type Account, type AppRegistration, type RedirectPlatform } from '../directory.js'
import {
  aadError, correlationIdOf, errorBody, parseForm, redirect, sendHtml, sendJson, toRecord, type AadError,
} from './http.js'
import {
  appNotFound, checkAppAuthority, checkSignIn, matchRedirectUri, missingParam, parseScopes, redirectUriAllowed,
  registrationProblems, resolveAuthority, unknownTenantError, type Authority, type ScopeRequest,
} from './rules.js'
import {
  SigningKey, b64url, clientInfo, hashOf, pairwiseSub, randomToken,
  type AccessRecord, type CodeRecord, type DeviceRecord, type Grant,
} from './tokens.js'
import { consentPage, deviceLoginPage, errorPage, formPostPage, messagePage } from './pages.js'

export interface IdentityOptions {
  /** https://127.0.0.1:PORT, known only after listen. */
  baseUrl: () => string
  accessTokenTtlSec?: number
  deviceCodeIntervalSec?: number
  deviceCodeTtlSec?: number
  autoConsent?: string
  clock?: Clock
}

export type TokenCheck =
  | { ok: true; account: Account; clientId: string; scopes: string[]; expiresAt: number }
  | { ok: false; reason: 'missing' | 'malformed' | 'expired' | 'revoked' | 'invalid' }

const CODE_TTL_MS = 10 * 60_000
const REFRESH_INACTIVE_MS = 90 * 24 * 3600_000
/** Refresh tokens issued through a SPA redirect URI live 24 h, rotation or not (docs/emulator/redirect-uri-platforms.md). */
const SPA_REFRESH_MS = 24 * 3600_000
const USER_CODE_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789'
const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000'
const ROUTE = /^\/([^/]+)\/(v2\.0\/\.well-known\/openid-configuration|discovery\/v2\.0\/keys|oauth2\/v2\.0\/(?:authorize|token|devicecode|logout)|oauth2\/nativeclient)\/?$/
/** The native-client redirect URI of the real login host; the emulator serves that page itself. */
const NATIVE_CLIENT = /^https:\/\/login\.microsoftonline\.com(\/[^/?#]+\/oauth2\/nativeclient)$/i

interface IssueOptions {
  openid: boolean
  offline: boolean
  nonce?: string
  /** Platform of the sign-in's redirect URI; recorded on the refresh token. */
  platform: RedirectPlatform
  /** A SPA refresh token's fixed end (kept across rotation). */
  refreshExpiresAt?: number
}

export class IdentityPlatform {
  readonly #baseUrl: () => string
  readonly #clock: Clock
  readonly #accessTtlSec: number
  readonly #intervalSec: number
  readonly #deviceTtlSec: number
  #autoConsent: string | undefined
  #key: SigningKey | undefined
  readonly #grants = new Map<string, Grant>()
  readonly #access = new Map<string, AccessRecord>()
  readonly #codes = new Map<string, CodeRecord>()
  readonly #devices = new Map<string, DeviceRecord>()
  /** user code → hash of its device code */
  readonly #userCodes = new Map<string, string>()
  #issued = 0

  constructor(opts: IdentityOptions) {
    this.#baseUrl = opts.baseUrl
    this.#clock = opts.clock ?? systemClock
    this.#accessTtlSec = opts.accessTokenTtlSec ?? 3600
    this.#intervalSec = opts.deviceCodeIntervalSec ?? 5
    this.#deviceTtlSec = opts.deviceCodeTtlSec ?? 900
    this.setAutoConsent(opts.autoConsent)
    // The app registrations are seed data: hold them to the portal's redirect URI rules.
    const problems = APPS.flatMap(registrationProblems)
    if (problems.length > 0) throw new OdfsError('EMULATOR_BAD_REGISTRATION', problems.join('; '))
  }

  /** One RSA key per process (like the service's stable signing keys; spares 2048-bit key generation per instance). */
  get #signing(): SigningKey {
    return (this.#key ??= (sharedKey ??= new SigningKey()))
  }

  setAutoConsent(handle: string | undefined): void {
    if (handle !== undefined && !findAccount(handle)) {
      throw new OdfsError('EMULATOR_UNKNOWN_ACCOUNT', `auto-consent: no test account '${handle}'`)
    }
    this.#autoConsent = handle === undefined ? undefined : findAccount(handle)!.handle
  }

  close(): void {
    this.#grants.clear()
    this.#access.clear()
    this.#codes.clear()
    this.#devices.clear()
    this.#userCodes.clear()
  }

  // ---- public checks and hooks -------------------------------------------

  verifyAccessToken(authorization: string | undefined): TokenCheck {
    if (authorization === undefined || authorization.trim() === '') return { ok: false, reason: 'missing' }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
    if (!m) return { ok: false, reason: 'malformed' }
    const token = m[1]!
    const jwtShaped = /^[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+$/.test(token)
    const opaque = /^EwB[A-Za-z0-9_-]{40,}$/.test(token)
    if (!jwtShaped && !opaque) return { ok: false, reason: 'malformed' }
    const rec = this.#access.get(hashOf(token))
    if (!rec || !rec.handle) return { ok: false, reason: 'invalid' }
    if (rec.revoked) return { ok: false, reason: 'revoked' }
    if (this.#clock.now() >= rec.expiresAt) return { ok: false, reason: 'expired' }
    const account = findAccount(rec.handle)
    if (!account) return { ok: false, reason: 'invalid' }
    return { ok: true, account, clientId: rec.clientId, scopes: [...rec.scopes], expiresAt: rec.expiresAt }
  }

  /** Revokes every refresh and access token (and unredeemed code) of the account. */
  revoke(handle: string): void {
    this.#revoke(handle)
  }

  #revoke(handle: string): { refreshTokens: number; accessTokens: number } {
    const h = findAccount(handle)?.handle ?? handle
    let refreshTokens = 0
    let accessTokens = 0
    for (const g of this.#grants.values()) if (g.handle === h && !g.revoked) { g.revoked = true; refreshTokens++ }
    for (const a of this.#access.values()) if (a.handle === h && !a.revoked) { a.revoked = true; accessTokens++ }
    for (const [k, c] of this.#codes) if (c.handle === h) this.#codes.delete(k)
    for (const d of this.#devices.values()) {
      if (d.handle === h && d.state === 'approved') {
        d.state = 'rejected'
        d.rejection = revokedError(this.#clock.now(), this.#clock.now())
      }
    }
    return { refreshTokens, accessTokens }
  }

  /** Makes current access tokens (of one account, or all) expired; returns how many. */
  expireAccessTokens(handle?: string): number {
    const h = handle === undefined ? undefined : (findAccount(handle)?.handle ?? handle)
    const now = this.#clock.now()
    let n = 0
    for (const a of this.#access.values()) {
      if ((h === undefined || a.handle === h) && a.expiresAt > now) { a.expiresAt = now; n++ }
    }
    return n
  }

  approveDeviceCode(userCode: string, handle: string): boolean {
    const rec = this.#deviceByUserCode(userCode)
    if (!rec || rec.state !== 'pending' || this.#clock.now() >= rec.expiresAt) return false
    return this.#approveDevice(rec, handle) === undefined
  }

  // ---- routing ------------------------------------------------------------

  async handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: Buffer): Promise<boolean> {
    const path = url.pathname
    const corr = correlationIdOf(req)
    try {
      if (path.startsWith('/_emulator/identity/')) {
        this.#hooks(req, res, path.slice('/_emulator/identity/'.length), body)
        return true
      }
      if (path === '/devicelogin' || path === '/devicelogin/') {
        this.#deviceLogin(req, res, url, body)
        return true
      }
      const m = ROUTE.exec(path)
      if (!m) return false
      let segment: string
      try {
        segment = decodeURIComponent(m[1]!)
      } catch {
        segment = m[1]!
      }
      const authority = resolveAuthority(segment)
      const route = m[2]!
      if (route === 'oauth2/nativeclient') {
        // Where the native-client redirect lands: a blank page whose URL carries the code.
        sendHtml(res, 200, '<!DOCTYPE html><html><head><title>nativeclient</title></head><body></body></html>\n')
      } else if (route.startsWith('oauth2/v2.0/authorize')) {
        this.#authorize(req, res, url, body, segment, authority, corr)
      } else if (!authority) {
        this.#sendError(res, unknownTenantError(segment), corr)
      } else if (route.endsWith('openid-configuration')) {
        if (!this.#getOnly(req, res, corr)) return true
        sendJson(res, 200, this.#discovery(authority), { 'cache-control': 'max-age=86400, private' })
      } else if (route.endsWith('keys')) {
        if (!this.#getOnly(req, res, corr)) return true
        sendJson(res, 200, { keys: [this.#signing.jwk(this.#issuer(authority))] }, { 'cache-control': 'max-age=86400, private' })
      } else if (route.endsWith('/token')) {
        this.#token(req, res, body, authority, corr)
      } else if (route.endsWith('/devicecode')) {
        this.#deviceCode(req, res, body, authority, corr)
      } else {
        this.#logout(res, url)
      }
      return true
    } catch (err) {
      if (!res.headersSent) {
        this.#sendError(res, aadError(500, 'server_error', 90033, 'A transient error has occurred. Please try again.'), corr)
      } else {
        res.destroy()
      }
      // The request is answered; the error itself carries no request data but is not rethrown
      // so that one bad request cannot take the server down.
      void err
      return true
    }
  }

  #getOnly(req: http.IncomingMessage, res: http.ServerResponse, corr: string): boolean {
    if (req.method === 'GET' || req.method === 'HEAD') return true
    this.#sendError(res, aadError(405, 'invalid_request', 900561, `The endpoint only accepts GET, OPTIONS requests. Received a ${req.method} request.`), corr)
    return false
  }

  #sendError(res: http.ServerResponse, err: AadError, corr: string): void {
    const headers: Record<string, string> = {}
    if (err.status === 401) headers['www-authenticate'] = 'Basic realm="odfs-emulator"'
    sendJson(res, err.status, errorBody(err, this.#clock, corr), headers)
  }

  // ---- discovery ----------------------------------------------------------

  #issuer(a: Authority): string {
    const base = this.#baseUrl()
    if (a.kind === 'tenant') return `${base}/${a.tenant!.id}/v2.0`
    if (a.kind === 'consumers') return `${base}/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0`
    return `${base}/{tenantid}/v2.0`
  }

  #discovery(a: Authority): Record<string, unknown> {
    const base = this.#baseUrl()
    const seg = a.kind === 'tenant' ? a.tenant!.id : a.segment.toLowerCase()
    const t = `${base}/${seg}`
    return {
      token_endpoint: `${t}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${t}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: this.#issuer(a),
      request_uri_parameter_supported: false,
      userinfo_endpoint: `${base}/oidc/userinfo`,
      authorization_endpoint: `${t}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${t}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${t}/oauth2/v2.0/logout`,
      claims_supported: ['sub', 'iss', 'cloud_instance_name', 'cloud_instance_host_name', 'cloud_graph_host_name',
        'msgraph_host', 'aud', 'exp', 'iat', 'auth_time', 'acr', 'nonce', 'preferred_username', 'name', 'tid', 'ver',
        'at_hash', 'c_hash', 'email'],
      kerberos_endpoint: `${t}/kerberos`,
      tenant_region_scope: a.kind === 'tenant' ? 'EU' : null,
      cloud_instance_name: 'microsoftonline.com',
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: new URL(base).host,
      rbac_url: 'https://pas.windows.net',
    }
  }

  #logout(res: http.ServerResponse, url: URL): void {
    const target = url.searchParams.get('post_logout_redirect_uri')
    if (target && /^https?:\/\//i.test(target)) {
      const app = findApp(url.searchParams.get('client_id') ?? '')
      if (!app || redirectUriAllowed(app, target)) return redirect(res, target)
    }
    sendHtml(res, 200, messagePage('You signed out of your account', "It's a good idea to close all browser windows."))
  }

  // ---- authorize ----------------------------------------------------------

  #authorize(req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: Buffer, segment: string,
    authority: Authority | undefined, corr: string): void {
    const isPost = req.method === 'POST'
    const p = isPost ? (parseForm(req, body) ?? {}) : toRecord(url.searchParams)
    const htmlError = (err: AadError) => sendHtml(res, err.status >= 400 ? err.status : 400,
      errorPage("Sorry, but we're having trouble signing you in.", `AADSTS${err.code}: ${err.description}`))
    if (!authority) return htmlError(unknownTenantError(segment))
    if (!p.client_id) return htmlError(missingParam('client_id'))
    const app = findApp(p.client_id)
    if (!app) return htmlError(appNotFound(p.client_id, authority))
    const redirectUri = p.redirect_uri
    if (!redirectUri) return htmlError(missingParam('redirect_uri'))
    const registered = matchRedirectUri(app, redirectUri)
    if (!registered) {
      return htmlError(aadError(400, 'invalid_request', 50011, `The redirect URI '${redirectUri}' specified in the request does not match the redirect URIs configured for the application '${app.clientId}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.`))
    }
    const state = p.state
    const mode = p.response_mode ?? 'query'
    const back = (fields: Record<string, string>) => {
      if (state !== undefined) fields.state = state
      this.#toClient(res, redirectUri, mode === 'form_post' || mode === 'fragment' ? mode : 'query', fields)
    }
    const fail = (err: AadError, error = err.error) => {
      const b = errorBody(err, this.#clock, corr)
      back({
        error, error_description: String(b.error_description), error_uri: String(b.error_uri ?? ''),
        trace_id: String(b.trace_id), correlation_id: corr,
      })
    }
    if (!['query', 'fragment', 'form_post'].includes(mode)) {
      return fail(aadError(400, 'invalid_request', 900143, `The response_mode '${mode}' is not supported. Use query, fragment or form_post.`))
    }
    if (!p.response_type) return fail(missingParam('response_type'))
    if (p.response_type !== 'code') {
      return fail(aadError(400, 'unsupported_response_type', 700054, `response_type '${p.response_type}' is not enabled for the application.`))
    }
    const appErr = checkAppAuthority(app, authority)
    if (appErr) return fail(appErr)
    if (!p.scope) return fail(missingParam('scope'))
    const scopes = parseScopes(p.scope)
    if ('status' in scopes) return fail(scopes)
    // PKCE is recommended for every platform and required only where a SPA redirect
    // URI's code is redeemed (checked there, AADSTS9002325): a native or web client
    // may sign in without it (docs/emulator/redirect-uri-platforms.md).
    const challenge = p.code_challenge || undefined
    // `plain` (the default when no method is given) and `S256` are both supported (RFC 7636 §4.2/4.3).
    const method = p.code_challenge_method || 'plain'
    if (challenge !== undefined) {
      if (method !== 'S256' && method !== 'plain') {
        return fail(aadError(400, 'invalid_request', 501491, `Invalid code_challenge_method '${method}'. Use S256 or plain.`))
      }
      if (!(method === 'S256' ? /^[A-Za-z0-9_-]{43}$/ : /^[A-Za-z0-9._~-]{43,128}$/).test(challenge)) {
        return fail(aadError(400, 'invalid_request', 501491, 'Invalid size of Code_Challenge parameter.'))
      }
    }
    const grantCode = (acc: Account) => {
      const code = `1.A${randomToken(64)}`
      this.#codes.set(hashOf(code), {
        clientId: app.clientId, handle: acc.handle, redirectUri, scopes: effectiveScopes(scopes),
        offline: scopes.offline, openid: scopes.openid, nonce: p.nonce, platform: registered.platform,
        codeChallenge: challenge, codeChallengeMethod: challenge === undefined ? undefined : method === 'S256' ? 'S256' : 'plain',
        authoritySegment: authority.segment, expiresAt: this.#clock.now() + CODE_TTL_MS, redeemed: false,
      })
      this.#prune()
      const fields: Record<string, string> = { code }
      if (p.client_info === '1') fields.client_info = clientInfo(acc)
      fields.session_state = randomUUID()
      back(fields)
    }
    const action = url.pathname
    // The consent page posted back.
    if (isPost && p.emulator_action !== undefined) {
      if (p.emulator_action !== 'accept') {
        return fail(aadError(400, 'access_denied', 65004, 'User declined to consent to access the app.'))
      }
      const acc = findAccount(p.emulator_account ?? '')
      if (!acc) return sendHtml(res, 400, consentPage(action, p, app, effectiveScopes(scopes), 'Pick one of the listed accounts.'))
      const err = checkSignIn(app, authority, acc)
      if (err) return sendHtml(res, 400, consentPage(action, p, app, effectiveScopes(scopes), `AADSTS${err.code}: ${err.description}`))
      return grantCode(acc)
    }
    const auto = this.#autoConsent ?? (p.emulator_consent === '1' && p.login_hint ? findAccount(p.login_hint)?.handle : undefined)
    if (auto) {
      const acc = findAccount(auto)!
      const err = checkSignIn(app, authority, acc)
      if (err) return fail(err, 'access_denied')
      return grantCode(acc)
    }
    if (p.prompt === 'none') {
      return fail(aadError(400, 'login_required', 50058, 'A silent sign-in request was sent but no user is signed in.'))
    }
    sendHtml(res, 200, consentPage(action, p, app, effectiveScopes(scopes)))
  }

  #toClient(res: http.ServerResponse, redirectUri: string, mode: 'query' | 'fragment' | 'form_post', fields: Record<string, string>): void {
    // Never send a browser to the real login host: its nativeclient page is served here.
    const native = NATIVE_CLIENT.exec(redirectUri)
    const target = native ? `${this.#baseUrl()}${native[1]}` : redirectUri
    if (mode === 'form_post') return sendHtml(res, 200, formPostPage(target, fields))
    const u = new URL(target)
    if (mode === 'fragment') {
      u.hash = new URLSearchParams(fields).toString()
    } else {
      for (const [k, v] of Object.entries(fields)) u.searchParams.set(k, v)
    }
    redirect(res, u.toString())
  }

  // ---- device code --------------------------------------------------------

  #deviceCode(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, authority: Authority, corr: string): void {
    if (req.method !== 'POST') {
      return this.#sendError(res, aadError(405, 'invalid_request', 900561, `The endpoint only accepts POST, OPTIONS requests. Received a ${req.method} request.`), corr)
    }
    const form = parseForm(req, body)
    if (!form || !form.client_id) return this.#sendError(res, missingParam('client_id'), corr)
    const app = findApp(form.client_id)
    if (!app) return this.#sendError(res, appNotFound(form.client_id, authority), corr)
    if (!form.scope) return this.#sendError(res, missingParam('scope'), corr)
    const scopes = parseScopes(form.scope)
    if ('status' in scopes) return this.#sendError(res, scopes, corr)
    const appErr = checkAppAuthority(app, authority)
    if (appErr) return this.#sendError(res, appErr, corr)
    const deviceCode = `DAQABIQEAAA${randomToken(96)}`
    let userCode: string
    do {
      userCode = Array.from({ length: 8 }, () => USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)]).join('')
    } while (this.#userCodes.has(userCode))
    const now = this.#clock.now()
    const hash = hashOf(deviceCode)
    this.#devices.set(hash, {
      userCode, clientId: app.clientId, scopes: effectiveScopes(scopes), offline: scopes.offline, openid: scopes.openid,
      authoritySegment: authority.segment, expiresAt: now + this.#deviceTtlSec * 1000, intervalSec: this.#intervalSec,
      state: 'pending',
    })
    this.#userCodes.set(userCode, hash)
    this.#prune()
    const verificationUri = `${this.#baseUrl()}/devicelogin`
    sendJson(res, 200, {
      user_code: userCode,
      device_code: deviceCode,
      verification_uri: verificationUri,
      expires_in: this.#deviceTtlSec,
      interval: this.#intervalSec,
      message: `To sign in, use a web browser to open the page ${verificationUri} and enter the code ${userCode} to authenticate.`,
    })
  }

  #deviceByUserCode(userCode: string): DeviceRecord | undefined {
    const norm = userCode.toUpperCase().replace(/[\s-]/g, '')
    const hash = this.#userCodes.get(norm)
    return hash ? this.#devices.get(hash) : undefined
  }

  /** Signs the account in for a pending device code; the refusal, if any (also recorded on the code). */
  #approveDevice(rec: DeviceRecord, handle: string): AadError | undefined {
    const acc = findAccount(handle)
    if (!acc) return aadError(400, 'invalid_request', 50034, `The user account '${handle}' does not exist in the directory. To sign into this application, the account must be added to the directory.`)
    const app = findApp(rec.clientId)!
    const authority = resolveAuthority(rec.authoritySegment)!
    const err = checkSignIn(app, authority, acc)
    rec.handle = acc.handle
    if (err) {
      rec.state = 'rejected'
      rec.rejection = { error: err.error, code: err.code, description: err.description }
      return err
    }
    rec.state = 'approved'
    return undefined
  }

  #deviceLogin(req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: Buffer): void {
    if (req.method !== 'POST') {
      const code = url.searchParams.get('otc') ?? url.searchParams.get('code') ?? ''
      return sendHtml(res, 200, deviceLoginPage(code))
    }
    const form = parseForm(req, body) ?? {}
    const code = form.user_code ?? ''
    const rec = this.#deviceByUserCode(code)
    if (!rec || rec.state !== 'pending' || this.#clock.now() >= rec.expiresAt) {
      return sendHtml(res, 400, deviceLoginPage(code, "That code didn't work. Check the code and try again. (AADSTS70019: the code is unknown, expired or already used.)"))
    }
    if (form.action === 'decline') {
      rec.state = 'declined'
      return sendHtml(res, 200, messagePage('Sign-in cancelled', 'You have declined to sign in to the application on your device. You may now close this window.'))
    }
    const err = this.#approveDevice(rec, form.account ?? '')
    if (err) return sendHtml(res, 400, errorPage("Sorry, but we're having trouble signing you in.", `AADSTS${err.code}: ${err.description}`))
    const app = findApp(rec.clientId)!
    sendHtml(res, 200, messagePage(app.displayName, `You have signed in to the ${app.displayName} application on your device. You may now close this window.`))
  }

  // ---- token --------------------------------------------------------------

  #token(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, authority: Authority, corr: string): void {
    const send = (err: AadError) => this.#sendError(res, err, corr)
    if (req.method !== 'POST') {
      return send(aadError(405, 'invalid_request', 900561, `The endpoint only accepts POST, OPTIONS requests. Received a ${req.method} request.`))
    }
    const form = parseForm(req, body)
    if (!form) return send(missingParam('grant_type'))
    const grantType = form.grant_type
    if (!grantType) return send(missingParam('grant_type'))
    // Client authentication: form fields or HTTP Basic.
    let clientId = form.client_id
    let secret = form.client_secret
    const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '')
    if (basic) {
      const [id, ...rest] = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':')
      clientId ??= decodeURIComponent(id ?? '')
      secret ??= decodeURIComponent(rest.join(':'))
    }
    if (!clientId) return send(missingParam('client_id'))
    const app = findApp(clientId)
    if (!app) return send(appNotFound(clientId, authority))
    // Confidential or public is decided by the platform of the redirect URI the code (or
    // the refresh token's sign-in) went through; for the other grants, by the app.
    const platform = this.#redeemingPlatform(grantType, form, app)
    if (platform === 'web') {
      if (!secret) return send(aadError(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."))
      if (!app.secret || !sameSecret(secret, app.secret)) {
        return send(aadError(401, 'invalid_client', 7000215, `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${app.clientId}'.`))
      }
    } else if (secret) {
      return send(aadError(400, 'invalid_client', 700025, "Client is public so neither 'client_assertion' nor 'client_secret' should be presented."))
    }
    const origin = typeof req.headers.origin === 'string' ? req.headers.origin : undefined
    switch (grantType) {
      case 'authorization_code':
        return this.#redeemCode(res, form, app, authority, corr, origin)
      case 'refresh_token':
        return this.#redeemRefresh(res, form, app, authority, corr, origin)
      case 'device_code':
      case 'urn:ietf:params:oauth:grant-type:device_code':
        return this.#redeemDevice(res, form, app, authority, corr)
      case 'client_credentials':
        return this.#clientCredentials(res, form, app, authority, corr)
      default:
        return send(aadError(400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grantType}'.`))
    }
  }

  /** The platform whose rules apply to this token request (see #token). */
  #redeemingPlatform(grantType: string, form: Record<string, string>, app: AppRegistration): RedirectPlatform {
    const fallback: RedirectPlatform = app.secret ? 'web' : 'publicClient'
    if (grantType === 'authorization_code' && form.code) {
      const rec = this.#codes.get(hashOf(form.code))
      if (rec && rec.clientId === app.clientId) return rec.platform
    }
    if (grantType === 'refresh_token' && form.refresh_token) {
      const g = this.#grants.get(hashOf(form.refresh_token))
      if (g && g.clientId === app.clientId) return g.platform
    }
    return fallback
  }

  #redeemCode(res: http.ServerResponse, form: Record<string, string>, app: AppRegistration, authority: Authority, corr: string,
    origin: string | undefined): void {
    const send = (err: AadError) => this.#sendError(res, err, corr)
    const appErr = checkAppAuthority(app, authority)
    if (appErr) return send(appErr)
    if (!form.code) return send(missingParam('code'))
    const rec = this.#codes.get(hashOf(form.code))
    if (!rec) return send(aadError(400, 'invalid_grant', 9002313, 'Invalid request. Request is malformed or invalid. The authorization code is not valid.'))
    if (rec.redeemed) return send(aadError(400, 'invalid_grant', 54005, 'OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.'))
    if (this.#clock.now() >= rec.expiresAt) {
      return send(aadError(400, 'invalid_grant', 70008, 'The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.'))
    }
    if (rec.clientId !== app.clientId) return send(aadError(400, 'invalid_grant', 70000, 'Provided grant is invalid or malformed. The authorization code was issued to another application.'))
    if (!form.redirect_uri) return send(missingParam('redirect_uri'))
    if (form.redirect_uri !== rec.redirectUri) {
      return send(aadError(400, 'invalid_grant', 500112, `The reply address '${form.redirect_uri}' does not match the reply address '${rec.redirectUri}' provided when requesting Authorization code.`))
    }
    const crossOrigin = crossOriginRule(rec.platform, origin, rec.codeChallenge !== undefined)
    if (crossOrigin) return send(crossOrigin)
    if (rec.codeChallenge !== undefined) {
      const v = form.code_verifier
      const ok = v !== undefined && /^[A-Za-z0-9._~-]{43,128}$/.test(v) &&
        (rec.codeChallengeMethod === 'plain' ? v : b64url(createHash('sha256').update(v).digest())) === rec.codeChallenge
      if (!ok) return send(aadError(400, 'invalid_grant', 501481, 'The Code_Verifier does not match the code_challenge supplied in the authorization request.'))
    }
    const acc = findAccount(rec.handle)!
    const err = checkSignIn(app, authority, acc)
    if (err) return send(err)
    rec.redeemed = true
    sendJson(res, 200, this.#issueUser(app, acc, authority, rec.scopes, {
      openid: rec.openid, offline: rec.offline, nonce: rec.nonce, platform: rec.platform,
      refreshExpiresAt: rec.platform === 'spa' ? this.#clock.now() + SPA_REFRESH_MS : undefined,
    }))
  }

  #redeemRefresh(res: http.ServerResponse, form: Record<string, string>, app: AppRegistration, authority: Authority, corr: string,
    origin: string | undefined): void {
    const send = (err: AadError) => this.#sendError(res, err, corr)
    if (!form.refresh_token) return send(missingParam('refresh_token'))
    const g = this.#grants.get(hashOf(form.refresh_token))
    if (!g) return send(aadError(400, 'invalid_grant', 9002313, 'Invalid request. Request is malformed or invalid. The refresh token is not valid.'))
    if (g.clientId !== app.clientId) return send(aadError(400, 'invalid_grant', 70000, 'Provided grant is invalid or malformed. The refresh token was issued to another application.'))
    const crossOrigin = crossOriginRule(g.platform, origin)
    if (crossOrigin) return send(crossOrigin)
    const now = this.#clock.now()
    if (g.revoked) return send(revokedError(g.issuedAt, now))
    if (g.expiresAt !== undefined && now >= g.expiresAt) {
      return send(aadError(400, 'invalid_grant', 700084, `The refresh token was issued to a single page app (SPA), and therefore has a fixed, limited lifetime of 1.00:00:00, which can't be extended. It is now expired and a new sign in request must be sent by the SPA to the sign in page. The token was issued on '${new Date(g.issuedAt).toISOString()}'.`))
    }
    if (now - g.lastUsedAt > REFRESH_INACTIVE_MS) {
      return send(aadError(400, 'invalid_grant', 700082, `The refresh token has expired due to inactivity. The token was issued on '${new Date(g.issuedAt).toISOString()}' and was inactive for 90.00:00:00.`, 'bad_token'))
    }
    const appErr = checkAppAuthority(app, authority)
    if (appErr) return send(appErr)
    const acc = findAccount(g.handle)!
    const err = checkSignIn(app, authority, acc)
    if (err) return send(err)
    let scopes = g.scopes
    let openid = true
    if (form.scope) {
      const req = parseScopes(form.scope)
      if ('status' in req) return send(req)
      const missing = req.resource.filter((s) => !g.scopes.includes(s))
      if (missing.length > 0) {
        return send(aadError(400, 'invalid_grant', 65001, `The user or administrator has not consented to use the application with ID '${app.clientId}' named '${app.displayName}'. Send an interactive authorization request for this user and resource.`, 'consent_required'))
      }
      if (req.resource.length > 0) scopes = req.resource
      openid = req.openid
    }
    g.lastUsedAt = now
    sendJson(res, 200, this.#issueUser(app, acc, authority, scopes, { openid, offline: true, platform: g.platform, refreshExpiresAt: g.expiresAt }, g.scopes))
  }

  #redeemDevice(res: http.ServerResponse, form: Record<string, string>, app: AppRegistration, authority: Authority, corr: string): void {
    const send = (err: AadError) => this.#sendError(res, err, corr)
    if (!form.device_code) return send(missingParam('device_code'))
    const rec = this.#devices.get(hashOf(form.device_code))
    if (!rec || rec.clientId !== app.clientId) {
      return send(aadError(400, 'bad_verification_code', 70000, 'The device code is not valid: it was not recognized or was issued to another application.'))
    }
    const now = this.#clock.now()
    if (rec.state === 'redeemed') return send(aadError(400, 'invalid_grant', 54005, 'The device code was already redeemed. Start a new device code flow.'))
    if (now >= rec.expiresAt) return send(aadError(400, 'expired_token', 70019, 'Verification code expired.'))
    if (rec.state === 'declined') return send(aadError(400, 'authorization_declined', 70000, 'The user declined the authorization request.'))
    if (rec.state === 'rejected') {
      const r = rec.rejection!
      return send(aadError(400, r.error, r.code, r.description, r.code === 50173 ? 'bad_token' : undefined))
    }
    if (rec.state === 'pending') {
      const last = rec.lastPollAt
      rec.lastPollAt = now
      if (rec.intervalSec > 0 && last !== undefined && now - last < rec.intervalSec * 1000) {
        return send(aadError(400, 'slow_down', 70016, `OAuth 2.0 device flow error. Polling too frequently: wait at least ${rec.intervalSec} seconds between requests.`))
      }
      if (this.#autoConsent !== undefined) {
        const err = this.#approveDevice(rec, this.#autoConsent)
        if (err) return send(err)
      } else {
        return send(aadError(400, 'authorization_pending', 70016, 'OAuth 2.0 device flow error. Authorization is pending. Continue polling.'))
      }
    }
    const acc = findAccount(rec.handle!)!
    const err = checkSignIn(app, authority, acc)
    if (err) return send(err)
    rec.state = 'redeemed'
    sendJson(res, 200, this.#issueUser(app, acc, authority, rec.scopes, { openid: rec.openid, offline: rec.offline, platform: app.secret ? 'web' : 'publicClient' }))
  }

  #clientCredentials(res: http.ServerResponse, form: Record<string, string>, app: AppRegistration, authority: Authority, corr: string): void {
    const send = (err: AadError) => this.#sendError(res, err, corr)
    if (!app.secret) return send(aadError(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."))
    if (authority.kind === 'common' || authority.kind === 'organizations') {
      return send(aadError(400, 'invalid_request', 50059, 'No tenant-identifying information found in either the request or implied by any provided credentials.'))
    }
    if (authority.kind === 'consumers') return send(appNotFound(app.clientId, authority))
    const appErr = checkAppAuthority(app, authority)
    if (appErr) return send(appErr)
    if (!form.scope) return send(missingParam('scope'))
    const parts = form.scope.split(/\s+/).filter(Boolean)
    if (parts.length !== 1 || !/^(https:\/\/graph\.microsoft\.com|00000003-0000-0000-c000-000000000000)\/\.default$/i.test(parts[0]!)) {
      return send(aadError(400, 'invalid_scope', 1002012, `The provided value for scope ${form.scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`))
    }
    const now = this.#clock.now()
    const exp = now + this.#accessTtlSec * 1000
    const tid = authority.tenant!.id
    const token = this.#signing.jwt({
      aud: 'https://graph.microsoft.com', iss: `https://sts.windows.net/${tid}/`, iat: sec(now), nbf: sec(now), exp: sec(exp),
      app_displayname: app.displayName, appid: app.clientId, appidacr: '1', idtyp: 'app', oid: randomUUID(),
      roles: ['Files.ReadWrite.All', 'Sites.ReadWrite.All'], sub: randomUUID(), tid, uti: randomToken(16), ver: '1.0',
    })
    this.#access.set(hashOf(token), { clientId: app.clientId, scopes: [], expiresAt: exp, revoked: false })
    this.#prune()
    sendJson(res, 200, { token_type: 'Bearer', expires_in: this.#accessTtlSec, ext_expires_in: this.#accessTtlSec, access_token: token })
  }

  /** Access token, refresh token (with offline_access), id_token (with openid), client_info. */
  #issueUser(app: AppRegistration, acc: Account, authority: Authority, scopes: string[], o: IssueOptions,
    consented: string[] = scopes): Record<string, unknown> {
    const now = this.#clock.now()
    const exp = now + this.#accessTtlSec * 1000
    const tid = acc.tenantId
    let accessToken: string
    if (acc.kind === 'personal') {
      accessToken = `EwB${randomToken(180)}`
    } else {
      accessToken = this.#signing.jwt({
        aud: GRAPH_APP_ID, iss: `https://sts.windows.net/${tid}/`, iat: sec(now), nbf: sec(now), exp: sec(exp),
        acct: 0, acr: '1', app_displayname: app.displayName, appid: app.clientId, appidacr: app.secret ? '1' : '0',
        idtyp: 'user', name: acc.displayName, oid: acc.oid, scp: scopes.join(' '), sub: pairwiseSub(GRAPH_APP_ID, acc),
        tid, unique_name: acc.upn, upn: acc.upn, uti: randomToken(16), ver: '1.0',
      })
    }
    this.#access.set(hashOf(accessToken), { handle: acc.handle, clientId: app.clientId, scopes: [...scopes], expiresAt: exp, revoked: false })
    const out: Record<string, unknown> = {
      token_type: 'Bearer',
      scope: scopes.join(' '),
      expires_in: this.#accessTtlSec,
      ext_expires_in: this.#accessTtlSec,
      access_token: accessToken,
    }
    if (o.offline) {
      const rt = `${acc.kind === 'personal' ? 'M.C5' : '1.AQ'}${randomToken(120)}`
      this.#grants.set(hashOf(rt), {
        handle: acc.handle, clientId: app.clientId, scopes: [...consented], authoritySegment: authority.segment,
        issuedAt: now, lastUsedAt: now, revoked: false, platform: o.platform, expiresAt: o.refreshExpiresAt,
      })
      out.refresh_token = rt
    }
    if (o.openid) {
      const claims: Record<string, unknown> = {
        aud: app.clientId, iss: `${this.#baseUrl()}/${tid}/v2.0`, iat: sec(now), nbf: sec(now), exp: sec(exp),
        name: acc.displayName, oid: acc.oid, preferred_username: acc.upn, email: acc.email,
        sub: pairwiseSub(app.clientId, acc), tid, uti: randomToken(16), ver: '2.0',
      }
      if (o.nonce !== undefined) claims.nonce = o.nonce
      out.id_token = this.#signing.jwt(claims)
    }
    out.client_info = clientInfo(acc)
    this.#prune()
    return out
  }

  /** Drops long-dead records now and then so a long-running emulator stays small. */
  #prune(): void {
    if (++this.#issued % 500 !== 0) return
    const now = this.#clock.now()
    const day = 24 * 3600_000
    for (const [k, a] of this.#access) if (a.expiresAt + day < now) this.#access.delete(k)
    for (const [k, c] of this.#codes) if (c.expiresAt + day < now) this.#codes.delete(k)
    for (const [k, d] of this.#devices) {
      if (d.expiresAt + day < now) {
        this.#devices.delete(k)
        this.#userCodes.delete(d.userCode)
      }
    }
  }

  // ---- test hooks ---------------------------------------------------------

  #hooks(req: http.IncomingMessage, res: http.ServerResponse, name: string, body: Buffer): void {
    const bad = (status: number, error: string, message: string) => sendJson(res, status, { error, message })
    if (req.method !== 'POST') return bad(405, 'method_not_allowed', 'test hooks take POST with a JSON body')
    let input: Record<string, unknown> = {}
    if (body.length > 0) {
      try {
        const v: unknown = JSON.parse(body.toString('utf8'))
        if (v && typeof v === 'object' && !Array.isArray(v)) input = v as Record<string, unknown>
        else return bad(400, 'invalid_request', 'body must be a JSON object')
      } catch {
        return bad(400, 'invalid_request', 'body is not valid JSON')
      }
    }
    const str = (k: string) => (typeof input[k] === 'string' ? (input[k] as string) : undefined)
    switch (name) {
      case 'approve':
      case 'decline': {
        const userCode = str('user_code')
        if (!userCode) return bad(400, 'invalid_request', 'user_code is required')
        const rec = this.#deviceByUserCode(userCode)
        if (!rec || rec.state !== 'pending' || this.#clock.now() >= rec.expiresAt) {
          return bad(404, 'not_found', 'no pending device code with that user_code (unknown, expired or already used)')
        }
        if (name === 'decline') {
          rec.state = 'declined'
          return sendJson(res, 200, { declined: true })
        }
        const account = str('account')
        if (!account || !findAccount(account)) return bad(400, 'invalid_request', 'account must name a test account')
        const err = this.#approveDevice(rec, account)
        if (err) return sendJson(res, 400, errorBody(err, this.#clock, randomUUID()))
        return sendJson(res, 200, { approved: true, account: rec.handle })
      }
      case 'revoke': {
        const account = str('account')
        if (!account || !findAccount(account)) return bad(400, 'invalid_request', 'account must name a test account')
        return sendJson(res, 200, { revoked: this.#revoke(account) })
      }
      case 'expire-access-tokens': {
        const account = str('account')
        if (account !== undefined && !findAccount(account)) return bad(400, 'invalid_request', 'account must name a test account')
        return sendJson(res, 200, { expired: this.expireAccessTokens(account) })
      }
      case 'auto-consent': {
        const account = input.account
        if (account !== null && account !== undefined && (typeof account !== 'string' || !findAccount(account))) {
          return bad(400, 'invalid_request', 'account must name a test account or be null')
        }
        this.setAutoConsent(typeof account === 'string' ? account : undefined)
        return sendJson(res, 200, { autoConsent: this.#autoConsent ?? null })
      }
      default:
        return bad(404, 'not_found', `no identity test hook '${name}'`)
    }
  }
}

let sharedKey: SigningKey | undefined

function sec(ms: number): number {
  return Math.floor(ms / 1000)
}

function effectiveScopes(s: ScopeRequest): string[] {
  // Asking only for OpenID scopes still yields a Graph token with User.Read.
  return s.resource.length > 0 ? s.resource : ['User.Read']
}

/**
 * The cross-origin rules of code and refresh-token redemption: a SPA redirect URI's
 * code needs PKCE and, like its refresh tokens, a cross-origin (browser, `Origin`)
 * request; any other platform's tokens are never redeemed cross-origin.
 * `pkce` is given for authorization codes only.
 */
function crossOriginRule(platform: RedirectPlatform, origin: string | undefined, pkce?: boolean): AadError | undefined {
  if (platform === 'spa') {
    if (pkce === false) return aadError(400, 'invalid_request', 9002325, 'Proof Key for Code Exchange is required for cross-origin authorization code redemption.')
    if (origin === undefined) return aadError(400, 'invalid_request', 9002327, "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin requests.")
    return undefined
  }
  if (origin !== undefined) {
    return aadError(400, 'invalid_request', 9002326, `Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type. Request origin: '${origin}'.`)
  }
  return undefined
}

function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest()
  const b = createHash('sha256').update(expected).digest()
  return timingSafeEqual(a, b)
}

function revokedError(issuedAt: number, now: number): AadError {
  return aadError(400, 'invalid_grant', 50173, `The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '${new Date(issuedAt).toISOString()}' and the TokensValidFrom date (before which tokens are not valid) for this user is '${new Date(now).toISOString()}'.`, 'bad_token')
}
