import t from 'tap'
import { mkdtemp, open, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runExerciser } from './exerciser.js'

const quiet = () => undefined

t.test('passes on a local directory, runs the cache hook between reopens, and replays exactly from its seed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'odfs-ex-test-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  let drops = 0
  const run = () => runExerciser({ dir, seed: 7, ops: 3000, files: 4, maxSize: 256 * 1024, dropKernelCaches: false, dropCaches: () => { drops++ }, log: quiet })
  const a = await run()
  t.equal(a.ok, true, a.divergence ?? 'no divergence')
  t.equal(a.ops, 3000)
  t.ok(a.filesChecked > 4, `${a.filesChecked} whole-file checks`)
  t.ok(a.callerCacheDrops > 0 && a.callerCacheDrops === drops, `cache hook ran ${drops} times`)
  t.equal(a.expected.length, 4)
  t.ok(a.expected.some((f) => f.name !== `f${a.expected.indexOf(f)}`), 'files were renamed')
  t.ok(a.expected.some((f) => f.size > 0))
  const b = await run()
  t.same(b.expected, a.expected, 'same seed, same files, names and content')
  t.same(await readdir(dir), [], 'work directories removed after a passing run')
})

t.test('passes on a tmpfs', async (t) => {
  const mounts = await readFile('/proc/mounts', 'utf8')
  t.match(mounts, /^\S+ \/dev\/shm tmpfs /m, '/dev/shm is a tmpfs')
  const dir = await mkdtemp('/dev/shm/odfs-ex-test-')
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const r = await runExerciser({ dir, seed: 8, ops: 3000, files: 4, maxSize: 256 * 1024, dropKernelCaches: false, log: quiet })
  t.equal(r.ok, true, r.divergence ?? 'no divergence')
})

t.test('reports the first divergence with the seed, a replay command and the operation log tail', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'odfs-ex-test-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // A "cache drop" that loses data: flips the first byte of the first non-empty file behind the exerciser's back.
  const corrupt = async () => {
    const [work] = (await readdir(dir)).filter((n) => n.startsWith('odfs-exerciser-'))
    for (const name of (await readdir(join(dir, work!))).sort()) {
      const p = join(dir, work!, name)
      if ((await stat(p)).size === 0) continue
      const fh = await open(p, 'r+')
      const b = Buffer.alloc(1)
      await fh.read(b, 0, 1, 0)
      b[0] = b[0]! ^ 0xff
      await fh.write(b, 0, 1, 0)
      await fh.close()
      return
    }
  }
  const lines: string[] = []
  const run = () => runExerciser({ dir, seed: 11, ops: 3000, files: 4, maxSize: 256 * 1024, dropKernelCaches: false, dropCaches: corrupt, log: (l) => lines.push(l) })
  const r = await run()
  await rm(r.workDir, { recursive: true, force: true })
  await rm(r.refDir, { recursive: true, force: true })
  t.equal(r.ok, false)
  t.match(lines[0], /^exerciser seed=11 ops=3000 files=4 /, 'the seed is printed first')
  t.match(r.divergence, /^DIVERGENCE after \d+ operations \(seed 11\): .*differs from byte 0/)
  t.match(r.divergence, /\nreplay: node .*test\/faults\/exerciser\.ts --dir .* --seed 11 --ops 3000 --files 4/)
  t.match(r.divergence, /\nlast operations:\n {2}#\d+ /)
  t.ok(r.ops < 3000)
  t.ok(r.bytesLost >= 1, `${r.bytesLost} bytes lost`)
  const again = await run()
  await rm(again.refDir, { recursive: true, force: true })
  t.equal(again.divergence?.split('\n')[0], r.divergence?.split('\n')[0], 'the replay stops at the same operation')
})
