/**
 * The one HTTP exchange with the identity platform: msal's network module
 * (metadata, token requests) and the device-code form posts both go through it.
 *
 * - Sent through the session's undici dispatcher (so `ca_file` is trusted), with
 *   its request() API rather than fetch: Node's own fetch would load a second copy
 *   of undici at every command's start (~60 ms, docs/performance.md), and a
 *   connection to the login host is then shared with the other requests to it.
 * - Never redirected: token requests carry the client secret, a refresh token, a
 *   device code or an authorization code, and a 307/308 would resend the whole form
 *   to wherever a misconfigured or hostile endpoint points. A 3xx answer comes back
 *   with `refused` set to the message to report (naming the endpoint's origin and
 *   path only: no query, no body).
 * - Bounded by a timeout; a failure to reach the endpoint is AuthError AUTH_NETWORK
 *   naming the origin (and what to set when the certificate is not trusted).
 */
import { loadUndici, type Dispatcher } from '../common/index.js'
import { AuthError } from './errors.js'

export interface IdentityRequest {
  method: 'GET' | 'POST'
  headers?: Record<string, string>
  body?: string
  signal?: AbortSignal
  timeoutMs?: number
}

export interface IdentityAnswer {
  status: number
  /** Header names in lower case; repeated headers joined with ", ". */
  headers: Record<string, string>
  text: string
  /** Set for a redirect, which is not followed: the message to report. */
  refused?: string
}

const DEFAULT_TIMEOUT_MS = 60_000

/** A hint for certificate failures: a private CA needs ca_file. */
export function tlsHint(code: string | undefined): string {
  return code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)
    ? ' (the server certificate is not trusted: set ca_file in the gateway policies, or --ca-file, to the CA that signed it)'
    : ''
}

function redirectMessage(status: number, location: string | undefined, url: URL): string {
  let to = ''
  try {
    if (location) to = ` to ${new URL(location, url).origin}`
  } catch {
    /* unparsable Location: name no target */
  }
  return `the identity platform endpoint ${url.origin}${url.pathname} answered HTTP ${status}, a redirect${to}; odfs does not follow redirects of sign-in requests (they carry credentials): check login_endpoint / --ms-login-endpoint`
}

export async function identityExchange(url: string, req: IdentityRequest, dispatcher: Dispatcher | undefined): Promise<IdentityAnswer> {
  const u = new URL(url)
  const timeout = AbortSignal.timeout(req.timeoutMs || DEFAULT_TIMEOUT_MS)
  const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout
  const d = dispatcher ?? (await loadUndici()).getGlobalDispatcher()
  let res: Dispatcher.ResponseData
  let text: string
  try {
    res = await d.request({
      origin: u.origin,
      path: u.pathname + u.search,
      method: req.method,
      headers: req.headers,
      body: req.method === 'POST' ? (req.body ?? '') : undefined,
      signal,
    })
    text = await res.body.text()
  } catch (e) {
    if (req.signal?.aborted) throw req.signal.reason
    const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } }
    const code = err.code && !err.code.startsWith('UND_ERR_ABORTED') ? err.code : err.cause?.code
    const what = timeout.aborted ? `no answer within ${Math.round((req.timeoutMs || DEFAULT_TIMEOUT_MS) / 1000)} s` : (code ?? err.cause?.message ?? err.message)
    throw new AuthError('AUTH_NETWORK', `cannot reach the identity platform at ${u.origin}: ${what}${tlsHint(code)}`, { cause: e, level: 'warn' })
  }
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v
  const status = res.statusCode
  if (status >= 300 && status <= 399) return { status, headers: {}, text: '', refused: redirectMessage(status, headers.location, u) }
  return { status, headers, text }
}
