// OneDrive's quota through the mount (docs/semantics.md "When data is on OneDrive",
// "Errors"): `df` shows it; a file that does not fit is kept in the write-back spool,
// fsync reports ENOSPC to the writer, the daemon logs why and `odfs sync` names the
// file; once there is room again, the same bytes are uploaded.
import t from 'tap'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { sh, world, type World } from './support.js'

const MiB = 1024 * 1024
let w: World
t.before(async () => {
  w = await world(t)
})

t.test('df shows the quota, and a file past it gets ENOSPC and stays in the spool', async (t) => {
  w.emu.store.setQuota('user1', 3 * MiB)
  const m = await w.mount(['--write-back', '3600', '--log-level', 'warn'])
  const df = await sh(`df -B1 --output=size,avail '${m.mnt}' | tail -1`)
  const [size, avail] = df.stdout.trim().split(/\s+/).map(Number)
  t.equal(size, 3 * MiB, `df size is the quota: ${df.stdout}`)
  t.ok(avail! <= size! && avail! > 2 * MiB, `df avail is what is left of it: ${df.stdout}`)

  const mine = join(m.mnt, 'My files')
  const small = await sh(`head -c ${MiB} /dev/urandom > '${join(mine, 'fits.bin')}' && sync '${join(mine, 'fits.bin')}'`)
  t.equal(small.code, 0, `a file within the quota: ${small.stderr}`)
  const big = join(mine, 'big.bin')
  const dd = await sh(`head -c ${4 * MiB} /dev/urandom > '${join(w.dir, 'big.src')}' && dd if='${join(w.dir, 'big.src')}' of='${big}' bs=1M conv=fsync status=none`)
  t.not(dd.code, 0, 'dd conv=fsync fails')
  t.match(dd.stderr, /No space left on device/, `fsync reports ENOSPC: ${dd.stderr}`)
  t.equal((await stat(big)).size, 4 * MiB, 'the file is still there, in the spool')
  t.same(await readFile(big), await readFile(join(w.dir, 'big.src')), 'with its bytes')
  t.match(m.output().stderr, /upload failed; the file stays in the write-back spool/, 'the daemon logs it')
  t.match(m.output().stderr, /big\.bin/, 'naming the file')
  const sync = await w.odfs(['sync', m.mnt])
  t.not(sync.code, 0, 'odfs sync fails')
  t.match(sync.stderr, /not uploaded: big\.bin/, `and names the file: ${sync.stderr}`)

  w.emu.store.setQuota('user1', 1024 * MiB)
  const again = await w.odfs(['sync', m.mnt])
  t.equal(again.code, 0, `with room again, odfs sync uploads it: ${again.stderr}`)
  const item = w.emu.store.itemByPath('user1', 'big.bin')
  t.equal(item?.size, 4 * MiB, 'OneDrive holds the file')
  await m.stop()
})

t.test('an upload refused in the background does not end the daemon', async (t) => {
  w.emu.store.setQuota('user1', 3 * MiB)
  const m = await w.mount(['--write-back', '1', '--cache-dir', join(w.dir, 'cache-bg')])
  const f = join(m.mnt, 'My files', 'later.bin')
  t.equal((await sh(`head -c ${4 * MiB} /dev/urandom > '${f}'`)).code, 0, 'close succeeds: the file is journaled')
  // The write-back timer uploads it a second later, and the service refuses it.
  for (let i = 0; i < 300 && !/upload failed.*later\.bin|later\.bin.*upload failed/.test(m.output().stderr); i++) await sh('sleep 0.1')
  t.match(m.output().stderr, /later\.bin/, 'the refusal is logged')
  const sync = await w.odfs(['sync', m.mnt])
  t.equal(m.proc.exitCode, null, 'the daemon still runs')
  t.match(sync.stderr, /not uploaded: later\.bin/, `odfs sync reaches it and names the file: ${sync.stderr}`)
  t.equal((await stat(f)).size, 4 * MiB, 'the file is still there')
  await m.stop('SIGKILL')
})
