/**
 * `odfs mount MOUNTPOINT`: mount OneDrive (My files, Shared with me, Shared
 * libraries) through FUSE. Runs in the foreground and prints `ready: MOUNTPOINT`
 * once the mount answers (--daemon detaches then). Files written through the
 * mount are journaled in the write-back spool under --cache-dir and uploaded in
 * the background; what an earlier run left there is uploaded before the mount
 * answers. SIGINT/SIGTERM unmount after pending uploads (a second signal leaves
 * them journaled for the next mount). `odfs sync`, `odfs status` and
 * `odfs unmount` talk to the daemon over its control socket.
 */
import type { CommandModule, Options } from 'yargs'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { open, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { createLogger, errorMessage, OdfsError, type Logger } from '../../common/index.js'
import { Vfs } from '../../vfs/index.js'
import { mountVfs, unmountPath, type MountedFs } from '../../fuse/index.js'
import { sessionOptions, userOption, type SessionArgv } from '../options.js'
import { actingUser, mountCacheDir, openUserSession, type SessionDeps, type UserSession } from '../session.js'
import { controlSocketPath, serveControl } from '../control.js'

export interface MountArgv extends SessionArgv {
  mountpoint: string
  root?: string
  daemon: boolean
  'cache-dir'?: string
  'dir-cache-time': number
  'poll-interval': number
  'read-ahead': string
  'write-back': number
  transfers: number
  'stop-timeout': number
  uid?: number
  gid?: number
  umask: string
  'file-mode'?: string
  'dir-mode'?: string
  'allow-other': boolean
  'read-only': boolean
  'log-level': string
  'cache-max-size': string
  'chunk-cache-size': string
}

/** "32M", "1G", "512K", "1048576" -> bytes. */
export function parseSize(s: string | number): number {
  if (typeof s === 'number') return s
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i.exec(s.trim())
  if (!m) throw new OdfsError('EINVAL', `not a size: ${s} (e.g. 32M, 1G)`)
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T']
  return Math.floor(Number(m[1]) * mult)
}

function octal(s: string | undefined, what: string): number | undefined {
  if (s === undefined) return undefined
  if (!/^[0-7]{1,4}$/.test(s)) throw new OdfsError('EINVAL', `--${what} wants octal digits (e.g. 022), not ${s}`)
  return parseInt(s, 8)
}

export const mountOptions = {
  root: { type: 'string', describe: 'Mount this folder of the virtual tree (e.g. "My files/Documents")', group: 'Mount:' },
  daemon: { type: 'boolean', default: false, describe: 'Detach once the mount answers', group: 'Mount:' },
  'cache-dir': { type: 'string', describe: 'Write-back spool and control socket (default $XDG_CACHE_HOME/odfs/<user>, 0700)', group: 'Mount:' },
  'dir-cache-time': { type: 'number', default: 60, describe: 'Seconds a directory listing is trusted', group: 'Mount:' },
  'poll-interval': { type: 'number', default: 60, describe: 'Seconds between checks for remote changes (0: never)', group: 'Mount:' },
  'read-ahead': { type: 'string', default: '16M', describe: 'Largest read-ahead window for sequential reads (at most half of --chunk-cache-size)', group: 'Mount:' },
  'write-back': { type: 'number', default: 5, describe: 'Seconds between the last close of a file and its upload', group: 'Mount:' },
  transfers: { type: 'number', default: 4, describe: 'Uploads running at once', group: 'Mount:' },
  'stop-timeout': { type: 'number', default: 600, describe: 'Seconds an unmount or SIGTERM waits for pending uploads; what is left stays journaled for the next mount (keep it below systemd\'s TimeoutStopSec)', group: 'Mount:' },
  uid: { type: 'number', describe: 'Owner shown for every file (default: yours)', group: 'Mount:' },
  gid: { type: 'number', describe: 'Group shown for every file (default: yours)', group: 'Mount:' },
  umask: { type: 'string', default: '022', describe: 'Bits removed from --file-mode and --dir-mode (octal)', group: 'Mount:' },
  'file-mode': { type: 'string', describe: 'Permission bits of files (octal, default 0666 minus umask)', group: 'Mount:' },
  'dir-mode': { type: 'string', describe: 'Permission bits of folders (octal, default 0777 minus umask)', group: 'Mount:' },
  'allow-other': { type: 'boolean', default: false, describe: 'Let other users see the mount (modes are then enforced)', group: 'Mount:' },
  'read-only': { type: 'boolean', default: false, describe: 'Mount read-only', group: 'Mount:' },
  'log-level': { type: 'string', default: 'warn', choices: ['trace', 'debug', 'info', 'warn', 'error', 'silent'], describe: 'Log level (stderr)', group: 'Mount:' },
  'cache-max-size': { type: 'string', default: '0', describe: 'Most disk space the write-back spool may take (e.g. 20G; 0: what its disk has free); a write past it fails with ENOSPC', group: 'Mount:' },
  'chunk-cache-size': { type: 'string', default: '32M', describe: 'Memory for cached chunks of files being read (raise it with --read-ahead for long fat links)', group: 'Mount:' },
} as const satisfies Record<string, Options>

/** Spool of one user at one gateway: a journal left by a crash is found by the next mount of the same pair. */
export function spoolDirFor(cacheDir: string, graphBaseUrl: string, oid: string): string {
  return join(cacheDir, 'spool-' + createHash('sha256').update(`${graphBaseUrl}\n${oid}`).digest('hex').slice(0, 16))
}

/** A mount point left by a daemon that died answers ENOTCONN: clear it. */
export async function clearStaleMount(mountpoint: string, say: (m: string) => void): Promise<void> {
  try {
    const st = await stat(mountpoint)
    if (!st.isDirectory()) throw new OdfsError('ENOTDIR', `${mountpoint} is not a directory`)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOTCONN' || code === 'ECONNABORTED') {
      say(`${mountpoint} was left mounted by a daemon that stopped (Transport endpoint is not connected); clearing it`)
      await unmountPath(mountpoint)
      return
    }
    if (code === 'ENOENT') throw new OdfsError('ENOENT', `mount point ${mountpoint} does not exist; create it first (mkdir)`)
    throw e
  }
}

export interface RunningMount {
  vfs: Vfs
  fs: MountedFs
  session: UserSession
  /** Unmount, upload what is pending (until `abandon` is called) and close. Returns uploads left. */
  stop(): Promise<number>
}

/**
 * Build session, client and Vfs; recover the spool; mount. Shared by `mount` and
 * `demo` (which passes its own environment in `deps.env`).
 */
export async function startMount(argv: MountArgv, log: Logger, say: (m: string) => void, deps: Pick<SessionDeps, 'env'> = {}): Promise<RunningMount> {
  const mountpoint = resolve(argv.mountpoint)
  await clearStaleMount(mountpoint, say)
  let fatal: ((e: Error) => void) | undefined
  const session = await openUserSession(argv, { ...deps, log, keepAlive: (e) => fatal?.(e) })
  try {
    const transfers = Math.max(1, argv.transfers)
    const client = session.driveClient({ maxConcurrentTransfers: transfers })
    const cacheDir = await mountCacheDir(argv['cache-dir'], session)
    const vfs = new Vfs({
      client,
      tree: await session.tree(client),
      log,
      spoolDir: spoolDirFor(cacheDir, session.config.graphBaseUrl, session.account.oid),
      ...(argv.root ? { root: argv.root } : {}),
      dirCacheTimeMs: argv['dir-cache-time'] * 1000,
      pollIntervalMs: argv['poll-interval'] * 1000,
      readAhead: parseSize(argv['read-ahead']),
      chunkCacheBytes: parseSize(argv['chunk-cache-size']),
      spoolMaxBytes: parseSize(argv['cache-max-size']),
      writeBackMs: argv['write-back'] * 1000,
      transfers,
      ...(argv.uid !== undefined ? { uid: argv.uid } : {}),
      ...(argv.gid !== undefined ? { gid: argv.gid } : {}),
      umask: octal(argv.umask, 'umask') ?? 0o022,
      ...(argv['file-mode'] ? { fileMode: octal(argv['file-mode'], 'file-mode') } : {}),
      ...(argv['dir-mode'] ? { dirMode: octal(argv['dir-mode'], 'dir-mode') } : {}),
      readOnly: argv['read-only'],
    })
    const { recovered, failed } = await vfs.init()
    if (recovered > 0) say(`uploaded ${recovered - failed} of ${recovered} files an earlier run left in the write-back spool${failed ? `; ${failed} still failing (see odfs status)` : ''}`)
    const fs = await mountVfs(vfs, mountpoint, { allowOther: argv['allow-other'], readOnly: argv['read-only'], log })
    const control = await serveControl(controlSocketPath(mountpoint), async (req, send) => {
      if (req.op === 'status') {
        send({ mountpoint, user: session.user.name, pending: vfs.pending(), conflicts: vfs.conflicts() })
      } else if (req.op === 'sync') {
        const tick = setInterval(() => send({ pending: vfs.pending().length }), 1000)
        try {
          send({ pending: vfs.pending().length })
          const left = await vfs.sync()
          send({ done: true, failed: left.map((p) => ({ name: p.name, error: p.error ?? p.state, ...(p.fix ? { fix: p.fix } : {}) })) })
        } finally {
          clearInterval(tick)
        }
      } else if (req.op === 'drop-caches') {
        vfs.dropCaches()
        send({ done: true })
      } else if (req.op === 'unmount') {
        const left = await running.stop()
        send({ done: true, left })
        setImmediate(() => process.kill(process.pid, 'SIGTERM'))
      } else {
        send({ error: `unknown op ${String(req.op)}` })
      }
    })
    let stopping: Promise<number> | undefined
    const running: RunningMount = {
      vfs, fs, session,
      stop() {
        stopping ??= (async () => {
          control.close()
          await fs.unmount().catch((e: unknown) => log.warn({ err: errorMessage(e) }, 'unmount failed'))
          const left = await vfs.close({ waitMs: argv['stop-timeout'] * 1000 })
          await session.close()
          return left.length
        })()
        return stopping
      },
    }
    fatal = (e) => log.error({ err: errorMessage(e) }, 'sign-in lost: run `odfs login`; the mount keeps what it has and uploads fail until then')
    return running
  } catch (e) {
    await session.close()
    throw e
  }
}

/** Wait for SIGINT/SIGTERM, then unmount after pending uploads; a second signal stops at once (all is journaled). */
export async function runUntilSignal(m: RunningMount, say: (m: string) => void): Promise<void> {
  await new Promise<void>((res) => {
    process.once('SIGINT', () => res())
    process.once('SIGTERM', () => res())
  })
  const pending = m.vfs.pending().length
  if (pending > 0) say(`unmounting; uploading ${pending} pending file(s) first (Ctrl-C again leaves them journaled for the next mount)`)
  const again = new Promise<'again'>((res) => {
    process.once('SIGINT', () => res('again'))
    process.once('SIGTERM', () => res('again'))
  })
  const r = await Promise.race([m.stop(), again])
  if (r === 'again') {
    await m.vfs.writeBack.journalOpen()
    say(`stopped with ${m.vfs.pending().length} upload(s) left in the write-back spool ${m.vfs.spool.dir}; the next odfs mount uploads them`)
    process.exit(1)
  }
  if (r > 0) say(`unmounted; ${r} upload(s) failed and stay in the write-back spool ${m.vfs.spool.dir}; the next odfs mount retries them`)
  else say('unmounted; every file is on OneDrive')
}

export const mountCommand: CommandModule<object, MountArgv> = {
  builder: (y) =>
    y.positional('mountpoint', { type: 'string', demandOption: true })
      .options({ ...sessionOptions, ...userOption, ...mountOptions }) as never,
  handler: async (argv) => {
    const say = (m: string) => process.stderr.write(`odfs: ${m}\n`)
    if (argv.daemon) {
      // The detached daemon logs to a private file; this process waits for its ready line.
      const dir = await mountCacheDir(argv['cache-dir'], await actingUser(argv))
      const logPath = join(dir, 'mount.log')
      const logFile = await open(logPath, 'a', 0o600)
      const args = process.argv.slice(1).filter((a) => a !== '--daemon')
      // glibc's per-thread arenas and its moving mmap threshold keep freed transfer
      // buffers resident; these settings measurably lower the daemon's RSS
      // (docs/performance.md). The caller's own settings win.
      const env = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072', ...process.env }
      const child = spawn(process.execPath, [...process.execArgv, ...args], { detached: true, stdio: ['ignore', 'pipe', logFile.fd], env })
      await logFile.close()
      const ok = await new Promise<boolean>((res) => {
        let out = ''
        child.stdout!.on('data', (d) => {
          out += d
          if (/^ready: /m.test(out)) res(true)
        })
        child.on('close', () => res(false))
      })
      if (!ok) throw new OdfsError('EIO', `the mount daemon stopped before the mount answered; see ${logPath}`)
      process.stdout.write(`ready: ${resolve(argv.mountpoint)}\n`)
      say(`daemon pid ${child.pid}; log ${logPath}`)
      child.stdout!.destroy()
      child.unref()
      return
    }
    const log = createLogger({ level: argv['log-level'] })
    const m = await startMount(argv, log, say)
    process.stdout.on('error', () => undefined) // --daemon's parent may be gone
    process.stderr.on('error', () => undefined)
    process.stdout.write(`ready: ${m.fs.mountpoint}\n`)
    await runUntilSignal(m, say)
  },
}
