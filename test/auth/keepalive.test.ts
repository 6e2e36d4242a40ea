// A long-running mount keeps its refresh token alive: on a ManualClock shared with
// the identity platform (whose refresh tokens die after 90 days unused), 120 idle
// days with keep-alive stay signed in; 91 idle days without it need `odfs login`.
import t from 'tap'
import { ManualClock, createDispatcher, silentLogger } from '../../src/common/index.js'
import { loadGatewayConfig } from '../../src/config/index.js'
import { AuthError, createMsalApp, loginWithDeviceCode, MsalTokenProvider, resolveTokenStore } from '../../src/auth/index.js'
import { startIdp, cleanupCerts } from '../emulator/identity-support.js'
import { sandbox, PUBLIC_APP } from '../support/auth.js'

t.teardown(cleanupCerts)
const DAY = 24 * 3600_000

async function signedIn(t: any) {
  const clock = new ManualClock(Date.now())
  const idp = await startIdp({ clock, deviceCodeIntervalSec: 0, autoConsent: 'user1' })
  t.teardown(() => idp.close())
  const sb = await sandbox({ authority: idp.base, graph: `${idp.base}/v1.0`, ca: idp.caFile } as any, PUBLIC_APP)
  t.teardown(sb.cleanup)
  const config = await loadGatewayConfig({ configFile: sb.configFile, env: sb.env })
  const store = await resolveTokenStore({ mode: 'file', config, env: sb.env })
  const dispatcher = createDispatcher({ caFile: config.caFile! })
  t.teardown(() => dispatcher.close())
  const app = createMsalApp({ config, store, dispatcher, log: silentLogger })
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
