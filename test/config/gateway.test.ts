import t from 'tap'
import { mkdtemp, rm, writeFile, chmod, mkdir, stat, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import {
  loadGatewayConfig, ConfigError, gatewayOverridesFromArgv, writePolicyDocument, toPolicyDocument,
  redactPolicyDocument, redirectUriToRegister, type GatewayConfig,
} from '../../src/config/index.js'

const CLIENT = 'a0d1f5e0-0000-4000-8000-00000000a001'
const TENANT = 'c0a1e2f3-0000-4000-8000-00000000c050'
const SECRET = 'test~Secret.never-printed-0123456789'

async function setup(t: any) {
  const dir = await mkdtemp(join(tmpdir(), 'odfs-config-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const env = { XDG_CONFIG_HOME: join(dir, 'xdg'), HOME: join(dir, 'home') }
  const systemFile = join(dir, 'etc', 'gateway.json')
  const put = async (file: string, doc: unknown, mode = 0o600) => {
    await mkdir(join(file, '..'), { recursive: true })
    await writeFile(file, typeof doc === 'string' ? doc : JSON.stringify(doc))
    await chmod(file, mode)
    return file
  }
  const userFile = join(env.XDG_CONFIG_HOME, 'odfs', 'gateway.json')
  return { dir, env, systemFile, userFile, put }
}

async function problemsOf(p: Promise<GatewayConfig>): Promise<string[]> {
  try {
    await p
  } catch (e) {
    if (e instanceof ConfigError) return e.problems
    throw e
  }
  throw new Error('expected a ConfigError')
}

t.test('defaults: global cloud, common authority, rate 20, scopes', async (t) => {
  const s = await setup(t)
  await s.put(s.userFile, { DATA_TYPE: 'onedrive_storage_policies#1.0.0', client_id: CLIENT })
  const c = await loadGatewayConfig({ env: s.env, systemFile: s.systemFile })
  t.equal(c.clientId, CLIENT)
  t.equal(c.accountTypes, 'multitenant-and-personal')
  t.equal(c.authority, 'https://login.microsoftonline.com/common')
  t.equal(c.graphBaseUrl, 'https://graph.microsoft.com/v1.0')
  t.equal(c.userApiRateLimit, 20)
  t.equal(c.sharedLibraries, false)
  t.same(c.scopes.sort(), ['Files.ReadWrite.All', 'User.Read', 'email', 'offline_access', 'openid', 'profile'])
  t.same(c.source, [s.userFile])
  t.equal(c.secret, undefined)
})

t.test('account types map to the authority segment', async (t) => {
  const s = await setup(t)
  const cases: [string, string][] = [
    ['single-tenant', TENANT], ['multitenant', 'organizations'], ['multitenant-and-personal', 'common'], ['personal', 'consumers'],
  ]
  for (const [types, seg] of cases) {
    const c = await loadGatewayConfig({ env: s.env, systemFile: s.systemFile, overrides: { clientId: CLIENT, tenant: TENANT, accountTypes: types } })
    t.equal(c.authority, `https://login.microsoftonline.com/${seg}`, types)
  }
  // a tenant alone implies single-tenant
  const c = await loadGatewayConfig({ env: s.env, systemFile: s.systemFile, overrides: { clientId: CLIENT, tenant: TENANT } })
  t.equal(c.accountTypes, 'single-tenant')
})

t.test('files merge in order /etc, XDG, --config, then options win', async (t) => {
  const s = await setup(t)
  await s.put(s.systemFile, { client_id: CLIENT, user_api_rate_limit: 5, shared_libraries: true }, 0o644)
  await s.put(s.userFile, { user_api_rate_limit: 7, cloud: 'usgov', account_types: 'multitenant' })
  const extra = await s.put(join(s.dir, 'extra.json'), { user_api_rate_limit: 9, ca_file: 'ca.pem' })
  let c = await loadGatewayConfig({ env: s.env, systemFile: s.systemFile, configFile: extra })
  t.equal(c.userApiRateLimit, 9)
  t.equal(c.sharedLibraries, true)
  t.equal(c.authority, 'https://login.microsoftonline.us/organizations')
  t.equal(c.graphBaseUrl, 'https://graph.microsoft.us/v1.0')
  t.ok(c.scopes.includes('https://graph.microsoft.us/Sites.ReadWrite.All'), 'national cloud scopes carry the graph resource')
  t.equal(c.caFile, join(s.dir, 'ca.pem'), 'relative ca_file resolves against its file')
  t.same(c.source, [s.systemFile, s.userFile, extra])
  c = await loadGatewayConfig({ env: s.env, systemFile: s.systemFile, configFile: extra, overrides: { userApiRateLimit: 25 } })
  t.equal(c.userApiRateLimit, 25)
})

t.test('clouds map to their hosts; endpoints override them', async (t) => {
  const s = await setup(t)
  const base = { clientId: CLIENT, tenant: TENANT }
  const exp: Record<string, [string, string]> = {
    global: ['https://login.microsoftonline.com', 'https://graph.microsoft.com/v1.0'],
    usgov: ['https://login.microsoftonline.us', 'https://graph.microsoft.us/v1.0'],
    'usgov-dod': ['https://login.microsoftonline.us', 'https://dod-graph.microsoft.us/v1.0'],
    china: ['https://login.chinacloudapi.cn', 'https://microsoftgraph.chinacloudapi.cn/v1.0'],
  }
  for (const [cloud, [login, graph]] of Object.entries(exp)) {
    const c = await loadGatewayConfig({ env: s.env, systemFile: s.systemFile, overrides: { ...base, cloud } })
    t.equal(c.loginEndpoint, login, cloud)
    t.equal(c.graphBaseUrl, graph, cloud)
    t.equal(c.authority, `${login}/${TENANT}`)
  }
  for (const g of ['https://127.0.0.1:8443', 'https://127.0.0.1:8443/', 'https://127.0.0.1:8443/v1.0', 'https://127.0.0.1:8443/v1.0/']) {
    const c = await loadGatewayConfig({ env: s.env, systemFile: s.systemFile, overrides: { ...base, loginEndpoint: 'https://127.0.0.1:8443/', graphEndpoint: g } })
    t.equal(c.graphBaseUrl, 'https://127.0.0.1:8443/v1.0', g)
    t.equal(c.loginEndpoint, 'https://127.0.0.1:8443')
    t.same(c.scopes.slice(0, 2), ['Files.ReadWrite.All', 'User.Read'])
  }
})

t.test('single-tenant without a tenant is an error that says so', async (t) => {
  const s = await setup(t)
  const p = await problemsOf(loadGatewayConfig({ env: s.env, systemFile: s.systemFile, overrides: { clientId: CLIENT, accountTypes: 'single-tenant' } }))
  t.equal(p.length, 1)
  t.match(p[0], /single-tenant but no tenant is set: give --ms-tenant/)
})

t.test('a file holding a secret readable by others is refused with the chmod', async (t) => {
  const s = await setup(t)
  for (const mode of [0o644, 0o640, 0o604]) {
    await s.put(s.userFile, { client_id: CLIENT, secret: SECRET }, mode)
    const err = await loadGatewayConfig({ env: s.env, systemFile: s.systemFile }).catch((e) => e)
    t.ok(err instanceof ConfigError)
    t.equal(err.code, 'CONFIG_UNREADABLE')
    t.match(err.message, `${s.userFile}: holds a client secret but is readable by group or others`)
    t.match(err.message, `chmod 600 ${s.userFile}`)
    t.notMatch(err.message, SECRET)
  }
  await chmod(s.userFile, 0o600)
  const c = await loadGatewayConfig({ env: s.env, systemFile: s.systemFile })
  t.equal(c.secret, SECRET)
  // without a secret a world-readable file is fine
  await s.put(s.userFile, { client_id: CLIENT }, 0o644)
  t.equal((await loadGatewayConfig({ env: s.env, systemFile: s.systemFile })).clientId, CLIENT)
})

t.test('every bad input gets one line naming key and file', async (t) => {
  const s = await setup(t)
  await s.put(s.userFile, {
    DATA_TYPE: 'something_else#1',
    client_id: 'not-a-guid',
    tenant: 'not a tenant',
    user_api_rate_limit: 'fast',
    auth_callback: 'ftp://example.org/cb',
    account_types: 'everyone',
    cloud: 'mars',
    shared_libraries: 'maybe',
    login_endpoint: 'http://login.example.org',
    graph_endpoint: 'https://graph.example.org/beta',
    ca_file: 42,
    colour: 'blue',
  })
  const p = await problemsOf(loadGatewayConfig({ env: s.env, systemFile: s.systemFile }))
  const expect: [string, RegExp][] = [
    ['colour', /unknown key "colour"/],
    ['DATA_TYPE', /DATA_TYPE must be "onedrive_storage_policies#1.0.0"/],
    ['client_id', /client_id must be the Application \(client\) ID/],
    ['tenant', /tenant must be the Directory \(tenant\) ID/],
    ['user_api_rate_limit', /user_api_rate_limit must be a number/],
    ['auth_callback', /auth_callback must be an https:\/\/ URL/],
    ['account_types', /account_types must be one of single-tenant, multitenant, multitenant-and-personal, personal/],
    ['cloud', /cloud must be one of global, usgov, usgov-dod, china/],
    ['shared_libraries', /shared_libraries must be true or false/],
    ['login_endpoint', /login_endpoint must be an https:\/\/ URL/],
    ['graph_endpoint', /graph_endpoint must be a Graph origin/],
    ['ca_file', /ca_file must be a string/],
  ]
  for (const [key, re] of expect) {
    const line = p.find((l) => re.test(l))
    t.ok(line, `a line for ${key}`)
    if (line) t.ok(line.startsWith(`${s.userFile}: `), `${key} line names the file`)
  }
  t.equal(p.length, expect.length, 'exactly one line per problem')
})

t.test('bad values from options name the option', async (t) => {
  const s = await setup(t)
  const p = await problemsOf(loadGatewayConfig({ env: s.env, systemFile: s.systemFile, overrides: { clientId: CLIENT, userApiRateLimit: NaN, loginEndpoint: 'nonsense' } }))
  t.equal(p.length, 2)
  t.match(p.join('\n'), /option --ms-user-api-rate-limit: user_api_rate_limit must be a number .*: NaN/)
  t.match(p.join('\n'), /option --ms-login-endpoint: login_endpoint is not a valid URL/)
})

t.test('missing client id, bad JSON, missing --config file', async (t) => {
  const s = await setup(t)
  let p = await problemsOf(loadGatewayConfig({ env: s.env, systemFile: s.systemFile }))
  t.match(p[0], /client_id is not set: give --ms-client-id/)
  await s.put(s.userFile, '{ "client_id": ')
  p = await problemsOf(loadGatewayConfig({ env: s.env, systemFile: s.systemFile }))
  t.match(p[0], `${s.userFile}: not valid JSON`)
  await s.put(s.userFile, '[1]')
  p = await problemsOf(loadGatewayConfig({ env: s.env, systemFile: s.systemFile }))
  t.match(p[0], /must hold a JSON object/)
  await rm(s.userFile)
  p = await problemsOf(loadGatewayConfig({ env: s.env, systemFile: s.systemFile, configFile: join(s.dir, 'nope.json'), overrides: { clientId: CLIENT } }))
  t.match(p[0], /nope\.json: no such file/)
})

t.test('personal accounts need the global cloud', async (t) => {
  const s = await setup(t)
  const p = await problemsOf(loadGatewayConfig({ env: s.env, systemFile: s.systemFile, overrides: { clientId: CLIENT, cloud: 'china', accountTypes: 'personal' } }))
  t.match(p[0], /needs cloud global/)
})

t.test('client secret from a file or stdin, not only argv', async (t) => {
  const s = await setup(t)
  const f = join(s.dir, 'secret.txt')
  await writeFile(f, SECRET + '\n', { mode: 0o600 })
  t.equal((await gatewayOverridesFromArgv({ 'ms-client-secret-file': f })).secret, SECRET)
  t.equal((await gatewayOverridesFromArgv({ 'ms-client-secret': '-' }, Readable.from([SECRET + '\n']))).secret, SECRET)
  t.equal((await gatewayOverridesFromArgv({ 'ms-client-secret': SECRET })).secret, SECRET)
  const e1 = await gatewayOverridesFromArgv({ 'ms-client-secret': '-' }, Readable.from([])).catch((e) => e)
  t.match(e1.message, /nothing was read from stdin/)
  const e2 = await gatewayOverridesFromArgv({ 'ms-client-secret-file': join(s.dir, 'none') }).catch((e) => e)
  t.match(e2.message, /--ms-client-secret-file .*none: cannot read: ENOENT/)
  const o = await gatewayOverridesFromArgv({ 'ms-client-id': CLIENT })
  t.same(o, { clientId: CLIENT }, 'unset options are absent')
})

t.test('a secret file readable by group or others is refused with the chmod', async (t) => {
  const s = await setup(t)
  const f = join(s.dir, 'secret.txt')
  await writeFile(f, SECRET + '\n')
  for (const mode of [0o644, 0o640, 0o604]) {
    await chmod(f, mode)
    const err = await gatewayOverridesFromArgv({ 'ms-client-secret-file': f }).catch((e) => e)
    t.ok(err instanceof ConfigError)
    t.match(err.message, `--ms-client-secret-file ${f}: the file is readable by group or others (mode 0${mode.toString(8)}); fix it with: chmod 600 ${f}`)
    t.notMatch(err.message, SECRET)
  }
})

t.test('a secret in the wrong place, or a password in a URL, is never echoed', async (t) => {
  const s = await setup(t)
  const p = await problemsOf(loadGatewayConfig({
    env: s.env, systemFile: s.systemFile,
    overrides: { clientId: SECRET, tenant: SECRET, loginEndpoint: `https://admin:${SECRET}@login.example.org/x?y=1`, graphEndpoint: `http://u:${SECRET}@graph.example.org` },
  }))
  const text = p.join('\n')
  t.notMatch(text, SECRET)
  t.match(text, /client_id must be the Application \(client\) ID.*: the value looks like a client secret \(not shown\), which belongs in "secret"/)
  t.match(text, /tenant must be the Directory \(tenant\) ID.*looks like a client secret/)
  t.match(text, /login_endpoint must not carry credentials, a query or a fragment: "https:\/\/\*\*\*@login\.example\.org\/x\?y=1"/)
  t.match(text, /graph_endpoint must be an https:\/\/ URL: "http:\/\/\*\*\*@graph\.example\.org\/"/)
})

t.test('writing the policy document: 0600, redacted for display, redirect uri', async (t) => {
  const s = await setup(t)
  const file = join(s.dir, 'out', 'gateway.json')
  const doc = toPolicyDocument({ client_id: CLIENT, secret: SECRET, tenant: TENANT })
  await writePolicyDocument(file, doc)
  t.equal((await stat(file)).mode & 0o777, 0o600)
  const back = JSON.parse(await readFile(file, 'utf8'))
  t.equal(back.DATA_TYPE, 'onedrive_storage_policies#1.0.0')
  t.equal(back.secret, SECRET)
  t.equal(redactPolicyDocument(doc).secret, '<redacted>')
  t.equal(doc.secret, SECRET, 'redaction copies')
  const c = await loadGatewayConfig({ env: s.env, systemFile: s.systemFile, configFile: file })
  t.equal(c.accountTypes, 'single-tenant')
  t.equal(redirectUriToRegister(c), 'http://localhost')
  t.equal(redirectUriToRegister({ authCallback: 'https://gw.example.org/api/v1/authcallback' }), 'https://gw.example.org/api/v1/authcallback')
})
