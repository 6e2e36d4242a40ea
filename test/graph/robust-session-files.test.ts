// Upload-session files hold pre-authenticated URLs (credentials): they live in a
// private directory (0700, owned by the user, checked), are written privately and
// never through a symlink, and an uploadUrl read back from disk is only used when
// its host is one the service issued (or a configured one): a planted session
// cannot send a file's bytes, a status probe or a DELETE anywhere else.
import t from 'tap'
import { chmodSync, existsSync, lchownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, FileUploadSessionStore, type PersistedUploadSession } from '../../src/graph/index.js'
import { faultDispatcher } from './fault-support.js'

let emu: TestEmulator
t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty' })
})
t.teardown(async () => {
  await emu?.close()
})

function tmp(t: { teardown(f: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'odfs-sess-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}

const fileOf = (dir: string, key: string) => join(dir, createHash('sha256').update(key).digest('hex').slice(0, 32) + '.json')

function session(uploadUrl: string, size: number, expiresAt = Date.now() + 3_600_000): PersistedUploadSession {
  return { uploadUrl, expiresAt, size, fragmentSize: 327_680, driveId: 'd', parentId: 'p', name: 'x', sourceId: 'v1', offset: 0 }
}

t.test('the store refuses a directory others can use, and writes 0600 files in a 0700 one', async (t) => {
  const base = tmp(t)
  const open = join(base, 'open')
  mkdirSync(open, { mode: 0o777 })
  chmodSync(open, 0o777)
  const e = await new FileUploadSessionStore(open).put('k', session('https://a.up.1drv.com/up/1', 10)).catch((x: unknown) => x)
  t.match(e, { code: 'UNSAFE_PATH' }, 'a directory others can write is refused')
  t.match((e as Error).message, /writable by (group or )?others|chmod/, 'with a message that says why')
  t.same(readdirSync(open), [], 'nothing written there')

  // A symlink someone else planted in place of the directory (as root, one of our own is trusted).
  const linked = join(base, 'linked')
  symlinkSync(join(base, 'state'), linked)
  lchownSync(linked, 41234, 41234)
  t.match(await new FileUploadSessionStore(join(linked, 'sessions')).put('k', session('https://a.up.1drv.com/up/1', 10)).catch((x: unknown) => x), { code: 'UNSAFE_PATH' }, 'a symlink in place of the directory is refused')

  const good = join(base, 'state', 'sessions')
  const store = new FileUploadSessionStore(good)
  await store.put('k', session('https://a.up.1drv.com/up/1', 10))
  t.equal(statSync(good).mode & 0o777, 0o700)
  t.equal(statSync(fileOf(good, 'k')).mode & 0o777, 0o600)
  t.same(readdirSync(good).filter((n) => n.endsWith('.tmp')), [], 'no temporary file left')
})

t.test('a session file that is a symlink is not followed, not trusted and removed', async (t) => {
  const dir = join(tmp(t), 'sessions')
  mkdirSync(dir, { mode: 0o700 })
  const elsewhere = join(tmp(t), 'victim.json')
  writeFileSync(elsewhere, JSON.stringify({ key: 'k', session: session('https://a.up.1drv.com/up/1', 10) }), { mode: 0o600 })
  symlinkSync(elsewhere, fileOf(dir, 'k'))
  const store = new FileUploadSessionStore(dir)
  t.equal(await store.get('k'), undefined, 'not read through the link')
  t.notOk(existsSync(fileOf(dir, 'k')), 'the link was removed')
  t.ok(lstatSync(elsewhere).isFile(), 'its target untouched')
  await store.put('k', session('https://a.up.1drv.com/up/2', 10))
  t.match(readFileSync(elsewhere, 'utf8'), /up\/1/, 'writing never goes through a link either')
})

t.test('a planted session whose URL the service did not issue gets no bytes, no probe, no DELETE', async (t) => {
  const fd = faultDispatcher(emu.dispatcher)
  const token = await tokenFor(emu, 'user1')
  const c = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: fd.dispatcher, retry: { baseDelayMs: 1, maxDelayMs: 5 } })
  const drive = await c.getMyDrive()
  const dir = join(tmp(t), 'sessions')
  const store = new FileUploadSessionStore(dir)
  const data = Buffer.alloc(2 * 327_680, 9)
  const parent = { driveId: drive.id, itemId: 'root' }
  const key = `${drive.id}/root/planted.bin`
  const foreign = 'https://127.0.0.2:8443/upload/steal?tempauth=x'
  await store.put(key, { ...session(foreign, data.length), driveId: drive.id, parentId: 'root', name: 'planted.bin' })
  const r = await c.upload(parent, 'planted.bin', { size: data.length, read: async (o, n) => data.subarray(o, o + n) }, { fragmentSize: 327_680, sessionStore: store, sourceId: 'v1' })
  t.equal(r.item.size, data.length, 'uploaded through a session of its own')
  t.same(fd.seen.filter((s) => !s.origin.includes(`:${emu.port}`)), [], 'no request to the planted host')
  t.equal(await store.get(key), undefined, 'the planted session is gone')

  // Abandoned-session clean-up does not DELETE a planted URL either.
  await store.put('old', session(foreign, 10, Date.now() - 1000))
  t.equal(await c.cancelAbandonedUploads(store), 1, 'the expired entry is forgotten')
  t.same(fd.seen.filter((s) => !s.origin.includes(`:${emu.port}`)), [], 'still no request to the planted host')
  t.same(await store.list(), [])
})
