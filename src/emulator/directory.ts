/**
 * The emulator's directory: tenants, app registrations and test accounts.
 * This is seed data shared by the identity platform (sign-in rules) and the
 * drive service (whose drive belongs to whom). It is the emulator's own model
 * and shares nothing with the client code in src/graph or src/auth.
 */

/** Personal (MSA) accounts all carry this tenant id in their tokens (docs/graph-service.md §2). */
export const PERSONAL_TENANT_ID = '9188040d-6c67-4c5b-b112-36a304b66dad'

export type AccountKind = 'business' | 'personal'
/** Supported account types of an app registration, as the Azure portal names them. */
export type AccountTypes = 'single-tenant' | 'multitenant' | 'multitenant-and-personal' | 'personal'

export interface Tenant {
  id: string
  /** Verified domain, e.g. contoso.onmicrosoft.com; also accepted in place of the id in authority URLs. */
  domain: string
  displayName: string
}

export interface Account {
  /** Short handle used by emulator options and tests (`--auto-consent user1`). */
  handle: string
  kind: AccountKind
  /** Object id (oid claim, /me id). */
  oid: string
  tenantId: string
  upn: string
  email: string
  displayName: string
}

/**
 * The platform a redirect URI is registered under (the manifest's `replyUrlsWithType`
 * types: Web, Spa, InstalledClient). It decides how a code sent to that URI may be
 * redeemed: see docs/emulator/redirect-uri-platforms.md.
 */
export type RedirectPlatform = 'web' | 'spa' | 'publicClient'

export interface RedirectUri {
  uri: string
  platform: RedirectPlatform
}

export interface AppRegistration {
  clientId: string
  displayName: string
  /** Present for confidential apps only. */
  secret?: string
  accountTypes: AccountTypes
  /** The home tenant; the only one allowed for single-tenant apps. */
  tenantId: string
  /**
   * Registered redirect URIs with their platform. As on the real platform,
   * `http://localhost` and `http://127.0.0.1` entries match any port (loopback rule).
   */
  redirectUris: RedirectUri[]
}

export const TENANTS: Tenant[] = [
  { id: 'c0a1e2f3-0000-4000-8000-00000000c050', domain: 'contoso.onmicrosoft.com', displayName: 'Contoso' },
  { id: 'fab0fab0-0000-4000-8000-0000000fab01', domain: 'fabrikam.onmicrosoft.com', displayName: 'Fabrikam' },
]

export const CONTOSO = TENANTS[0]!
export const FABRIKAM = TENANTS[1]!

export const ACCOUNTS: Account[] = [
  {
    handle: 'user1', kind: 'business', oid: '11111111-1111-4111-8111-111111111111', tenantId: CONTOSO.id,
    upn: 'user1@contoso.onmicrosoft.com', email: 'user1@contoso.onmicrosoft.com', displayName: 'User One',
  },
  {
    handle: 'user2', kind: 'business', oid: '22222222-2222-4222-8222-222222222222', tenantId: CONTOSO.id,
    upn: 'user2@contoso.onmicrosoft.com', email: 'user2@contoso.onmicrosoft.com', displayName: 'User Two',
  },
  {
    handle: 'personal1', kind: 'personal', oid: '00000000-0000-0000-6a1b-2c3d4e5f6071', tenantId: PERSONAL_TENANT_ID,
    upn: 'personal1@outlook.com', email: 'personal1@outlook.com', displayName: 'Personal One',
  },
  {
    handle: 'personal2', kind: 'personal', oid: '00000000-0000-0000-7b2c-3d4e5f607182', tenantId: PERSONAL_TENANT_ID,
    upn: 'personal2@outlook.com', email: 'personal2@outlook.com', displayName: 'Personal Two',
  },
  {
    handle: 'other1', kind: 'business', oid: '33333333-3333-4333-8333-333333333333', tenantId: FABRIKAM.id,
    upn: 'other1@fabrikam.onmicrosoft.com', email: 'other1@fabrikam.onmicrosoft.com', displayName: 'Other One',
  },
]

const LOOPBACK = ['http://localhost', 'http://127.0.0.1']
const on = (platform: RedirectPlatform, ...uris: string[]): RedirectUri[] => uris.map((uri) => ({ uri, platform }))

export const APPS: AppRegistration[] = [
  {
    clientId: 'a0d1f5e0-0000-4000-8000-00000000a001', displayName: 'odfs public client',
    accountTypes: 'multitenant-and-personal', tenantId: CONTOSO.id,
    // "Mobile and desktop applications": loopback and the native-client page; plus one SPA page.
    redirectUris: [
      ...on('publicClient', ...LOOPBACK, 'https://login.microsoftonline.com/common/oauth2/nativeclient'),
      ...on('spa', 'https://files.example.org/spa'),
    ],
  },
  {
    clientId: 'a0d1f5e0-0000-4000-8000-00000000a002', displayName: 'odfs gateway (confidential)',
    secret: 'emu~Secret.0123456789abcdefghijKLMNOP', accountTypes: 'multitenant-and-personal', tenantId: CONTOSO.id,
    redirectUris: on('web', ...LOOPBACK, 'https://gateway.example.org/api/v1/authcallback'),
  },
  {
    clientId: 'a0d1f5e0-0000-4000-8000-00000000a003', displayName: 'odfs single tenant (Contoso)',
    secret: 'emu~Single.0123456789abcdefghijKLMNOP', accountTypes: 'single-tenant', tenantId: CONTOSO.id,
    redirectUris: on('web', ...LOOPBACK),
  },
  {
    clientId: 'a0d1f5e0-0000-4000-8000-00000000a004', displayName: 'odfs multitenant (organizations only)',
    accountTypes: 'multitenant', tenantId: CONTOSO.id,
    redirectUris: on('publicClient', ...LOOPBACK),
  },
  {
    clientId: 'a0d1f5e0-0000-4000-8000-00000000a005', displayName: 'odfs personal accounts only',
    accountTypes: 'personal', tenantId: CONTOSO.id,
    redirectUris: on('publicClient', ...LOOPBACK),
  },
]

export function findAccount(handleOrUpn: string): Account | undefined {
  const k = handleOrUpn.toLowerCase()
  return ACCOUNTS.find((a) => a.handle === k || a.upn.toLowerCase() === k || a.email.toLowerCase() === k || a.oid === k)
}

export function findApp(clientId: string): AppRegistration | undefined {
  return APPS.find((a) => a.clientId === clientId)
}

/** Resolve the tenant segment of an authority URL (id or domain); `undefined` if unknown. */
export function findTenant(idOrDomain: string): Tenant | undefined {
  const k = idOrDomain.toLowerCase()
  return TENANTS.find((t) => t.id === k || t.domain === k)
}
