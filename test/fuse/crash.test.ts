// Crash-safe write-back: files closed before the daemon is SIGKILLed are in the
// journal and reach OneDrive when the next mount starts (before it answers); a
// file still open at the crash never arrives half-written; a second daemon on
// the same spool is refused with a clear message.
import t from 'tap'
import { spawn } from 'node:child_process'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { world, sh } from './support.js'

t.test('SIGKILL during a copy, then remount: every closed file arrives', async (t) => {
  const w = await world(t)
  // A long write-back delay: nothing is uploaded before the crash.
  const m = await w.mount(['--write-back', '600'])
  const dir = join(m.mnt, 'My files/crash')
  const cp = await sh(`mkdir '${dir}' && for i in $(seq 1 20); do head -c $((i * 10000)) /dev/urandom > '${dir}'/f$i; done; sha256sum '${dir}'/f* | sed 's|.*/||' | sort`)
  t.equal(cp.code, 0, cp.stderr)
  const sums = cp.stdout.split('\n').filter(Boolean).length
  t.equal(sums, 20)
  const spool = join(w.dir, 'cache/odfs')
  const records = await sh(`find '${spool}' -name '*.json' -not -path '*/sessions/*' | wc -l`)
  t.equal(records.stdout.trim(), '20', 'every closed file is journaled')
  const perms = await sh(`find '${spool}' -name '*.data' -printf '%m\\n' | sort -u; find '${spool}' -name 'spool-*' -printf '%m\\n'`)
  t.equal(perms.stdout, '600\n700\n', 'spool files 0600 in a 0700 directory')
  // A writer that has not closed: its own process holds the descriptor (a descriptor of this
  // process would be closed, i.e. flushed, by every exec of a child it spawns; a dup'd one by its close).
  const holder = spawn(process.execPath, ['-e', `const fs = require('fs'); const fd = fs.openSync(process.argv[1], 'w'); fs.writeSync(fd, Buffer.alloc(100000, 1)); console.log('ready'); setInterval(() => {}, 1e6)`, join(dir, 'open-at-crash')], { stdio: ['ignore', 'pipe', 'ignore'] })
  await new Promise<void>((resolve) => holder.stdout!.on('data', () => resolve()))
  t.same(await w.odfs(['ls', '--token-store', 'file', 'My files/crash']).then((r) => r.stdout.trim()), '', 'nothing uploaded yet')

  const second = await w.mount(['--write-back', '1']).then(() => 'mounted', (e: Error) => e.message)
  t.match(second, /another odfs mount \(pid \d+\) uses the write-back spool/, 'a second daemon on the same spool is refused')

  m.proc.kill('SIGKILL')
  await m.done
  holder.kill('SIGKILL')
  await sh(`fusermount -uz '${m.mnt}' 2>/dev/null; true`)

  const again = await w.mount(['--write-back', '1'], m.mnt)
  t.match(again.output().stderr, /uploaded 20 of 20 files an earlier run left in the write-back spool/)
  const ls = await w.odfs(['ls', '--json', '--token-store', 'file', 'My files/crash'])
  const names = (JSON.parse(ls.stdout) as { Name: string; Size: number }[]).map((e) => e.Name).sort()
  t.same(names, Array.from({ length: 20 }, (_, i) => `f${i + 1}`).sort(), 'all closed files are on OneDrive, the open one is not')
  const back = await sh(`sha256sum '${join(again.mnt, 'My files/crash')}'/f* | sed 's|.*/||' | sort`)
  t.equal(back.stdout, cp.stdout, 'with the bytes that were written')
  t.same((await readdir(join(again.mnt, 'My files/crash'))).sort(), names)
  t.equal((await stat(join(again.mnt, 'My files/crash/f3'))).size, 30000)
  const r = await again.stop()
  t.equal(r.code, 0, r.stderr)
  t.equal((await sh(`find '${spool}' -name '*.json' -not -path '*/sessions/*' | wc -l`)).stdout.trim(), '0', 'the journal is empty')
})
