// Everyday tools over a real mount: cp -a of a mixed tree and its bytes on
// OneDrive (checked through a fresh mount), rsync with nothing to do, tar, find,
// du (edits: edits.test.ts).
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile, readFile, stat, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { world, sh, apiCalls, type World, type Mounted } from './support.js'

let w: World
let m: Mounted
let src: string

t.before(async () => {
  w = await world(t)
  src = join(w.dir, 'src')
  await mkdir(join(src, 'deep/er/est'), { recursive: true })
  await mkdir(join(src, 'with space/ünïcödé 文件'), { recursive: true })
  for (let i = 0; i < 40; i++) await writeFile(join(src, i % 2 ? 'deep' : 'deep/er', `small-${i}.txt`), `file ${i}\n`.repeat(i + 1))
  await writeFile(join(src, 'big-1.bin'), randomBytes(5 * 1024 * 1024 + 123))
  await writeFile(join(src, 'deep/er/est/big-2.bin'), randomBytes(3 * 1024 * 1024))
  await writeFile(join(src, 'with space/ünïcödé 文件/naïve café.txt'), 'unicode\n')
  await writeFile(join(src, 'with space/a file with spaces.txt'), 'spaces\n')
  await writeFile(join(src, 'empty'), '')
  await utimes(join(src, 'big-1.bin'), new Date('2021-02-03T04:05:06Z'), new Date('2021-02-03T04:05:06Z'))
  m = await w.mount()
})

t.test('cp -a of a mixed tree: diff -r and sha256sum agree, OneDrive holds the same bytes', async (t) => {
  const dst = join(m.mnt, 'My files/tree')
  const cp = await sh(`cp -a '${src}' '${dst}'`)
  t.equal(cp.code, 0, cp.stderr)
  const diff = await sh(`diff -r '${src}' '${dst}'`)
  t.equal(diff.code, 0, diff.stdout + diff.stderr)
  const sums = (d: string) => sh(`cd '${d}' && find . -type f -print0 | sort -z | xargs -0 sha256sum`)
  const a = await sums(src)
  const b = await sums(dst)
  t.equal(b.stdout, a.stdout, 'sha256sum of every file')
  t.equal((await stat(join(dst, 'big-1.bin'))).mtime.toISOString(), '2021-02-03T04:05:06.000Z', 'cp -a kept the mtime')
  t.equal((await stat(join(dst, 'empty'))).size, 0)

  const sync = await w.odfs(['sync', m.mnt])
  t.equal(sync.code, 0, sync.stderr)
  // A fresh mount has nothing local: what it reads comes from OneDrive.
  const fresh = await w.mount(['--cache-dir', join(w.dir, 'cache2')])
  const again = await sums(join(fresh.mnt, 'My files/tree'))
  t.equal(again.stdout, a.stdout, 'a fresh mount reads the same bytes from OneDrive')
  t.equal((await stat(join(fresh.mnt, 'My files/tree/big-1.bin'))).mtime.toISOString(), '2021-02-03T04:05:06.000Z', 'mtime on OneDrive')
  const r = await fresh.stop()
  t.equal(r.code, 0, r.stderr)
})

t.test('rsync -rt a second time transfers nothing and makes no per-file Graph call', async (t) => {
  const dst = join(m.mnt, 'My files/rs')
  const first = await sh(`rsync -rt '${src}/' '${dst}/'`)
  t.equal(first.code, 0, first.stderr)
  await w.odfs(['sync', m.mnt])
  await w.resetStats()
  // rsync compares size and mtime: the times the first run set (utimens with atime and
  // mtime apart) must have reached OneDrive for this run to skip every file.
  const second = await sh(`rsync -rt --stats '${src}/' '${dst}/'`)
  t.equal(second.code, 0, second.stderr)
  t.match(second.stdout, /Number of regular files transferred: 0/)
  const calls = apiCalls(await w.stats())
  const perFile = Object.entries(calls).filter(([k]) => !/\/children$/.test(k)).reduce((n, [, v]) => n + v, 0)
  t.equal(perFile, 0, `only listings: ${JSON.stringify(calls)}`)
})

t.test('tar, find, du', async (t) => {
  const dst = join(m.mnt, 'My files/tarred')
  const tar = await sh(`mkdir '${dst}' && tar -C '${src}' -cf - . | tar -C '${dst}' -xf -`)
  t.equal(tar.code, 0, tar.stderr)
  t.equal((await sh(`diff -r '${src}' '${dst}'`)).code, 0)
  const out = await sh(`tar -C '${dst}' -cf - . | tar -tf - | sort`)
  const inp = await sh(`tar -C '${src}' -cf - . | tar -tf - | sort`)
  t.equal(out.stdout, inp.stdout, 'tar c of the mount lists the same tree')
  const f1 = await sh(`cd '${src}' && find . | sort`)
  const f2 = await sh(`cd '${dst}' && find . | sort`)
  t.equal(f2.stdout, f1.stdout, 'find')
  const du = await sh(`du -sb '${dst}'`)
  const duSrc = await sh(`du -sb --apparent-size '${src}'`)
  t.ok(Number(du.stdout.split('\t')[0]) >= Number(duSrc.stdout.split('\t')[0]) - 4096 * 10, `du ${du.stdout} vs ${duSrc.stdout}`)
})
