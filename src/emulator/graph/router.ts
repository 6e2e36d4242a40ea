/**
 * Graph v1.0 routing: /me, drives, item addressing (by id, by path, every form of
 * docs/graph-service.md §1.1), children paging, folder create, PATCH, DELETE, copy,
 * sites; content, delta and sharing live in their own modules.
 */
import { randomUUID } from 'node:crypto'
import type { Drive, Item, ConflictBehavior } from '../store/index.js'
import { EmuError, accessDenied, identityOf, invalidRequest, notFound } from '../store/index.js'
import type { Env } from './env.js'
import { type Ctx, type Resp, json, empty, readJson, header, prefers, optionPrefix, graphBaseOf } from './http.js'
import { driveItem, driveJson, etag, ctag, parseSelect, siteJson } from './serialize.js'
import { getContent, putContent, createUploadSession, commitFromSourceUrl } from './content.js'
import { deltaRoute } from './delta.js'
import { sharedWithMe, searchQuery, createLink, sharesRoute, invite, listPermissions } from './sharing.js'
import { versionsRoute } from './versions.js'

export interface Target {
  drive: Drive
  item?: Item
  /** For an address naming a child that does not exist yet. */
  parent?: Item
  name?: string
  /** Folders between `parent` and `name` that do not exist yet (path uploads create them). */
  missingDirs?: string[]
  sub: string
}

const DEFAULT_PAGE = 200
const MAX_PAGE = 1000

function decodeSeg(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    throw invalidRequest('The path is not correctly percent-encoded.', 'invalidPath')
  }
}

/**
 * The folder names of a path address (`root:/{path}:`, a parentReference.path). The
 * service decodes the path before it splits it: clients that encode each path as one
 * component send `up%2Fa` for `up/a` (abraunegg/onedrive), sometimes `.%2Fup%2Fa`.
 * Empty and `.` segments name the folder itself; `..` is kept as a name, which no item
 * can have, so it never climbs out (docs/emulator/path-addressing.md).
 */
export function pathSegments(raw: string): string[] {
  return decodeSeg(raw).split('/').filter((s) => s.length > 0 && s !== '.')
}

/** Resolve `/root…` or `/items/{id}…` below a drive. Returns undefined when `rest` is not an item address. */
export function resolveItemAddress(env: Env, drive: Drive, rest: string): Target | undefined {
  const m = /^\/(root|items\/([^/:]+))(.*)$/.exec(rest)
  if (!m) return undefined
  const store = env.store
  let base: Item | undefined
  if (m[1] === 'root' || decodeSeg(m[2]!) === 'root') base = store.root(drive)
  else {
    base = store.get(decodeSeg(m[2]!))
    if (!base || base.driveId !== drive.id) throw notFound()
  }
  let tail = m[3]!
  let segs: string[] = []
  if (tail.startsWith(':')) {
    const j = tail.indexOf(':', 1)
    const rel = j < 0 ? tail.slice(1) : tail.slice(1, j)
    tail = j < 0 ? '' : tail.slice(j + 1)
    segs = pathSegments(rel)
  }
  if (tail === '/') tail = ''
  // legacy /children/{name} addressing
  const legacy = /^\/children\/([^/]+)(.*)$/.exec(tail)
  if (legacy) {
    segs.push(decodeSeg(legacy[1]!))
    tail = legacy[2]!
  }
  let cur: Item = base
  for (let i = 0; i < segs.length; i++) {
    const next = cur.kind === 'folder' ? store.childByName(cur, segs[i]!) : undefined
    if (!next) {
      if (cur.kind !== 'folder') throw notFound()
      return { drive, parent: cur, name: segs[segs.length - 1]!, missingDirs: segs.slice(i, -1), sub: tail }
    }
    cur = next
  }
  return { drive, item: cur, sub: tail }
}

/** Create the folders a path upload names but that do not exist yet. */
export function materializeParent(env: Env, ctx: Ctx, t: Target): Item | undefined {
  if (!t.parent || !t.missingDirs?.length) return t.parent
  const store = env.store
  store.require(ctx.user, t.parent, 'write')
  let cur = t.parent
  for (const d of t.missingDirs) cur = store.createFolder(cur, d, 'fail', identityOf(ctx.user)).item
  return cur
}

/** Query string with literal `$` option names, as the service writes nextLinks. */
export function linkWith(base: string, params: [string, string][]): string {
  const q = params.map(([k, v]) => `${k.replace(/[^$@.\w-]/g, encodeURIComponent)}=${encodeURIComponent(v).replace(/%24/g, '$').replace(/%2C/gi, ',')}`).join('&')
  return q ? `${base}?${q}` : base
}

export function conflictOf(ctx: Ctx, body: Record<string, any> | undefined, dflt: ConflictBehavior): ConflictBehavior {
  const q = ctx.url.searchParams.get('@microsoft.graph.conflictBehavior') ?? ctx.url.searchParams.get('@name.conflictBehavior')
  const v = q ?? body?.['@microsoft.graph.conflictBehavior'] ?? body?.['@name.conflictBehavior'] ?? dflt
  if (v !== 'fail' && v !== 'replace' && v !== 'rename') throw invalidRequest(`Invalid conflictBehavior "${String(v)}".`)
  return v
}

function tagMatches(value: string, item: Item): boolean {
  const v = value.trim()
  if (v === '*') return true
  const strip = (s: string) => s.replace(/^W\//, '').replace(/^"|"$/g, '')
  const e = etag(item)
  const c = ctag(item)
  return v === e || v === c || strip(v) === strip(e) || strip(v) === strip(c)
}

/** If-Match / If-None-Match (docs/graph-service.md §1.2, §4, checklist 6). Returns a 304 for reads, throws 412 for writes. */
export function preconditions(ctx: Ctx, item: Item | undefined, write: boolean): Resp | undefined {
  const im = header(ctx, 'if-match')
  if (im !== undefined && (!item || !tagMatches(im, item))) {
    throw new EmuError(412, 'resourceModified', 'ETag does not match current item\'s value', 'entityTagDoesNotMatch')
  }
  const inm = header(ctx, 'if-none-match')
  if (inm !== undefined && item && tagMatches(inm, item)) {
    if (write) throw new EmuError(412, 'resourceModified', 'The resource has not been modified since the specified tag.', 'entityTagMatches')
    return { status: 304, headers: { ETag: etag(item) } }
  }
  return undefined
}

function topOf(ctx: Ctx): number {
  const t = ctx.url.searchParams.get('$top') ?? ctx.url.searchParams.get('top')
  if (t === null) return DEFAULT_PAGE
  const n = Number(t)
  if (!Number.isInteger(n) || n < 1) throw new EmuError(400, 'invalidRequest', `Invalid $top value "${t}".`)
  return Math.min(n, MAX_PAGE)
}

export function showShortcuts(env: Env, ctx: Ctx, drive: Drive): boolean {
  if (drive.kind !== 'personal') return true
  return prefers(ctx).some((p) => p.replace(/\s/g, '') === 'include-feature=addtoonedrive')
}

/**
 * `$filter` on /children: Personal does not support it; Business/SPO only on name
 * (docs/graph-service.md §1.2). Supported: `name eq '…'`, `startswith(name,'…')`.
 */
function filterChildren(ctx: Ctx, drive: Drive, list: Item[]): Item[] {
  const f = ctx.url.searchParams.get('$filter') ?? ctx.url.searchParams.get('filter')
  if (f === null) return list
  if (drive.kind === 'personal') throw invalidRequest('$filter is not supported on children of this drive.')
  const lit = (s: string) => s.replace(/''/g, "'").toLowerCase()
  const eq = /^\s*name\s+eq\s+'((?:[^']|'')*)'\s*$/i.exec(f)
  if (eq) return list.filter((i) => i.name.toLowerCase() === lit(eq[1]!))
  const sw = /^\s*startswith\(\s*name\s*,\s*'((?:[^']|'')*)'\s*\)\s*$/i.exec(f)
  if (sw) return list.filter((i) => i.name.toLowerCase().startsWith(lit(sw[1]!)))
  throw invalidRequest('Only filters on name are supported on children.')
}

function orderChildren(env: Env, ctx: Ctx, drive: Drive, list: Item[]): Item[] {
  const ob = ctx.url.searchParams.get('$orderby') ?? ctx.url.searchParams.get('orderby')
  if (!ob) return list
  const [field, dir] = ob.trim().split(/\s+/)
  const allowed = drive.kind === 'personal' ? ['name', 'size', 'lastModifiedDateTime'] : ['name']
  if (!allowed.includes(field!)) throw invalidRequest(`Ordering by "${field}" is not supported.`)
  const key = (i: Item): string | number => (field === 'size' ? i.size : field === 'lastModifiedDateTime' ? i.lastModifiedDateTime : i.name.toLowerCase())
  const sorted = [...list].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
  return dir?.toLowerCase() === 'desc' ? sorted.reverse() : sorted
}

/** One page of a folder's children; the nextLink is absolute and its skiptoken opaque. */
export function childrenPage(env: Env, ctx: Ctx, folder: Item, top: number, listUrl: URL): { value: unknown[]; nextLink?: string } {
  const store = env.store
  const drive = store.driveOfItem(folder)
  let list = store.children(folder)
  if (!showShortcuts(env, ctx, drive)) list = list.filter((i) => i.kind !== 'shortcut')
  list = orderChildren(env, ctx, drive, filterChildren(ctx, drive, list))
  const st = ctx.url.searchParams.get('$skiptoken') ?? ctx.url.searchParams.get('skiptoken')
  let offset = 0
  if (st) {
    const t = env.readToken<{ o: number; f: string }>(st)
    if (!t || t.f !== folder.id) throw invalidRequest('Invalid skip token.')
    offset = t.o
  }
  const select = parseSelect(ctx.url)
  const value = list.slice(offset, offset + top).map((i) => driveItem(env, i, { select }))
  let nextLink: string | undefined
  if (offset + top < list.length) {
    const params = [...listUrl.searchParams].filter(([k]) => k !== '$skiptoken' && k !== 'skiptoken')
    params.push([`${optionPrefix(listUrl)}skiptoken`, env.makeToken({ o: offset + top, f: folder.id })])
    const base = listUrl.pathname.startsWith('/v1.0/shares/')
      ? `${listUrl.origin}${listUrl.pathname}`
      : `${graphBaseOf(ctx)}/drives/${encodeURIComponent(folder.driveId)}/items/${encodeURIComponent(folder.id)}/children`
    nextLink = linkWith(base, params)
  }
  return { value, nextLink }
}

function meJson(ctx: Ctx): Record<string, unknown> {
  const u = ctx.user
  const [given, ...rest] = u.displayName.split(' ')
  return {
    '@odata.context': `${graphBaseOf(ctx)}/$metadata#users/$entity`,
    id: u.oid, displayName: u.displayName, userPrincipalName: u.upn, mail: u.email,
    givenName: given, surname: rest.join(' '), businessPhones: [], jobTitle: null, officeLocation: null, preferredLanguage: 'en-US',
  }
}

function driveVisible(env: Env, ctx: Ctx, drive: Drive): 'full' | 'shared' | undefined {
  if (drive.owner?.oid === ctx.user.oid) return 'full'
  if (drive.kind === 'documentLibrary' && drive.tenantId === ctx.user.tenantId) return 'full'
  for (const [itemId, m] of env.store.grants) {
    if (m.has(ctx.user.oid) && env.store.get(itemId)?.driveId === drive.id) return 'shared'
  }
  return undefined
}

function requireBusiness(ctx: Ctx): void {
  if (ctx.user.kind === 'personal') {
    throw new EmuError(400, 'invalidRequest', 'This API is not supported for MSA accounts.')
  }
}

/** Route one Graph request (path below /v1.0). */
export async function routeGraph(env: Env, ctx: Ctx): Promise<Resp> {
  const store = env.store
  let p = ctx.path
  const m = ctx.method
  const me = () => store.ensureUserDrive(ctx.user)
  let r: RegExpExecArray | null
  optionPrefix(ctx.url)

  if (p === '/me' || p === '/me/') {
    ctx.route = '/me'
    if (m !== 'GET') throw methodNotAllowed()
    return json(200, meJson(ctx))
  }
  if (p === '/search/query') {
    ctx.route = '/search/query'
    if (m !== 'POST') throw methodNotAllowed()
    return searchQuery(env, ctx)
  }
  const own = /^\/users\/([^/]+)\/drives$/.exec(p)
  if (p === '/me/drives' || own) {
    ctx.route = own ? '/users/{id}/drives' : '/me/drives'
    if (own) {
      const who = decodeSeg(own[1]!).toLowerCase()
      if (who !== ctx.user.oid && who !== ctx.user.upn.toLowerCase()) throw accessDenied()
    }
    return json(200, { '@odata.context': `${graphBaseOf(ctx)}/$metadata#drives`, value: [driveJson(env, me(), true)] })
  }
  if (p === '/me/followedSites') {
    ctx.route = '/me/followedSites'
    requireBusiness(ctx)
    const ids = store.followed.get(ctx.user.oid) ?? []
    return json(200, { '@odata.context': `${graphBaseOf(ctx)}/$metadata#sites`, value: ids.map((id) => siteJson(store.sites.get(id)!)) })
  }
  if (p === '/me/drive/sharedWithMe' || p === '/me/drive/sharedWithMe()') {
    ctx.route = '/me/drive/sharedWithMe'
    return sharedWithMe(env, ctx)
  }
  if ((r = /^\/shares\/([^/]+)(\/.*)?$/.exec(p))) {
    ctx.route = '/shares/{id}' + (r[2] ?? '')
    return sharesRoute(env, ctx, decodeSeg(r[1]!), r[2] ?? '')
  }
  if (p === '/sites' || p === '/sites/') {
    // GET /sites?search={q} (docs/graph-service.md §7.3, Business only): sites of the caller's tenant by name
    ctx.route = '/sites'
    requireBusiness(ctx)
    if (m !== 'GET') throw methodNotAllowed()
    const q = ctx.url.searchParams.get('search') ?? ctx.url.searchParams.get('$search')
    if (q === null) throw invalidRequest('Listing all sites needs a search query.')
    const term = q.replace(/^"|"$/g, '').toLowerCase()
    const hits = [...store.sites.values()].filter((x) => x.tenantId === ctx.user.tenantId && (term === '*' || term === '' || x.name.toLowerCase().includes(term) || x.displayName.toLowerCase().includes(term)))
    return json(200, { '@odata.context': `${graphBaseOf(ctx)}/$metadata#sites`, value: hits.map(siteJson) })
  }
  if ((r = /^\/sites\/([^/:]+):(\/[^:]*):?(\/.*)?$/.exec(p))) {
    // GET /sites/{hostname}:/sites/{path}[:/sub] (docs/graph-service.md §7.3): a site by its server-relative URL
    requireBusiness(ctx)
    const host = decodeSeg(r[1]!).toLowerCase()
    const rel = decodeSeg(r[2]!).replace(/\/$/, '').toLowerCase()
    const site = [...store.sites.values()].find((x) => { const u = new URL(x.webUrl); return u.hostname === host && decodeURIComponent(u.pathname).toLowerCase() === rel })
    ctx.route = '/sites/{hostname}:/{path}'
    if (!site) throw notFound('Requested site could not be found')
    p = `/sites/${site.id}${r[3] ?? ''}`
  }
  if ((r = /^\/sites\/([^/]+)(\/.*)?$/.exec(p))) {
    requireBusiness(ctx)
    const site = store.sites.get(decodeSeg(r[1]!))
    const rest = r[2] ?? ''
    ctx.route = '/sites/{id}' + (/^\/drives\/?$/.test(rest) ? '/drives' : rest.startsWith('/drive') ? '/drive' : '')
    if (!site) throw notFound('Requested site could not be found')
    if (site.tenantId !== ctx.user.tenantId) throw accessDenied()
    if (rest === '' || rest === '/') return json(200, siteJson(site))
    if (/^\/drives\/?$/.test(rest)) {
      return json(200, { '@odata.context': `${graphBaseOf(ctx)}/$metadata#drives`, value: site.driveIds.map((d) => driveJson(env, store.getDrive(d)!, true)) })
    }
    const dm = /^\/drive(\/.*)?$/.exec(rest)
    if (dm) return driveRoute(env, ctx, store.getDrive(site.driveIds[0]!)!, dm[1] ?? '', `/sites/{id}/drive`)
    throw notFound()
  }
  if ((r = /^\/me\/drive(\/.*)?$/.exec(p))) return driveRoute(env, ctx, me(), r[1] ?? '', '/me/drive')
  // `/drive` is the signed-in user's drive too (docs/graph-service.md §1.1: `/drive/items/root/children`)
  if ((r = /^\/drive(\/.*)?$/.exec(p))) return driveRoute(env, ctx, me(), r[1] ?? '', '/drive')
  if ((r = /^\/users\/([^/]+)\/drive(\/.*)?$/.exec(p))) {
    const who = decodeSeg(r[1]!).toLowerCase()
    if (who !== ctx.user.oid && who !== ctx.user.upn.toLowerCase()) throw accessDenied()
    return driveRoute(env, ctx, me(), r[2] ?? '', '/users/{id}/drive')
  }
  if ((r = /^\/drives\/([^/]+)(\/.*)?$/.exec(p))) {
    const drive = store.getDrive(decodeSeg(r[1]!))
    if (!drive) {
      ctx.route = '/drives/{id}'
      throw notFound('The drive could not be found.')
    }
    return driveRoute(env, ctx, drive, r[2] ?? '', '/drives/{id}')
  }
  ctx.route = '(unknown)'
  throw new EmuError(400, 'BadRequest', `Resource not found for the segment '${p.split('/')[1] ?? ''}'.`)
}

function methodNotAllowed(): EmuError {
  return new EmuError(405, 'methodNotAllowed', 'The HTTP method is not allowed for this resource.')
}

/** Route template of an item address for stats, e.g. `/items/{id}:/{path}:/content`. */
function itemTemplate(rest: string): string {
  return rest
    .replace(/^\/items\/[^/:]+/, '/items/{id}')
    .replace(/:\/[^:]*:?/, (s) => (s.endsWith(':') && s.length > 2 ? ':/{path}:' : ':/{path}'))
    .replace(/\/children\/[^/]+/, '/children/{name}')
}

/** Permissions that reach items beyond the caller's own drive (docs/graph-service.md §7.1: shared items need a *.All scope). */
const ALL_FILES_SCOPES = ['files.read.all', 'files.readwrite.all', 'sites.read.all', 'sites.readwrite.all']

function requireAllScope(ctx: Ctx, drive: Drive): void {
  if (drive.owner?.oid === ctx.user.oid || ctx.scopes === undefined) return
  if (ctx.scopes.some((s) => ALL_FILES_SCOPES.includes(s.toLowerCase()))) return
  throw accessDenied('Access denied: items outside your own drive need Files.Read.All, Files.ReadWrite.All or Sites.Read(Write).All.')
}

async function driveRoute(env: Env, ctx: Ctx, drive: Drive, rest: string, prefix: string): Promise<Resp> {
  const store = env.store
  const m = ctx.method
  requireAllScope(ctx, drive)
  if (rest === '' || rest === '/') {
    ctx.route = prefix
    if (m !== 'GET') throw methodNotAllowed()
    const vis = driveVisible(env, ctx, drive)
    if (!vis) throw accessDenied()
    return json(200, { '@odata.context': `${graphBaseOf(ctx)}/$metadata#drives/$entity`, ...driveJson(env, drive, vis === 'full') })
  }
  if (/^\/special\/[^/]+/.test(rest)) {
    // approot, documents, photos…: map onto folders of the drive root, created on first use.
    const sm = /^\/special\/([^/:]+)(.*)$/.exec(rest)!
    const names: Record<string, string> = { approot: 'Apps/odfs', documents: 'Documents', photos: 'Pictures', cameraroll: 'Pictures/Camera Roll', music: 'Music' }
    const folderPath = names[sm[1]!.toLowerCase()]
    ctx.route = `${prefix}/special/{name}`
    if (!folderPath || drive.owner?.oid !== ctx.user.oid) throw notFound()
    const f = store.mkdirp(drive.id, folderPath)
    return driveRoute(env, ctx, drive, `/items/${encodeURIComponent(f.id)}${sm[2]}`, prefix)
  }
  if ((/^\/(root|items\/[^/:]+)\/delta(\(\))?$/.test(rest)) || /^\/(root|items\/[^/:]+)\/delta\(token='[^']*'\)$/.test(rest)) {
    ctx.route = `${prefix}${itemTemplate(rest.replace(/\/delta.*$/, ''))}/delta`
    const t = resolveItemAddress(env, drive, rest.replace(/\/delta.*$/, ''))!
    const tm = /delta\(token='([^']*)'\)/.exec(rest)
    return deltaRoute(env, ctx, drive, t.item!, tm ? decodeSeg(tm[1]!) : undefined)
  }
  const target = resolveItemAddress(env, drive, rest)
  if (!target) {
    ctx.route = `${prefix}${rest.split('/').slice(0, 2).join('/')}`
    throw new EmuError(400, 'BadRequest', `Resource not found for the segment '${rest.split('/')[1] ?? ''}'.`)
  }
  ctx.route = `${prefix}${itemTemplate(rest)}`
  return itemRoute(env, ctx, target)
}

async function itemRoute(env: Env, ctx: Ctx, t: Target): Promise<Resp> {
  const store = env.store
  const m = ctx.method
  const { item, sub } = t
  const by = identityOf(ctx.user)
  // Visibility first: an item the caller cannot see does not exist for them.
  if (item) store.require(ctx.user, item, 'read')
  else if (t.parent) store.require(ctx.user, t.parent, 'read')
  const creates = (sub === '/content' && m === 'PUT') || (sub === '/createUploadSession' && m === 'POST')
  if (t.missingDirs?.length && !creates) throw notFound()
  if (sub === '/versions' || sub.startsWith('/versions/')) {
    if (!item) throw notFound()
    return versionsRoute(env, ctx, item, sub)
  }

  switch (sub) {
    case '':
      if (m === 'GET') {
        if (!item) throw notFound()
        const pre = preconditions(ctx, item, false)
        if (pre) return pre
        const body = driveItem(env, item, { select: parseSelect(ctx.url) })
        const expand = ctx.url.searchParams.get('$expand') ?? ctx.url.searchParams.get('expand')
        if (expand && /^children\b/.test(expand) && item.kind === 'folder') {
          const u = new URL(`${graphBaseOf(ctx)}/drives/${encodeURIComponent(item.driveId)}/items/${encodeURIComponent(item.id)}/children`)
          const page = childrenPage(env, { ...ctx, url: new URL(u) }, item, DEFAULT_PAGE, u)
          body.children = page.value
          // the nextLink only appears when the options are $-prefixed (docs/graph-service.md §1.2 $expand=children)
          if (page.nextLink && optionPrefix(ctx.url) === '$') body['children@odata.nextLink'] = page.nextLink
        }
        return json(200, { '@odata.context': `${graphBaseOf(ctx)}/$metadata#drives('${item.driveId}')/items/$entity`, ...body }, { ETag: etag(item) })
      }
      if (m === 'PATCH') {
        if (!item) throw notFound()
        preconditions(ctx, item, true)
        store.require(ctx.user, item, 'write')
        return patchItem(env, ctx, item)
      }
      if (m === 'DELETE') {
        if (!item) throw notFound()
        preconditions(ctx, item, true)
        store.require(ctx.user, item, 'write')
        store.remove(item, by)
        return empty(204)
      }
      if (m === 'PUT') return commitFromSourceUrl(env, ctx, t)
      throw methodNotAllowed()
    case '/children': {
      if (!item) throw notFound()
      if (m === 'GET') {
        if (item.kind !== 'folder') {
          if (item.kind === 'shortcut') return json(200, { value: [] })
          throw invalidRequest('The item is not a folder.')
        }
        // If-None-Match on /children answers 304 when the folder's tag matches (docs/graph-service.md §1.2)
        const pre = preconditions(ctx, item, false)
        if (pre) return pre
        const listUrl = new URL(ctx.url.toString())
        const page = childrenPage(env, ctx, item, topOf(ctx), listUrl)
        const out: Record<string, unknown> = { '@odata.context': `${graphBaseOf(ctx)}/$metadata#drives('${item.driveId}')/items('${item.id}')/children`, value: page.value }
        if (page.nextLink) out['@odata.nextLink'] = page.nextLink
        return json(200, out)
      }
      if (m === 'POST') {
        store.require(ctx.user, item, 'write')
        return createChild(env, ctx, item)
      }
      throw methodNotAllowed()
    }
    case '/content':
      if (m === 'GET') {
        if (!item) throw notFound()
        return getContent(env, ctx, item)
      }
      if (m === 'PUT') return putContent(env, ctx, t)
      throw methodNotAllowed()
    case '/createUploadSession':
      if (m !== 'POST') throw methodNotAllowed()
      return createUploadSession(env, ctx, t)
    case '/copy':
      if (m !== 'POST') throw methodNotAllowed()
      if (!item) throw notFound()
      return copyItem(env, ctx, item)
    case '/permanentDelete':
      if (m !== 'POST') throw methodNotAllowed()
      if (!item) throw notFound()
      if (t.drive.kind === 'personal') throw new EmuError(400, 'invalidRequest', 'permanentDelete is not supported on personal drives.')
      preconditions(ctx, item, true)
      store.require(ctx.user, item, 'write')
      store.remove(item, by, { permanent: true })
      return empty(204)
    case '/createLink':
      if (m !== 'POST') throw methodNotAllowed()
      if (!item) throw notFound()
      return createLink(env, ctx, item)
    case '/invite':
      if (m !== 'POST') throw methodNotAllowed()
      if (!item) throw notFound()
      return invite(env, ctx, item)
    case '/permissions':
      if (m !== 'GET') throw methodNotAllowed()
      if (!item) throw notFound()
      return listPermissions(env, ctx, item)
    default:
      throw new EmuError(400, 'BadRequest', `Resource not found for the segment '${sub.split('/')[1] ?? sub}'.`)
  }
}

async function createChild(env: Env, ctx: Ctx, parent: Item): Promise<Resp> {
  const store = env.store
  const body = await readJson(ctx)
  const name = body.name
  if (typeof name !== 'string') throw invalidRequest('The name is missing.')
  const conflict = conflictOf(ctx, body, 'fail')
  const fs = body.fileSystemInfo
  const by = identityOf(ctx.user)
  if (body.folder !== undefined) {
    const r = store.createFolder(parent, name, conflict, by, fs)
    return json(r.created ? 201 : 200, driveItem(env, r.item))
  }
  // Files are made by PUT …/content (an empty body for a zero-byte file), never by POST children (docs/graph-service.md §4.1).
  if (body.file !== undefined) throw invalidRequest('Files cannot be created with POST …/children; use PUT …/content.')
  throw invalidRequest('A folder facet is required.')
}

function resolveParentRef(env: Env, ctx: Ctx, item: Item, ref: Record<string, any>): Item {
  const store = env.store
  if (ref.driveId && String(ref.driveId).toLowerCase() !== item.driveId.toLowerCase()) {
    throw invalidRequest('Moving items between drives is not supported.', 'invalidReference')
  }
  if (typeof ref.id === 'string') {
    if (ref.id === 'root') throw invalidRequest('Invalid parent reference: use the id of the root item.', 'invalidReference')
    const p = store.get(ref.id)
    if (!p || p.driveId !== item.driveId) throw notFound('The destination folder could not be found.')
    return p
  }
  if (typeof ref.path === 'string') {
    const after = ref.path.slice(ref.path.indexOf('root:') + 5)
    const p = store.resolvePath(store.root(store.driveOfItem(item)), pathSegments(after))
    if (!p) throw notFound('The destination folder could not be found.')
    return p
  }
  throw invalidRequest('The parentReference needs an id.')
}

async function patchItem(env: Env, ctx: Ctx, item: Item): Promise<Resp> {
  const store = env.store
  const body = await readJson(ctx)
  const patch: { name?: string; parent?: Item; fs?: { createdDateTime?: string; lastModifiedDateTime?: string } } = {}
  if (body.name !== undefined) {
    if (typeof body.name !== 'string') throw invalidRequest('The name must be a string.')
    patch.name = body.name
  }
  if (body.parentReference) {
    patch.parent = resolveParentRef(env, ctx, item, body.parentReference)
    store.require(ctx.user, patch.parent, 'write')
  }
  if (body.fileSystemInfo) {
    const f = body.fileSystemInfo
    for (const k of ['createdDateTime', 'lastModifiedDateTime']) {
      if (f[k] !== undefined && (typeof f[k] !== 'string' || Number.isNaN(Date.parse(f[k])))) throw invalidRequest(`Invalid ${k}.`)
    }
    patch.fs = {
      createdDateTime: f.createdDateTime ? new Date(f.createdDateTime).toISOString() : undefined,
      lastModifiedDateTime: f.lastModifiedDateTime ? new Date(f.lastModifiedDateTime).toISOString() : undefined,
    }
  }
  const conflict = conflictOf(ctx, body, 'fail')
  store.update(item, patch, conflict, identityOf(ctx.user))
  return json(200, driveItem(env, item))
}

function copyItem(env: Env, ctx: Ctx, item: Item): Promise<Resp> {
  return (async () => {
    const store = env.store
    const body = await readJson(ctx)
    const ref = body.parentReference ?? {}
    let parent: Item | undefined
    if (ref.id !== undefined) {
      const drive = ref.driveId ? store.getDrive(String(ref.driveId)) : store.driveOfItem(item)
      if (!drive) throw notFound('The destination drive could not be found.')
      parent = ref.id === 'root' ? store.root(drive) : store.get(String(ref.id))
      if (!parent || parent.driveId !== drive.id) throw notFound('The destination folder could not be found.')
    } else parent = store.parentOf(item)
    if (!parent) throw invalidRequest('The root cannot be copied.')
    store.require(ctx.user, parent, 'write')
    const name = typeof body.name === 'string' ? body.name : item.name
    // Personal ignores conflictBehavior on copy (docs/graph-service.md §5): always fail on a clash.
    const conflict = store.driveOfItem(item).kind === 'personal' ? 'fail' : conflictOf(ctx, body, 'fail')
    store.validateName(parent, name, item.kind === 'folder')
    const clash = store.childByName(parent, name)
    if (clash && conflict === 'fail') throw new EmuError(409, 'nameAlreadyExists', `The specified item name "${name}" already exists in this folder.`)
    const src = store.driveOfItem(item)
    if ((src.kind === 'personal') !== (store.driveOfItem(parent).kind === 'personal')) throw invalidRequest('Copies between personal and work accounts are not supported.')
    const job = { id: randomUUID(), status: 'inProgress' as const, percentageComplete: 0 }
    env.jobs.set(job.id, job)
    const by = identityOf(ctx.user)
    const target = parent
    setImmediate(() => {
      const j = env.jobs.get(job.id)!
      try {
        const copy = store.copy(item, target, name, conflict, by)
        Object.assign(j, { status: 'completed', percentageComplete: 100, resourceId: copy.id })
      } catch (e) {
        Object.assign(j, { status: 'failed', percentageComplete: 0, error: { code: e instanceof EmuError ? e.code : 'generalException', message: (e as Error).message } })
      }
    })
    return empty(202, { Location: `${env.contentBase}/_monitor/${job.id}` })
  })()
}

/** GET {monitor}: no auth (docs/graph-service.md §5). */
export function monitorJson(env: Env, id: string): Resp {
  const j = env.jobs.get(id)
  if (!j) return { status: 404, json: { error: { code: 'itemNotFound', message: 'The monitor does not exist.' } } }
  const body: Record<string, unknown> = { operation: 'ItemCopy', percentageComplete: j.percentageComplete, status: j.status }
  if (j.resourceId) body.resourceId = j.resourceId
  if (j.error) body.error = j.error
  return json(j.status === 'completed' || j.status === 'failed' ? 200 : 202, body)
}
