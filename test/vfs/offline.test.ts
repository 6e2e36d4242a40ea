// OneDrive unreachable (the emulator's port closed, state kept): the mount answers
// lookups and listings from its cache however old, without a network call per
// name; new files go into the spool; the moment the service answers again the
// waiting uploads start (no back-off sat out), and a file created offline on a
// name someone else took meanwhile goes up beside it: both versions kept.
import t from 'tap'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createLogger, ManualClock } from '../../src/common/index.js'
import { createGraphDriveClient } from '../../src/graph/index.js'
import { Vfs } from '../../src/vfs/index.js'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'

let emu: TestEmulator
let dir: string
t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0 })
  dir = await mkdtemp(join(tmpdir(), 'odfs-offline-'))
})
t.teardown(async () => {
  await emu?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

const bytesOf = async (path: string) => {
  const item = emu.store.itemByPath('user1', path)
  return item?.blob ? (await readFile(item.blob.path)).toString() : undefined
}

t.test('unreachable: stale cache answers, writes wait in the spool, uploads resume when it answers', async (t) => {
  const token = await tokenFor(emu, 'user1')
  const client = createGraphDriveClient({
    baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher,
    retry: { baseDelayMs: 1, maxDelayMs: 2 },
  })
  const clock = new ManualClock(Date.now())
  const lines: string[] = []
  const log = createLogger({ level: 'warn', destination: { write: (l: string) => lines.push(l) } as never })
  const vfs = new Vfs({ client, clock, spoolDir: join(dir, 'spool'), writeBackMs: 1_000, dirCacheTimeMs: 10_000, log })
  await vfs.init()
  t.teardown(() => vfs.close({ waitMs: 0 }))

  await vfs.mkdir('/My files/off', 0o755)
  const write = async (path: string, text: string) => {
    const fh = await vfs.create(path, 0o644)
    await vfs.write(fh, Buffer.from(text), text.length, 0)
    await vfs.flush(fh)
    await vfs.release(fh)
  }
  await write('/My files/off/before.txt', 'written before')
  t.same(await vfs.sync(), [], 'uploaded before the outage')
  t.same((await vfs.readdir('/My files/off')).names.sort(), ['.', '..', 'before.txt'])
  await clock.advance(20_000) // every listing is past its time now
  // A remote change seen by the delta poll: the folder must be asked again, but its
  // last known state stays for when the service cannot be asked.
  vfs.invalidate([{ driveId: emu.store.driveOf('user1').id, itemId: emu.store.itemByPath('user1', 'off')!.id }])

  await emu.goDown()
  t.teardown(() => emu.comeBack())
  const a = await vfs.getattr('/My files/off/before.txt')
  t.equal(a.size, 'written before'.length, 'stat of a known file answers from the cache')
  t.ok(client.reachability.unreachableSince !== undefined, 'the client knows the service is unreachable')
  t.ok(lines.some((l) => l.includes('OneDrive cannot be reached')), 'and says so in the log')
  const asked = client.stats().requests
  t.same((await vfs.readdir('/My files/off')).names.sort(), ['.', '..', 'before.txt'], 'ls answers from the last listing')
  await t.rejects(vfs.getattr('/My files/off/absent.txt'), { code: 'notFound' }, 'a name absent from the last listing is absent')
  await write('/My files/off/new.txt', 'written offline')
  await write('/My files/off/taken.txt', 'this mount\'s taken.txt')
  t.equal(client.stats().requests, asked, 'while unreachable, lookups, listings and creates make no network call')
  t.same((await vfs.readdir('/My files/off')).names.sort(), ['.', '..', 'before.txt', 'new.txt', 'taken.txt'], 'new files show at once')

  await clock.advance(1_000) // the write-back delay ends: the uploads start and fail
  for (let i = 0; i < 500 && vfs.writeBack.all().some((lf) => lf.running); i++) await sleep(10)
  t.same(vfs.pending().map((p) => p.state), ['failed', 'failed'], 'both wait in the spool, failed')

  // Meanwhile another client put a file on one of those names.
  await emu.store.writeFile('user1', 'off/taken.txt', 'the other client\'s taken.txt')
  await emu.comeBack()
  await clock.advance(5_000) // the probe finds the service again: uploads start at once, not after their back-off
  for (let i = 0; i < 500 && vfs.pending().length > 0; i++) await sleep(10)
  t.same(vfs.pending(), [], 'everything went up without a sync or a remount')
  t.ok(lines.some((l) => l.includes('OneDrive answers again')), 'the log says the service is back')
  t.equal(await bytesOf('off/new.txt'), 'written offline')
  t.equal(await bytesOf('off/taken.txt'), 'the other client\'s taken.txt', 'the other client\'s file is not replaced')
  const names = emu.store.children(emu.store.itemByPath('user1', 'off')!).map((i) => i.name)
  const copy = names.find((n) => /^taken \(conflict \d{4}-\d\d-\d\d \d{6} .+\)\.txt$/.test(n))
  t.ok(copy, `the offline version is kept as a conflict copy (${names.join(', ')})`)
  if (copy) t.equal(await bytesOf(`off/${copy}`), 'this mount\'s taken.txt')
  t.equal(vfs.conflicts().length, 1, 'and listed as a conflict')
})

t.test('a folder the mount made is known empty: files created in it cost no lookup call', async (t) => {
  const token = await tokenFor(emu, 'user1')
  const client = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher })
  const vfs = new Vfs({ client, spoolDir: join(dir, 'spool-mkdir'), writeBackMs: 60_000 })
  await vfs.init()
  t.teardown(() => vfs.close({ waitMs: 0 }))
  await vfs.mkdir('/My files/made', 0o755)
  const asked = client.stats().requests
  for (let i = 0; i < 20; i++) await vfs.release(await vfs.create(`/My files/made/f${i}.txt`, 0o644))
  t.equal(client.stats().requests, asked, 'no call for 20 creates')
  t.equal((await vfs.readdir('/My files/made')).names.length, 22, 'and they are listed')
})
