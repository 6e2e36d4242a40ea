// The lock between processes behind the token cache: exclusion, re-entry,
// stale locks of dead processes broken, bounded waits with a clear error.
import t from 'tap'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir, hostname } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { ManualClock, OdfsError, withFileLock } from '../../src/common/index.js'

async function tmp(t: any) {
  const dir = await mkdtemp(join(tmpdir(), 'odfs-lock-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Let pending I/O and timers-free continuations run until `cond` holds. */
async function until(cond: () => boolean) {
  for (let i = 0; i < 10_000 && !cond(); i++) await new Promise((r) => setImmediate(r))
  if (!cond()) throw new Error('condition never met')
}

t.test('holders never overlap; the lock file is gone afterwards', async (t) => {
  const dir = await tmp(t)
  let inside = 0
  let most = 0
  const order: number[] = []
  await Promise.all([1, 2, 3, 4].map((n) => withFileLock(dir, 'x.lock', async () => {
    inside++
    most = Math.max(most, inside)
    await new Promise((r) => setImmediate(r))
    order.push(n)
    inside--
  }, { pollMs: 1 })))
  t.equal(most, 1, 'one holder at a time')
  t.equal(order.length, 4)
  t.same(await readdir(dir), [])
})

t.test('re-entrant within one call chain', async (t) => {
  const dir = await tmp(t)
  const r = await withFileLock(dir, 'x.lock', () => withFileLock(dir, 'x.lock', async () => 42))
  t.equal(r, 42)
})

t.test('work scheduled under the lock and run after its release does not hold it', async (t) => {
  const dir = await tmp(t)
  let open!: () => void
  const gate = new Promise<void>((r) => (open = r))
  const events: string[] = []
  let late: Promise<void> | undefined
  await withFileLock(dir, 'x.lock', async () => {
    // A continuation created inside the lock carries its context, and runs later.
    late = gate.then(() => withFileLock(dir, 'x.lock', async () => void events.push('late work runs'), { pollMs: 1 }))
  })
  await withFileLock(dir, 'x.lock', async () => {
    open()
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r))
    events.push('the next holder ends')
  }, { pollMs: 1 })
  await late
  t.same(events, ['the next holder ends', 'late work runs'], 'the late work waited for the lock')
  t.same(await readdir(dir), [])
})

t.test('a lock left by a dead process is broken', async (t) => {
  const dir = await tmp(t)
  const dead = spawnSync(process.execPath, ['-e', '']).pid!
  await writeFile(join(dir, 'x.lock'), `${dead} ${hostname()} 0123\n`, { mode: 0o600 })
  t.equal(await withFileLock(dir, 'x.lock', async () => 'ran'), 'ran')
  t.same(await readdir(dir), [], 'removed after use')
})

t.test('a live holder: bounded wait, then an error naming the holder and the file', async (t) => {
  const dir = await tmp(t)
  const clock = new ManualClock()
  for (const [content, holder] of [[`${process.pid} ${hostname()} other\n`, `process ${process.pid} for`], [`1 elsewhere.example 0\n`, 'process 1 on elsewhere.example']] as const) {
    await writeFile(join(dir, 'x.lock'), content, { mode: 0o600 })
    let ran = false
    const p = withFileLock(dir, 'x.lock', async () => { ran = true }, { clock, timeoutMs: 30_000, what: 'token cache lock' }).catch((e) => e)
    await until(() => clock.pendingSleepers === 1)
    await clock.advance(10_000)
    await until(() => clock.pendingSleepers === 1)
    t.notOk(ran, 'still waiting after 10 s')
    await clock.advance(30_000)
    const err = await p
    t.ok(err instanceof OdfsError)
    t.equal(err.code, 'LOCK_TIMEOUT')
    t.match(err.message, `token cache lock: ${join(dir, 'x.lock')} has been held by ${holder}`)
    t.match(err.message, `more than 30 s; if no odfs process is using it, remove ${join(dir, 'x.lock')}`)
    t.notOk(ran)
  }
})
