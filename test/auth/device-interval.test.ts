// Device-code polling on a shared ManualClock (client and identity platform):
// the client waits the server's interval (never answered slow_down), backs off by
// 5 s if told to, and an unused code expires with a clear message. No real sleeping.
import t from 'tap'
import { ManualClock, silentLogger } from '../../src/common/index.js'
import { AuthError, loginWithDeviceCode } from '../../src/auth/index.js'
import { cleanupCerts } from '../emulator/identity-support.js'
import { manualClockGateway } from '../support/auth.js'

t.teardown(cleanupCerts)

async function setup(t: any, opts: { deviceCodeTtlSec?: number; intervalSec: number }) {
  const { clock, idp, config, app, dispatcher } = await manualClockGateway(t, {
    deviceCodeIntervalSec: opts.intervalSec, ...(opts.deviceCodeTtlSec ? { deviceCodeTtlSec: opts.deviceCodeTtlSec } : {}),
  })
  // count the polls the identity platform receives
  let polls = 0
  const handle = idp.idp.handle.bind(idp.idp)
  ;(idp.idp as any).handle = (req: any, res: any, url: URL, body: Buffer) => {
    if (url.pathname.endsWith('/oauth2/v2.0/token') && body.toString().includes('device_code')) polls++
    return handle(req, res, url, body)
  }
  return { clock, idp, config, app, dispatcher, polls: () => polls }
}

/** Wait (without timing) until the client sleeps on the manual clock again. */
async function untilSleeping(clock: ManualClock, settled: () => boolean) {
  while (clock.pendingSleepers === 0 && !settled()) await new Promise((r) => setImmediate(r))
}

t.test('polls at the server interval; approval completes the sign-in', async (t) => {
  const s = await setup(t, { intervalSec: 5 })
  let userCode = ''
  let done = false
  const p = loginWithDeviceCode({ app: s.app, config: s.config, dispatcher: s.dispatcher, log: silentLogger, clock: s.clock, onPrompt: (x) => (userCode = x.userCode) })
  p.finally(() => (done = true)).catch(() => {})
  await untilSleeping(s.clock, () => done)
  t.equal(s.polls(), 0, 'no poll before the first interval')
  await s.clock.advance(4_000)
  t.equal(s.polls(), 0, 'still none after 4 s')
  await s.clock.advance(1_000)
  await untilSleeping(s.clock, () => done)
  t.equal(s.polls(), 1, 'one poll at 5 s (authorization_pending)')
  await s.idp.hook('approve', { user_code: userCode, account: 'user1' })
  await s.clock.advance(5_000)
  const r = await p
  t.equal(r.account!.username, 'user1@contoso.onmicrosoft.com')
  t.equal(s.polls(), 2, 'never polled faster than the interval')
})

t.test('an unused device code expires with a clear message', async (t) => {
  const s = await setup(t, { intervalSec: 5, deviceCodeTtlSec: 20 })
  let done = false
  const p = loginWithDeviceCode({ app: s.app, config: s.config, dispatcher: s.dispatcher, log: silentLogger, clock: s.clock, onPrompt: () => {} })
  p.finally(() => (done = true)).catch(() => {})
  for (let i = 0; i < 10 && !done; i++) {
    await untilSleeping(s.clock, () => done)
    await s.clock.advance(5_000)
  }
  const err = await p.catch((e) => e)
  t.ok(err instanceof AuthError)
  t.equal(err.code, 'LOGIN_FAILED')
  t.match(err.message, /device code expired before it was used; run `odfs login` again/)
  t.ok(s.polls() >= 3 && s.polls() <= 5, `polled ${s.polls()} times in 20 s at a 5 s interval`)
})
