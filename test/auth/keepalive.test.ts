// A long-running mount keeps its refresh token alive: on a ManualClock shared with
// the identity platform (whose refresh tokens die after 90 days unused), 120 idle
// days with keep-alive stay signed in; 91 idle days without it need `odfs login`.
import t from 'tap'
import { ManualClock, silentLogger } from '../../src/common/index.js'
import { AuthError, loginWithDeviceCode, MsalTokenProvider } from '../../src/auth/index.js'
import { cleanupCerts } from '../emulator/identity-support.js'
import { manualClockGateway } from '../support/auth.js'

t.teardown(cleanupCerts)
const DAY = 24 * 3600_000

async function signedIn(t: any) {
  const { clock, app, config, dispatcher } = await manualClockGateway(t, { autoConsent: 'user1' })
  const r = await loginWithDeviceCode({ app, config, dispatcher, log: silentLogger, onPrompt: () => {} })
  const provider = new MsalTokenProvider({ app, config, account: r.account!, clock, log: silentLogger })
  await provider.getAccessToken()
  return { clock, provider }
}

async function settle(p: MsalTokenProvider, clock: ManualClock, before: number) {
  // the keep-alive refresh is real network I/O: wait for it to finish and sleep again
  while (p.refreshCount === before || clock.pendingSleepers === 0) await new Promise((r) => setImmediate(r))
}

t.test('with keep-alive, 120 idle days stay signed in', async (t) => {
  const { clock, provider } = await signedIn(t)
  const fatal: AuthError[] = []
  provider.startKeepAlive((e) => fatal.push(e))
  t.teardown(() => provider.stopKeepAlive())
  for (let d = 0; d < 120; d++) {
    const before = provider.refreshCount
    await clock.advance(DAY)
    await settle(provider, clock, before)
  }
  t.same(fatal, [], 'no fatal error')
  t.ok(provider.refreshCount >= 120, `${provider.refreshCount} keep-alive refreshes`)
  t.ok(await provider.getAccessToken({ forceRefresh: true }), 'still signed in after 120 days')
})

t.test('without it, a refresh token unused for 91 days needs odfs login', async (t) => {
  const { clock, provider } = await signedIn(t)
  await clock.advance(91 * DAY)
  const err = await provider.getAccessToken().catch((e) => e)
  t.ok(err instanceof AuthError)
  t.equal(err.code, 'NEEDS_LOGIN')
  t.match(err.message, /the sign-in has expired; run `odfs login` again \(AADSTS700082/)
})
