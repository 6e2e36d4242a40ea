/**
 * Delta (docs/graph-service.md §6, checklist 14): a full enumeration in pages, then a
 * deltaLink with `?token=`; latest state per item, parents before children,
 * parentReference.path on Business/SharePoint only (docs/emulator/delta-parent-path.md;
 * a renamed folder's descendants are not sent again, so theirs go stale), deleted
 * items with `deleted:{}`, `token=latest`, and 410
 * resync for tokens older than the bounded change log (or from another run).
 */
import { randomBytes } from 'node:crypto'
import type { Drive, Item, Tombstone } from '../store/index.js'
import { EmuError } from '../store/index.js'
import type { Env } from './env.js'
import { type Ctx, type Resp, json, optionPrefix, graphBaseOf } from './http.js'
import { driveItem, parseSelect } from './serialize.js'
import { linkWith, showShortcuts } from './router.js'

interface Snapshot { entries: string[]; toSeq: number; driveId: string; folderId: string }
const snapshots = new WeakMap<Env, Map<string, Snapshot>>()
const MAX_SNAPSHOTS = 64

function snaps(env: Env): Map<string, Snapshot> {
  let m = snapshots.get(env)
  if (!m) snapshots.set(env, (m = new Map()))
  return m
}

function deltaBase(ctx: Ctx, drive: Drive, folder: Item): string {
  const d = encodeURIComponent(drive.id)
  const base = graphBaseOf(ctx)
  return folder.parentId ? `${base}/drives/${d}/items/${encodeURIComponent(folder.id)}/delta` : `${base}/drives/${d}/root/delta`
}

function resync(ctx: Ctx, drive: Drive, folder: Item): EmuError {
  return new EmuError(410, 'resyncChangesApplyDifferences', 'Resync required. Replace any local items with the server\'s version (including deletes) if you\'re sure that the service was up to date with your local changes when you last sync\'d. Upload any local changes that the server doesn\'t know about.', 'resyncRequired', { Location: deltaBase(ctx, drive, folder) })
}

function deletedJson(env: Env, drive: Drive, t: Tombstone): Record<string, unknown> {
  const out: Record<string, unknown> = {
    '@odata.type': '#microsoft.graph.driveItem',
    id: t.id,
    parentReference: { driveId: drive.id, driveType: drive.kind, ...(t.parentId ? { id: t.parentId } : {}) },
    deleted: { state: 'deleted' },
  }
  if (drive.kind === 'personal') out.name = t.name
  if (t.kind === 'folder') out.folder = { childCount: 0 }
  else if (t.kind === 'file') out.file = {}
  return out
}

export function deltaRoute(env: Env, ctx: Ctx, drive: Drive, folder: Item, fnToken?: string): Resp {
  const store = env.store
  if (ctx.method !== 'GET') throw new EmuError(405, 'methodNotAllowed', 'Use GET.')
  if (folder.parentId && drive.kind !== 'personal') {
    throw new EmuError(400, 'invalidRequest', 'Delta is only supported on the root of this drive.')
  }
  store.require(ctx.user, folder, 'read')
  const q = ctx.url.searchParams
  const topRaw = q.get('$top') ?? q.get('top')
  const top = topRaw ? Math.min(1000, Math.max(1, Number(topRaw) || 200)) : 200
  const shortcuts = showShortcuts(env, ctx, drive)
  const select = parseSelect(ctx.url)
  const all = snaps(env)
  const base = deltaBase(ctx, drive, folder)
  /** Links keep the request's other query options ($select, $top). */
  const withParam = (k: string, v: string) =>
    linkWith(base, [...[...q].filter(([pk]) => !['token', '$skiptoken', 'skiptoken'].includes(pk)), [k, v]])
  const skip = q.get('$skiptoken') ?? q.get('skiptoken')
  const inScope = (it: Item) => !folder.parentId || store.isDescendant(it, folder)
  const visible = (it: Item) => shortcuts || it.kind !== 'shortcut'

  let snapId: string
  let offset = 0
  if (skip) {
    const t = env.readToken<{ n: string; o: number }>(skip)
    const snap = t ? all.get(t.n) : undefined
    if (!t || !snap || snap.driveId !== drive.id || snap.folderId !== folder.id) throw resync(ctx, drive, folder)
    snapId = t.n
    offset = t.o
  } else {
    const token = fnToken ?? q.get('token') ?? undefined
    const linkFor = (seq: number) => withParam('token', env.makeToken({ d: drive.id, f: folder.id, s: seq, ep: store.epoch }))
    if (token === 'latest') return json(200, { '@odata.context': `${graphBaseOf(ctx)}/$metadata#Collection(driveItem)`, value: [], '@odata.deltaLink': linkFor(drive.seq) })
    let since: number | undefined
    /** Business/SPO also accept an ISO timestamp as the token (docs/graph-service.md §6). */
    let sinceTime: number | undefined
    if (token !== undefined) {
      const t = env.readToken<{ d: string; f: string; s: number; ep: string }>(token)
      const ts = drive.kind !== 'personal' && /^\d{4}-\d\d-\d\dT/.test(token) ? Date.parse(token) : NaN
      if (!t && !Number.isNaN(ts)) {
        sinceTime = ts
        since = -1
      } else {
        if (!t || t.d !== drive.id || t.f !== folder.id || t.ep !== store.epoch || t.s < drive.minSeq) throw resync(ctx, drive, folder)
        since = t.s
      }
    }
    const changedItem = (it: Item) => (sinceTime !== undefined ? Date.parse(it.lastModifiedDateTime) >= sinceTime : it.seq > since!)
    const changedStone = (t: Tombstone) => (sinceTime !== undefined ? t.at >= sinceTime : t.seq > since!)
    const entries: string[] = []
    if (since === undefined) {
      // full enumeration, breadth first: parents before children
      const queue: Item[] = [folder]
      while (queue.length) {
        const it = queue.shift()!
        if (!visible(it)) continue
        entries.push(it.id)
        if (it.kind === 'folder') queue.push(...store.children(it))
      }
    } else {
      const changed = new Map<string, Item>()
      const add = (it: Item | undefined) => {
        for (let p = it; p && inScope(p) && !changed.has(p.id); p = store.parentOf(p)) changed.set(p.id, p)
      }
      for (const id of drive.itemIds) {
        const it = store.items.get(id)
        if (it && changedItem(it) && inScope(it) && visible(it)) add(it)
      }
      const stones = drive.tombstones.filter((t) => changedStone(t) && !store.items.has(t.id) && (!folder.parentId || t.ancestors.includes(folder.id)))
      for (const t of stones) add(t.parentId ? store.items.get(t.parentId) : undefined)
      const depth = (it: Item) => store.ancestors(it).length
      entries.push(...[...changed.values()].sort((a, b) => depth(a) - depth(b) || a.seq - b.seq).map((i) => i.id))
      const seen = new Set<string>()
      for (const t of stones) if (!seen.has(t.id)) { seen.add(t.id); entries.push(`~${t.id}`) }
    }
    snapId = randomBytes(9).toString('base64url')
    all.set(snapId, { entries, toSeq: drive.seq, driveId: drive.id, folderId: folder.id })
    while (all.size > MAX_SNAPSHOTS) all.delete(all.keys().next().value!)
  }
  const snap = all.get(snapId)!
  const value: unknown[] = []
  for (const e of snap.entries.slice(offset, offset + top)) {
    const id = e.startsWith('~') ? e.slice(1) : e
    const live = store.items.get(id)
    if (live && live.driveId === drive.id) value.push(driveItem(env, live, { delta: true, select }))
    else {
      const t = [...drive.tombstones].reverse().find((x) => x.id === id)
      if (t) value.push(deletedJson(env, drive, t))
    }
  }
  const out: Record<string, unknown> = { '@odata.context': `${graphBaseOf(ctx)}/$metadata#Collection(driveItem)`, value }
  if (offset + top < snap.entries.length) {
    out['@odata.nextLink'] = withParam(`${optionPrefix(ctx.url)}skiptoken`, env.makeToken({ n: snapId, o: offset + top }))
  } else {
    out['@odata.deltaLink'] = withParam('token', env.makeToken({ d: drive.id, f: folder.id, s: snap.toSeq, ep: store.epoch }))
  }
  return json(200, out)
}
