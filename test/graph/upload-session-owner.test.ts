// `odfs put --user NAME` (root acting for a service account) keeps the resumable
// upload sessions in that user's state directory, owned by them, as their tokens
// are: created there safely, read back only when they own it.
import t from 'tap'
import { chown, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileUploadSessionStore, type PersistedUploadSession } from '../../src/graph/index.js'

const root = process.getuid?.() === 0
const USER = { uid: 41234, gid: 41234 }

const session: PersistedUploadSession = {
  uploadUrl: 'https://a.up.1drv.com/up/1', expiresAt: Date.now() + 3_600_000, size: 10, fragmentSize: 327_680,
  driveId: 'd', parentId: 'p', name: 'x', sourceId: 'v1', offset: 0,
}

t.test("root keeps another user's upload sessions in their home, owned by them", { skip: !root && 'needs root' }, async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'odfs-sess-owner-'))
  t.teardown(() => rm(base, { recursive: true, force: true }))
  const home = join(base, 'home')
  await mkdir(home, { mode: 0o700 })
  await chown(home, USER.uid, USER.gid)
  const dir = join(home, '.local', 'state', 'odfs', 'uploads')

  const refused = await new FileUploadSessionStore(dir).put('k', session).catch((e: unknown) => e)
  t.match(refused, { code: 'UNSAFE_PATH' }, "without the owner, root refuses a directory the user controls")

  const store = new FileUploadSessionStore(dir, USER)
  await store.put('k', session)
  for (const d of [join(home, '.local'), join(home, '.local', 'state'), join(home, '.local', 'state', 'odfs'), dir]) {
    t.equal((await stat(d)).uid, USER.uid, `${d.slice(home.length)} created as the user's`)
  }
  const [file] = await readdir(dir)
  const st = await stat(join(dir, file!))
  t.equal(st.uid, USER.uid, 'the session file is the user\'s')
  t.equal(st.mode & 0o777, 0o600)
  t.same(await store.get('k'), session, 'read back')
  t.same((await store.list()).map((s) => s.key), ['k'])
  await store.delete('k')
  t.same(await readdir(dir), [], 'deleted')
})
