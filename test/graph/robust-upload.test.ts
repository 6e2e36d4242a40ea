// Upload sessions under faults: a name conflict at commit keeps the session (and a
// later call commits it without resending bytes); a 401 from the upload host (its
// embedded token expired) starts a new session; a persisted session whose status
// probe fails is cancelled on the service before it is forgotten.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, FileUploadSessionStore, GraphError, type DriveClient, type UploadSource } from '../../src/graph/index.js'
import { faultDispatcher, type FaultDispatcher } from './fault-support.js'

let emu: TestEmulator
t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty' })
})
t.teardown(async () => {
  await emu?.close()
})

const unit = 327_680
const fastRetry = { baseDelayMs: 1, maxDelayMs: 5 }

async function setup(): Promise<{ c: DriveClient; fd: FaultDispatcher; root: { driveId: string; itemId: string } }> {
  const fd = faultDispatcher(emu.dispatcher)
  const token = await tokenFor(emu, 'user1')
  const c = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: fd.dispatcher, retry: fastRetry })
  const drive = await c.getMyDrive()
  return { c, fd, root: { driveId: drive.id, itemId: 'root' } }
}

function source(data: Buffer, onRead?: (offset: number) => Promise<void>): UploadSource {
  return { size: data.length, read: async (o, n) => { await onRead?.(o); return data.subarray(o, o + n) } }
}

function stateDir(t: { teardown(f: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'odfs-up-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'sessions')
}

t.test('a name conflict at commit keeps the session; a later replacing call commits it without resending', async (t) => {
  const { c, fd, root } = await setup()
  const store = new FileUploadSessionStore(stateDir(t))
  const data = Buffer.alloc(3 * unit, 5)
  // While the last fragment is being read, someone else creates the name.
  let raced = false
  const src = source(data, async (o) => {
    if (o === 2 * unit && !raced) {
      raced = true
      await c.upload(root, 'conflict.bin', source(Buffer.from('theirs')), { verify: false })
    }
  })
  const e = await c.upload(root, 'conflict.bin', src, { fragmentSize: unit, conflictBehavior: 'fail', sessionStore: store, sourceId: 'v1' }).catch((x: unknown) => x)
  t.type(e, GraphError)
  t.equal((e as GraphError).classify(), 'nameConflict')
  t.equal(fd.count('DELETE', /^\/_upload\//), 0, 'the session was not cancelled')
  const kept = await store.list()
  t.equal(kept.length, 1, 'and it stays persisted')
  const puts = fd.count('PUT', /^\/_upload\//)
  const r = await c.upload(root, 'conflict.bin', source(data), { fragmentSize: unit, conflictBehavior: 'replace', sessionStore: store, sourceId: 'v1' })
  t.equal(fd.count('PUT', /^\/_upload\//), puts, 'no fragment sent again')
  t.equal(r.item.size, data.length)
  t.equal(r.verified, true, 'the committed file is this upload')
  t.same(await store.list(), [], 'forgotten once committed')
})

t.test('a 401 from the upload host starts a new session', async (t) => {
  const { c, fd, root } = await setup()
  const data = Buffer.alloc(3 * unit, 6)
  // The second fragment's URL carries a token the upload host no longer accepts.
  let n = 0
  fd.add({ method: 'PUT', path: /^\/_upload\//, times: 2, rewrite: (p) => (++n === 2 ? p.replace(/tempauth=[^&]*/, 'tempauth=expired') : p) })
  const r = await c.upload(root, 'token-expired.bin', source(data), { fragmentSize: unit })
  t.equal(r.item.size, data.length)
  t.equal(r.verified, true)
  t.equal(fd.count('POST', /createUploadSession$/), 2, 'a second session was created')
})

t.test('a persisted session whose status probe fails is cancelled before it is forgotten', async (t) => {
  const { c, fd, root } = await setup()
  const store = new FileUploadSessionStore(stateDir(t))
  const data = Buffer.alloc(3 * unit, 7)
  const ac = new AbortController()
  // First run: stopped after the first fragment, the session persisted.
  await c.upload(root, 'probe-fails.bin', source(data, async (o) => { if (o === unit) ac.abort() }), { fragmentSize: unit, sessionStore: store, sourceId: 'v1', signal: ac.signal }).catch(() => undefined)
  const [saved] = await store.list()
  t.ok(saved, 'session persisted')
  // Second run: the status probe fails (sent as a POST, the upload host refuses it with a 400).
  fd.add({ method: 'GET', path: /^\/_upload\//, asMethod: 'POST' })
  const r = await c.upload(root, 'probe-fails.bin', source(data), { fragmentSize: unit, sessionStore: store, sourceId: 'v1' })
  t.equal(r.item.size, data.length)
  t.equal(fd.count('DELETE', /^\/_upload\//), 1, 'the unprobed session was cancelled on the service')
  const id = new URL(saved!.session.uploadUrl).pathname.slice('/_upload/'.length)
  t.notOk(emu.env.sessions.has(id), 'that session is no longer open on the service')
})
