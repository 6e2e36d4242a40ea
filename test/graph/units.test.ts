// Pure helpers: upload fragment math, nextExpectedRanges, service-rewrite detection,
// path and share-link encoding, content identity, drive id normalisation, backoff.
import t from 'tap'
import {
  FRAGMENT_UNIT, MAX_FRAGMENT, DEFAULT_FRAGMENT, validFragmentSize, fragmentsOf, contentRange, offsetFromRanges, isServiceRewrite,
  encodePath, shareIdOf, sameContent, canonicalDriveId, backoffDelay, targetOf, isFolder,
} from '../../src/graph/index.js'

t.test('fragments are multiples of 320 KiB below 60 MiB', async (t) => {
  t.equal(FRAGMENT_UNIT, 327_680)
  t.equal(DEFAULT_FRAGMENT, 10 * 1024 * 1024)
  t.equal(DEFAULT_FRAGMENT % FRAGMENT_UNIT, 0)
  t.equal(MAX_FRAGMENT, 62_586_880)
  t.equal(validFragmentSize(5 * 1024 * 1024), 16 * FRAGMENT_UNIT, 'rounded down')
  t.equal(validFragmentSize(1000), FRAGMENT_UNIT, 'at least one unit')
  t.equal(validFragmentSize(200 * 1024 * 1024), MAX_FRAGMENT, 'capped below 60 MiB')
  const f = fragmentsOf(1_000_000, FRAGMENT_UNIT)
  t.same(f, [{ start: 0, end: 327_679 }, { start: 327_680, end: 655_359 }, { start: 655_360, end: 983_039 }, { start: 983_040, end: 999_999 }])
  t.ok(f.slice(0, -1).every((x) => (x.end - x.start + 1) % FRAGMENT_UNIT === 0), 'every fragment but the last is a multiple')
  t.same(fragmentsOf(1_000_000, FRAGMENT_UNIT, 655_360).map((x) => x.start), [655_360, 983_040], 'from a resume offset')
  t.same(fragmentsOf(0, FRAGMENT_UNIT), [], 'zero bytes: no fragment (simple PUT instead)')
  t.equal(contentRange(0, 25, 128), 'bytes 0-25/128')
})

t.test('nextExpectedRanges', async (t) => {
  t.equal(offsetFromRanges(['26-']), 26)
  t.equal(offsetFromRanges(['12345-55555', '77777-']), 12345)
  t.equal(offsetFromRanges([]), undefined)
  t.equal(offsetFromRanges(undefined), undefined)
  t.equal(offsetFromRanges(['junk']), undefined)
})

t.test('a service rewrite of an Office file is recognised, nothing else is', async (t) => {
  const item = (driveType: string, size: number) => ({ id: 'x', size, parentReference: { driveId: 'd', driveType } })
  t.equal(isServiceRewrite('report.docx', 1000, item('documentLibrary', 1200)), true)
  t.equal(isServiceRewrite('Budget.XLSX', 1000, item('business', 900)), true)
  t.equal(isServiceRewrite('report.docx', 1000, item('documentLibrary', 1000)), false, 'same size: a real mismatch')
  t.equal(isServiceRewrite('data.bin', 1000, item('documentLibrary', 1200)), false, 'not an Office file')
  t.equal(isServiceRewrite('report.docx', 1000, item('personal', 1200)), false, 'not SharePoint')
})

t.test('paths and share ids', async (t) => {
  t.equal(encodePath('/a b/c#d/100%/x:y'), 'a%20b/c%23d/100%25/x%3Ay')
  t.equal(encodePath(['it\'s (1).txt']), 'it%27s%20%281%29.txt')
  t.equal(shareIdOf('https://onedrive.live.com/redir?resid=1231244193912!12&authKey=1201919!12921!1'),
    'u!aHR0cHM6Ly9vbmVkcml2ZS5saXZlLmNvbS9yZWRpcj9yZXNpZD0xMjMxMjQ0MTkzOTEyITEyJmF1dGhLZXk9MTIwMTkxOSExMjkyMSEx')
})

t.test('content identity ignores eTag churn after upload', async (t) => {
  const a = { id: '1', size: 5, eTag: '"{A},1"', cTag: 'c1', file: { hashes: { quickXorHash: 'h' } } }
  t.equal(sameContent(a, { ...a, eTag: '"{A},2"' }), true, 'eTag changed on its own: same content')
  t.equal(sameContent(a, { ...a, file: { hashes: { quickXorHash: 'other' } } }), false)
  t.equal(sameContent({ id: '1', cTag: 'x' }, { id: '1', cTag: 'x', eTag: 'new' }), true)
})

t.test('drive ids, shortcuts, backoff', async (t) => {
  t.equal(canonicalDriveId('66D53BE8A5056EC'), '066d53be8a5056ec', 'personal: lower case, padded to 16')
  t.equal(canonicalDriveId('b!AbC'), 'b!AbC', 'business ids untouched')
  const shortcut = { id: 's', name: 'Shared', remoteItem: { id: 'r', folder: { childCount: 2 }, parentReference: { driveId: 'ABCDEF0123456789' } } }
  t.same(targetOf(shortcut), { driveId: 'abcdef0123456789', itemId: 'r' })
  t.equal(isFolder(shortcut), true, 'a shortcut to a folder is a folder though it has no folder facet')
  const o = { baseDelayMs: 100, maxDelayMs: 1000, random: () => 0.5 }
  t.equal(backoffDelay(1, o), 75)
  t.equal(backoffDelay(3, o), 300)
  t.equal(backoffDelay(10, o), 750, 'capped')
})
