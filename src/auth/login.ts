/**
 * Interactive sign-in: device code (default, for headless machines) and
 * authorization code with PKCE (`--browser`).
 *
 * Device code is spoken directly (RFC 8628 as the identity platform implements
 * it: `/devicecode`, then polls of `/token` with the standard grant type at the
 * server's interval, `slow_down` adding 5 s), because msal-node offers it only to
 * public clients and a gateway with a secret is a confidential client that must
 * authenticate every token request. The refresh token it yields is then redeemed
 * once through msal (`acquireTokenByRefreshToken`), which stores the account and
 * tokens in the token cache like any other msal flow.
 *
 * Authorization code uses msal (getAuthCodeUrl / acquireTokenByCode) with a PKCE
 * pair and a random state. The redirect lands on a loopback listener
 * (http://localhost:PORT/, bound to 127.0.0.1) unless an `auth_callback` is
 * configured; then, and whenever the browser runs on another machine, the user
 * pastes the address the browser ended on.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createInterface } from 'node:readline'
import type { AuthenticationResult } from '@azure/msal-node'
import { systemClock, type Clock, type Dispatcher, type Logger } from '../common/index.js'
import type { GatewayConfig } from '../config/index.js'
import { AuthError } from './errors.js'
import { toAuthError, type MsalApp } from './msal.js'
import { identityExchange } from './http.js'

export interface DeviceCodePrompt {
  verificationUri: string
  userCode: string
  /** The server's own instruction text. */
  message: string
  expiresInSec: number
}

export interface LoginCommon {
  app: MsalApp
  config: GatewayConfig
  dispatcher?: Dispatcher
  log: Logger
  signal?: AbortSignal
  clock?: Clock
}

async function postForm(url: string, form: Record<string, string>, dispatcher: Dispatcher | undefined, signal?: AbortSignal): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await identityExchange(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(form).toString(),
    signal,
  }, dispatcher)
  if (res.refused) throw new AuthError('AUTH_NETWORK', res.refused)
  let body: Record<string, unknown>
  try {
    body = JSON.parse(res.text)
  } catch {
    throw new AuthError('AUTH_NETWORK', `the identity platform answered HTTP ${res.status} to ${new URL(url).pathname} with a body that is not JSON`)
  }
  return { status: res.status, body }
}

/**
 * Device-code sign-in. `onPrompt` shows the URL and code; the promise resolves
 * once the user approved and the tokens are in the cache.
 */
export async function loginWithDeviceCode(opts: LoginCommon & { onPrompt: (p: DeviceCodePrompt) => void }): Promise<AuthenticationResult> {
  const { config, dispatcher, signal } = opts
  const clock = opts.clock ?? systemClock
  const base = `${config.authority}/oauth2/v2.0`
  const client: Record<string, string> = { client_id: config.clientId, ...(config.secret ? { client_secret: config.secret } : {}) }
  try {
    const dc = await postForm(`${base}/devicecode`, { ...client, scope: config.scopes.join(' ') }, dispatcher, signal)
    if (dc.status !== 200) throw toAuthError(dc.body, config, 'sign-in')
    const deviceCode = String(dc.body.device_code ?? '')
    const userCode = String(dc.body.user_code ?? '')
    const verificationUri = String(dc.body.verification_uri ?? dc.body.verification_url ?? '')
    if (!deviceCode || !userCode || !verificationUri) {
      throw new AuthError('LOGIN_FAILED', 'sign-in failed: the device code response lacks device_code, user_code or verification_uri')
    }
    const expiresInSec = Number(dc.body.expires_in ?? 900)
    let intervalSec = Number(dc.body.interval ?? 5)
    if (!Number.isFinite(intervalSec) || intervalSec < 0) intervalSec = 5
    opts.onPrompt({
      verificationUri,
      userCode,
      message: String(dc.body.message ?? `To sign in, open ${verificationUri} and enter the code ${userCode}.`),
      expiresInSec,
    })
    const deadline = clock.now() + expiresInSec * 1000
    for (;;) {
      await clock.sleep(intervalSec * 1000, signal)
      if (clock.now() > deadline + intervalSec * 1000) {
        throw new AuthError('LOGIN_FAILED', 'sign-in failed: the device code expired before it was used; run `odfs login` again')
      }
      const tok = await postForm(`${base}/token`, {
        ...client,
        grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
        device_code: deviceCode,
      }, dispatcher, signal)
      if (tok.status === 200) {
        const refreshToken = tok.body.refresh_token
        if (typeof refreshToken !== 'string' || !refreshToken) {
          throw new AuthError('LOGIN_FAILED', 'sign-in failed: no refresh token was issued (is offline_access granted?)')
        }
        const result = await opts.app.acquireTokenByRefreshToken({ refreshToken, scopes: config.scopes, forceCache: true })
        if (!result?.account) throw new AuthError('LOGIN_FAILED', 'sign-in failed: the identity platform returned no id_token, so the account is unknown')
        return result
      }
      const err = String(tok.body.error ?? '')
      if (err === 'authorization_pending') continue
      if (err === 'slow_down') {
        intervalSec += 5
        continue
      }
      throw toAuthError(tok.body, config, 'sign-in')
    }
  } catch (e) {
    if (signal?.aborted && e === signal.reason) throw e
    throw toAuthError(e, config, 'sign-in')
  }
}

export interface BrowserLoginOptions extends LoginCommon {
  /** Shows the address to open; called once. */
  onAuthorizeUrl: (url: string, redirectUri: string) => void
  /**
   * Where pasted redirect addresses come from (stdin in the CLI). Optional with a
   * loopback listener, required with a configured auth_callback.
   */
  pasteInput?: NodeJS.ReadableStream
  /** Loopback host to bind (default 127.0.0.1). */
  listenHost?: string
}

const DONE_PAGE = '<!doctype html><meta charset="utf-8"><title>odfs</title><p>odfs: sign-in complete. You may close this window.</p>'
const FAIL_PAGE = '<!doctype html><meta charset="utf-8"><title>odfs</title><p>odfs: sign-in failed; see the terminal.</p>'

interface CallbackParams {
  code?: string
  state?: string
  error?: string
  error_description?: string
}

function paramsOf(u: URL): CallbackParams {
  const q = u.searchParams
  const h = new URLSearchParams(u.hash.replace(/^#/, ''))
  const get = (k: string) => q.get(k) ?? h.get(k) ?? undefined
  const out: CallbackParams = {}
  for (const k of ['code', 'state', 'error', 'error_description'] as const) {
    const v = get(k)
    if (v !== undefined) out[k] = v
  }
  return out
}

/** Authorization code + PKCE sign-in through a browser. */
export async function loginWithBrowser(opts: BrowserLoginOptions): Promise<AuthenticationResult> {
  const { config, app, signal } = opts
  const { CryptoProvider } = await import('@azure/msal-node')
  const crypto = new CryptoProvider()
  const pkce = await crypto.generatePkceCodes()
  const state = crypto.createNewGuid()
  let server: Server | undefined
  let redirectUri: string
  const cleanups: (() => void)[] = []
  try {
    const params = await new Promise<CallbackParams>((resolve, reject) => {
      let settled = false
      const finish = (p: CallbackParams | Error) => {
        if (settled) return
        settled = true
        p instanceof Error ? reject(p) : resolve(p)
      }
      const onAbort = () => finish(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'))
      signal?.addEventListener('abort', onAbort, { once: true })
      cleanups.push(() => signal?.removeEventListener('abort', onAbort))

      const start = async () => {
        if (config.authCallback) {
          redirectUri = config.authCallback
          if (!opts.pasteInput) throw new AuthError('LOGIN_FAILED', `sign-in failed: auth_callback ${config.authCallback} is configured, so the address the browser ends on has to be pasted, and no input is available`)
        } else {
          server = createServer((req, res) => {
            const u = new URL(req.url ?? '/', 'http://localhost')
            const p = paramsOf(u)
            if (!p.code && !p.error) {
              res.writeHead(404).end()
              return
            }
            const ok = p.state === state && !!p.code
            res.writeHead(ok ? 200 : 400, { 'content-type': 'text/html; charset=utf-8', connection: 'close' }).end(ok ? DONE_PAGE : FAIL_PAGE)
            finish(p)
          })
          await new Promise<void>((res, rej) => {
            server!.once('error', rej)
            server!.listen(0, opts.listenHost ?? '127.0.0.1', () => res())
          })
          const port = (server.address() as AddressInfo).port
          redirectUri = `http://localhost:${port}/`
        }
        const url = await app.getAuthCodeUrl({
          scopes: config.scopes,
          redirectUri,
          codeChallenge: pkce.challenge,
          codeChallengeMethod: 'S256',
          state,
          prompt: 'select_account',
        })
        opts.onAuthorizeUrl(url, redirectUri)
        if (opts.pasteInput) {
          const rl = createInterface({ input: opts.pasteInput, terminal: false })
          cleanups.push(() => rl.close())
          rl.on('line', (line) => {
            const s = line.trim()
            if (!s) return
            try {
              const p = paramsOf(new URL(s))
              if (p.code || p.error) finish(p)
            } catch {
              /* not an address; ignore */
            }
          })
        }
      }
      start().catch((e) => finish(e as Error))
    })
    if (params.error) throw toAuthError({ error: params.error, error_description: params.error_description ?? '' }, config, 'sign-in')
    if (params.state !== state) throw new AuthError('LOGIN_FAILED', 'sign-in failed: the redirect carried a state that does not belong to this sign-in (stale or forged); run `odfs login --browser` again')
    if (!params.code) throw new AuthError('LOGIN_FAILED', 'sign-in failed: the redirect carried no authorization code')
    const result = await app.acquireTokenByCode({ code: params.code, redirectUri: redirectUri!, scopes: config.scopes, codeVerifier: pkce.verifier })
    if (!result.account) throw new AuthError('LOGIN_FAILED', 'sign-in failed: the identity platform returned no id_token, so the account is unknown')
    return result
  } catch (e) {
    throw toAuthError(e, config, 'sign-in')
  } finally {
    for (const c of cleanups) c()
    if (server) {
      server.closeAllConnections()
      server.close()
    }
  }
}

/** Keep only `keep` in the cache (a new sign-in replaces whoever was signed in before). */
export async function removeOtherAccounts(app: MsalApp, keepHomeAccountId: string): Promise<void> {
  const run = async () => {
    const cache = app.getTokenCache()
    for (const a of await cache.getAllAccounts()) {
      if (a.homeAccountId !== keepHomeAccountId) await cache.removeAccount(a)
    }
  }
  await (app.withCacheLock ? app.withCacheLock(run) : run())
}
