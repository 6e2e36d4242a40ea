/**
 * Sharing (docs/graph-service.md §7): sharedWithMe (and its retirement), search for
 * Business accounts, sharing links and /shares, invitations and permissions.
 */
import type { Item, SharingLink } from '../store/index.js'
import { EmuError, accessDenied, identityOf, invalidRequest, notFound } from '../store/index.js'
import { findAccount } from '../directory.js'
import type { Env } from './env.js'
import { type Ctx, type Resp, json, readJson, prefers, graphBaseOf } from './http.js'
import { driveItem, itemWebUrl, parseSelect, remoteItem } from './serialize.js'
import { childrenPage } from './router.js'

export function sharedWithMe(env: Env, ctx: Ctx): Resp {
  if (ctx.method !== 'GET') throw new EmuError(405, 'methodNotAllowed', 'Use GET.')
  const context = `${graphBaseOf(ctx)}/$metadata#Collection(driveItem)`
  if (env.opts.sharedWithMeRetired) return json(200, { '@odata.context': context, value: [] })
  const value = env.store.sharedWith(ctx.user).map(({ item, grant }) => {
    const r = remoteItem(env, item)
    r.shared = { owner: identityOf(grant.sharedBy), sharedBy: identityOf(grant.sharedBy).user, sharedDateTime: grant.sharedAt }
    return {
      id: item.id, name: item.name, size: item.size, webUrl: itemWebUrl(env.store, item),
      createdDateTime: item.createdDateTime, lastModifiedDateTime: item.lastModifiedDateTime,
      createdBy: item.createdBy, lastModifiedBy: item.lastModifiedBy,
      remoteItem: r,
    }
  })
  return json(200, { '@odata.context': context, value })
}

/** POST /search/query with entityTypes driveItem (Business). */
export async function searchQuery(env: Env, ctx: Ctx): Promise<Resp> {
  const store = env.store
  if (ctx.user.kind === 'personal') throw new EmuError(400, 'invalidRequest', 'The search API is not supported for personal accounts.')
  const body = await readJson(ctx)
  const requests = body.requests
  if (!Array.isArray(requests) || requests.length === 0) throw invalidRequest('requests is required.')
  const value = requests.map((r: any) => {
    const types: string[] = r?.entityTypes ?? []
    if (!Array.isArray(types) || !types.includes('driveItem')) throw invalidRequest('Only entityTypes ["driveItem"] is supported.')
    const qs = String(r?.query?.queryString ?? '').trim()
    if (!qs) throw invalidRequest('query.queryString is required.')
    const from = Math.max(0, Number(r.from ?? 0) || 0)
    const size = Math.min(500, Math.max(1, Number(r.size ?? 25) || 25))
    const terms = qs.split(/\s+/).map((t) => t.replace(/^"|"$/g, '').toLowerCase()).filter((t) => t && t !== '*' && !/^[a-z]+:/.test(t))
    const candidates = new Map<string, Item>()
    const addTree = (it: Item) => {
      candidates.set(it.id, it)
      if (it.kind === 'folder') for (const d of store.descendants(it)) candidates.set(d.id, d)
    }
    for (const d of store.drives.values()) {
      const mine = d.owner?.oid === ctx.user.oid || (d.kind === 'documentLibrary' && d.tenantId === ctx.user.tenantId)
      if (mine) for (const c of store.children(store.root(d))) addTree(c)
    }
    for (const { item } of store.sharedWith(ctx.user)) addTree(item)
    const hits = [...candidates.values()]
      .filter((it) => it.kind !== 'shortcut' && terms.every((t) => it.name.toLowerCase().includes(t)))
      .sort((a, b) => (a.name.toLowerCase() < b.name.toLowerCase() ? -1 : 1))
    const page = hits.slice(from, from + size).map((it, i) => {
      const drive = store.driveOfItem(it)
      const res: Record<string, unknown> = {
        '@odata.type': '#microsoft.graph.driveItem', id: it.id, name: it.name, size: it.size, webUrl: itemWebUrl(store, it),
        createdDateTime: it.createdDateTime, lastModifiedDateTime: it.lastModifiedDateTime, createdBy: it.createdBy, lastModifiedBy: it.lastModifiedBy,
        fileSystemInfo: { createdDateTime: it.fsCreated, lastModifiedDateTime: it.fsModified },
        parentReference: { driveId: drive.id, driveType: drive.kind, id: it.parentId ?? undefined, ...(drive.siteId ? { siteId: drive.siteId } : {}) },
      }
      if (it.kind === 'folder') res.folder = { childCount: it.children!.size }
      else res.file = { mimeType: it.mimeType ?? 'application/octet-stream' }
      return { hitId: it.id, rank: from + i + 1, summary: '', resource: res }
    })
    return { searchTerms: terms, hitsContainers: [{ hits: page, total: hits.length, moreResultsAvailable: from + size < hits.length }] }
  })
  return json(200, { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.searchResponse)', value })
}

function permissionOfLink(l: SharingLink): Record<string, unknown> {
  return {
    id: l.id, roles: [l.type === 'edit' ? 'write' : 'read'], shareId: shareToken(l.webUrl),
    link: { type: l.type, scope: l.scope, webUrl: l.webUrl, application: { id: 'odfs-emulator', displayName: 'odfs emulator' } },
  }
}

export function shareToken(webUrl: string): string {
  return 'u!' + Buffer.from(webUrl).toString('base64url')
}

export async function createLink(env: Env, ctx: Ctx, item: Item): Promise<Resp> {
  const store = env.store
  const a = store.require(ctx.user, item, 'write')
  if (a !== 'owner' && a !== 'write') throw accessDenied()
  const body = await readJson(ctx)
  const type = body.type
  if (type !== 'view' && type !== 'edit') throw invalidRequest('type must be "view" or "edit".')
  const scope = body.scope ?? (store.driveOfItem(item).kind === 'personal' ? 'anonymous' : 'organization')
  if (!['anonymous', 'organization', 'users'].includes(scope)) throw invalidRequest('Invalid scope.')
  const before = store.links.size
  const link = store.createLink(item, type, scope, ctx.user)
  return json(store.links.size > before ? 201 : 200, permissionOfLink(link))
}

export async function invite(env: Env, ctx: Ctx, item: Item): Promise<Resp> {
  const store = env.store
  store.require(ctx.user, item, 'write')
  const body = await readJson(ctx)
  const roles: string[] = Array.isArray(body.roles) ? body.roles : []
  const role = roles.includes('write') ? 'write' : roles.includes('read') ? 'read' : undefined
  if (!role) throw invalidRequest('roles must include "read" or "write".')
  const recipients = Array.isArray(body.recipients) ? body.recipients : []
  if (recipients.length === 0) throw invalidRequest('recipients is required.')
  const value = recipients.map((r: any) => {
    const who = typeof r?.email === 'string' ? findAccount(r.email) : undefined
    if (!who) throw invalidRequest(`Unknown recipient ${String(r?.email)}.`)
    if ((who.kind === 'personal') !== (ctx.user.kind === 'personal')) throw invalidRequest('Sharing between personal and work accounts is not supported here.')
    store.grant(item, who, role, ctx.user)
    return { id: `grant-${who.oid}`, roles: [role], grantedTo: identityOf(who), grantedToV2: identityOf(who) }
  })
  return json(200, { value })
}

export function listPermissions(env: Env, ctx: Ctx, item: Item): Resp {
  const store = env.store
  store.require(ctx.user, item, 'read')
  const value: unknown[] = []
  for (const [oid, g] of store.grants.get(item.id) ?? []) {
    const who = store.accountByOid(oid)
    if (who) value.push({ id: `grant-${oid}`, roles: [g.role], grantedTo: identityOf(who), grantedToV2: identityOf(who), invitation: g.invited ? { signInRequired: true } : undefined })
  }
  for (const l of store.links.values()) if (l.itemId === item.id) value.push(permissionOfLink(l))
  return json(200, { value })
}

/** GET /shares/{u!…}/driveItem[/children]: resolve a sharing link; `Prefer: redeemSharingLink` grants lasting access. */
export function sharesRoute(env: Env, ctx: Ctx, token: string, rest: string): Resp {
  const store = env.store
  if (ctx.method !== 'GET') throw new EmuError(405, 'methodNotAllowed', 'Use GET.')
  if (!token.startsWith('u!')) throw notFound('The sharing token is not valid.')
  let url: string
  try {
    url = Buffer.from(token.slice(2), 'base64url').toString('utf8')
  } catch {
    throw notFound('The sharing token is not valid.')
  }
  const link = store.links.get(url)
  const item = link ? store.get(link.itemId) : undefined
  if (!link || !item) throw notFound('The sharing link no longer exists.')
  const drive = store.driveOfItem(item)
  if (drive.owner?.oid !== ctx.user.oid && ctx.scopes && !ctx.scopes.some((s) => /^(files|sites)\.read(write)?\.all$/i.test(s))) {
    throw accessDenied('Access denied: shared items need Files.Read.All or Files.ReadWrite.All.')
  }
  const existing = store.access(ctx.user, item)
  if (!existing) {
    if (link.scope === 'organization' && (drive.kind === 'personal' || ctx.user.tenantId !== drive.tenantId)) throw accessDenied('The link is only for people in the organization.')
    if (link.scope === 'users') throw accessDenied('The link is only for specific people.')
  }
  const p = prefers(ctx)
  if (p.includes('redeemsharinglink') && !existing) {
    store.grant(item, ctx.user, link.type === 'edit' ? 'write' : 'read', link.createdBy, false)
  }
  if (rest === '/driveItem' || rest === '/driveItem/' || rest === '/root') {
    return json(200, driveItem(env, item, { select: parseSelect(ctx.url) }))
  }
  if (rest === '/driveItem/children' || rest === '/root/children') {
    if (item.kind !== 'folder') throw invalidRequest('The shared item is not a folder.')
    const page = childrenPage(env, ctx, item, 200, new URL(ctx.url.toString()))
    return json(200, { value: page.value, ...(page.nextLink ? { '@odata.nextLink': page.nextLink } : {}) })
  }
  throw new EmuError(400, 'BadRequest', 'Unsupported segment below /shares.')
}
