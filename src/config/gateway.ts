/**
 * Gateway policies: the app registration odfs signs users in with, in the shape
 * of the seed's OneDriveStoragePolicies document (`onedrive_storage_policies#1.0.0`)
 * plus our own keys (account_types, cloud, shared_libraries, login_endpoint,
 * graph_endpoint, ca_file).
 *
 * Files are read in order and later ones override earlier keys:
 *   /etc/odfs/gateway.json  →  $XDG_CONFIG_HOME/odfs/gateway.json  →  --config FILE
 * then the --ms-* command-line options override the files. Every problem found is
 * reported at once, one line each, naming the key and where it came from.
 *
 * A file that holds a `secret` must not be readable by group or others; such a
 * file is refused with the chmod that fixes it.
 *
 * ODFS_SYSTEM_CONFIG (environment) replaces /etc/odfs/gateway.json (tests, packagers).
 */
import { open } from 'node:fs/promises'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { OdfsError } from '../common/index.js'
import { odfsDirs } from './dirs.js'

export const POLICY_DATA_TYPE = 'onedrive_storage_policies#1.0.0'
export const DEFAULT_USER_API_RATE_LIMIT = 20
export const SYSTEM_CONFIG_FILE = '/etc/odfs/gateway.json'

export type AccountTypes = 'single-tenant' | 'multitenant' | 'multitenant-and-personal' | 'personal'
export const ACCOUNT_TYPES: readonly AccountTypes[] = ['single-tenant', 'multitenant', 'multitenant-and-personal', 'personal']

export type Cloud = 'global' | 'usgov' | 'usgov-dod' | 'china'
/** Login and Graph hosts of each Microsoft cloud (docs/graph-service.md §12). */
export const CLOUDS: Record<Cloud, { login: string; graph: string }> = {
  global: { login: 'https://login.microsoftonline.com', graph: 'https://graph.microsoft.com' },
  usgov: { login: 'https://login.microsoftonline.us', graph: 'https://graph.microsoft.us' },
  'usgov-dod': { login: 'https://login.microsoftonline.us', graph: 'https://dod-graph.microsoft.us' },
  china: { login: 'https://login.chinacloudapi.cn', graph: 'https://microsoftgraph.chinacloudapi.cn' },
}

/** The tenant segment of the authority URL for each account type (single-tenant uses the tenant id). */
export const AUTHORITY_SEGMENT: Record<Exclude<AccountTypes, 'single-tenant'>, string> = {
  multitenant: 'organizations',
  'multitenant-and-personal': 'common',
  personal: 'consumers',
}

/** The policy document as stored on disk (snake_case, as in the seed). */
export interface GatewayPolicyDocument {
  DATA_TYPE?: string
  client_id?: string
  secret?: string
  tenant?: string
  user_api_rate_limit?: number
  auth_callback?: string
  account_types?: AccountTypes
  cloud?: Cloud
  shared_libraries?: boolean
  login_endpoint?: string
  graph_endpoint?: string
  ca_file?: string
}

/** Settings that command-line options may override (camelCase mirror of the document). */
export interface GatewayOverrides {
  clientId?: string
  secret?: string
  tenant?: string
  userApiRateLimit?: number
  authCallback?: string
  accountTypes?: string
  cloud?: string
  sharedLibraries?: boolean
  loginEndpoint?: string
  graphEndpoint?: string
  caFile?: string
}

export interface GatewayConfig {
  clientId: string
  secret?: string
  tenant?: string
  userApiRateLimit: number
  authCallback?: string
  accountTypes: AccountTypes
  cloud: Cloud
  sharedLibraries: boolean
  /** e.g. https://login.microsoftonline.com (no trailing slash). */
  loginEndpoint: string
  /** Always ends in /v1.0. */
  graphBaseUrl: string
  caFile?: string
  /** loginEndpoint + '/' + tenant segment for the account type. */
  authority: string
  scopes: string[]
  /** Files that were read, in order. */
  source: string[]
}

export class ConfigError extends OdfsError {
  readonly problems: string[]
  constructor(code: string, problems: string[]) {
    super(code, problems.length === 1 ? problems[0]! : `invalid gateway configuration:\n  ${problems.join('\n  ')}`, {
      details: { problems },
    })
    this.problems = problems
  }
}

/** Document keys mapped to the flag that overrides each, for messages. */
export const KEY_TO_FLAG: Record<keyof GatewayOverrides, string> = {
  clientId: '--ms-client-id',
  secret: '--ms-client-secret',
  tenant: '--ms-tenant',
  userApiRateLimit: '--ms-user-api-rate-limit',
  authCallback: '--ms-auth-callback',
  accountTypes: '--ms-account-types',
  cloud: '--ms-cloud',
  sharedLibraries: '--ms-shared-libraries',
  loginEndpoint: '--ms-login-endpoint',
  graphEndpoint: '--ms-graph-endpoint',
  caFile: '--ca-file',
}

export const OVERRIDE_TO_KEY: Record<keyof GatewayOverrides, keyof GatewayPolicyDocument> = {
  clientId: 'client_id',
  secret: 'secret',
  tenant: 'tenant',
  userApiRateLimit: 'user_api_rate_limit',
  authCallback: 'auth_callback',
  accountTypes: 'account_types',
  cloud: 'cloud',
  sharedLibraries: 'shared_libraries',
  loginEndpoint: 'login_endpoint',
  graphEndpoint: 'graph_endpoint',
  caFile: 'ca_file',
}

const KNOWN_KEYS = new Set<string>(['DATA_TYPE', ...Object.values(OVERRIDE_TO_KEY)])

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i

/** Where each key's value came from: a file path or a flag name. */
type Origin = Map<keyof GatewayPolicyDocument, string>

export interface LoadGatewayConfigOptions {
  /** --config FILE: read last, must exist. */
  configFile?: string
  /** Values from the --ms-* options; they win over every file. */
  overrides?: GatewayOverrides
  env?: NodeJS.ProcessEnv
  /** The system-wide file (default /etc/odfs/gateway.json; tests point it elsewhere). */
  systemFile?: string
}

/** $XDG_CONFIG_HOME/odfs/gateway.json of the caller (XDG default ~/.config). */
export function userConfigFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(odfsDirs(undefined, env).config, 'gateway.json')
}

export function systemConfigFile(env: NodeJS.ProcessEnv = process.env): string {
  return env.ODFS_SYSTEM_CONFIG || SYSTEM_CONFIG_FILE
}

/**
 * Read one policy file. Returns undefined when an optional file is absent.
 * Problems (unreadable, bad JSON, loose permissions with a secret) are pushed.
 */
export async function readPolicyFile(
  file: string,
  required: boolean,
  problems: string[],
): Promise<Record<string, unknown> | undefined> {
  let text: string
  let mode: number
  try {
    // mode and content from one open file: a file swapped after the check is never read
    const fh = await open(file, 'r')
    try {
      mode = (await fh.stat()).mode
      text = await fh.readFile('utf8')
    } finally {
      await fh.close()
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException
    if (err.code === 'ENOENT' && !required) return undefined
    if (err.code === 'ENOENT') problems.push(`${file}: no such file`)
    else if (err.code === 'EACCES') problems.push(`${file}: permission denied (it may hold the client secret; run odfs as a user that may read it)`)
    else problems.push(`${file}: cannot read: ${err.message}`)
    return undefined
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    problems.push(`${file}: not valid JSON: ${(e as Error).message}`)
    return undefined
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    problems.push(`${file}: must hold a JSON object (an onedrive_storage_policies#1.0.0 document)`)
    return undefined
  }
  const obj = doc as Record<string, unknown>
  if (obj.secret !== undefined && obj.secret !== null && obj.secret !== '') {
    if ((mode & 0o077) !== 0) {
      problems.push(
        `${file}: holds a client secret but is readable by group or others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); fix it with: chmod 600 ${file}`,
      )
      return undefined
    }
  }
  return obj
}

/** A URL for a message, with any user:password replaced. */
function shownUrl(value: unknown): string {
  if (typeof value === 'string') {
    try {
      const u = new URL(value)
      if (u.username || u.password) {
        u.username = '***'
        u.password = ''
        return JSON.stringify(u.href)
      }
    } catch {
      /* not a URL: shown as given */
    }
  }
  return JSON.stringify(value)
}

/** Azure client secrets carry a `~` (e.g. "Abc8Q~..."): such a value is never echoed. */
function looksLikeSecret(v: string): boolean {
  return v.length >= 30 && v.includes('~')
}

function where(origin: Origin, key: keyof GatewayPolicyDocument): string {
  return origin.get(key) ?? 'default'
}

function checkUrl(
  value: unknown,
  key: keyof GatewayPolicyDocument,
  origin: Origin,
  problems: string[],
  opts: { allowLoopbackHttp?: boolean; allowPath?: boolean },
): string | undefined {
  if (value === undefined) return undefined
  const at = where(origin, key)
  if (typeof value !== 'string' || value === '') {
    problems.push(`${at}: ${key} must be a URL string`)
    return undefined
  }
  let u: URL
  try {
    u = new URL(value)
  } catch {
    problems.push(`${at}: ${key} is not a valid URL: ${shownUrl(value)}`)
    return undefined
  }
  const loopback = u.hostname === 'localhost' || u.hostname === '127.0.0.1' || u.hostname === '[::1]'
  if (u.protocol !== 'https:' && !(opts.allowLoopbackHttp && u.protocol === 'http:' && loopback)) {
    problems.push(`${at}: ${key} must be an https:// URL${opts.allowLoopbackHttp ? ' (or http:// on localhost)' : ''}: ${shownUrl(value)}`)
    return undefined
  }
  if (u.username || u.password || u.search || u.hash) {
    problems.push(`${at}: ${key} must not carry credentials, a query or a fragment: ${shownUrl(value)}`)
    return undefined
  }
  if (!opts.allowPath && u.pathname !== '/' && u.pathname !== '') {
    problems.push(`${at}: ${key} must be a bare origin such as https://login.microsoftonline.com (no path): ${shownUrl(value)}`)
    return undefined
  }
  return value
}

/** Scopes for the configured gateway (graph resource prefix in national clouds). */
export function scopesFor(cloud: Cloud, graphOrigin: string, sharedLibraries: boolean): string[] {
  const graph = ['Files.ReadWrite.All', 'User.Read', ...(sharedLibraries ? ['Sites.ReadWrite.All'] : [])]
  // Outside the global cloud a bare scope name would name graph.microsoft.com's API.
  const prefixed = cloud === 'global' ? graph : graph.map((s) => `${graphOrigin}/${s}`)
  return [...prefixed, 'offline_access', 'openid', 'profile', 'email']
}

/**
 * Validate a merged document and derive the effective configuration. `origin`
 * says where each key came from, for messages. Throws ConfigError listing every
 * problem.
 */
export function validateGatewayDocument(doc: Record<string, unknown>, origin: Origin, source: string[], baseDirs: Map<string, string> = new Map()): GatewayConfig {
  const problems: string[] = []

  for (const key of Object.keys(doc)) {
    if (!KNOWN_KEYS.has(key)) {
      problems.push(`${origin.get(key as keyof GatewayPolicyDocument) ?? 'config'}: unknown key "${key}" (known: ${[...KNOWN_KEYS].join(', ')})`)
    }
  }
  const str = (key: keyof GatewayPolicyDocument): string | undefined => {
    const v = doc[key]
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'string') {
      problems.push(`${where(origin, key)}: ${key} must be a string, not ${Array.isArray(v) ? 'an array' : typeof v}`)
      return undefined
    }
    return v
  }

  if (doc.DATA_TYPE !== undefined && doc.DATA_TYPE !== POLICY_DATA_TYPE) {
    problems.push(`${where(origin, 'DATA_TYPE')}: DATA_TYPE must be "${POLICY_DATA_TYPE}", not ${JSON.stringify(doc.DATA_TYPE)}`)
  }

  const clientId = str('client_id')
  if (clientId === undefined || clientId === '') {
    if (doc.client_id === undefined || doc.client_id === '') {
      problems.push(`client_id is not set: give --ms-client-id or set client_id in ${source.at(-1) ?? userConfigFile()} (the Application (client) ID from the Azure portal)`)
    }
  } else if (!GUID.test(clientId)) {
    const shown = looksLikeSecret(clientId) ? 'the value looks like a client secret (not shown), which belongs in "secret"' : JSON.stringify(clientId)
    problems.push(`${where(origin, 'client_id')}: client_id must be the Application (client) ID, a GUID such as 00000000-0000-0000-0000-000000000000: ${shown}`)
  }

  const secret = str('secret')
  if (secret !== undefined && secret.trim() === '') problems.push(`${where(origin, 'secret')}: secret is empty`)

  let tenant = str('tenant')
  if (tenant === '') tenant = undefined
  if (tenant !== undefined && !GUID.test(tenant) && !DOMAIN.test(tenant)) {
    const shown = looksLikeSecret(tenant) ? 'the value looks like a client secret (not shown), which belongs in "secret"' : JSON.stringify(tenant)
    problems.push(`${where(origin, 'tenant')}: tenant must be the Directory (tenant) ID (a GUID) or a verified domain such as contoso.onmicrosoft.com: ${shown}`)
  }

  let rate = DEFAULT_USER_API_RATE_LIMIT
  if (doc.user_api_rate_limit !== undefined && doc.user_api_rate_limit !== null) {
    const v = doc.user_api_rate_limit
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > 10_000) {
      problems.push(`${where(origin, 'user_api_rate_limit')}: user_api_rate_limit must be a number of operations per second per user, greater than 0 and at most 10000: ${typeof v === 'number' ? String(v) : JSON.stringify(v)}`)
    } else rate = v
  }

  const authCallback = checkUrl(doc.auth_callback === '' ? undefined : doc.auth_callback, 'auth_callback', origin, problems, { allowLoopbackHttp: true, allowPath: true })

  let accountTypes: AccountTypes = tenant !== undefined ? 'single-tenant' : 'multitenant-and-personal'
  if (doc.account_types !== undefined) {
    if (typeof doc.account_types !== 'string' || !ACCOUNT_TYPES.includes(doc.account_types as AccountTypes)) {
      problems.push(`${where(origin, 'account_types')}: account_types must be one of ${ACCOUNT_TYPES.join(', ')}: ${JSON.stringify(doc.account_types)}`)
    } else accountTypes = doc.account_types as AccountTypes
  }

  let cloud: Cloud = 'global'
  if (doc.cloud !== undefined) {
    if (typeof doc.cloud !== 'string' || !(doc.cloud in CLOUDS)) {
      problems.push(`${where(origin, 'cloud')}: cloud must be one of ${Object.keys(CLOUDS).join(', ')}: ${JSON.stringify(doc.cloud)}`)
    } else cloud = doc.cloud as Cloud
  }

  let sharedLibraries = false
  if (doc.shared_libraries !== undefined) {
    const v = doc.shared_libraries
    if (typeof v === 'boolean') sharedLibraries = v
    else if (v === 'on' || v === 'off') sharedLibraries = v === 'on'
    else problems.push(`${where(origin, 'shared_libraries')}: shared_libraries must be true or false ("on"/"off" also accepted): ${JSON.stringify(v)}`)
  }

  const loginOverride = checkUrl(doc.login_endpoint === '' ? undefined : doc.login_endpoint, 'login_endpoint', origin, problems, {})
  const graphOverride = checkUrl(doc.graph_endpoint === '' ? undefined : doc.graph_endpoint, 'graph_endpoint', origin, problems, { allowPath: true })
  if (graphOverride !== undefined) {
    const p = new URL(graphOverride).pathname.replace(/\/+$/, '')
    if (p !== '' && p !== '/v1.0') {
      problems.push(`${where(origin, 'graph_endpoint')}: graph_endpoint must be a Graph origin, optionally ending in /v1.0: ${JSON.stringify(graphOverride)}`)
    }
  }

  let caFile = str('ca_file')
  if (caFile === '') caFile = undefined
  if (caFile !== undefined && !isAbsolute(caFile)) {
    const from = origin.get('ca_file')
    const base = from && baseDirs.get(from)
    caFile = base ? resolve(base, caFile) : resolve(caFile)
  }

  if (accountTypes === 'single-tenant' && tenant === undefined) {
    problems.push(`account_types is single-tenant but no tenant is set: give --ms-tenant TENANT_ID or set tenant (the Directory (tenant) ID from the Azure portal)`)
  }
  if (accountTypes === 'single-tenant' && tenant !== undefined && /^(common|organizations|consumers)$/i.test(tenant)) {
    problems.push(`${where(origin, 'tenant')}: tenant "${tenant}" is not a tenant id; single-tenant needs the Directory (tenant) ID`)
  }
  if ((accountTypes === 'personal' || accountTypes === 'multitenant-and-personal') && cloud !== 'global') {
    problems.push(`${where(origin, 'account_types')}: account_types ${accountTypes} needs cloud global (personal Microsoft accounts exist only there); use single-tenant or multitenant in the ${cloud} cloud`)
  }

  if (problems.length > 0) throw new ConfigError('CONFIG_INVALID', problems)

  const loginEndpoint = (loginOverride ?? CLOUDS[cloud].login).replace(/\/+$/, '')
  const graphOrigin = graphOverride ? new URL(graphOverride).origin : CLOUDS[cloud].graph
  const segment = accountTypes === 'single-tenant' ? tenant! : AUTHORITY_SEGMENT[accountTypes]
  return {
    clientId: clientId!,
    ...(secret !== undefined ? { secret } : {}),
    ...(tenant !== undefined ? { tenant } : {}),
    userApiRateLimit: rate,
    ...(authCallback !== undefined ? { authCallback } : {}),
    accountTypes,
    cloud,
    sharedLibraries,
    loginEndpoint,
    graphBaseUrl: `${graphOrigin}/v1.0`,
    ...(caFile !== undefined ? { caFile } : {}),
    authority: `${loginEndpoint}/${segment}`,
    scopes: scopesFor(cloud, graphOrigin, sharedLibraries),
    source,
  }
}

/** Turn --ms-* overrides into document keys (undefined values are dropped). */
export function overridesToDocument(o: GatewayOverrides): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, key] of Object.entries(OVERRIDE_TO_KEY) as [keyof GatewayOverrides, keyof GatewayPolicyDocument][]) {
    if (o[k] !== undefined) out[key] = o[k]
  }
  return out
}

/**
 * Read, merge and validate the gateway configuration. Throws ConfigError
 * (code CONFIG_INVALID) with one line per problem.
 */
export async function loadGatewayConfig(opts: LoadGatewayConfigOptions = {}): Promise<GatewayConfig> {
  const env = opts.env ?? process.env
  const problems: string[] = []
  const merged: Record<string, unknown> = {}
  const origin: Origin = new Map()
  const baseDirs = new Map<string, string>()
  const source: string[] = []
  const files: [string, boolean][] = [
    [opts.systemFile ?? systemConfigFile(env), false],
    [userConfigFile(env), false],
  ]
  if (opts.configFile) files.push([resolve(opts.configFile), true])
  const seen = new Set<string>()
  for (const [file, required] of files) {
    if (seen.has(file)) continue
    seen.add(file)
    const doc = await readPolicyFile(file, required, problems)
    if (!doc) continue
    source.push(file)
    baseDirs.set(file, dirname(file))
    for (const [k, v] of Object.entries(doc)) {
      merged[k] = v
      origin.set(k as keyof GatewayPolicyDocument, file)
    }
  }
  if (problems.length > 0) throw new ConfigError('CONFIG_UNREADABLE', problems)
  for (const [k, v] of Object.entries(opts.overrides ?? {}) as [keyof GatewayOverrides, unknown][]) {
    if (v === undefined) continue
    const key = OVERRIDE_TO_KEY[k]
    merged[key] = v
    origin.set(key, `option ${KEY_TO_FLAG[k]}`)
  }
  return validateGatewayDocument(merged, origin, source, baseDirs)
}

/** The document to write for a configuration (what `odfs gateway create` stores). */
export function toPolicyDocument(doc: Record<string, unknown>): GatewayPolicyDocument {
  const out: Record<string, unknown> = { DATA_TYPE: POLICY_DATA_TYPE }
  for (const key of Object.values(OVERRIDE_TO_KEY)) if (doc[key] !== undefined) out[key] = doc[key]
  return out as GatewayPolicyDocument
}

/**
 * The redirect URI to register with Microsoft: the configured auth_callback, or
 * the loopback address that `odfs login --browser` listens on (any port matches).
 */
export function redirectUriToRegister(config: Pick<GatewayConfig, 'authCallback'>): string {
  return config.authCallback ?? 'http://localhost'
}
