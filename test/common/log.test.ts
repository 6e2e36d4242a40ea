import t from 'tap'
import { Writable } from 'node:stream'
import { createLogger, scrubSecrets } from '../../src/common/log.js'
import { OdfsError } from '../../src/common/errors.js'

function sink() {
  const lines: any[] = []
  let text = ''
  const stream = new Writable({
    write(chunk, _enc, cb) {
      text += chunk.toString()
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l))
      cb()
    },
  })
  return { lines, stream, text: () => text }
}

const JWT = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl'
const SECRETS = {
  clientSecret: 'cs~SECRET-client-0001',
  refresh: '1.AQ-REFRESH-token-0002',
  access: 'EwB-ACCESS-token-0003',
  deviceCode: 'DEVICE-code-0004',
  authCode: 'AUTHCODE-0005',
  tempauth: 'TEMPAUTH-0006',
  sig: 'SIG-0007',
  upload: 'UPLOADPATH-0008',
  download: 'DLPATH-0009',
}

t.test('logger redacts credential fields wherever they sit', async (t) => {
  const { lines, stream } = sink()
  const log = createLogger({ level: 'debug', destination: stream as any })
  log.info({ secret: 's3cr3t', refresh_token: 'rt-abc', req: { headers: { authorization: 'Bearer xyz' } }, ok: 1 }, 'hello')
  t.equal(lines.length, 1)
  const text = JSON.stringify(lines[0])
  t.notMatch(text, /s3cr3t|rt-abc|xyz/)
  t.equal(lines[0].secret, '<redacted>')
  t.equal(lines[0].ok, 1)
})

t.test('secrets at any depth, in strings, messages and errors are redacted; the rest survives', async (t) => {
  const { lines, stream, text } = sink()
  const log = createLogger({ level: 'debug', destination: stream as any }).child({ component: 'test', nested: { accessToken: SECRETS.access } })
  const item = {
    id: '01ABC', name: 'report.pdf', size: 1234, parentReference: { path: '/drive/root:/Documents' },
    '@microsoft.graph.downloadUrl': `https://contoso-my.sharepoint.com/_layouts/15/download.aspx?UniqueId=1&tempauth=${SECRETS.tempauth}`,
  }
  log.info({
    code: 'itemNotFound', status: 404, path: '/Documents/report.pdf', size: 1234, name: 'report.pdf',
    item,
    deep: { a: { b: { c: { session: { uploadUrl: `https://contoso.sharepoint.com/_api/up?guid=1&tempauth=${SECRETS.tempauth}`, expirationDateTime: '2026-01-01T00:00:00Z' } } } } },
    list: [{ refresh_token: SECRETS.refresh }, { downloadUrl: `https://public.dm.files.1drv.com/y4m${SECRETS.download}` }],
    form: { grant_type: 'authorization_code', code: SECRETS.authCode, client_secret: SECRETS.clientSecret, redirect_uri: 'http://localhost:1234/' },
    params: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: SECRETS.deviceCode, client_id: 'x' }),
    headers: new Headers({ Authorization: `Bearer ${SECRETS.access}`, 'request-id': 'req-1' }),
    error: `fetch https://x.up.1drv.com/up/${SECRETS.upload} failed; body {"access_token":"${SECRETS.access}"}`,
    redirect: `http://localhost:1234/?code=${SECRETS.authCode}&state=abc`,
    blob: `https://x/_download/1?sig=${SECRETS.sig}&sv=2020`,
  }, `download of https://h/_download/1?tempauth=${SECRETS.tempauth} broke`)
  const inner = new OdfsError('INVALID_CLIENT', `the secret was rejected: client_secret=${SECRETS.clientSecret}`, { details: { token: SECRETS.access, route: 'POST /token' } })
  const err = Object.assign(new Error(`token request failed: Bearer ${SECRETS.access}`, { cause: inner }), { code: 'AUTH_NETWORK', url: `https://login/token?refresh_token=${SECRETS.refresh}` })
  log.warn(err)
  log.error({ err: new OdfsError('itemNotFound', 'no such item: /a/b', { details: { path: '/a/b' } }) }, 'lookup failed')
  const all = text()
  for (const [what, s] of Object.entries(SECRETS)) t.notOk(all.includes(s), `${what} not written`)
  t.notOk(all.includes(JWT.split('.')[1]!))

  const [a, b, c] = lines
  t.equal(a.code, 'itemNotFound', 'an error code is not a secret')
  t.equal(a.status, 404)
  t.equal(a.path, '/Documents/report.pdf')
  t.equal(a.size, 1234)
  t.equal(a.name, 'report.pdf')
  t.same(a.item.parentReference, { path: '/drive/root:/Documents' })
  t.equal(a.item.id, '01ABC')
  t.equal(a.item['@microsoft.graph.downloadUrl'], '<redacted>')
  t.equal(a.deep.a.b.c.session.uploadUrl, '<redacted>')
  t.equal(a.deep.a.b.c.session.expirationDateTime, '2026-01-01T00:00:00Z')
  t.equal(a.list[0].refresh_token, '<redacted>')
  t.equal(a.form.code, '<redacted>', 'an authorization code in a token request is')
  t.equal(a.form.grant_type, 'authorization_code')
  t.equal(a.form.redirect_uri, 'http://localhost:1234/')
  t.equal(a.params.device_code, '<redacted>')
  t.equal(a.params.client_id, 'x')
  t.equal(a.headers.authorization, '<redacted>')
  t.equal(a.headers['request-id'], 'req-1')
  t.match(a.error, /^fetch https:\/\/x\.up\.1drv\.com\/<redacted> failed/)
  t.match(a.redirect, /\?code=<redacted>&state=abc$/)
  t.match(a.blob, /\?sig=<redacted>&sv=2020$/)
  t.match(a.msg, /tempauth=<redacted> broke$/)
  t.equal(a.component, 'test')
  t.equal(a.nested.accessToken, '<redacted>', 'child bindings too')

  t.equal(b.err.type, 'Error')
  t.equal(b.err.code, 'AUTH_NETWORK')
  t.match(b.err.message, /Bearer <redacted>/)
  t.match(b.err.url, /refresh_token=<redacted>/)
  t.equal(b.err.cause.code, 'INVALID_CLIENT')
  t.equal(b.err.cause.details.token, '<redacted>')
  t.equal(b.err.cause.details.route, 'POST /token')
  t.match(b.err.cause.message, /client_secret=<redacted>/)
  t.match(b.msg, /Bearer <redacted>/)

  t.equal(c.err.code, 'itemNotFound')
  t.equal(c.err.message, 'no such item: /a/b')
  t.same(c.err.details, { path: '/a/b' })
})

t.test('scrubSecrets removes tokens from free text', async (t) => {
  const out = scrubSecrets(`Authorization: Bearer abc.def and ${JWT} url?access_token=zzz&x=1 {"refresh_token":"rrr"}`)
  t.notMatch(out, /abc\.def|eyJzdWIi|zzz|rrr/)
  t.match(out, /x=1/)
  t.equal(scrubSecrets('error code=itemNotFound at /a?b=1'), 'error code=itemNotFound at /a?b=1', 'a code that is not a query parameter stays')
})
