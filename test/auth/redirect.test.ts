// A login endpoint that answers a token request with a 307 must not get the
// client secret, refresh token or device code resent elsewhere: odfs refuses the
// redirect with an error naming the endpoint. Two local HTTPS servers: "login"
// (serves the emulator's metadata, redirects every POST) and "elsewhere" (records
// what reaches it).
import t from 'tap'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureTls } from '../../src/emulator/tls.js'
import { createDispatcher, silentLogger } from '../../src/common/index.js'
import { AuthError, loginWithDeviceCode, toAuthError } from '../../src/auth/index.js'
import { startAuthEmulator, sandboxGateway, CONFIDENTIAL_APP } from '../support/auth.js'

const REFRESH = '1.AQ-refresh-token-that-must-stay-home'

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`https://127.0.0.1:${(server.address() as AddressInfo).port}`)))
}

t.test('token requests are not redirected', async (t) => {
  const emu = await startAuthEmulator()
  t.teardown(() => emu.close())
  const dir = await mkdtemp(join(tmpdir(), 'odfs-redirect-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const tls = ensureTls(dir)
  const emuDispatcher = await createDispatcher({ caFile: emu.ca })
  t.teardown(() => emuDispatcher.close())

  const received: string[] = []
  const elsewhere = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      received.push(`${req.method} ${req.url}\n${body}`)
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_request', error_description: 'elsewhere' }))
    })
  })
  const elsewhereUrl = await listen(elsewhere)
  t.teardown(() => elsewhere.close())

  let loginUrl = ''
  const login = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    if (req.method === 'GET') {
      // the real metadata, with the emulator's origin replaced by ours
      void fetch(emu.authority + req.url, { dispatcher: emuDispatcher } as RequestInit).then(async (r) => {
        res.writeHead(r.status, { 'content-type': 'application/json' }).end((await r.text()).split(emu.authority).join(loginUrl))
      })
      return
    }
    req.resume()
    res.writeHead(307, { location: `${elsewhereUrl}${req.url}` }).end()
  })
  loginUrl = await listen(login)
  t.teardown(() => login.close())

  const { config, dispatcher, app } = await sandboxGateway(t, { authority: loginUrl, graph: emu.graph, ca: tls.caFile }, CONFIDENTIAL_APP)

  await t.test('device code request (our own form post)', async (t) => {
    const err = await loginWithDeviceCode({ app, config, dispatcher, log: silentLogger, onPrompt: () => t.fail('no prompt') }).catch((e) => e)
    t.ok(err instanceof AuthError, 'typed error')
    t.match(err.message, `the identity platform endpoint ${loginUrl}/`)
    t.match(err.message, /\/oauth2\/v2\.0\/devicecode answered HTTP 307, a redirect to https:\/\/127\.0\.0\.1:\d+; odfs does not follow redirects/)
    t.notOk(err.message.includes(CONFIDENTIAL_APP.secret!), 'no secret in the message')
  })

  await t.test('refresh through msal (its network module)', async (t) => {
    const raw = await app.acquireTokenByRefreshToken({ refreshToken: REFRESH, scopes: config.scopes }).catch((e) => e)
    const err = toAuthError(raw, config, 'token refresh')
    t.equal(err.code, 'AUTH_NETWORK')
    t.match(err.message, /^token refresh failed: the identity platform endpoint https:\/\/127\.0\.0\.1:\d+\/.*\/oauth2\/v2\.0\/token answered HTTP 307, a redirect/)
    t.notOk(String(err.message).includes(REFRESH))
    t.notOk(String(err.message).includes(CONFIDENTIAL_APP.secret!))
  })

  t.same(received, [], 'nothing reached the redirect target: no secret, no refresh token resent')
})
