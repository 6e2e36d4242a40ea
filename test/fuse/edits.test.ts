// Edits over a real mount: mv of folders, mv -f over a file, a case-only
// rename, rm -rf, mkdir -p, touch -d read back by stat, truncate -s, >> appends,
// dd conv=notrunc seek=, git init/add/commit, unlink of an open file.
import t from 'tap'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { world, sh, type World, type Mounted } from './support.js'

let w: World
let m: Mounted

t.before(async () => {
  w = await world(t)
  m = await w.mount()
})

t.test('mv of folders, mv -f over a file, case-only rename, rm -rf, mkdir -p', async (t) => {
  const base = join(m.mnt, 'My files/mv')
  t.equal((await sh(`mkdir -p '${base}/a/b/c' && echo one > '${base}/a/b/c/f' && echo two > '${base}/g' && echo three > '${base}/h'`)).code, 0)
  t.equal((await sh(`mv '${base}/a' '${base}/z'`)).code, 0)
  t.equal(await readFile(join(base, 'z/b/c/f'), 'utf8'), 'one\n')
  t.equal((await sh(`mv -f '${base}/g' '${base}/h'`)).code, 0)
  t.equal(await readFile(join(base, 'h'), 'utf8'), 'two\n')
  t.equal((await sh(`ls '${base}'`)).stdout, 'h\nz\n')
  t.equal((await sh(`mv '${base}/h' '${base}/H'`)).code, 0)
  t.equal((await sh(`ls '${base}'`)).stdout, 'H\nz\n', 'case-only rename shows the new case')
  t.equal((await sh(`rm -rf '${base}/z'`)).code, 0)
  t.equal((await sh(`ls '${base}'`)).stdout, 'H\n')
  await w.odfs(['sync', m.mnt])
  const ls = await w.odfs(['ls', '--token-store', 'file', 'My files/mv'])
  t.match(ls.stdout, / H\n/)
  t.notMatch(ls.stdout, / z\//)
})

t.test('utimensat: atime and mtime apart, UTIME_OMIT, UTIME_NOW', async (t) => {
  const f = join(m.mnt, 'My files/times.txt')
  t.equal((await sh(`echo x > '${f}' && touch -m -d '2020-01-02 03:04:05 UTC' '${f}'`)).code, 0)
  const mtime = String(Date.parse('2020-01-02T03:04:05Z') / 1000)
  t.equal((await sh(`stat -c %Y '${f}'`)).stdout.trim(), mtime, 'touch -m (atime UTIME_OMIT) sets the mtime given')
  t.equal((await sh(`touch -a -d '2011-01-01 00:00:00 UTC' '${f}'`)).code, 0)
  t.equal((await sh(`stat -c %Y '${f}'`)).stdout.trim(), mtime, 'touch -a (mtime UTIME_OMIT) leaves the mtime')
  const before = Math.floor(Date.now() / 1000)
  t.equal((await sh(`touch -m '${f}'`)).code, 0)
  const now = Number((await sh(`stat -c %Y '${f}'`)).stdout.trim())
  t.ok(now >= before - 1 && now <= Math.floor(Date.now() / 1000) + 1, `touch -m (UTIME_NOW) sets the current time: ${now}`)
  // Python's os.utime sets atime and mtime apart in one call, as rsync -t does.
  t.equal((await sh(`python3 -c "import os; os.utime('${f}', (1000000000, 1500000000))"`)).code, 0)
  t.equal((await sh(`stat -c %Y '${f}'`)).stdout.trim(), '1500000000', 'the mtime, not the atime, is kept')
  await w.odfs(['sync', m.mnt])
  const ls = await w.odfs(['ls', '--json', '--token-store', 'file', 'My files/times.txt'])
  t.match(ls.stdout, /2017-07-14T02:40:00/, `OneDrive holds the mtime: ${ls.stdout.slice(0, 300)}`)
})

t.test('touch -d, truncate -s, >> appends, dd conv=notrunc seek=', async (t) => {
  const f = join(m.mnt, 'My files/edit.txt')
  t.equal((await sh(`echo hello > '${f}' && touch -d '2020-01-02 03:04:05 UTC' '${f}'`)).code, 0)
  t.equal((await sh(`stat -c %Y '${f}'`)).stdout.trim(), String(Date.parse('2020-01-02T03:04:05Z') / 1000))
  t.equal((await sh(`echo world >> '${f}'`)).code, 0)
  t.equal(await readFile(f, 'utf8'), 'hello\nworld\n')
  t.equal((await sh(`printf XY | dd of='${f}' bs=1 seek=2 conv=notrunc status=none`)).code, 0)
  t.equal(await readFile(f, 'utf8'), 'heXYo\nworld\n')
  t.equal((await sh(`truncate -s 3 '${f}'`)).code, 0)
  t.equal(await readFile(f, 'utf8'), 'heX')
  t.equal((await sh(`truncate -s 5 '${f}'`)).code, 0)
  t.same(await readFile(f), Buffer.from('heX\0\0'), 'sparse extension reads zeros')
  t.equal((await sh(`touch -d '2019-05-06 07:08:09 UTC' '${f}'`)).code, 0)
  await w.odfs(['sync', m.mnt])
  const got = await w.odfs(['get', '--token-store', 'file', 'My files/edit.txt', join(w.dir, 'edit.txt')])
  t.equal(got.code, 0, got.stderr)
  t.same(await readFile(join(w.dir, 'edit.txt')), Buffer.from('heX\0\0'), 'OneDrive holds the edited bytes')
  t.equal((await stat(join(w.dir, 'edit.txt'))).mtime.toISOString(), '2019-05-06T07:08:09.000Z', 'and the mtime')
})

t.test('git init, add, commit inside the mount', async (t) => {
  const repo = join(m.mnt, 'My files/repo')
  const env = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@e', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@e', HOME: w.dir }
  const r = await sh(`mkdir '${repo}' && cd '${repo}' && git init -q && echo a > a.txt && mkdir sub && echo b > sub/b.txt && git add . && git commit -qm first && echo c >> a.txt && git commit -qam second && git log --oneline | wc -l && git status --porcelain`, { env })
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout, '2\n', 'two commits, clean tree')
  const fsck = await sh(`cd '${repo}' && git fsck --no-progress 2>&1`, { env })
  t.equal(fsck.code, 0, fsck.stdout)
})

t.test('unlink of an open file: the descriptor keeps working until close, then nothing is left', async (t) => {
  const dir = join(m.mnt, 'My files', 'unlinked')
  const py = `
import os, sys
d = sys.argv[1]
p = os.path.join(d, 'f.txt')
with open(p, 'w') as f: f.write('before unlink\\n')
fd = os.open(p, os.O_RDWR)
os.unlink(p)
print('exists after unlink:', os.path.exists(p))
print('read:', os.pread(fd, 100, 0).decode().strip())
os.pwrite(fd, b'AFTER', 0)
print('read again:', os.pread(fd, 100, 0).decode().strip())
os.close(fd)
# The kernel sends FUSE's release after close(2) returns, and libfuse removes the
# hidden name then: allow it a moment, as a program re-reading the folder would see.
import time
for _ in range(50):
    names = sorted(os.listdir(d))
    if not names: break
    time.sleep(0.1)
print('listing:', names)
`
  const r = await sh(`mkdir -p '${dir}' && python3 -c "$PY" '${dir}'`, { env: { ...process.env, PY: py } })
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /exists after unlink: False/)
  t.match(r.stdout, /read: before unlink/)
  t.match(r.stdout, /read again: AFTERe unlink/)
  const sync = await w.odfs(['sync', m.mnt])
  t.equal(sync.code, 0, sync.stderr)
  const ls = await w.odfs(['ls', '--token-store', 'file', 'My files/unlinked'])
  t.equal(ls.stdout.trim(), '', `nothing left on OneDrive (${ls.stdout.trim()})`)
  t.match(r.stdout, /listing: \[\]/, 'nor in the folder')
})
