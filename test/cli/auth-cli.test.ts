// The built CLI (node bin/odfs) as a child process against the emulator:
// gateway create/show, login (device code and --browser), status, logout, the
// headless fallback to the file store, and a scan of all output for secrets.
// Run with: bash scripts/test.sh test/cli/auth-cli.test.ts (keychain cases need the test keyring).
import t, { type Test } from 'tap'
import { ensureBuilt } from '../support/build.js'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, stat, readFile, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startAuthEmulator, secretsOfCache, assertNoSecrets, PUBLIC_APP, CONFIDENTIAL_APP, SINGLE_TENANT_APP, type AuthEmulator } from '../support/auth.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const hasBus = !!process.env.DBUS_SESSION_BUS_ADDRESS
const APP_SECRETS = [CONFIDENTIAL_APP.secret!, SINGLE_TENANT_APP.secret!]

interface Run { code: number | null; stdout: string; stderr: string }

function odfs(h: Home, args: string[], opts: { stdin?: string; onStdout?: (chunk: string, all: string) => void } = {}): Promise<Run> {
  const env = h.env
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [join(root, 'bin/odfs'), ...args], { cwd: root, env, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => {
      stdout += d
      opts.onStdout?.(d.toString(), stdout)
    })
    p.stderr.on('data', (d) => (stderr += d))
    p.on('error', reject)
    p.on('close', (code) => {
      h.output += stdout + stderr
      resolve({ code, stdout, stderr })
    })
    if (opts.stdin !== undefined) p.stdin.end(opts.stdin)
    else p.stdin.end()
  })
}

let emu: AuthEmulator
t.before(async () => {
  await ensureBuilt() // bin/odfs loads dist/
  emu = await startAuthEmulator()
})
t.teardown(async () => {
  await emu?.close()
})

/** A subtest's own temporary home: XDG dirs, everything its commands printed, the secrets they handled. */
interface Home {
  dir: string
  env: NodeJS.ProcessEnv
  configFile: string
  output: string
  secrets: Set<string>
  /** Note the tokens of a token file as secrets to look for. */
  handled(tokenFile: string): Promise<void>
}

/**
 * A subtest with a home of its own, ending with a scan of all its commands printed
 * (stdout, stderr, debug logs) for any secret or token it handled.
 */
function cliTest(name: string, opts: { skip?: string | false }, fn: (t: Test, h: Home) => Promise<void>): void {
  t.test(name, opts, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'odfs-cli-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    const h: Home = {
      dir,
      env: {
        ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), XDG_STATE_HOME: join(dir, 'state'),
        ODFS_SYSTEM_CONFIG: join(dir, 'etc-gateway.json'), ODFS_LOG_LEVEL: 'debug',
      },
      configFile: join(dir, 'config', 'odfs', 'gateway.json'),
      output: '',
      secrets: new Set(APP_SECRETS),
      async handled(tokenFile) {
        for (const s of secretsOfCache(await readFile(tokenFile, 'utf8'))) h.secrets.add(s)
      },
    }
    await fn(t, h)
    assertNoSecrets(t, h.output, h.secrets)
  })
}

const emuArgs = () => ['--ms-login-endpoint', emu.authority, '--ms-graph-endpoint', emu.graph, '--ca-file', emu.ca]

cliTest('gateway create/update/show: 0600, secret never echoed, redirect URI shown', {}, async (t, h) => {
  const r = await odfs(h, ['gateway', 'create', '--config', h.configFile, '--ms-client-id', CONFIDENTIAL_APP.clientId, '--ms-client-secret', '-', ...emuArgs()], { stdin: CONFIDENTIAL_APP.secret + '\n' })
  t.equal(r.code, 0, r.stderr)
  t.equal((await stat(h.configFile)).mode & 0o777, 0o600)
  t.equal(JSON.parse(await readFile(h.configFile, 'utf8')).secret, CONFIDENTIAL_APP.secret)
  t.match(r.stdout, /"secret": "<redacted>"/)
  t.match(r.stdout, /Redirect URI: http:\/\/localhost/)
  const again = await odfs(h, ['gateway', 'create', '--config', h.configFile, '--ms-client-id', CONFIDENTIAL_APP.clientId])
  t.equal(again.code, 1)
  t.match(again.stderr, /already exists: use odfs gateway update/)
  const up = await odfs(h, ['gateway', 'update', '--config', h.configFile, '--ms-auth-callback', 'https://gateway.example.org/api/v1/authcallback', '--ms-user-api-rate-limit', '25'])
  t.equal(up.code, 0, up.stderr)
  // show reads the XDG file by default
  const show = await odfs(h, ['gateway', 'show', '--json'])
  t.equal(show.code, 0, show.stderr)
  const j = JSON.parse(show.stdout)
  t.equal(j.policies.DATA_TYPE, 'onedrive_storage_policies#1.0.0')
  t.equal(j.policies.secret, '<redacted>')
  t.equal(j.policies.user_api_rate_limit, 25)
  t.equal(j.redirect_uri, 'https://gateway.example.org/api/v1/authcallback')
  t.equal(j.authority, `${emu.authority}/common`)
  const bad = await odfs(h, ['gateway', 'update', '--config', h.configFile, '--ms-account-types', 'single-tenant'])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /single-tenant but no tenant is set: give --ms-tenant/)
})

cliTest('login (device code), status, logout with the file store', {}, async (t, h) => {
  emu.setAutoConsent('user1')
  t.teardown(() => emu.setAutoConsent(undefined))
  const cfg = await odfs(h, ['gateway', 'create', '--config', h.configFile, '--ms-client-id', PUBLIC_APP.clientId, ...emuArgs()])
  t.equal(cfg.code, 0, cfg.stderr)
  const login = await odfs(h, ['login', '--token-store', 'file'])
  t.equal(login.code, 0, login.stderr)
  t.match(login.stdout, new RegExp(`To sign in, open ${emu.authority}\\S* in a browser and enter the code [A-Z0-9-]+`))
  t.match(login.stdout, /Signed in as user1@contoso\.onmicrosoft\.com \(business account/)
  const files = (await readdir(join(h.dir, 'state', 'odfs'))).sort()
  t.same(files.map((f) => f.split('-')[0]), ['authority', 'tokens'], 'the token cache and the kept authority metadata')
  const tokenFile = join(h.dir, 'state', 'odfs', files.find((f) => f.startsWith('tokens-'))!)
  t.equal((await stat(tokenFile)).mode & 0o777, 0o600)
  await h.handled(tokenFile)

  const st = await odfs(h, ['status', '--token-store', 'file', '--json'])
  t.equal(st.code, 0, st.stderr)
  const doc = JSON.parse(st.stdout)
  t.match(doc, {
    DATA_TYPE: 'onedrive_user_credential_policies#1.0.0', email: 'user1@contoso.onmicrosoft.com',
    access_token: '<redacted>', refresh_token: '<redacted>', token_expiry: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
  })
  t.ok(doc.sub)
  t.ok(doc.scopes.length >= 2)
  const human = await odfs(h, ['status', '--token-store', 'file'])
  t.match(human.stdout, /Signed in as user1@contoso\.onmicrosoft\.com/)

  // a token file that others can read is refused
  const { chmod } = await import('node:fs/promises')
  await chmod(tokenFile, 0o644)
  const loose = await odfs(h, ['status', '--token-store', 'file'])
  t.equal(loose.code, 1)
  t.match(loose.stderr, /refusing token file .*readable by group or others.*chmod 600/)
  await chmod(tokenFile, 0o600)

  const out = await odfs(h, ['logout', '--token-store', 'file'])
  t.equal(out.code, 0, out.stderr)
  t.match(out.stdout, /Signed out: removed tokens from /)
  t.equal(existsSync(tokenFile), false)
  const after = await odfs(h, ['status', '--token-store', 'file'])
  t.equal(after.code, 1)
  t.match(after.stderr, /not signed in to OneDrive .*run `odfs login`/)
})

cliTest('headless (no Secret Service): auto falls back to the file store with one warning', {}, async (t, h) => {
  delete h.env.DBUS_SESSION_BUS_ADDRESS
  delete h.env.DISPLAY
  emu.setAutoConsent('personal1')
  t.teardown(() => emu.setAutoConsent(undefined))
  const login = await odfs(h, ['login', '--ms-client-id', PUBLIC_APP.clientId, ...emuArgs()])
  t.equal(login.code, 0, login.stderr)
  t.equal(login.stderr.match(/no usable OS keychain/g)?.length, 1, 'one warning')
  t.match(login.stdout, /Tokens are kept in .*state\/odfs\/tokens-.*\.json/)
  const files = await readdir(join(h.dir, 'state', 'odfs'))
  await h.handled(join(h.dir, 'state', 'odfs', files.find((f) => f.startsWith('tokens-'))!))
  const st = await odfs(h, ['status', '--ms-client-id', PUBLIC_APP.clientId, ...emuArgs()])
  t.equal(st.code, 0, st.stderr)
  t.match(st.stdout, /personal1@outlook\.com \(personal account/)
})

cliTest('login and logout with the OS keychain; a new process reads it back', { skip: !hasBus && 'no D-Bus session (run under scripts/test.sh)' }, async (t, h) => {
  emu.setAutoConsent('user2')
  t.teardown(() => emu.setAutoConsent(undefined))
  const args = ['--ms-client-id', CONFIDENTIAL_APP.clientId, '--ms-client-secret-file', '', ...emuArgs()]
  const { writeFile } = await import('node:fs/promises')
  const secretFile = join(h.dir, 'secret')
  await writeFile(secretFile, CONFIDENTIAL_APP.secret!, { mode: 0o600 })
  args[3] = secretFile
  const login = await odfs(h, ['login', '--token-store', 'keychain', ...args])
  t.equal(login.code, 0, login.stderr)
  t.match(login.stdout, /Tokens are kept in keychain \(service odfs, account /)
  t.notMatch(login.stderr, /no usable OS keychain/)
  // the state directory holds the token cache lock (gone when released) and the kept
  // authority metadata, never a token file
  const state = existsSync(join(h.dir, 'state', 'odfs')) ? await readdir(join(h.dir, 'state', 'odfs')) : []
  t.same(state.filter((f) => !f.startsWith('authority-')), [], 'no token file written')
  const st = await odfs(h, ['status', '--json', ...args])
  t.equal(st.code, 0, st.stderr)
  t.equal(JSON.parse(st.stdout).email, 'user2@contoso.onmicrosoft.com')
  t.match(JSON.parse(st.stdout).account.token_store, /^keychain/)
  const out = await odfs(h, ['logout', ...args])
  t.equal(out.code, 0, out.stderr)
  t.match(out.stdout, /removed tokens from keychain/)
  const after = await odfs(h, ['status', ...args])
  t.equal(after.code, 1)
  t.match(after.stderr, /run `odfs login`/)
})

cliTest('login --browser: authorization code with PKCE through the loopback listener', {}, async (t, h) => {
  emu.setAutoConsent('user1')
  t.teardown(() => emu.setAutoConsent(undefined))
  const { createDispatcher } = await import('../../src/common/index.js')
  const dispatcher = await createDispatcher({ caFile: emu.ca })
  t.teardown(() => dispatcher.close())
  let browsed: Promise<number> | undefined
  const login = await odfs(h, ['login', '--browser', '--token-store', 'file', '--ms-client-id', PUBLIC_APP.clientId, ...emuArgs()], {
    onStdout: (_c, all) => {
      const m = /Open this address in a browser and sign in:\s+(\S+)/.exec(all)
      if (m && !browsed && /Waiting for the browser/.test(all)) {
        browsed = (async () => {
          const a = await fetch(m[1]!, { redirect: 'manual', dispatcher } as RequestInit)
          const loc = a.headers.get('location')!
          const back = await fetch(loc.replace('//localhost:', '//127.0.0.1:'))
          return back.status
        })()
      }
    },
  })
  t.equal(login.code, 0, login.stderr)
  t.equal(await browsed, 200)
  t.match(login.stdout, /Signed in as user1@contoso\.onmicrosoft\.com/)
  const files = await readdir(join(h.dir, 'state', 'odfs'))
  await h.handled(join(h.dir, 'state', 'odfs', files.find((f) => f.startsWith('tokens-'))!))
})

cliTest('wrong client secret and wrong tenant: clear errors from the CLI', {}, async (t, h) => {
  emu.setAutoConsent('other1')
  t.teardown(() => emu.setAutoConsent(undefined))
  const wrong = 'not~the-secret-0000000000000000000'
  h.secrets.add(wrong)
  const r1 = await odfs(h, ['login', '--token-store', 'file', '--ms-client-id', CONFIDENTIAL_APP.clientId, '--ms-client-secret', '-', ...emuArgs()], { stdin: wrong })
  t.equal(r1.code, 1)
  t.match(r1.stderr, /client secret \(setting "secret" in .*, or --ms-client-secret\) was rejected.*\[INVALID_CLIENT\]/)
  const r2 = await odfs(h, ['login', '--token-store', 'file', '--ms-client-id', SINGLE_TENANT_APP.clientId, '--ms-tenant', SINGLE_TENANT_APP.tenantId,
    '--ms-client-secret', '-', ...emuArgs()], { stdin: SINGLE_TENANT_APP.secret })
  t.equal(r2.code, 1)
  t.match(r2.stderr, /this account may not use the app registration \(account_types single-tenant.*AADSTS50020.*\[ACCOUNT_NOT_ALLOWED\]/)
})
