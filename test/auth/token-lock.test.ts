// Two odfs processes of one user (here: two providers with their own msal app and
// store, as two processes have) refreshing at once: the token cache lock makes
// the second one use the token the first one just got instead of rotating the
// refresh token again on a stale copy of the cache, and the stored refresh token
// works afterwards. The file store and the keychain share one lock.
import t from 'tap'
import { createDispatcher, ManualClock, silentLogger } from '../../src/common/index.js'
import { loadGatewayConfig } from '../../src/config/index.js'
import { createMsalApp, findSignedInAccount, loginWithDeviceCode, MsalTokenProvider, resolveTokenStore } from '../../src/auth/index.js'
import { startAuthEmulator, sandbox, PUBLIC_APP } from '../support/auth.js'

const hasBus = !!process.env.DBUS_SESSION_BUS_ADDRESS

t.test('two processes refreshing at once: one refresh, one token, a working refresh token', async (t) => {
  const emu = await startAuthEmulator()
  t.teardown(() => emu.close())
  const sb = await sandbox(emu, PUBLIC_APP)
  t.teardown(sb.cleanup)
  const config = await loadGatewayConfig({ configFile: sb.configFile, env: sb.env })
  const clock = new ManualClock(Date.now())
  const process = async () => {
    const store = await resolveTokenStore({ mode: 'file', config, env: sb.env })
    const dispatcher = await createDispatcher({ caFile: config.caFile! })
    t.teardown(() => dispatcher.close())
    return { store, dispatcher, app: await createMsalApp({ config, store, dispatcher, log: silentLogger }) }
  }
  const a = await process()
  await loginWithDeviceCode({ app: a.app, config, dispatcher: a.dispatcher, log: silentLogger, onPrompt: (p) => void emu.hook('approve', { user_code: p.userCode, account: 'user1' }) })
  const b = await process()
  const pa = new MsalTokenProvider({ app: a.app, config, account: await findSignedInAccount(a.app, config), clock })
  const pb = new MsalTokenProvider({ app: b.app, config, account: await findSignedInAccount(b.app, config), clock })
  const first = await pa.getAccessToken()
  t.equal(await pb.getAccessToken(), first, 'both start from the signed-in token')
  const before = JSON.parse((await a.store.load())!)
  await clock.advance(3600_000)
  const [ta, tb] = await Promise.all([pa.getAccessToken(), pb.getAccessToken()])
  t.not(ta, first, 'refreshed')
  t.equal(tb, ta, 'the second process took the token the first one obtained')
  const after = JSON.parse((await a.store.load())!)
  const rt = (c: any) => Object.values(c.RefreshToken).map((e: any) => e.secret)
  t.equal(rt(after).length, 1)
  t.not(rt(after)[0], rt(before)[0], 'the rotated refresh token is the one stored')

  // a third process starting now refreshes with what is stored
  const c = await process()
  const pc = new MsalTokenProvider({ app: c.app, config, account: await findSignedInAccount(c.app, config) })
  t.ok(await pc.getAccessToken({ forceRefresh: true }), 'the stored refresh token works')
})

t.test('the file store and the keychain entry of one user and gateway share one lock', { skip: !hasBus && 'needs a Secret Service (scripts/test.sh)' }, async (t) => {
  const emu = { authority: 'https://127.0.0.1:1', graph: 'https://127.0.0.1:1/v1.0', ca: '/dev/null' } as any
  const sb = await sandbox(emu, PUBLIC_APP)
  t.teardown(sb.cleanup)
  const config = await loadGatewayConfig({ configFile: sb.configFile, env: sb.env })
  const file = await resolveTokenStore({ mode: 'file', config, env: sb.env })
  const keychain = await resolveTokenStore({ mode: 'keychain', config, env: sb.env, service: `odfs-test-${process.pid}` })
  t.equal(keychain.kind, 'keychain')
  let inside = 0
  let most = 0
  const hold = async () => {
    inside++
    most = Math.max(most, inside)
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
    inside--
  }
  await Promise.all([file.lock(hold), keychain.lock(hold), file.lock(hold), keychain.lock(hold)])
  t.equal(most, 1, 'never held by two at once')
})
