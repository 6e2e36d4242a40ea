import t from 'tap'
import { GraphError } from '../../src/graph/index.js'
import { errnoFor } from '../../src/vfs/errors.js'
import { checkName } from '../../src/emulator/store/names.js'
import { startTestEmulator, tokenFor, graphCaller } from '../support/emulator.js'
import { prng } from '../support/prng.js'
import {
  toRemoteName, toLocalName, sameName, nameKey, isCanonicalRemoteName, checkPathLength, pathPrefixOf,
  MAX_NAME_LENGTH, MAX_PATH_LENGTH,
} from '../../src/vfs/names.js'

/**
 * The service's naming rules (docs/names.md "What the service refuses"), written
 * out again here from the rules, not from the encoder's tables: a name passes
 * only if both Personal and Business would accept it.
 */
function serviceRefuses(name: string): string | undefined {
  if (name.length === 0) return 'empty'
  if (name.length > 398) return 'too long for any path'
  for (const ch of name) {
    if ('"*:<>?/\\|'.includes(ch)) return `forbidden ${JSON.stringify(ch)}`
    const cp = ch.codePointAt(0)!
    if (cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f)) return `control U+${cp.toString(16)}`
    if (cp >= 0xd800 && cp <= 0xdfff) return 'lone surrogate (not UTF-8)'
  }
  if (name.trim() !== name) return 'leading or trailing white space'
  if (name.endsWith('.')) return 'trailing period'
  if (name.startsWith('~')) return 'leading tilde (Business folders, ~$ files)'
  if (/&#/.test(name)) return 'character reference'
  // case-insensitive by lower-casing (the emulator) or by upper-casing (.NET's ordinal ignore-case)
  for (const lower of [name.toLowerCase(), name.toUpperCase().toLowerCase()]) {
    if (lower.includes('_vti_')) return '_vti_'
    if (lower === '.lock' || lower === 'desktop.ini') return 'reserved name'
    const devices = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])$/
    const stem = lower.startsWith('.') ? lower : lower.split('.')[0]!
    if (devices.test(stem)) return 'reserved device name'
  }
  return undefined
}

/** The emulator's own rules, as a second opinion (folders on Business are the strictest case). */
function emulatorRefuses(name: string): string | undefined {
  return checkName(name, { folder: true, kind: 'business' })?.message
}

// Pieces names are built from: every special character, its look-alike, the quote, escapes, reserved words.
const PIECES = [
  '"', '*', ':', '<', '>', '?', '\\', '|', ' ', '.', '~', '#', '&', '&#', '&#12;', '_', 'v', 'V', '_vti_', '_VtI_', 'ti_',
  '＂', '＊', '：', '＜', '＞', '？', '＼', '｜', '␠', '．', '～', '＃', 'ｖ', 'Ｖ', '／', '␀', '␡', '␁', '␟',
  '\u201b', '\u201b\u201b', '\u201bu0085', 'u00A0', 'u0041', '\u201bu00a0',
  '\x01', '\t', '\n', '\x1f', '\x7f', '\x80', '\x85', '\x9f', '\u00a0', '\u3000', '\ufeff', '\u2028', '\u200b',
  '\ud800', '\udc00', '\ud83d\ude00', 'é', 'e\u0301', 'æ', 'ß', 'İ', 'Ω', '日本', '$', '~$',
  'CON', 'con', 'PrN', 'aux', 'NUL', 'com0', 'COM1', 'lpt9', 'LPT¹', '.lock', '.LOCK', 'desktop.ini', 'Desktop.INI',
  'COＮ', 'coｎ', 'COM１', '.locｋ', 'desktop.inｉ',
  '\u212a', 'ı', 'ſ', '.loc\u212a', 'deſktop.inı', '_vtı_', '\u201bu212A', 'İ', 'K',
  'a', 'b', 'Z', '0', '9', 'name', 'x.txt', '.tar.gz', '-', '%', '%20', "'",
]

function randomName(rand: () => number): string {
  for (;;) {
    const n = 1 + Math.floor(rand() * 6)
    let s = ''
    for (let i = 0; i < n; i++) s += PIECES[Math.floor(rand() * PIECES.length)]!
    if (s !== '.' && s !== '..' && !s.includes('/') && !s.includes('\0')) return s
  }
}

const show = (s: string) => JSON.stringify(s)

t.test('every local name round-trips byte for byte and is stored under a name the service accepts', async (t) => {
  const seed = Number(process.env.ODFS_NAMES_SEED ?? 20261130)
  const rand = prng(seed)
  let checked = 0
  const failures: string[] = []
  for (let n = 0; n < 20000; n++) {
    const local = randomName(rand)
    const remote = toRemoteName(local)
    const back = toLocalName(remote)
    const refused = serviceRefuses(remote) ?? emulatorRefuses(remote)
    if (back !== local) failures.push(`${show(local)} -> ${show(remote)} -> ${show(back)}`)
    else if (refused) failures.push(`${show(local)} -> ${show(remote)}: service refuses (${refused})`)
    else if (!isCanonicalRemoteName(remote)) failures.push(`${show(remote)} is not canonical`)
    checked++
  }
  t.same(failures.slice(0, 10), [], `seed ${seed}: no failures among ${checked} names`)
  t.equal(checked, 20000)
})

t.test('every single character and every pair of pieces round-trips', async (t) => {
  const failures: string[] = []
  const check = (local: string) => {
    const remote = toRemoteName(local)
    if (toLocalName(remote) !== local) failures.push(`${show(local)} -> ${show(remote)} -> ${show(toLocalName(remote))}`)
    const refused = serviceRefuses(remote) ?? emulatorRefuses(remote)
    if (refused) failures.push(`${show(local)} -> ${show(remote)}: ${refused}`)
  }
  for (let c = 1; c < 0x10000; c++) if (c !== 0x2f) check(String.fromCharCode(c) + 'x') // BMP code units, incl. lone surrogates
  for (let c = 1; c < 0x10000; c++) if (c !== 0x2f && c !== 0x2e) check('x' + String.fromCharCode(c))
  for (const a of PIECES) for (const b of PIECES) if (a + b !== '..') check(a + b)
  t.same(failures.slice(0, 10), [])
})

t.test('fixed examples (docs/names.md)', async (t) => {
  const examples: Array<[string, string]> = [
    ['plain.txt', 'plain.txt'],
    ['a:b', 'a：b'],
    ['what?.txt', 'what？.txt'],
    ['"*<>\\|', '＂＊＜＞＼｜'],
    [' lead', '␠lead'],
    ['trail ', 'trail␠'],
    [' ', '␠'],
    ['mid dle', 'mid dle'],
    ['end.', 'end．'],
    ['a..', 'a.．'],
    ['.hidden', '.hidden'],
    ['~$lock.docx', '～$lock.docx'],
    ['~tmp', '～tmp'],
    ['a~b', 'a~b'],
    ['CON', 'COＮ'],
    ['con.txt', 'coｎ.txt'],
    ['Com1.tar.gz', 'Com１.tar.gz'],
    ['CON.', 'COＮ．'],
    ['console', 'console'],
    ['.lock', '.locｋ'],
    ['.lock.txt', '.lock.txt'],
    ['desktop.ini', 'desktop.inｉ'],
    ['x_vti_y', 'x_ｖti_y'],
    ['_VTI_CNF', '_ＶTI_CNF'],
    ['&#169;', '&＃169;'],
    ['tab\there', 'tab␉here'],
    ['del\x7f', 'del␡'],
    ['c1\x85', 'c1\u201bu0085'],
    ['\u00a0nbsp', '\u201bu00A0nbsp'],
    ['lone\ud800', 'lone\u201buD800'],
    ['.loc\u212a', '.loc\u201bu212A'],
    ['desktop.inı', 'desktop.in\u201bu0131'],
    ['deſktop.ini', 'deſktop.inｉ'],
    ['x_vtı_', 'x_ｖtı_'],
    // look-alikes already in the local name are quoted where they would be read back as something else
    ['a：b', 'a\u201b：b'],
    ['end．', 'end\u201b．'],
    ['mid．dle', 'mid．dle'],
    ['␠x', '\u201b␠x'],
    ['x␠y', 'x␠y'],
    ['COＮ', 'CO\u201bＮ'],
    ['\u201bquote', '\u201bquote'],
    ['\u201b:', '\u201b\u201b：'],
    ['\u201b\u201b', '\u201b\u201b\u201b'],
    ['日本語.txt', '日本語.txt'],
  ]
  for (const [local, remote] of examples) {
    t.equal(toRemoteName(local), remote, `${show(local)} is stored as ${show(remote)}`)
    t.equal(toLocalName(remote), local, `${show(remote)} reads back as ${show(local)}`)
  }
})

t.test('names typed in other clients read as what they look like', async (t) => {
  t.equal(toLocalName('会議：資料'), '会議:資料', 'a full-width colon reads as a colon')
  t.equal(toRemoteName('会議:資料'), '会議：資料', 'and is written back the same way')
  t.equal(toLocalName('／'), '／', 'the full-width solidus is never a slash')
  t.equal(toLocalName('．'), '．', 'never the name "."')
  t.equal(toLocalName('.．'), '.．', 'never the name ".."')
  t.equal(toLocalName('\u201bu002F'), '\u201bu002F', 'a hex escape never produces "/"')
  t.equal(toLocalName('\u201bu0000'), '\u201bu0000', 'nor NUL')
  t.equal(isCanonicalRemoteName('\u201b\u201bx'), false, 'a doubled quote before a plain letter is not what odfs writes')
  t.equal(isCanonicalRemoteName('a：b'), true)
})

t.test('names that cannot be stored fail with the right errno', async (t) => {
  const errnoOf = (name: string) => {
    try {
      toRemoteName(name)
      return 'ok'
    } catch (e) {
      t.ok(e instanceof GraphError, 'a GraphError')
      return errnoFor(e)
    }
  }
  t.equal(errnoOf(''), 'EINVAL')
  t.equal(errnoOf('.'), 'EINVAL')
  t.equal(errnoOf('..'), 'EINVAL')
  t.equal(errnoOf('a/b'), 'EINVAL')
  t.equal(errnoOf('a\0b'), 'EINVAL')
  t.equal(errnoOf('x'.repeat(MAX_NAME_LENGTH)), 'ok')
  t.equal(errnoOf('x'.repeat(MAX_NAME_LENGTH + 1)), 'ENAMETOOLONG')
  // 70 C1 controls are 70 bytes of UTF-8 locally but 6 characters each once stored
  t.equal(errnoOf('\x85'.repeat(70)), 'ENAMETOOLONG', 'the limit applies after encoding')
  t.equal(errnoOf('\x85'.repeat(66)), 'ok')
})

t.test('path length counts the decoded path and the library prefix', async (t) => {
  const errnoOf = (fn: () => void) => {
    try {
      fn()
      return 'ok'
    } catch (e) {
      return errnoFor(e)
    }
  }
  t.equal(MAX_PATH_LENGTH, 399)
  t.equal(errnoOf(() => checkPathLength('/' + 'a'.repeat(398))), 'ok')
  t.equal(errnoOf(() => checkPathLength('/' + 'a'.repeat(399))), 'ENAMETOOLONG')
  t.equal(errnoOf(() => checkPathLength('a'.repeat(398))), 'ok', 'the leading slash is implied')
  const prefix = pathPrefixOf({ driveType: 'documentLibrary', webUrl: 'https://contoso.sharepoint.com/sites/x/Shared%20Documents' })
  t.equal(prefix, '/sites/x/Shared Documents', 'decoded server-relative library path')
  t.equal(errnoOf(() => checkPathLength('/' + 'a'.repeat(398 - prefix.length), prefix)), 'ok')
  t.equal(errnoOf(() => checkPathLength('/' + 'a'.repeat(399 - prefix.length), prefix)), 'ENAMETOOLONG')
  t.equal(pathPrefixOf({ driveType: 'personal', webUrl: 'https://onedrive.live.com/?cid=abc' }), '')
  t.equal(pathPrefixOf({ driveType: 'business', webUrl: 'https://contoso-my.sharepoint.com/personal/u_contoso_com/Documents' }),
    '/personal/u_contoso_com/Documents')
})

t.test('names compare like the service: case, width, compatibility forms and ligatures fold', async (t) => {
  t.ok(sameName('Hello.doc', 'hello.DOC'))
  t.ok(sameName('Maersk.txt', 'Mærsk.txt'), 'æ ≡ ae (onedrive-api-docs#856)')
  t.ok(sameName('Straße', 'STRASSE'))
  t.ok(sameName('café', 'cafe\u0301'), 'composed and decomposed forms')
  t.ok(sameName('ＡＢＣ', 'abc'), 'full width folds')
  t.ok(sameName('ΣΟΦΟΣ', 'σοφος'), 'final sigma')
  t.notOk(sameName('a', 'b'))
  t.notOk(sameName('a：b', 'a\u201b：b'), 'an escaped name differs from the plain one')
  t.equal(nameKey('ÆON'), nameKey('aeon'))
  t.equal(nameKey(toRemoteName('CON')), nameKey(toRemoteName('con')), 'encoded case variants keep one key')
})

t.test('through the emulator: encoded names are accepted, listed back and decode to the local names', async (t) => {
  const emu = await startTestEmulator({ rateLimit: 0, etagSettleMs: 0 })
  t.teardown(() => emu.close())
  const g = graphCaller(emu, await tokenFor(emu, 'user1')) // a Business drive: folder rules are the strictest
  const enc = encodeURIComponent
  t.equal((await g('POST', '/me/drive/root/children', { name: 'names', folder: {} })).status, 201)
  const rand = prng(7)
  const locals = new Set<string>()
  const keys = new Set<string>()
  const refused: string[] = []
  for (let n = 0; locals.size < 300 && n < 2000; n++) {
    const local = randomName(rand)
    const remote = toRemoteName(local)
    if (keys.has(nameKey(remote))) continue // the service would call it a duplicate
    keys.add(nameKey(remote))
    locals.add(local)
    const r = locals.size % 2
      ? await g('PUT', `/me/drive/root:/names/${enc(remote)}:/content`, Buffer.from(local))
      : await g('POST', '/me/drive/root:/names:/children', { name: remote, folder: {}, '@microsoft.graph.conflictBehavior': 'fail' })
    if (r.status !== 201) refused.push(`${show(local)} as ${show(remote)}: ${r.status} ${r.text.slice(0, 120)}`)
  }
  t.same(refused, [], `${locals.size} names created`)
  const listed: string[] = []
  for (let next: string | undefined = '/me/drive/root:/names:/children?$top=1000'; next;) {
    const page = await g('GET', next)
    t.equal(page.status, 200)
    listed.push(...page.body.value.map((i: { name: string }) => toLocalName(i.name)))
    next = page.body['@odata.nextLink']
  }
  t.same(listed.sort(), [...locals].sort(), 'every listed name decodes to a name that was created')

  t.test('a case or width variant of an existing name is the same name to the service and to sameName', async (t) => {
    t.equal((await g('POST', '/me/drive/root/children', { name: 'pairs', folder: {} })).status, 201)
    for (const [a, b] of [['Report.TXT', 'report.txt'], ['Maersk', 'Mærsk'], ['ABC', 'ａｂｃ'], ['con', 'CON']] as const) {
      const ra = toRemoteName(a), rb = toRemoteName(b)
      t.equal((await g('POST', '/me/drive/root:/pairs:/children', { name: ra, folder: {}, '@microsoft.graph.conflictBehavior': 'fail' })).status, 201)
      const second = await g('POST', '/me/drive/root:/pairs:/children', { name: rb, folder: {}, '@microsoft.graph.conflictBehavior': 'fail' })
      t.equal(second.status, 409, `${show(rb)} clashes with ${show(ra)}`)
      t.ok(sameName(ra, rb), `sameName(${show(ra)}, ${show(rb)})`)
    }
  })

  t.test('checkPathLength with the prefix of the drive predicts the path limit of the service', async (t) => {
    const drive = (await g('GET', '/me/drive')).body
    const prefix = pathPrefixOf(drive)
    t.match(prefix, /^\/personal\/.+\/Documents$/)
    const fits = 'p'.repeat(MAX_PATH_LENGTH - prefix.length - '/names/'.length)
    const over = fits + 'p'
    t.doesNotThrow(() => checkPathLength(`/names/${fits}`, prefix))
    t.throws(() => checkPathLength(`/names/${over}`, prefix))
    t.equal((await g('PUT', `/me/drive/root:/names/${fits}:/content`, Buffer.from('x'))).status, 201)
    const r = await g('PUT', `/me/drive/root:/names/${over}:/content`, Buffer.from('x'))
    t.equal(r.status, 400)
    t.match(r.text, /pathIsTooLong/)
  })
})
