// Faults through a real mount of the emulator: a daemon SIGKILLed mid-copy and a
// file changed by another client while its local copy waits (the 429/503/reset
// storm is in storm.test.ts). Every check compares sha256 of what the emulator
// stores with what was written.
import t from 'tap'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { graphCaller, tokenFor } from '../support/emulator.js'
import { world, sh } from './support.js'
import { makeSource, remoteSums } from './sums.js'

t.test('SIGKILL during a cp of 200 files, remount: every file cp closed is intact on OneDrive', async (t) => {
  const w = await world(t)
  const { src, sums } = await makeSource(w)
  const m = await w.mount(['--write-back', '1'])
  const dst = join(m.mnt, 'My files/kill')
  const log = join(w.dir, 'closed.log')
  // One cp per file: a name is logged only after its cp exited, i.e. after its last close.
  const copy = sh(`mkdir '${dst}' && for f in '${src}'/*; do cp "$f" '${dst}'/ || exit 1; echo "$(basename "$f")" >> '${log}'; done`)
  // Kill the daemon once about half the files are closed (the copy is still going).
  for (;;) {
    const n = (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean).length
    if (n >= 100) break
    await new Promise((r) => setTimeout(r, 20))
  }
  m.proc.kill('SIGKILL')
  await m.done
  const cpRun = await copy
  t.not(cpRun.code, 0, 'cp saw the daemon go away')
  await sh(`fusermount -uz '${m.mnt}' 2>/dev/null; true`)
  const closed = (await readFile(log, 'utf8')).split('\n').filter(Boolean)
  t.ok(closed.length >= 100 && closed.length < 200, `killed mid-copy (${closed.length} of 200 closed)`)

  const again = await w.mount(['--write-back', '1'], m.mnt)
  const r = await again.stop()
  t.equal(r.code, 0, r.stderr)
  const remote = await remoteSums(w, 'kill')
  const missing = closed.filter((n) => remote.get(n) !== sums.get(n))
  t.same(missing, [], `every closed file is on OneDrive with its bytes (${closed.length} checked)`)
  const torn = [...remote].filter(([n, s]) => sums.get(n) !== s).map(([n]) => n)
  t.same(torn, [], 'no file is on OneDrive half-written under its final name')
})

t.test('a file edited through the mount and by another client meanwhile: both versions stay, the daemon says so', async (t) => {
  const w = await world(t)
  const m = await w.mount(['--write-back', '600'])
  const dir = join(m.mnt, 'My files/conflict')
  t.equal((await sh(`mkdir '${dir}' && printf 'v1\\n' > '${dir}/doc.txt'`)).code, 0)
  const first = await w.odfs(['sync', m.mnt])
  t.equal(first.code, 0, first.stderr)
  // Edited through the mount: the copy waits (600 s write-back delay)...
  t.equal((await sh(`printf 'local edit\\n' >> '${dir}/doc.txt'`)).code, 0)
  // ...while another client replaces the file on OneDrive.
  const graph = graphCaller(w.emu, await tokenFor(w.emu, 'user1'))
  const put = await graph('PUT', '/me/drive/root:/conflict/doc.txt:/content', Buffer.from('remote edit\n'), { 'content-type': 'text/plain' })
  t.equal(put.status, 200, 'the other client replaced the file')
  const sync = await w.odfs(['sync', m.mnt])
  t.equal(sync.code, 0, sync.stderr)
  t.match(sync.stderr, /conflict: doc\.txt changed on OneDrive meanwhile; this mount's version is doc \(conflict \d{4}-\d\d-\d\d \d{6} [^)]+\)\.txt/, 'odfs sync names the conflict copy')
  const r = await m.stop()
  t.equal(r.code, 0, r.stderr)
  t.match(r.stderr, /changed on OneDrive while a local copy waited/, 'the daemon log says so')
  const sha = (s: string) => createHash('sha256').update(s).digest('hex')
  const remote = await remoteSums(w, 'conflict')
  t.equal(remote.size, 2, `two files: ${[...remote.keys()].join(', ')}`)
  t.equal(remote.get('doc.txt'), sha('remote edit\n'), 'the other client\'s version keeps the name')
  const copy = [...remote.keys()].find((n) => /^doc \(conflict .+\)\.txt$/.test(n))
  t.ok(copy, 'the local version is the conflict copy')
  t.equal(remote.get(copy!), sha('v1\nlocal edit\n'), 'with the bytes written through the mount')
})
