/**
 * Hostile answers for client fault tests (docs/emulator/hostile-answers.md). Each knob
 * names one item by its path below a drive root ('' = off) and damages only answers
 * that concern that item: its name, size or hash wherever it is reported, or the
 * whole body of an answer about it (its metadata, the listing of its children, the
 * download of its content).
 */
import type { Item, Store } from '../store/index.js'

export interface HostileFaults {
  /** The item is reported under a name containing '/'. */
  hostileNameSlash: string
  /** The item is reported under a name containing NUL. */
  hostileNameNul: string
  /** The item is reported under the name '..'. */
  hostileNameDotDot: string
  /** The item is reported under a 300-character name. */
  hostileNameLong: string
  /** The item is reported with a size one byte larger than its content. */
  hostileSize: string
  /** The item is reported with a wrong quickXorHash. */
  hostileHash: string
  /** Answers about the item (its metadata, its children) are not valid JSON. */
  hostileJson: string
  /** Answers about the item (metadata, children, content) promise more bytes than they send, then close. */
  hostileTruncate: string
}

export const HOSTILE_OFF: HostileFaults = {
  hostileNameSlash: '', hostileNameNul: '', hostileNameDotDot: '', hostileNameLong: '',
  hostileSize: '', hostileHash: '', hostileJson: '', hostileTruncate: '',
}

export type Damage = 'malformed' | 'truncated'

const NAME_KNOBS = ['hostileNameSlash', 'hostileNameNul', 'hostileNameDotDot', 'hostileNameLong'] as const
const ENTRY_KNOBS = [...NAME_KNOBS, 'hostileSize', 'hostileHash'] as const

function norm(p: string): string {
  const s = ('/' + p.trim()).replace(/\/+/g, '/').replace(/\/$/, '')
  return s.toLowerCase()
}

function targets(store: Store, item: Item | undefined, knob: string): boolean {
  return knob !== '' && item !== undefined && norm(store.pathOf(item)) === norm(knob)
}

export function hostileName(knob: (typeof NAME_KNOBS)[number], name: string): string {
  switch (knob) {
    case 'hostileNameSlash': return `evil/${name}`
    case 'hostileNameNul': return `${name}\u0000hidden`
    case 'hostileNameDotDot': return '..'
    case 'hostileNameLong': return name + 'x'.repeat(Math.max(1, 300 - name.length))
  }
}

function corruptHash(q: string): string {
  return Buffer.from(Buffer.from(q, 'base64').map((b) => b ^ 0xa5)).toString('base64')
}

/** Damage the driveItem JSON `e` if it is a targeted item. */
function reshapeEntry(store: Store, f: HostileFaults, e: Record<string, any>): void {
  if (typeof e.id !== 'string') return
  const item = store.get(e.id)
  if (!item) return
  for (const k of NAME_KNOBS) if (typeof e.name === 'string' && targets(store, item, f[k])) e.name = hostileName(k, e.name)
  if (typeof e.size === 'number' && targets(store, item, f.hostileSize)) e.size += 1
  const hashes = e.file?.hashes
  if (typeof hashes?.quickXorHash === 'string' && targets(store, item, f.hostileHash)) hashes.quickXorHash = corruptHash(hashes.quickXorHash)
}

function active(f: HostileFaults, keys: readonly (keyof HostileFaults)[]): boolean {
  return keys.some((k) => f[k] !== '')
}

/**
 * Apply the hostile knobs to a Graph JSON answer (changed in place). Returns the damage
 * to do to its body, if the answer is about a targeted item.
 */
export function reshape(store: Store, f: HostileFaults, body: unknown): Damage | undefined {
  if (!body || typeof body !== 'object') return undefined
  const b = body as Record<string, any>
  const entries: Record<string, any>[] = [b, ...(Array.isArray(b.value) ? b.value : []), ...(Array.isArray(b.children) ? b.children : [])]
  if (active(f, ENTRY_KNOBS)) for (const e of entries) if (e && typeof e === 'object') reshapeEntry(store, f, e)
  if (!active(f, ['hostileJson', 'hostileTruncate'])) return undefined
  // about the item: its own metadata, or a listing of its children
  const about = (knob: string) => {
    if (knob === '') return false
    if (typeof b.id === 'string' && targets(store, store.get(b.id), knob)) return true
    const listed = typeof b['@odata.context'] === 'string' ? /items\('([^']+)'\)\/children$/.exec(b['@odata.context']) : null
    if (listed && targets(store, store.get(listed[1]!), knob)) return true
    return Array.isArray(b.value) && b.value.some((e: any) => typeof e?.parentReference?.id === 'string' && targets(store, store.get(e.parentReference.id), knob))
  }
  if (about(f.hostileJson)) return 'malformed'
  if (about(f.hostileTruncate)) return 'truncated'
  return undefined
}

/** Damage to a download of `itemId`'s content. */
export function downloadDamage(store: Store, f: HostileFaults, itemId: string): Damage | undefined {
  return targets(store, store.get(itemId), f.hostileTruncate) ? 'truncated' : undefined
}
