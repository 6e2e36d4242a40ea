/** The Graph shapes odfs uses, with only the fields it reads (docs/graph-service.md §1.3, §2). */

export type ConflictBehavior = 'fail' | 'replace' | 'rename'

export interface ItemReference {
  driveId: string
  driveType?: string
  id?: string
  path?: string
  name?: string
  siteId?: string
}

export interface FileSystemInfo {
  createdDateTime?: string
  lastModifiedDateTime?: string
}

export interface RemoteItem {
  id: string
  name?: string
  size?: number
  file?: { mimeType?: string; hashes?: { quickXorHash?: string } }
  folder?: { childCount?: number }
  package?: { type?: string }
  parentReference?: ItemReference
  fileSystemInfo?: FileSystemInfo
  webUrl?: string
}

export interface DriveItem {
  id: string
  name?: string
  size?: number
  eTag?: string
  cTag?: string
  parentReference?: ItemReference
  fileSystemInfo?: FileSystemInfo
  lastModifiedDateTime?: string
  createdDateTime?: string
  file?: { mimeType?: string; hashes?: { quickXorHash?: string; sha1Hash?: string; sha256Hash?: string } }
  folder?: { childCount?: number }
  package?: { type?: string }
  root?: Record<string, unknown>
  remoteItem?: RemoteItem
  deleted?: { state?: string }
  webUrl?: string
  '@microsoft.graph.downloadUrl'?: string
}

export interface Quota {
  total?: number
  used?: number
  remaining?: number
  deleted?: number
  state?: string
}

export interface Drive {
  id: string
  driveType: string
  name?: string
  owner?: { user?: { id?: string; displayName?: string; email?: string }; group?: { id?: string; displayName?: string } }
  quota?: Quota
  webUrl?: string
}

export interface Site {
  id: string
  name?: string
  displayName?: string
  webUrl?: string
}

/** An item addressed by drive and id: the only stable address (ids survive renames). */
export interface ItemRef {
  driveId: string
  itemId: string
}

/** Fields requested for every item (`$select`): only what odfs reads. */
export const ITEM_SELECT = [
  'id', 'name', 'size', 'eTag', 'cTag', 'parentReference', 'fileSystemInfo', 'lastModifiedDateTime',
  'file', 'folder', 'package', 'root', 'remoteItem', 'deleted',
].join(',')

/** The largest `$top` the service accepts for /children (docs/graph-service.md §1.2). */
export const MAX_PAGE_SIZE = 1000

export function isFolder(item: DriveItem): boolean {
  return !!(item.folder || item.root || item.remoteItem?.folder)
}

/** The item an entry really points at: a shortcut/shared entry's remote item, else itself. */
export function targetOf(item: DriveItem): ItemRef {
  if (item.remoteItem?.parentReference?.driveId) {
    return { driveId: canonicalDriveId(item.remoteItem.parentReference.driveId), itemId: item.remoteItem.id }
  }
  return { driveId: canonicalDriveId(item.parentReference?.driveId ?? ''), itemId: item.id }
}

/**
 * Personal drive ids come back in mixed case and sometimes with a leading zero
 * dropped (docs/graph-service.md §7.4): lower-case them and left-pad 15-char hex ids to 16.
 */
export function canonicalDriveId(id: string): string {
  if (/^[0-9a-fA-F]{15,16}$/.test(id)) return id.toLowerCase().padStart(16, '0')
  return id
}

/** Modification time the user set (fileSystemInfo), else the service's. */
export function mtimeOf(item: DriveItem): Date | undefined {
  const s = item.fileSystemInfo?.lastModifiedDateTime ?? item.remoteItem?.fileSystemInfo?.lastModifiedDateTime ?? item.lastModifiedDateTime
  return s ? new Date(s) : undefined
}

/**
 * Same content? Compares content identity (cTag, then quickXorHash and size), never
 * the eTag: the eTag also changes on metadata edits and on its own shortly after an
 * upload (docs/graph-service.md §4.3), so eTag-based conflict checks misfire.
 */
export function sameContent(a: DriveItem, b: DriveItem): boolean {
  if (a.id !== b.id) return false
  const ha = a.file?.hashes?.quickXorHash
  const hb = b.file?.hashes?.quickXorHash
  if (ha && hb) return ha === hb && a.size === b.size
  if (a.cTag && b.cTag) return a.cTag === b.cTag
  return a.size === b.size && a.eTag === b.eTag
}
