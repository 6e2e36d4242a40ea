// Run with: bash scripts/test.sh test/auth/token-store.test.ts (real gnome-keyring on a private D-Bus).
import t from 'tap'
import { mkdtemp, rm, stat, chmod, writeFile, chown } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import {
  FileTokenStore, KeychainTokenStore, resolveTokenStore, probeKeychain, resetFallbackAnnouncement,
  storeCachePlugin, AuthError,
} from '../../src/auth/index.js'
import { currentUser } from '../../src/config/index.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const gw = { clientId: 'a0d1f5e0-0000-4000-8000-00000000a001', loginEndpoint: 'https://127.0.0.1:8443' }
const hasBus = !!process.env.DBUS_SESSION_BUS_ADDRESS

async function tmp(t: any) {
  const dir = await mkdtemp(join(tmpdir(), 'odfs-store-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

t.test('file store: 0600 in $XDG_STATE_HOME/odfs, loose permissions refused', async (t) => {
  const dir = await tmp(t)
  const env = { XDG_STATE_HOME: dir }
  const store = await resolveTokenStore({ mode: 'file', config: gw, env })
  t.equal(store.kind, 'file')
  t.equal(store.location, join(dir, 'odfs', `tokens-${gw.clientId}@127.0.0.1_8443.json`))
  t.equal(await store.load(), null, 'nothing stored yet')
  await store.save('{"cache":"one"}')
  t.equal((await stat(store.location)).mode & 0o777, 0o600)
  t.equal((await stat(join(dir, 'odfs'))).mode & 0o777, 0o700)
  t.equal(await store.load(), '{"cache":"one"}')
  await store.save('{"cache":"two"}')
  t.equal(await store.load(), '{"cache":"two"}', 'overwritten atomically')
  for (const mode of [0o640, 0o644, 0o606]) {
    await chmod(store.location, mode)
    const err = await store.load().catch((e) => e)
    t.ok(err instanceof AuthError, `mode ${mode.toString(8)} refused`)
    t.equal(err.code, 'TOKEN_STORE')
    t.match(err.message, `refusing token file ${store.location}: it is readable by group or others`)
    t.match(err.message, `chmod 600 ${store.location}`)
  }
  await chmod(store.location, 0o600)
  t.equal(await store.clear(), true)
  t.equal(await store.clear(), false)
  t.equal(await store.load(), null)
})

t.test('file store: a file owned by another user is refused', { skip: process.getuid?.() !== 0 && 'needs root to chown' }, async (t) => {
  const dir = await tmp(t)
  const f = join(dir, 'tokens.json')
  await writeFile(f, '{}', { mode: 0o600 })
  await chown(f, 65534, 65534)
  const err = await new FileTokenStore(f, currentUser()).load().catch((e) => e)
  t.match(err.message, /owned by uid 65534/)
})

t.test('keychain store through a real Secret Service', { skip: !hasBus && 'no D-Bus session (run under scripts/test.sh)' }, async (t) => {
  const service = `odfs-test-${randomUUID()}`
  const probe = await probeKeychain(service)
  t.ok(probe.ok, 'the test keyring is unlocked and answers')
  const dir = await tmp(t)
  const store = await resolveTokenStore({ mode: 'auto', service, config: gw, env: { XDG_STATE_HOME: dir } })
  t.equal(store.kind, 'keychain')
  t.match(store.location, `service ${service}, account ${currentUser().name}/${gw.clientId}@127.0.0.1_8443`)
  t.teardown(() => store.clear())
  t.equal(await store.load(), null)
  await store.save('x'.repeat(5000))
  t.equal((await store.load())?.length, 5000)

  // a fresh process (a "restart") reads the same entry back
  const script = `
    const { default: keytar } = await import('keytar')
    const v = await keytar.getPassword(${JSON.stringify(service)}, ${JSON.stringify((store as KeychainTokenStore).account)})
    process.stdout.write(String(v?.length ?? 'null'))
  `
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
    let s = ''
    p.stdout.on('data', (d) => (s += d))
    p.on('error', reject)
    p.on('close', () => resolve(s))
  })
  t.equal(out, '5000', 'another process reads it back')
  t.equal(await store.clear(), true, 'logout removes it')
  t.equal(await store.load(), null)
  t.equal(await store.clear(), false)
})

t.test('auto prefers an existing file login over an empty keychain', { skip: !hasBus && 'no D-Bus session' }, async (t) => {
  const service = `odfs-test-${randomUUID()}`
  const dir = await tmp(t)
  const env = { XDG_STATE_HOME: dir }
  const file = await resolveTokenStore({ mode: 'file', config: gw, env })
  await file.save('{}')
  const s = await resolveTokenStore({ mode: 'auto', service, config: gw, env })
  t.equal(s.kind, 'file')
  const k = await resolveTokenStore({ mode: 'keychain', service, config: gw, env })
  t.equal(k.kind, 'keychain')
})

t.test('no Secret Service: auto falls back to the file with one warning; keychain mode fails clearly', async (t) => {
  const dir = await tmp(t)
  // A child without a session bus, as on a headless server.
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_STATE_HOME: dir }
  delete env.DBUS_SESSION_BUS_ADDRESS
  delete env.DISPLAY
  const script = `
    const a = await import(${JSON.stringify(join(root, 'src/auth/index.ts'))})
    const gw = ${JSON.stringify(gw)}
    const warnings = []
    const warn = (m) => warnings.push(m)
    const s1 = await a.resolveTokenStore({ mode: 'auto', config: gw, warn })
    const s2 = await a.resolveTokenStore({ mode: 'auto', config: gw, warn })
    let err = null
    try { await a.resolveTokenStore({ mode: 'keychain', config: gw, warn }) } catch (e) { err = e.code + ': ' + e.message }
    process.stdout.write(JSON.stringify({ kinds: [s1.kind, s2.kind], location: s1.location, warnings, err }))
  `
  const tsImport = join(root, 'node_modules/@tapjs/typescript/dist/esm/import.mjs')
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', tsImport, '--input-type=module', '-e', script], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let s = ''
    let e = ''
    p.stdout.on('data', (d) => (s += d))
    p.stderr.on('data', (d) => (e += d))
    p.on('error', reject)
    p.on('close', (code) => (code === 0 ? resolve(s) : reject(new Error(`child failed: ${e}`))))
  })
  const r = JSON.parse(out)
  t.same(r.kinds, ['file', 'file'])
  t.equal(r.location, join(dir, 'odfs', `tokens-${gw.clientId}@127.0.0.1_8443.json`))
  t.equal(r.warnings.length, 1, 'announced once')
  t.match(r.warnings[0], /no usable OS keychain \(.*\); keeping tokens in .*tokens-.*\.json \(mode 0600\)/)
  t.match(r.err, /^TOKEN_STORE: the OS keychain is not usable .*use --token-store file/)
})

t.test('cache plugin round-trips msal cache through the store', async (t) => {
  const dir = await tmp(t)
  const store = await resolveTokenStore({ mode: 'file', config: gw, env: { XDG_STATE_HOME: dir } })
  const plugin = storeCachePlugin(store)
  const seen: string[] = []
  const ctx = (changed: boolean, data = '{"Account":{}}') => ({
    cacheHasChanged: changed,
    tokenCache: { deserialize: (s: string) => seen.push(s), serialize: () => data },
  }) as any
  await plugin.beforeCacheAccess(ctx(false))
  t.match(seen[0], /"Account":\{\}/, 'an empty store deserializes an empty cache')
  await plugin.afterCacheAccess(ctx(false))
  t.equal(await store.load(), null, 'unchanged cache is not written')
  await plugin.afterCacheAccess(ctx(true, '{"Account":{"a":1}}'))
  t.equal(await store.load(), '{"Account":{"a":1}}')
  await plugin.beforeCacheAccess(ctx(false))
  t.equal(seen[1], '{"Account":{"a":1}}')
  resetFallbackAnnouncement()
})

t.test('--user: another account gets a file store under its home, never the keychain', { skip: process.getuid?.() !== 0 && 'needs root' }, async (t) => {
  const { lookupUser } = await import('../../src/auth/index.js')
  const me = await lookupUser(undefined)
  t.equal(me.other, false)
  const nobody = await lookupUser('nobody')
  t.equal(nobody.other, true)
  t.equal(nobody.uid, 65534)
  const s = await resolveTokenStore({ mode: 'auto', config: gw, user: nobody, env: { XDG_STATE_HOME: '/tmp/ignored' } })
  t.equal(s.kind, 'file')
  t.equal(s.location, join(nobody.home, '.local', 'state', 'odfs', `tokens-${gw.clientId}@127.0.0.1_8443.json`), "under the user's home, not the caller's XDG dir")
  await t.rejects(resolveTokenStore({ mode: 'keychain', config: gw, user: nobody }), /--user nobody cannot use the keychain/)
  await t.rejects(lookupUser('no-such-user-odfs'), /--user no-such-user-odfs: no such user/)
  await t.rejects(lookupUser('bad name;'), /not a valid user name/)
})

t.test('--user: the token file and the directories made for it belong to that user', { skip: process.getuid?.() !== 0 && 'needs root' }, async (t) => {
  const dir = await tmp(t)
  await chown(dir, 65534, 65534)
  const user = { name: 'nobody', uid: 65534, gid: 65534, home: dir, other: true }
  const s = await resolveTokenStore({ mode: 'file', config: gw, user })
  await s.save('{}')
  for (const p of [join(dir, '.local'), join(dir, '.local', 'state'), join(dir, '.local', 'state', 'odfs'), s.location]) {
    const st = await stat(p)
    t.equal(st.uid, 65534, `${p} owned by the user`)
  }
  t.equal((await stat(s.location)).mode & 0o777, 0o600)
  t.equal(await s.load(), '{}')
})
