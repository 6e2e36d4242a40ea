/** driveItem, drive and site JSON as the service shapes them (docs/graph-service.md §1.3, §2). */
import type { Drive, Item, Site, Store } from '../store/index.js'
import { identityOf } from '../store/index.js'
import type { Env } from './env.js'

export interface ItemView {
  /**
   * Delta shape: Business omits cTag; Personal omits parentReference.path, which
   * OneDrive for Business and SharePoint return (docs/emulator/delta-parent-path.md).
   */
  delta?: boolean
  select?: Set<string>
}

const encPath = (p: string) => p.split('/').map(encodeURIComponent).join('/')

export function etag(item: Item): string {
  return `"{${item.etagGuid}},${item.etagVer}"`
}

export function ctag(item: Item): string {
  return `"c:{${item.etagGuid}},${item.ctagVer}"`
}

export function hasCtag(store: Store, item: Item, delta = false): boolean {
  const drive = store.driveOfItem(item)
  if (drive.kind === 'personal') return true
  if (delta) return false
  return item.kind !== 'folder'
}

export function parentReference(store: Store, item: Item, withPath: boolean): Record<string, unknown> {
  const drive = store.driveOfItem(item)
  const ref: Record<string, unknown> = { driveType: drive.kind, driveId: drive.id }
  const parent = store.parentOf(item)
  if (parent) {
    ref.id = parent.id
    if (parent.parentId) ref.name = parent.name
    if (withPath) ref.path = `/drives/${drive.id}/root:${encPath(store.pathOf(parent))}`
  }
  if (drive.siteId) ref.siteId = drive.siteId
  return ref
}

export function itemWebUrl(store: Store, item: Item): string {
  const drive = store.driveOfItem(item)
  if (drive.kind === 'personal') return `https://onedrive.live.com/?cid=${drive.id}&id=${encodeURIComponent(item.id)}`
  return drive.webUrl + encPath(store.pathOf(item))
}

function facets(env: Env, item: Item, out: Record<string, unknown>): void {
  const store = env.store
  if (item.kind === 'folder') {
    out.folder = { childCount: item.children!.size, view: { viewType: 'thumbnails', sortBy: 'name', sortOrder: 'ascending' } }
  } else if (item.kind === 'file') {
    let q = item.blob?.quickXorHash ?? 'AAAAAAAAAAAAAAAAAAAAAAAAAAA='
    if (env.opts.corruptHashes) q = Buffer.from(Buffer.from(q, 'base64').map((b) => b ^ 0x5a)).toString('base64')
    const ready = item.hashReadyAt === undefined || item.hashReadyAt <= store.now()
    out.file = ready ? { mimeType: item.mimeType ?? 'application/octet-stream', hashes: { quickXorHash: q } } : { mimeType: item.mimeType ?? 'application/octet-stream' }
  }
  if (!item.parentId) out.root = {}
  if (item.kind === 'shortcut' && item.remote) {
    const target = store.get(item.remote.itemId)
    if (target) out.remoteItem = remoteItem(env, target)
  }
}

/** The remoteItem facet describing `target` (an item of another drive). */
export function remoteItem(env: Env, target: Item): Record<string, unknown> {
  const store = env.store
  const drive = store.driveOfItem(target)
  const r: Record<string, unknown> = {
    id: target.id, name: target.name, size: target.size, webUrl: itemWebUrl(store, target),
    createdDateTime: target.createdDateTime, lastModifiedDateTime: target.lastModifiedDateTime,
    createdBy: target.createdBy, lastModifiedBy: target.lastModifiedBy,
    fileSystemInfo: { createdDateTime: target.fsCreated, lastModifiedDateTime: target.fsModified },
    // driveIdQuirks: Personal remote drive ids upper-cased and without a leading zero (docs/graph-service.md §7.4)
    parentReference: { driveId: env.opts.driveIdQuirks && drive.kind === 'personal' ? drive.id.replace(/^0/, '').toUpperCase() : drive.id, driveType: drive.kind, ...(target.parentId ? { id: target.parentId } : {}) },
    shared: { owner: drive.owner ? identityOf(drive.owner) : undefined },
  }
  facets(env, target, r)
  delete r.root
  return r
}

export function driveItem(env: Env, item: Item, view: ItemView = {}): Record<string, unknown> {
  const store = env.store
  const out: Record<string, unknown> = {
    createdDateTime: item.createdDateTime,
    eTag: etag(item),
    id: item.id,
    lastModifiedDateTime: item.lastModifiedDateTime,
    name: item.parentId ? item.name : 'root',
    webUrl: itemWebUrl(store, item),
  }
  if (hasCtag(store, item, view.delta)) out.cTag = ctag(item)
  const target = item.kind === 'shortcut' && item.remote ? store.get(item.remote.itemId) : undefined
  out.size = target ? target.size : item.size
  out.createdBy = item.createdBy
  out.lastModifiedBy = item.lastModifiedBy
  out.parentReference = parentReference(store, item, !view.delta || store.driveOfItem(item).kind !== 'personal')
  out.fileSystemInfo = { createdDateTime: item.fsCreated, lastModifiedDateTime: item.fsModified }
  facets(env, item, out)
  if (item.kind === 'file' && item.blob) out['@microsoft.graph.downloadUrl'] = env.downloadUrl(item.id, item.blob.path)
  if (store.grants.get(item.id)?.size) out.shared = { scope: 'users' }
  return applySelect(out, view.select)
}

export function applySelect(out: Record<string, unknown>, select?: Set<string>): Record<string, unknown> {
  if (!select || select.size === 0) return out
  const r: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(out)) if (k === 'id' || select.has(k) || k.startsWith('@odata')) r[k] = v
  return r
}

/** Parse `$select` / `select` (both spellings accepted, not mixed). */
export function parseSelect(url: URL): Set<string> | undefined {
  const s = url.searchParams.get('$select') ?? url.searchParams.get('select')
  if (!s) return undefined
  return new Set(s.split(',').map((x) => x.trim()).filter(Boolean))
}

export function driveJson(env: Env, drive: Drive, withQuota: boolean): Record<string, unknown> {
  const store = env.store
  const out: Record<string, unknown> = {
    id: drive.id, driveType: drive.kind, name: drive.name, createdDateTime: drive.createdDateTime,
    lastModifiedDateTime: store.root(drive).lastModifiedDateTime, webUrl: drive.webUrl,
    owner: drive.owner ? identityOf(drive.owner) : { group: { id: drive.siteId ?? 'site', displayName: 'Engineering Owners' } },
  }
  if (drive.kind !== 'personal') out.description = ''
  if (withQuota) out.quota = store.quota(drive)
  return out
}

export function siteJson(site: Site): Record<string, unknown> {
  return {
    id: site.id, name: site.name, displayName: site.displayName, webUrl: site.webUrl,
    createdDateTime: site.createdDateTime, siteCollection: { hostname: site.id.split(',')[0] },
  }
}
