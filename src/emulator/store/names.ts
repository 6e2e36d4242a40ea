/**
 * OneDrive naming rules (docs/graph-service.md §8): forbidden characters, leading and
 * trailing blanks, reserved names and patterns, path length. Names compare
 * case-insensitively (and with a little collation folding, e.g. æ ≡ ae) while the
 * stored name keeps its case.
 */
export type DriveKind = 'personal' | 'business' | 'documentLibrary'

/** Longest decoded path (server-relative prefix included on Business/SPO) the service accepts is 399 chars. */
export const MAX_PATH_LENGTH = 400

const FORBIDDEN = /["*:<>?/\\|]/
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/
const RESERVED = new Set(['.lock', 'con', 'prn', 'aux', 'nul', 'desktop.ini',
  ...Array.from({ length: 10 }, (_, i) => `com${i}`), ...Array.from({ length: 10 }, (_, i) => `lpt${i}`)])

export type NameProblem = { inner: 'invalidPath' | 'pathIsTooLong'; message: string }

/** Returns why `name` is not allowed for a new or renamed item, or undefined when it is fine. */
export function checkName(name: string, opts: { folder: boolean; kind: DriveKind; atLibraryRoot?: boolean }): NameProblem | undefined {
  const bad = (message: string): NameProblem => ({ inner: 'invalidPath', message })
  if (typeof name !== 'string' || name.length === 0) return bad('The name must not be empty.')
  if (FORBIDDEN.test(name)) return bad(`The name "${name}" contains a character that is not allowed.`)
  if (CONTROL.test(name)) return bad('The name contains a control character.')
  if (name !== name.trim() || /^\s|\s$/.test(name)) return bad('The name must not start or end with a space.')
  if (name.endsWith('.')) return bad('The name must not end with a period.')
  const lower = name.toLowerCase()
  const stem = lower.includes('.') && !lower.startsWith('.') ? lower.slice(0, lower.indexOf('.')) : lower
  if (RESERVED.has(lower) || (RESERVED.has(stem) && stem !== '.lock')) return bad(`"${name}" is a reserved name.`)
  if (lower.includes('_vti_')) return bad('Names containing "_vti_" are not allowed.')
  if (name.startsWith('~$')) return bad('Names starting with "~$" are not allowed.')
  if (/&#\d+;/.test(name)) return bad('The name contains a character reference.')
  if (opts.kind !== 'personal' && opts.folder && name.startsWith('~')) return bad('Folder names must not start with "~".')
  if (opts.kind === 'documentLibrary' && opts.folder && opts.atLibraryRoot && lower === 'forms') return bad('"forms" is reserved at the library root.')
  return undefined
}

/** The key under which a name is unique within its folder. */
export function foldName(name: string): string {
  return name.normalize('NFKC').toLowerCase().replace(/æ/g, 'ae').replace(/œ/g, 'oe').replace(/ß/g, 'ss')
}

/** "name 1.ext", "name 2.ext", …: the service's pick for conflictBehavior=rename. */
export function renameCandidate(name: string, n: number): string {
  const dot = name.lastIndexOf('.')
  if (dot > 0) return `${name.slice(0, dot)} ${n}${name.slice(dot)}`
  return `${name} ${n}`
}
