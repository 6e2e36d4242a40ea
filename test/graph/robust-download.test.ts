// Downloads under faults: local conditions are not retried as network errors; a
// slow, flaky link that keeps making progress does not exhaust the retry budget.
import t from 'tap'
import { createHash } from 'node:crypto'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, GraphError, type DriveClient } from '../../src/graph/index.js'
import { faultDispatcher } from './fault-support.js'

let emu: TestEmulator
t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty' })
})
t.teardown(async () => {
  await emu?.close()
})

const fastRetry = { baseDelayMs: 1, maxDelayMs: 5, maxAttempts: 5 }

async function client(extra: Record<string, unknown> = {}): Promise<DriveClient> {
  const token = await tokenFor(emu, 'user1')
  return createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: emu.dispatcher, retry: fastRetry, ...extra })
}

function pattern(size: number): Buffer {
  const b = Buffer.alloc(size)
  for (let i = 0; i < size; i++) b[i] = (i * 131 + (i >> 8)) & 0xff
  return b
}

t.test('downloading a folder is a local error, asked once and not retried', async (t) => {
  const c = await client()
  const drive = await c.getMyDrive()
  const folder = await c.createFolder({ driveId: drive.id, itemId: 'root' }, 'not-a-file')
  emu.resetStats()
  const e = await c.download({ driveId: drive.id, itemId: folder.id }, () => {}).catch((x: unknown) => x)
  t.type(e, GraphError)
  t.equal((e as GraphError).code, 'notAFile')
  t.equal((e as GraphError).classify(), 'local', 'classified local, not network')
  t.equal(emu.stats.total, 1, `one request, no retries (${JSON.stringify(emu.stats.routes)})`)
})

t.test('a link that breaks every transfer but keeps advancing finishes the file', async (t) => {
  const fd = faultDispatcher(emu.dispatcher)
  const c = await client({ dispatcher: fd.dispatcher })
  const drive = await c.getMyDrive()
  const data = pattern(256 * 1024)
  const up = await c.upload({ driveId: drive.id, itemId: 'root' }, 'flaky-link.bin', { size: data.length, read: async (o, n) => data.subarray(o, o + n) })
  // Every download answer breaks after 32 KiB of its body.
  fd.add({ method: 'GET', path: /^\/_download\//, breakAfter: 32 * 1024, times: Infinity })
  const got: Buffer[] = []
  const r = await c.download({ driveId: drive.id, itemId: up.item.id }, (b) => void got.push(b))
  t.equal(r.reopened, 7, `reopened after each of the 7 cuts, more than the ${fastRetry.maxAttempts} attempts a stalled link gets`)
  t.equal(fd.count('GET', /^\/_download\//), 8, '8 ranged GETs of 32 KiB')
  t.equal(createHash('sha256').update(Buffer.concat(got)).digest('hex'), createHash('sha256').update(data).digest('hex'), 'every byte, once')
  t.equal(r.verified, true)
})
