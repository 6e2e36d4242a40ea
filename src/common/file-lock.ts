/**
 * A lock between processes: a private file created exclusively
 * (src/common/private-file.ts) holding the owner's pid, host and a nonce, removed
 * when the work is done. A lock whose process is gone (same host, pid dead) is
 * broken; otherwise the waiter polls until `timeoutMs` and then fails with an
 * error naming the holder and the file to remove.
 *
 * Re-entrant within one asynchronous call chain (AsyncLocalStorage): work that
 * already holds the lock and takes it again runs at once, while other callers in
 * the same process wait like other processes do. A hold counts only while its
 * holder runs: a timer or socket created under the lock and firing after it was
 * released carries the old context, which no longer lets it in. And the context is
 * tracked only while some lock is held: in Node 20 an AsyncLocalStorage that has
 * been used hooks every promise and asynchronous resource of the process for good
 * (a download taking the lock at start-up paid for those hooks on every chunk), so
 * it is disabled again when the last hold ends.
 *
 * Breaking a stale lock re-reads it first; two waiters breaking the same stale
 * lock at the same instant could still both proceed, which is no worse than no
 * lock at all.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { systemClock, type Clock } from './clock.js'
import { OdfsError } from './errors.js'
import { silentLogger, type Logger } from './log.js'
import { createPrivateFileExclusive, ensurePrivateDir, readPrivateFile, removePrivateFile, type PrivateOwner } from './private-file.js'

export interface FileLockOptions extends PrivateOwner {
  clock?: Clock
  /** Give up waiting after this long (default 120 s: a refresh may take a minute on a bad network). */
  timeoutMs?: number
  /** Poll interval while waiting (default 100 ms). */
  pollMs?: number
  /** What is locked, for messages (default "lock"). */
  what?: string
  log?: Logger
}

/** One holding of one lock file by one call chain. */
interface Hold {
  path: string
}

/** The holds of the current call chain (with those of chains that already ended, which `live` tells apart). */
const held = new AsyncLocalStorage<readonly Hold[]>()
/** Holds whose holder is still running. */
const live = new Set<Hold>()

/** Whether the current call chain holds the lock file `path` now. */
function holds(path: string): boolean {
  return held.getStore()?.some((h) => h.path === path && live.has(h)) ?? false
}

/** True when a process with this pid exists on this host (ours to signal or not). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Run `fn` holding the lock file `dir/name` (dir is created private when missing). */
export async function withFileLock<T>(dir: string, name: string, fn: () => Promise<T>, opts: FileLockOptions = {}): Promise<T> {
  const path = join(dir, name)
  if (holds(path)) return fn()
  const clock = opts.clock ?? systemClock
  const timeoutMs = opts.timeoutMs ?? 120_000
  const what = opts.what ?? 'lock'
  const log = opts.log ?? silentLogger
  const owner: PrivateOwner = opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid } : {}
  const host = hostname()
  const stamp = `${process.pid} ${host} ${randomBytes(8).toString('hex')}\n`
  await ensurePrivateDir(dir, owner)
  const deadline = clock.now() + timeoutMs
  let waited = false
  for (;;) {
    if (await createPrivateFileExclusive(dir, name, stamp, owner)) break
    const content = await readPrivateFile(dir, name, { ...owner, what: `${what} file` })
    if (content === null) continue
    const [pidText, holderHost] = content.split(/\s+/)
    const pid = Number(pidText)
    if (holderHost === host && Number.isInteger(pid) && pid > 0 && !processAlive(pid)) {
      if ((await readPrivateFile(dir, name, owner)) === content) {
        await removePrivateFile(dir, name, owner)
        log.warn({ lockFile: path, pid }, `${what}: broke a stale lock left by process ${pid}, which is gone`)
      }
      continue
    }
    if (clock.now() >= deadline) {
      const by = Number.isInteger(pid) && pid > 0 ? `process ${pid}${holderHost && holderHost !== host ? ` on ${holderHost}` : ''}` : 'another process'
      throw new OdfsError('LOCK_TIMEOUT', `${what}: ${path} has been held by ${by} for more than ${Math.round(timeoutMs / 1000)} s; if no odfs process is using it, remove ${path}`)
    }
    if (!waited) {
      waited = true
      log.debug({ lockFile: path, pid }, `${what}: waiting for process ${pidText}`)
    }
    await clock.sleep(opts.pollMs ?? 100)
  }
  const hold: Hold = { path }
  live.add(hold)
  try {
    return await held.run([...(held.getStore()?.filter((h) => live.has(h)) ?? []), hold], fn)
  } finally {
    live.delete(hold)
    // No hold left in this process: stop tracking contexts (the next hold starts it again).
    if (live.size === 0) held.disable()
    // Remove only our own lock (a lock wrongly judged stale and re-taken is not ours any more).
    if ((await readPrivateFile(dir, name, owner).catch(() => null)) === stamp) await removePrivateFile(dir, name, owner)
  }
}
