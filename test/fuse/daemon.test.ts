// The daemon's life cycle as a user drives it: `odfs mount --daemon` returns once
// the mount answers and `odfs unmount` stops it after its uploads; a mount point
// left stale by a killed FUSE process ("Transport endpoint is not connected") is
// cleared by the next `odfs mount`, which says so.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ROOT } from '../support/build.js'
import { world, sh } from './support.js'

t.test('mount --daemon, then odfs unmount', async (t) => {
  const w = await world(t, { seed: 'demo' })
  const mnt = join(w.dir, 'd')
  await mkdir(mnt)
  t.teardown(() => sh(`fusermount -uz '${mnt}' 2>/dev/null; true`))
  const r = await w.odfs(['mount', mnt, '--daemon', '--token-store', 'file', '--write-back', '30'])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout, `ready: ${mnt}\n`)
  t.ok((await readdir(join(mnt, 'My files'))).includes('README.txt'), 'the mount answers after the command returned')
  const pid = /daemon pid (\d+)/.exec(r.stderr)?.[1]
  t.ok(pid, 'the command names the daemon\'s pid')
  const environ = (await readFile(`/proc/${pid}/environ`, 'latin1')).split('\0')
  t.ok(environ.includes('MALLOC_ARENA_MAX=2') && environ.includes('MALLOC_MMAP_THRESHOLD_=131072'), 'the daemon runs with the malloc settings of the systemd unit (docs/performance.md)')
  await writeFile(join(mnt, 'My files/from-daemon.txt'), 'daemon\n')
  const u = await w.odfs(['unmount', mnt])
  t.equal(u.code, 0, u.stderr)
  t.match(u.stderr, /unmounted/)
  t.same(await readdir(mnt), [], 'nothing mounted any more')
  const get = await w.odfs(['get', '--token-store', 'file', 'My files/from-daemon.txt', join(w.dir, 'back.txt')])
  t.equal(get.code, 0, get.stderr)
  t.equal(await readFile(join(w.dir, 'back.txt'), 'utf8'), 'daemon\n', 'the pending upload went up before the daemon stopped')
})

t.test('a stale mount point is cleared by the next mount', async (t) => {
  const w = await world(t, { seed: 'demo' })
  const mnt = join(w.dir, 'stale')
  await mkdir(mnt)
  t.teardown(() => sh(`fusermount -uz '${mnt}' 2>/dev/null; true`))
  // A FUSE process without auto_unmount, killed: the kernel mount stays behind.
  const p = spawn(process.execPath, ['-e', `const F = require('fuse-native'); new F(${JSON.stringify(mnt)}, {}, {}).mount((e) => console.log(e ? 'failed' : 'up'))`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((res) => p.stdout!.on('data', () => res()))
  p.kill('SIGKILL')
  await new Promise((res) => p.on('close', res))
  await t.rejects(stat(join(mnt, 'x')), { code: 'ENOTCONN' }, 'stale: Transport endpoint is not connected')
  const m = await w.mount([], mnt)
  t.match(m.output().stderr, /left mounted by a daemon that stopped \(Transport endpoint is not connected\); clearing it/)
  t.ok((await readdir(join(mnt, 'My files'))).includes('README.txt'))
  await m.stop()
})
