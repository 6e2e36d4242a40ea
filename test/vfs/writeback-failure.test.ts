// A write-back upload that fails when its delay ends (nobody waits for it: no
// fsync, no sync) stays in the spool with its error and is retried; the failure
// never escapes as an unhandled rejection, which would end the mount daemon.
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as tick } from 'node:timers/promises'
import { createLogger, ManualClock } from '../../src/common/index.js'
import { createGraphDriveClient } from '../../src/graph/index.js'
import { Vfs } from '../../src/vfs/index.js'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { collectUnhandled } from '../support/unhandled.js'

let emu: TestEmulator
let dir: string
t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0 })
  dir = await mkdtemp(join(tmpdir(), 'odfs-wb-fail-'))
})
t.teardown(async () => {
  await emu?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

t.test('a scheduled upload answered 500 every time: logged, kept, retried; no unhandled rejection', async (t) => {
  const unhandled = collectUnhandled(t)
  const token = await tokenFor(emu, 'user1')
  const client = createGraphDriveClient({
    baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, retry: { baseDelayMs: 1, maxDelayMs: 2 },
  })
  const clock = new ManualClock(Date.now())
  const lines: string[] = []
  const log = createLogger({ level: 'warn', destination: { write: (l: string) => lines.push(l) } as never })
  const vfs = new Vfs({ client, clock, spoolDir: join(dir, 'spool'), writeBackMs: 5_000, log })
  await vfs.init()
  t.teardown(() => vfs.close())
  await vfs.mkdir('/My files/wb', 0o755)
  const fh = await vfs.create('/My files/wb/doomed.txt', 0o644)
  const data = Buffer.from('bytes that must stay in the spool')
  await vfs.write(fh, data, data.length, 0)
  await vfs.release(fh)

  emu.setFaults({ serverErrorRate: 1 })
  t.teardown(() => emu.setFaults({ serverErrorRate: 0 }))
  await clock.advance(5_000) // the write-back delay ends: the upload starts, unawaited
  const lf = vfs.writeBack.all()[0]!
  t.ok(lf.running, 'the upload runs')
  // Wait without touching the run's promise (a handler on it would hide the fault).
  for (let i = 0; i < 100_000 && lf.running; i++) await tick()
  t.notOk(lf.running, 'the upload ended')
  await tick()
  t.same(unhandled, [], 'the failure did not escape')
  const pending = vfs.writeBack.pending()
  t.equal(pending.length, 1, 'the file is still pending')
  t.equal(pending[0]!.state, 'failed')
  t.match(pending[0]!.error, /HTTP 50[024]/, 'with the service\'s answer as its error')
  t.ok(lines.some((l) => l.includes('upload failed; the file stays in the write-back spool and is retried')), 'and a log line')

  emu.setFaults({ serverErrorRate: 0 })
  await clock.advance(600_000) // the retry is due
  if (lf.running) await lf.running
  t.same(vfs.writeBack.pending(), [], 'the retry uploaded it')
  const item = emu.store.itemByPath('user1', 'wb/doomed.txt')
  t.equal(item?.size, data.length, 'OneDrive holds its bytes')
})
