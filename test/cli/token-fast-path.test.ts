// A command whose access token in the cache is still valid runs without loading
// msal-node (most of a brief command's start-up); one whose token is about to
// expire, or that the service refuses, loads it and refreshes. A module hook makes
// loading msal-node (its chunk in the bundle bin/odfs runs) fail, so these tests
// fail if the fast path goes or if it is taken when it must not be.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ensureBuilt, ODFS_BIN } from '../support/build.js'
import { assertNoSecrets, PUBLIC_APP, secretsOfCache, startAuthEmulator, type AuthEmulator } from '../support/auth.js'

let emu: AuthEmulator
let dir: string
let env: NodeJS.ProcessEnv
let output = ''
t.before(async () => {
  await ensureBuilt()
  emu = await startAuthEmulator()
  dir = await mkdtemp(join(tmpdir(), 'odfs-fastpath-'))
  env = { ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), XDG_STATE_HOME: join(dir, 'state'), ODFS_SYSTEM_CONFIG: join(dir, 'none.json'), ODFS_LOG_LEVEL: 'debug' }
  // Loading any module that holds msal-node's package name (only msal-node's chunk does) fails.
  await writeFile(join(dir, 'hooks.mjs'), [
    'export async function load(url, ctx, next) {',
    '  const r = await next(url, ctx)',
    "  if (r.source && String(r.source).includes('\"@azure/msal-node\"')) throw new Error('msal-node was loaded')",
    '  return r',
    '}',
  ].join('\n'))
  await writeFile(join(dir, 'register.mjs'), `import { register } from 'node:module'\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)})\n`)
})
t.teardown(async () => {
  await emu?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

function odfs(args: string[], opts: { noMsal?: boolean } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const pre = opts.noMsal ? ['--import', pathToFileURL(join(dir, 'register.mjs')).href] : []
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...pre, ODFS_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => (stdout += d))
    p.stderr.on('data', (d) => (stderr += d))
    p.on('error', reject)
    p.on('close', (code) => {
      output += stdout + stderr
      resolve({ code, stdout, stderr })
    })
  })
}

async function tokenFile(): Promise<string> {
  const state = join(dir, 'state', 'odfs')
  return join(state, (await readdir(state)).find((f) => f.startsWith('tokens-') && f.endsWith('.json'))!)
}

/** The cache's access token entry, changed by `edit`, written back (the file keeps its 0600 mode). */
async function editAccessToken(edit: (at: Record<string, string>) => void): Promise<void> {
  const f = await tokenFile()
  const doc = JSON.parse(await readFile(f, 'utf8'))
  for (const at of Object.values(doc.AccessToken) as Record<string, string>[]) edit(at)
  await writeFile(f, JSON.stringify(doc))
}

const accessToken = async () => (Object.values(JSON.parse(await readFile(await tokenFile(), 'utf8')).AccessToken) as { secret: string }[])[0]!.secret

t.test('valid token: no msal; expiring or refused token: msal refreshes', async (t) => {
  emu.setAutoConsent('user1')
  t.teardown(() => emu.setAutoConsent(undefined))
  const gw = await odfs(['gateway', 'create', '--config', join(dir, 'config', 'odfs', 'gateway.json'), '--ms-client-id', PUBLIC_APP.clientId, '--ms-login-endpoint', emu.authority, '--ms-graph-endpoint', emu.graph, '--ca-file', emu.ca])
  t.equal(gw.code, 0, gw.stderr)
  const login = await odfs(['login', '--token-store', 'file'])
  t.equal(login.code, 0, login.stderr)
  const secrets = new Set(secretsOfCache(await readFile(await tokenFile(), 'utf8')))
  const first = await accessToken()

  const ls = await odfs(['ls', 'My files', '--token-store', 'file'], { noMsal: true })
  t.equal(ls.code, 0, ls.stderr)
  t.match(ls.stdout, /Documents/, 'listed with the cached token, msal-node not loaded')
  t.equal(await accessToken(), first, 'no refresh')

  // The hook bites: a command that must refresh fails when msal-node cannot load.
  await editAccessToken((at) => (at.expires_on = String(Math.floor(Date.now() / 1000) + 120)))
  const blocked = await odfs(['ls', 'My files', '--token-store', 'file'], { noMsal: true })
  t.equal(blocked.code, 1)
  t.match(blocked.stderr, /msal-node was loaded/, 'a token inside the refresh margin goes to msal')
  const refreshed = await odfs(['ls', 'My files', '--token-store', 'file'])
  t.equal(refreshed.code, 0, refreshed.stderr)
  t.match(refreshed.stdout, /Documents/)
  const second = await accessToken()
  t.not(second, first, 'msal refreshed and stored a new token')
  for (const s of secretsOfCache(await readFile(await tokenFile(), 'utf8'))) secrets.add(s)

  // The service refuses a token the cache still calls valid: the 401 leads to a refresh through msal.
  const r = await emu.hook('expire-access-tokens', { account: 'user1' })
  t.equal(r.status, 200)
  const after401 = await odfs(['ls', 'My files', '--token-store', 'file'])
  t.equal(after401.code, 0, after401.stderr)
  t.match(after401.stdout, /Documents/)
  t.not(await accessToken(), second, 'refreshed after the 401')
  for (const s of secretsOfCache(await readFile(await tokenFile(), 'utf8'))) secrets.add(s)

  // Another client's token in the same cache is not taken.
  await editAccessToken((at) => (at.client_id = 'a0d1f5e0-0000-4000-8000-00000000ffff'))
  const other = await odfs(['ls', 'My files', '--token-store', 'file'], { noMsal: true })
  t.equal(other.code, 1)
  t.match(other.stderr, /msal-node was loaded/, 'no token of this client: msal')
  assertNoSecrets(t, output, secrets)
})
