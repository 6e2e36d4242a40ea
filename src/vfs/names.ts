/**
 * Local (POSIX) names <-> names stored on OneDrive (docs/names.md has the full
 * mapping, examples and sources).
 *
 * A POSIX name may hold any character but `/` and NUL; OneDrive refuses many
 * (docs/names.md "What the service refuses"). Characters and names it refuses
 * are stored with a look-alike character; a look-alike that is literally in the
 * local name is stored behind the quote character `‛` (U+201B), and characters
 * with no look-alike as `‛uHHHH`. The mapping is the same on Personal and
 * Business (it encodes the union of both rule sets), is decided by the name
 * alone, and `toLocalName(toRemoteName(L)) === L` for every local name L.
 *
 * Names compare the way the service compares them: case-insensitively, and with
 * width, compatibility forms and a few ligatures folded (`nameKey`).
 */
import { GraphError } from '../graph/index.js'

/** The quote (escape) character. */
export const NAME_QUOTE = '\u201b'

/**
 * Longest remote name (UTF-16 code units) the service can hold anywhere: its only
 * length rule is a decoded path of at most MAX_PATH_LENGTH characters, and the
 * shortest path to a name is `/name` at the root of a Personal drive.
 */
export const MAX_PATH_LENGTH = 399
export const MAX_NAME_LENGTH = MAX_PATH_LENGTH - 1

/** Characters the service refuses anywhere in a name, stored as their FULLWIDTH forms (+0xFEE0). */
const FORBIDDEN = '"*:<>?\\|'
const DEVICE_NAMES = new Set(['con', 'prn', 'aux', 'nul',
  ...Array.from({ length: 10 }, (_, i) => `com${i}`), ...Array.from({ length: 10 }, (_, i) => `lpt${i}`)])
const RESERVED_WHOLE = new Set(['.lock', 'desktop.ini'])
/** Leading/trailing white space the service (and .NET's Trim) strips or refuses, other than U+0020. */
const EDGE_SPACE = /^[\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]$/

const SYMBOL_SPACE = '\u2420' // ␠
const FULLWIDTH_DOT = '\uff0e' // ．
const FULLWIDTH_TILDE = '\uff5e' // ～
const FULLWIDTH_HASH = '\uff03' // ＃
const SYMBOL_DEL = '\u2421' // ␡

/**
 * Letters outside ASCII that case-fold onto ASCII letters of reserved words: KELVIN
 * SIGN (lower case k), dotless ı (upper case I), long ſ (upper case S). The service
 * and the emulator compare reserved words case-insensitively, so `.locK` with a
 * Kelvin sign is `.lock` to them; such a letter, when it ends a reserved word, is
 * stored as `‛uHHHH`.
 */
const FOLDS_TO_ASCII: Record<string, string> = { '\u212a': 'k', '\u0131': 'i', '\u017f': 's' }

/** Lower-case ASCII fold, one code unit for one (so indexes line up). */
function asciiFold(s: string): string {
  let out = ''
  for (const c of s) out += FOLDS_TO_ASCII[c] ?? (c.length === 1 && c.charCodeAt(0) < 0x80 ? c.toLowerCase() : c)
  return out
}

const widen = (c: string): string => String.fromCharCode(c.charCodeAt(0) + 0xfee0)
const narrow = (c: string): string => String.fromCharCode(c.charCodeAt(0) - 0xfee0)

/**
 * Every character that can stand for something else when bare in a remote name:
 * a look-alike that is literally in a local name is stored quoted when it stands
 * at a place where it would be read as a replacement.
 */
const QUOTABLE = new Set<string>([
  NAME_QUOTE, SYMBOL_SPACE, FULLWIDTH_DOT, FULLWIDTH_TILDE, FULLWIDTH_HASH, SYMBOL_DEL,
  ...[...FORBIDDEN].map(widen),
  ...Array.from({ length: 0x1f }, (_, i) => String.fromCharCode(0x2401 + i)),
  // the last letter or digit of a reserved name, and the v of _vti_
  ...[...'nxlkivNXLKIV0123456789'].map(widen),
])

/** Code units stored as `‛uHHHH`; a `‛uHHHH` for any other unit is read as plain text. */
function hexable(code: number): boolean {
  const c = String.fromCharCode(code)
  return (code >= 0x80 && code <= 0x9f) || (code >= 0xd800 && code <= 0xdfff) || EDGE_SPACE.test(c) || c in FOLDS_TO_ASCII
}

/** The character a `‛uHHHH` escape at the start of `s` (after the quote) stands for, if it is one. */
function hexAt(s: string): string | undefined {
  const m = /^u([0-9A-F]{4})/.exec(s)
  if (!m) return undefined
  const code = parseInt(m[1]!, 16)
  return hexable(code) ? String.fromCharCode(code) : undefined
}

function isLoneSurrogate(s: string, i: number): boolean {
  const c = s.charCodeAt(i)
  if (c >= 0xd800 && c <= 0xdbff) {
    const n = s.charCodeAt(i + 1)
    return !(n >= 0xdc00 && n <= 0xdfff)
  }
  if (c >= 0xdc00 && c <= 0xdfff) {
    const p = s.charCodeAt(i - 1)
    return !(p >= 0xd800 && p <= 0xdbff)
  }
  return false
}

/**
 * Would the bare character `c` at index `i` of a remote name be read as a
 * replacement? `before` is the remote name before it, `after` the rest.
 */
function standsFor(c: string, before: string, after: string): string | undefined {
  const code = c.charCodeAt(0)
  if (FORBIDDEN.includes(narrow(c)) && code >= 0xff01 && code <= 0xff5e) return narrow(c)
  if (code >= 0x2401 && code <= 0x241f) return String.fromCharCode(code - 0x2400)
  if (c === SYMBOL_DEL) return '\x7f'
  if (c === SYMBOL_SPACE) return before === '' || after === '' ? ' ' : undefined
  if (c === FULLWIDTH_DOT) return after === '' ? '.' : undefined
  if (c === FULLWIDTH_TILDE) return before === '' ? '~' : undefined
  if (c === FULLWIDTH_HASH) return before.endsWith('&') ? '#' : undefined
  if (code < 0xff10 || code > 0xff5a) return undefined
  const n = narrow(c)
  if ((n === 'v' || n === 'V') && before.endsWith('_') && asciiFold(after.slice(0, 3)) === 'ti_') return n
  // The last character of a reserved name: CON, con.txt, COM1.tar.gz, .lock, desktop.ini
  const word = asciiFold(before + n)
  if (after === '' && RESERVED_WHOLE.has(word)) return n
  if (DEVICE_NAMES.has(word) && (after === '' || after.startsWith('.') || after === FULLWIDTH_DOT)) return n
  return undefined
}

/** Why a local name cannot be a name at all (EINVAL), or undefined. */
function localNameProblem(name: string): string | undefined {
  if (name === '') return 'empty name'
  if (name === '.' || name === '..') return `"${name}" is not a name`
  if (name.includes('/')) return 'name contains "/"'
  if (name.includes('\0')) return 'name contains NUL'
  return undefined
}

/**
 * Why a name read from the service cannot be shown on the mount (it is hidden, with
 * a log line), or undefined: not a POSIX name ("/", NUL, "." or "..", empty), or
 * longer than the 255 bytes a Linux name may hold (the kernel would fail the whole
 * listing with EIO).
 */
export function unshowableName(localName: string): string | undefined {
  const problem = localNameProblem(localName)
  if (problem) return problem
  const bytes = Buffer.byteLength(localName)
  return bytes > 255 ? `name is ${bytes} bytes long; a name on Linux holds at most 255` : undefined
}

/** Where in a local name a reserved word's last character sits (-1: nowhere). */
function reservedIndex(name: string): number {
  const lower = asciiFold(name)
  if (RESERVED_WHOLE.has(lower)) return name.length - 1
  const dot = name.indexOf('.')
  const stem = dot > 0 ? lower.slice(0, dot) : lower
  return DEVICE_NAMES.has(stem) ? stem.length - 1 : -1
}

/** The replacement the service needs for local character `c` at index `i` of `name`, if any. */
function replacementFor(name: string, i: number, reserved: number): string | undefined {
  const c = name[i]!
  const last = i === name.length - 1
  const code = c.charCodeAt(0)
  if (FORBIDDEN.includes(c)) return widen(c)
  if (code >= 0x01 && code <= 0x1f) return String.fromCharCode(0x2400 + code)
  if (code === 0x7f) return SYMBOL_DEL
  if (c === ' ' && (i === 0 || last)) return SYMBOL_SPACE
  if (c === '.' && last) return FULLWIDTH_DOT
  if (c === '~' && i === 0) return FULLWIDTH_TILDE
  if (c === '#' && name[i - 1] === '&') return FULLWIDTH_HASH
  if ((c === 'v' || c === 'V') && name[i - 1] === '_' && asciiFold(name.slice(i + 1, i + 4)) === 'ti_') return widen(c)
  if (i === reserved) return code < 0x80 ? widen(c) : hex(code)
  return undefined
}

/** Characters stored as `‛uHHHH`: C1 controls, lone surrogates, odd white space at either end. */
function needsHex(name: string, i: number): boolean {
  const code = name.charCodeAt(i)
  if (code >= 0x80 && code <= 0x9f) return true
  if (code >= 0xd800 && code <= 0xdfff) return isLoneSurrogate(name, i)
  return (i === 0 || i === name.length - 1) && EDGE_SPACE.test(name[i]!)
}

const hex = (code: number): string => `${NAME_QUOTE}u${code.toString(16).toUpperCase().padStart(4, '0')}`

function nameError(message: string, inner: 'invalidPath' | 'pathIsTooLong'): GraphError {
  return new GraphError({ status: 400, code: 'invalidRequest', innerCodes: [inner], message, level: 'debug' })
}

/**
 * The name stored on OneDrive for a local name. Throws a GraphError classified
 * invalidName (EINVAL) for something that is not a POSIX name and pathTooLong
 * (ENAMETOOLONG) when the stored name would be longer than MAX_NAME_LENGTH.
 */
export function toRemoteName(localName: string): string {
  const problem = localNameProblem(localName)
  if (problem) throw nameError(`Not a valid name: ${problem}.`, 'invalidPath')
  // Built from the end: whether a character needs quoting depends on what follows it.
  const reserved = reservedIndex(localName)
  let out = ''
  for (let i = localName.length - 1; i >= 0; i--) {
    const c = localName[i]!
    const rep = replacementFor(localName, i, reserved)
    let token: string
    if (rep !== undefined) token = rep
    else if (needsHex(localName, i)) token = hex(localName.charCodeAt(i))
    else if (c === NAME_QUOTE) token = QUOTABLE.has(out[0] ?? '') || hexAt(out) !== undefined ? NAME_QUOTE + NAME_QUOTE : NAME_QUOTE
    // Characters before i are stored unchanged wherever standsFor looks at them (& _ and letters).
    else if (QUOTABLE.has(c) && standsFor(c, localName.slice(0, i), out) !== undefined) token = NAME_QUOTE + c
    else token = c
    out = token + out
  }
  if (out.length > MAX_NAME_LENGTH) {
    throw nameError(`The name is ${out.length} characters long as stored on OneDrive; the longest possible is ${MAX_NAME_LENGTH}.`, 'pathIsTooLong')
  }
  return out
}

/**
 * The local name for a name stored on OneDrive. Total: a remote name odfs did not
 * write (a `：` typed in the web UI) reads as the character it stands for.
 */
export function toLocalName(remoteName: string): string {
  let out = ''
  for (let i = 0; i < remoteName.length; i++) {
    const c = remoteName[i]!
    if (c === NAME_QUOTE) {
      const next = remoteName[i + 1]
      if (next !== undefined && QUOTABLE.has(next)) {
        out += next
        i++
        continue
      }
      const unit = hexAt(remoteName.slice(i + 1, i + 6))
      if (unit !== undefined) {
        out += unit
        i += 5
        continue
      }
      out += c
      continue
    }
    out += QUOTABLE.has(c) ? standsFor(c, remoteName.slice(0, i), remoteName.slice(i + 1)) ?? c : c
  }
  // `．` or `.．` typed elsewhere would read as "." or "..": keep such a name as it is stored.
  return out === '.' || out === '..' ? remoteName : out
}

/**
 * True when a remote name is exactly what odfs writes for its local name. Names
 * written by other clients can fail this only by holding `‛` before a look-alike
 * where odfs would not have put one (docs/names.md "Names from other clients").
 */
export function isCanonicalRemoteName(remoteName: string): boolean {
  try {
    return toRemoteName(toLocalName(remoteName)) === remoteName
  } catch {
    return false
  }
}

/**
 * The key under which a remote name is unique in its folder: compatibility and
 * width folded (NFKC), case folded (upper then lower, so ß ≡ ss and ς ≡ σ), and
 * the ligatures the service's collation expands (æ ≡ ae, œ ≡ oe).
 */
export function nameKey(remoteName: string): string {
  return remoteName.normalize('NFKC').toUpperCase().toLowerCase().replace(/æ/g, 'ae').replace(/œ/g, 'oe')
}

/** OneDrive's comparison of two remote names (case-insensitive, case-preserving). */
export function sameName(a: string, b: string): boolean {
  return a === b || nameKey(a) === nameKey(b)
}

/** Drive types whose server-relative prefix counts in the path limit. */
export type DriveTypeName = 'personal' | 'business' | 'documentLibrary' | (string & {})

/**
 * The part of the decoded path the service counts before the drive root: nothing
 * on Personal; on Business and SharePoint the server-relative URL of the library
 * (`/personal/user_contoso_com/Documents`, `/sites/x/Shared Documents`), taken
 * from the drive's webUrl.
 */
export function pathPrefixOf(drive: { driveType?: string; webUrl?: string }): string {
  if (drive.driveType === 'personal' || !drive.webUrl) return ''
  try {
    return decodeURIComponent(new URL(drive.webUrl).pathname).replace(/\/$/, '')
  } catch {
    return ''
  }
}

/**
 * Throws a pathTooLong GraphError (ENAMETOOLONG) when the decoded path
 * `prefix + remotePath` is longer than the service allows. `remotePath` is the
 * remote (encoded) path from the drive root, starting with `/`.
 */
export function checkPathLength(remotePath: string, prefix = ''): void {
  const path = remotePath.startsWith('/') ? remotePath : `/${remotePath}`
  const length = prefix.length + path.length
  if (length > MAX_PATH_LENGTH) {
    throw nameError(`The path is ${length} characters long as stored on OneDrive; the longest possible is ${MAX_PATH_LENGTH}.`, 'pathIsTooLong')
  }
}
