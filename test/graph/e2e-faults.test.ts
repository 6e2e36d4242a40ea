// The client rides out the emulator's faults on its own: random 503s and connection
// resets, an access token that expires (one silent refresh), a download URL that
// expires (refetched). And shared items beyond sharedWithMe: the personal
// "Add to OneDrive" shortcut, business search, and a sharing link through /shares.
import t from 'tap'
import { createHash } from 'node:crypto'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { ManualClock } from '../../src/common/index.js'
import { createGraphDriveClient, type DriveClient, type UploadSource } from '../../src/graph/index.js'
import { TreeResolver } from '../../src/vfs/index.js'

let emu: TestEmulator
t.before(async () => {
  emu = await startTestEmulator({ seed: 'demo' })
})
t.teardown(async () => {
  await emu?.close()
})

const fastRetry = { baseDelayMs: 20, maxDelayMs: 200, maxAttempts: 8 }

function client(token: string | (() => Promise<string>), extra: Record<string, unknown> = {}): DriveClient {
  const get = typeof token === 'string' ? async () => token : token
  return createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: get }, dispatcher: emu.dispatcher, retry: fastRetry, ...extra })
}

function pattern(size: number): Buffer {
  const b = Buffer.alloc(size)
  for (let i = 0; i < size; i++) b[i] = (i * 131 + (i >> 8)) & 0xff
  return b
}

t.test('503s and resets: uploads, downloads and listings still succeed', async (t) => {
  const c = client(await tokenFor(emu, 'user1'))
  const drive = await c.getMyDrive()
  emu.setFaults({ failRate: 0.1, resetRate: 0.2 })
  t.teardown(() => emu.setFaults({ failRate: 0, resetRate: 0 }))
  const data = pattern(6 * 327_680 + 999)
  const src: UploadSource = { size: data.length, read: async (o, n) => data.subarray(o, o + n) }
  const up = await c.upload({ driveId: drive.id, itemId: 'root' }, 'faulty.bin', src, { fragmentSize: 327_680 })
  t.equal(up.verified, true, 'upload verified despite faults')
  const got: Buffer[] = []
  const dl = await c.download({ driveId: drive.id, itemId: up.item.id }, (b) => void got.push(b))
  t.equal(dl.verified, true)
  t.equal(createHash('sha256').update(Buffer.concat(got)).digest('hex'), createHash('sha256').update(data).digest('hex'))
  emu.setFaults({ failRate: 0.3, resetRate: 0 })
  for (let i = 0; i < 20; i++) await c.listChildren({ driveId: drive.id, itemId: 'root' })
  const s = c.stats()
  t.ok(emu.stats.unavailable503 > 0, `the emulator sent 503s (${emu.stats.unavailable503}); resets ${emu.stats.resets}`)
  t.equal(s.throttled, emu.stats.unavailable503 + emu.stats.throttled429, 'every 503 was seen and retried by the client')
  t.ok(s.retries >= emu.stats.unavailable503, `retries counted (${s.retries})`)
})

t.test('an expired access token gets one silent refresh', async (t) => {
  let current = await tokenFor(emu, 'user2')
  let refreshes = 0
  const c = client(async () => current)
  const provider = {
    async getAccessToken(o?: { forceRefresh?: boolean }) {
      if (o?.forceRefresh) {
        refreshes++
        current = await tokenFor(emu, 'user2')
      }
      return current
    },
  }
  const c2 = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: provider, dispatcher: emu.dispatcher, retry: fastRetry })
  await c2.getMyDrive()
  const r = await emu.fetch('/_emulator/identity/expire-access-tokens', { method: 'POST', body: JSON.stringify({ account: 'user2' }), headers: { 'content-type': 'application/json' } })
  t.equal(r.status, 200)
  const old = c.getMyDrive().catch((e: unknown) => e)
  const d = await c2.getMyDrive()
  t.ok(d.id, 'call succeeded after refresh')
  t.equal(refreshes, 1, 'exactly one refresh')
  t.equal(c2.stats().tokenRefreshes, 1)
  // a provider that cannot refresh surfaces 401 as unauthenticated
  const e = (await old) as { classify?: () => string }
  t.equal(typeof e.classify === 'function' ? e.classify() : 'ok', 'unauthenticated')
})

t.test('an expired download URL is fetched again', async (t) => {
  // The emulator's time and the client's: the URL expires when the test says so.
  const clock = new ManualClock(Date.now())
  const timed = await startTestEmulator({ seed: 'empty', clock })
  t.teardown(() => timed.close())
  const token = await tokenFor(timed, 'user1')
  const c = createGraphDriveClient({
    baseUrl: timed.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: timed.dispatcher, retry: fastRetry, clock, downloadUrlTtlMs: 3_600_000,
  })
  const drive = await c.getMyDrive()
  const data = pattern(100_000)
  const up = await c.upload({ driveId: drive.id, itemId: 'root' }, 'url-expiry.bin', { size: data.length, read: async (o, n) => data.subarray(o, o + n) })
  const ref = { driveId: drive.id, itemId: up.item.id }
  timed.setFaults({ downloadUrlTtlSec: 1 })
  const a = await c.openRange(ref, 0, 10)
  for await (const _ of a.body) void _
  const before = c.stats().downloadUrlFetches
  await clock.advance(1500) // the URL has expired for the service; the client still holds it
  const b = await c.openRange(ref, 10, 20)
  const bytes: Buffer[] = []
  for await (const x of b.body) bytes.push(x as Buffer)
  t.same(Buffer.concat(bytes), data.subarray(10, 20), 'bytes after refetching the URL')
  t.equal(c.stats().downloadUrlFetches, before + 1, 'the expired URL was replaced once')
})

t.test('shared items without sharedWithMe: shortcut (personal), search (business), sharing link', async (t) => {
  emu.setFaults({ sharedWithMeRetired: true })
  t.teardown(() => emu.setFaults({ sharedWithMeRetired: false }))
  const p1 = client(await tokenFor(emu, 'personal1'))
  const ps = await p1.listSharedWithMe()
  const holiday = ps.find((e) => e.name === 'Holiday Photos')
  t.ok(holiday, `personal shortcut found: ${JSON.stringify(ps.map((e) => [e.name, e.source]))}`)
  t.equal(holiday?.source, 'shortcut')
  t.equal(holiday?.folder, true)
  const inside = await new TreeResolver(p1).list('Shared with me/Holiday Photos')
  t.ok(inside.some((e) => e.name === 'beach.jpg'), 'listed inside the remote folder')
  const viaPath = await new TreeResolver(p1).resolve('My files/Holiday Photos/beach.jpg')
  t.equal(viaPath.kind, 'item', 'a path through the shortcut in My files resolves (walks into the remote drive)')
  const tree = await new TreeResolver(p1).list('/')
  t.notOk(tree.some((e) => e.name === 'Shared libraries'), 'no Shared libraries on a personal account')

  const u1 = client(await tokenFor(emu, 'user1'))
  const bs = await u1.listSharedWithMe()
  t.ok(bs.some((e) => e.source === 'search'), `business search finds shared items: ${JSON.stringify(bs.map((e) => [e.name, e.source]))}`)

  // user2 makes a link to a file of their own; user1 redeems it through /shares
  const u2tok = await tokenFor(emu, 'user2')
  const u2 = client(u2tok)
  const d2 = await u2.getMyDrive()
  const data = Buffer.from('linked content')
  const f = await u2.upload({ driveId: d2.id, itemId: 'root' }, 'linked.txt', { size: data.length, read: async (o, n) => data.subarray(o, o + n) })
  const link = await emu.fetch(`${emu.info.graph}/drives/${d2.id}/items/${f.item.id}/createLink`, {
    method: 'POST', headers: { authorization: `Bearer ${u2tok}`, 'content-type': 'application/json' }, body: JSON.stringify({ type: 'view', scope: 'organization' }),
  })
  t.equal(link.status < 300, true, `createLink ${link.status}`)
  const url = ((await link.json()) as { link: { webUrl: string } }).link.webUrl
  const withLink = await u1.listSharedWithMe({ links: [url] })
  const e = withLink.find((x) => x.source === 'link')
  t.equal(e?.name, 'linked.txt')
  const got: Buffer[] = []
  await u1.download(e!.ref, (b) => void got.push(b))
  t.equal(Buffer.concat(got).toString(), 'linked content', 'downloaded through the link')
})
