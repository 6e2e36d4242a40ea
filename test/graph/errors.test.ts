import t from 'tap'
import { GraphError, innerCodesOf, parseRetryAfter, graphErrorFromResponse } from '../../src/graph/errors.js'

t.test('classify uses the deepest known code, then the code, then the status', async (t) => {
  const e = new GraphError({ status: 400, code: 'invalidRequest', message: 'x', innerCodes: ['invalidPath'] })
  t.equal(e.classify(), 'invalidName')
  t.equal(e.innerCode, 'invalidPath')
  t.equal(new GraphError({ status: 400, code: 'invalidRequest', message: 'itemNotFound in message', innerCodes: ['pathIsTooLong'] }).classify(), 'pathTooLong')
  t.equal(new GraphError({ status: 409, code: 'nameAlreadyExists', message: '' }).classify(), 'nameConflict')
  t.equal(new GraphError({ status: 507, code: 'quotaLimitReached', message: '' }).classify(), 'quotaExceeded')
  t.equal(new GraphError({ status: 416, code: 'invalidRange', message: '', innerCodes: ['fragmentOverlap'] }).classify(), 'invalidRange')
  t.equal(new GraphError({ status: 410, code: 'resyncChangesApplyDifferences', message: '' }).classify(), 'resyncRequired')
  t.equal(new GraphError({ status: 429, code: 'activityLimitReached', message: '', innerCodes: ['throttledRequest'] }).classify(), 'throttled')
  t.equal(new GraphError({ status: 0, code: 'networkError', message: '' }).classify(), 'network')
  t.equal(new GraphError({ status: 502, code: 'weird', message: '' }).classify(), 'serverError')
  // never by message
  t.equal(new GraphError({ status: 418, code: 'teapot', message: 'itemNotFound accessDenied' }).classify(), 'other')
  // inner codes that are unknown fall back to the outer code
  t.equal(new GraphError({ status: 403, code: 'accessDenied', message: '', innerCodes: ['somethingNew'] }).classify(), 'accessDenied')
})

t.test('inner codes nest, either spelling', async (t) => {
  t.same(innerCodesOf({ code: 'a', innerError: { code: 'b', innererror: { code: 'c', InnerError: {} } } }), ['b', 'c'])
  t.same(innerCodesOf({ code: 'a' }), [])
})

t.test('Retry-After: seconds and HTTP dates', async (t) => {
  const now = Date.UTC(2026, 0, 1, 0, 0, 0)
  t.equal(parseRetryAfter('41', now), 41_000)
  t.equal(parseRetryAfter(new Date(now + 5000).toUTCString(), now), 5000)
  t.equal(parseRetryAfter(new Date(now - 5000).toUTCString(), now), 0)
  t.equal(parseRetryAfter(null, now), undefined)
  t.equal(parseRetryAfter('soon', now), undefined)
})

t.test('a Graph error response becomes a GraphError with request id and Retry-After', async (t) => {
  const body = { error: { code: 'activityLimitReached', message: 'slow down', innerError: { code: 'throttledRequest', date: 'x', 'request-id': 'rid-1' } } }
  const res = new Response(JSON.stringify(body), { status: 429, headers: { 'retry-after': '3', 'content-type': 'application/json' } })
  const e = await graphErrorFromResponse(res, { method: 'GET', route: 'GET /me/drive', now: 0, attempts: 3, exhausted: true })
  t.equal(e.status, 429)
  t.equal(e.code, 'activityLimitReached')
  t.equal(e.innerCode, 'throttledRequest')
  t.equal(e.requestId, 'rid-1')
  t.equal(e.retryAfterMs, 3000)
  t.equal(e.exhausted, true)
  t.equal(e.classify(), 'throttled')
  const e2 = await graphErrorFromResponse(new Response('<html>bad gateway</html>', { status: 502, headers: { 'request-id': 'h' } }), { method: 'PUT', route: 'PUT {uploadUrl}', now: 0 })
  t.equal(e2.code, 'http502')
  t.equal(e2.requestId, 'h')
  t.equal(e2.message, 'PUT {uploadUrl} failed with HTTP 502', 'the method is named once')
  t.equal(e.message, 'slow down (GET /me/drive: HTTP 429); throttled for 3 s', 'a 429 says how long the service asked to wait')
  t.notMatch(e2.message, /html/)
})
