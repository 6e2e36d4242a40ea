// Shared items through the mount (issue 8): Shared with me (sharedWithMe, its
// retirement, links added with `odfs shared add`), read-only shares, moves across
// drives, document libraries, the virtual folders; and `odfs status` of a mount.
import t from 'tap'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { sh, world, type World } from './support.js'
import { graphCaller, tokenFor } from '../support/emulator.js'

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
const PLAN = 'Project X plan\n1. build\n2. ship\n'

let w: World
t.before(async () => {
  w = await world(t)
})

t.test('Shared with me: read, read-only share, cross-drive move, libraries, virtual folders, status', async (t) => {
  await w.emu.store.writeFile('user1', 'conf/report.txt', 'base version\n')
  const m = await w.mount(['--write-back', '3600'])
  const shared = join(m.mnt, 'Shared with me')
  t.equal((await sh(`cat ${q(join(shared, 'Project X', 'plan.txt'))}`)).stdout, PLAN, 'a file in a folder user2 shared is read by user1')
  t.equal((await stat(join(shared, 'Budget.xlsx'))).size, 24_576)
  t.equal((await sh(`wc -c < ${q(join(shared, 'Budget.xlsx'))}`)).stdout.trim(), '24576')

  const ro = await sh(`echo changed > ${q(join(shared, 'Budget.xlsx'))}`)
  t.not(ro.code, 0, 'writing a read-only share fails')
  t.match(ro.stderr, /Permission denied/, 'EACCES')

  const mine = join(m.mnt, 'My files', 'move-me.txt')
  t.equal((await sh(`echo moving > ${q(mine)}`)).code, 0)
  const rn = await sh(`python3 -c 'import os,sys; os.rename(sys.argv[1], sys.argv[2])' ${q(mine)} ${q(join(shared, 'Project X', 'moved.txt'))}`)
  t.not(rn.code, 0)
  t.match(rn.stderr, /Invalid cross-device link/, 'rename into another drive is EXDEV')
  const mv = await sh(`mv ${q(mine)} ${q(join(shared, 'Project X', 'moved.txt'))}`)
  t.equal(mv.code, 0, `mv falls back to copy and delete: ${mv.stderr}`)
  t.equal((await sh(`cat ${q(join(shared, 'Project X', 'moved.txt'))}`)).stdout, 'moving\n')
  t.equal((await sh(`test -e ${q(mine)}`)).code, 1, 'the source is gone')

  const libs = join(m.mnt, 'Shared libraries')
  t.same((await sh(`ls ${q(libs)}`)).stdout.split('\n').filter(Boolean), ['Engineering'])
  t.same((await sh(`ls ${q(join(libs, 'Engineering'))}`)).stdout.split('\n').filter(Boolean), ['Documents', 'Specs'])
  const libFile = join(libs, 'Engineering', 'Documents', 'from-mount.txt')
  t.equal((await sh(`echo library > ${q(libFile)}`)).code, 0)

  // Pending uploads of a running mount (write-back 3600 s keeps them pending).
  t.equal((await sh(`printf LOCAL > ${q(join(m.mnt, 'My files', 'conf', 'report.txt'))}`)).code, 0)
  const st = await w.odfs(['status', '--token-store', 'file'])
  t.equal(st.code, 0, st.stderr)
  t.match(st.stdout, `Mounted at ${m.mnt}:`)
  t.match(st.stdout, /pending: from-mount\.txt \(8 bytes/)
  t.match(st.stdout, /pending: moved\.txt/)
  const sj = JSON.parse((await w.odfs(['status', '--token-store', 'file', '--json'])).stdout)
  t.same(sj.mounts.map((x: { mountpoint: string }) => x.mountpoint), [m.mnt])
  t.same(sj.mounts[0].pending.map((p: { name: string }) => p.name).sort(), ['from-mount.txt', 'moved.txt', 'report.txt'])
  t.same(sj.mounts[0].conflicts, [])

  for (const dir of [m.mnt, shared, libs, join(libs, 'Engineering')]) {
    const c = await sh(`touch ${q(join(dir, 'new.txt'))}`)
    t.match(c.stderr, /Permission denied/, `creating a file in ${dir} is EACCES`)
    const d = await sh(`mkdir ${q(join(dir, 'newdir'))}`)
    t.match(d.stderr, /Permission denied/, `creating a folder in ${dir} is EACCES`)
  }

  await w.emu.store.writeFile('user1', 'conf/report.txt', 'changed remotely\n')
  const sync = await w.odfs(['sync', m.mnt])
  t.equal(sync.code, 0, sync.stderr)
  const withConflict = await w.odfs(['status', '--token-store', 'file'])
  t.match(withConflict.stdout, `Mounted at ${m.mnt}: 0 upload(s) pending, 1 conflict(s)`)
  t.match(withConflict.stdout, /conflict: report\.txt changed on OneDrive meanwhile; this mount's version is report \(conflict [^)]+\)\.txt/)
  const ls = await w.odfs(['ls', '--token-store', 'file', 'Shared libraries/Engineering/Documents'])
  t.match(ls.stdout, /\s8 .*from-mount\.txt/, 'the file written in the library is on OneDrive')
  const lsx = await w.odfs(['ls', '--token-store', 'file', 'Shared with me/Project X'])
  t.match(lsx.stdout, /moved\.txt/)
  t.equal((await m.stop()).code, 0)
  const after = await w.odfs(['status', '--token-store', 'file'])
  t.equal(after.code, 0)
  t.notMatch(after.stdout, /Mounted at|pending:/, 'no mount running: status says nothing more')
})

t.test('sharedWithMe retired, then a link added with odfs shared add', async (t) => {
  w.emu.setFaults({ sharedWithMeRetired: true })
  t.teardown(() => w.emu.setFaults({ sharedWithMeRetired: false }))
  const m = await w.mount()
  const shared = join(m.mnt, 'Shared with me')
  t.equal((await sh(`cat ${q(join(shared, 'Project X', 'plan.txt'))}`)).stdout, PLAN, 'found without sharedWithMe')
  t.equal((await stat(join(shared, 'Budget.xlsx'))).size, 24_576)
  t.equal((await m.stop()).code, 0)

  // user2 makes a link to a file user1 has no access to yet.
  const u2 = graphCaller(w.emu, await tokenFor(w.emu, 'user2'))
  const f = await u2('PUT', '/me/drive/root:/Private/Linked notes.txt:/content', Buffer.from('sent by link\n'))
  t.equal(f.status, 201)
  const link = (await u2('POST', `/me/drive/items/${f.body.id}/createLink`, { type: 'view', scope: 'organization' })).body.link.webUrl as string
  t.match(link, /^https:\/\//)
  const before = await w.odfs(['ls', '--token-store', 'file', 'Shared with me'])
  t.notMatch(before.stdout, /Linked notes/, 'not visible before the link is added')

  const add = await w.odfs(['shared', 'add', link, '--token-store', 'file'])
  t.equal(add.code, 0, add.stderr)
  const list = await w.odfs(['shared', 'list'])
  t.equal(list.stdout, `Linked notes.txt\t${link}\n`)
  const files = (await sh(`ls ${q(join(w.dir, 'state', 'odfs'))}`)).stdout.split('\n').filter((n) => n.startsWith('shared-'))
  t.equal(files.length, 1)
  t.equal((await stat(join(w.dir, 'state', 'odfs', files[0]!))).mode & 0o777, 0o600, 'the links file is private')

  const m2 = await w.mount()
  t.equal((await sh(`cat ${q(join(m2.mnt, 'Shared with me', 'Linked notes.txt'))}`)).stdout, 'sent by link\n', 'a later mount shows the link')
  t.equal((await m2.stop()).code, 0)
  t.match((await w.odfs(['ls', '--token-store', 'file', 'Shared with me'])).stdout, /Linked notes\.txt/, 'odfs ls shows it')

  // The item is deleted: the stale link is skipped, the rest of Shared with me still lists.
  t.equal((await u2('DELETE', `/me/drive/items/${f.body.id}`)).status, 204)
  const stale = await w.odfs(['ls', '--token-store', 'file', 'Shared with me'])
  t.equal(stale.code, 0, stale.stderr)
  t.notMatch(stale.stdout, /Linked notes/)
  t.match(stale.stdout, /Project X/, 'a link that no longer resolves does not hide the other shared items')

  const rm = await w.odfs(['shared', 'remove', 'Linked notes.txt'])
  t.equal(rm.code, 0, rm.stderr)
  t.equal((await w.odfs(['shared', 'list'])).stdout, '', 'forgotten')
  t.not((await w.odfs(['shared', 'remove', 'Linked notes.txt'])).code, 0, 'removing an unknown name fails')
})
