/**
 * The sign-in rules of the Microsoft identity platform as the emulator applies
 * them: which authority (tenant segment) is valid, which app registration may be
 * used through which authority, which accounts may sign in, which scopes exist,
 * and how redirect URIs are matched (including the loopback rule).
 */
import {
  PERSONAL_TENANT_ID, TENANTS, findTenant,
  type Account, type AppRegistration, type RedirectUri, type Tenant,
} from '../directory.js'
import { aadError, type AadError } from './http.js'

export type AuthorityKind = 'common' | 'organizations' | 'consumers' | 'tenant'

export interface Authority {
  /** The path segment as sent (`common`, a GUID or a domain). */
  segment: string
  kind: AuthorityKind
  tenant?: Tenant
}

/** The tenant segment of a v2.0 path; `undefined` for an unknown tenant. */
export function resolveAuthority(segment: string): Authority | undefined {
  const s = segment.toLowerCase()
  if (s === 'common' || s === 'organizations' || s === 'consumers') return { segment, kind: s }
  // The MSA tenant id is the consumers authority under another name.
  if (s === PERSONAL_TENANT_ID) return { segment, kind: 'consumers' }
  const tenant = findTenant(s)
  return tenant ? { segment, kind: 'tenant', tenant } : undefined
}

export function unknownTenantError(segment: string): AadError {
  const isGuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(segment)
  return isGuid || segment.includes('.')
    ? aadError(400, 'invalid_tenant', 90002, `Tenant '${segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`)
    : aadError(400, 'invalid_tenant', 90002, `Tenant '${segment}' not found. This may happen if there are no active subscriptions for the tenant. Check to make sure you have the correct tenant ID. Check with your subscription administrator.`)
}

function directoryName(a: Authority): string {
  if (a.kind === 'tenant') return a.tenant!.displayName
  if (a.kind === 'consumers') return 'Microsoft Accounts'
  return a.kind
}

export function appNotFound(clientId: string, a: Authority): AadError {
  return aadError(400, 'unauthorized_client', 700016, `Application with identifier '${clientId}' was not found in the directory '${directoryName(a)}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`)
}

/** May this app be used through this authority at all? Checked before any sign-in. */
export function checkAppAuthority(app: AppRegistration, a: Authority): AadError | undefined {
  switch (app.accountTypes) {
    case 'single-tenant':
      if (a.kind !== 'tenant') {
        return aadError(400, 'invalid_request', 50194, `Application '${app.clientId}'(${app.displayName}) is not configured as a multi-tenant application. Usage of the /${a.kind} endpoint is not supported for such applications created after '10/15/2018'. Use a tenant-specific endpoint or configure the application to be multi-tenant.`)
      }
      if (a.tenant!.id !== app.tenantId) return appNotFound(app.clientId, a)
      return undefined
    case 'multitenant':
      if (a.kind === 'consumers') return appNotFound(app.clientId, a)
      return undefined
    case 'personal':
      if (a.kind !== 'consumers' && a.kind !== 'common') {
        return aadError(400, 'invalid_request', 9002331, `Application '${app.clientId}'(${app.displayName}) is configured for use by Microsoft Account users only. Please use the /consumers endpoint to serve this request.`)
      }
      return undefined
    case 'multitenant-and-personal':
      return undefined
  }
}

function idpOf(acc: Account): string {
  return acc.kind === 'personal' ? 'live.com' : `https://sts.windows.net/${acc.tenantId}/`
}

/** May this account sign in to this app through this authority? */
export function checkSignIn(app: AppRegistration, a: Authority, acc: Account): AadError | undefined {
  const appErr = checkAppAuthority(app, a)
  if (appErr) return appErr
  const denied = (code: number, text: string) => aadError(400, 'invalid_grant', code, text)
  // The authority decides which directory the user signs in to.
  if (a.kind === 'consumers' && acc.kind !== 'personal') {
    return denied(50020, `User account '${acc.upn}' from identity provider '${idpOf(acc)}' does not exist in tenant 'Microsoft Services' and cannot access the application '${app.clientId}'(${app.displayName}) in that tenant. The /consumers endpoint accepts personal Microsoft accounts only; use a personal account or the /organizations or /common endpoint.`)
  }
  if (a.kind === 'organizations' && acc.kind === 'personal') {
    return denied(50020, `User account '${acc.upn}' from identity provider 'live.com' does not exist in tenant 'organizations' and cannot access the application '${app.clientId}'(${app.displayName}). The /organizations endpoint accepts work or school accounts only; personal Microsoft accounts must use /consumers or /common.`)
  }
  if (a.kind === 'tenant' && acc.tenantId !== a.tenant!.id) {
    return denied(50020, `User account '${acc.upn}' from identity provider '${idpOf(acc)}' does not exist in tenant '${a.tenant!.displayName}' and cannot access the application '${app.clientId}'(${app.displayName}) in that tenant. The account needs to be added as an external user in the tenant first. Sign out and sign in again with a different Azure Active Directory user account.`)
  }
  // The app registration decides which kinds of account it supports.
  switch (app.accountTypes) {
    case 'single-tenant':
      if (acc.tenantId !== app.tenantId) {
        return denied(50020, `User account '${acc.upn}' from identity provider '${idpOf(acc)}' does not exist in tenant '${tenantName(app.tenantId)}' and cannot access the application '${app.clientId}'(${app.displayName}) in that tenant. The application is single-tenant and accepts users of its home tenant only.`)
      }
      return undefined
    case 'multitenant':
      if (acc.kind === 'personal') {
        return denied(50020, `User account '${acc.upn}' from identity provider 'live.com' does not exist in tenant 'Microsoft Services' and cannot access the application '${app.clientId}'(${app.displayName}). The application supports work or school accounts only: you can't sign in here with a personal account.`)
      }
      return undefined
    case 'personal':
      if (acc.kind !== 'personal') {
        return denied(50020, `User account '${acc.upn}' from identity provider '${idpOf(acc)}' cannot access the application '${app.clientId}'(${app.displayName}). The application is configured for use by personal Microsoft account users only.`)
      }
      return undefined
    case 'multitenant-and-personal':
      return undefined
  }
}

function tenantName(id: string): string {
  return TENANTS.find((t) => t.id === id)?.displayName ?? id
}

// ---- scopes ---------------------------------------------------------------

const GRAPH = 'https://graph.microsoft.com/'
const GRAPH_ID = '00000003-0000-0000-c000-000000000000/'
export const OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access'])
/** Delegated Graph permissions the emulator knows (canonical case). */
const GRAPH_SCOPES = [
  'User.Read', 'User.ReadBasic.All', 'User.Read.All',
  'Files.Read', 'Files.Read.All', 'Files.ReadWrite', 'Files.ReadWrite.All', 'Files.ReadWrite.AppFolder',
  'Sites.Read.All', 'Sites.ReadWrite.All',
]
/** What `.default` stands for: the permissions configured on every seeded app. */
export const DEFAULT_SCOPES = ['User.Read', 'Files.ReadWrite.All', 'Sites.ReadWrite.All']

export interface ScopeRequest {
  /** Graph permissions, canonical names without the resource prefix. */
  resource: string[]
  openid: boolean
  offline: boolean
  profile: boolean
  email: boolean
  /** `.default` was asked for. */
  isDefault: boolean
}

/** Parses a `scope` parameter; an error for unknown scopes or mixed `.default`. */
export function parseScopes(raw: string): ScopeRequest | AadError {
  const parts = raw.split(/[\s+]+/).filter(Boolean)
  const out: ScopeRequest = { resource: [], openid: false, offline: false, profile: false, email: false, isDefault: false }
  const invalid = (s: string) => aadError(400, 'invalid_scope', 70011, `The provided value for the input parameter 'scope' is not valid. The scope '${s}' does not exist.`)
  for (const p of parts) {
    const low = p.toLowerCase()
    if (OIDC_SCOPES.has(low)) {
      if (low === 'openid') out.openid = true
      else if (low === 'offline_access') out.offline = true
      else if (low === 'profile') out.profile = true
      else out.email = true
      continue
    }
    let name = p
    if (low.startsWith(GRAPH)) name = p.slice(GRAPH.length)
    else if (low.startsWith(GRAPH_ID)) name = p.slice(GRAPH_ID.length)
    else if (low.includes('://') || low.includes('/')) return invalid(p)
    if (name.toLowerCase() === '.default') {
      out.isDefault = true
      continue
    }
    const canon = GRAPH_SCOPES.find((s) => s.toLowerCase() === name.toLowerCase())
    if (!canon) return invalid(p)
    if (!out.resource.includes(canon)) out.resource.push(canon)
  }
  if (out.isDefault) {
    if (out.resource.length > 0) {
      return aadError(400, 'invalid_scope', 70011, `The provided value for the input parameter 'scope' is not valid. The scope '${raw}' is not valid. static scope limit exceeded: '.default' cannot be combined with other resource scopes.`)
    }
    out.resource = [...DEFAULT_SCOPES]
  }
  return out
}

export function missingParam(name: string): AadError {
  return aadError(400, 'invalid_request', 900144, `The request body must contain the following parameter: '${name}'.`)
}

// ---- redirect URIs ---------------------------------------------------------

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]'])

/**
 * The registered redirect URI a request's `redirect_uri` names, with its platform.
 * The real rule: exact match, except that for `http` loopback URIs the port is
 * ignored (any port matches, the path must still match).
 */
export function matchRedirectUri(app: AppRegistration, uri: string): RedirectUri | undefined {
  let req: URL
  try {
    req = new URL(uri)
  } catch {
    return undefined
  }
  if (req.hash) return undefined
  for (const reg of app.redirectUris) {
    if (reg.uri === uri) return reg
    let r: URL
    try {
      r = new URL(reg.uri)
    } catch {
      continue
    }
    if (r.protocol === 'http:' && req.protocol === 'http:' && LOOPBACK_HOSTS.has(r.hostname) &&
        r.hostname === req.hostname && r.pathname === req.pathname && r.search === req.search) {
      return reg
    }
  }
  return undefined
}

export function redirectUriAllowed(app: AppRegistration, uri: string): boolean {
  return matchRedirectUri(app, uri) !== undefined
}

/**
 * What the app registration portal refuses in a redirect URI, per platform
 * (docs/emulator/redirect-uri-platforms.md): Web and SPA URIs are `https`, or `http`
 * on a loopback host; Mobile/desktop (public client) URIs may also use a custom
 * scheme (`myapp://auth`). Never a fragment, at most 256 characters, no query for
 * apps that sign in personal accounts, and one URI under one platform only.
 */
export function registrationProblems(app: AppRegistration): string[] {
  const out: string[] = []
  const seen = new Set<string>()
  for (const { uri, platform } of app.redirectUris) {
    const bad = (why: string) => out.push(`${platform} redirect URI '${uri}': ${why}`)
    if (seen.has(uri)) bad('registered under more than one platform')
    seen.add(uri)
    if (uri.length > 256) bad('longer than 256 characters')
    let u: URL
    try {
      u = new URL(uri)
    } catch {
      bad('not an absolute URI')
      continue
    }
    if (u.hash || uri.includes('#')) bad('has a fragment')
    if (u.search && (app.accountTypes === 'multitenant-and-personal' || app.accountTypes === 'personal')) {
      bad('query parameters are not allowed for apps that sign in personal accounts')
    }
    const loopback = LOOPBACK_HOSTS.has(u.hostname)
    if (platform === 'publicClient') {
      if (u.protocol === 'http:' && !loopback) bad('http is allowed on loopback hosts only')
    } else if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) {
      bad(`a ${platform === 'spa' ? 'single-page application' : 'web'} redirect URI must use https (or http on localhost)`)
    }
  }
  return out
}
