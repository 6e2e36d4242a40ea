/**
 * The mount daemon's control socket: `odfs sync`, `odfs status` and
 * `odfs unmount` talk to the daemon of a mount point over a unix socket (0600 in a
 * 0700 directory of the user). One JSON object per line each way.
 *
 *   {"op":"sync"}     -> {"pending":N} lines while uploads run, then {"done":true,"failed":[...]}
 *   {"op":"status"}   -> {"mountpoint":..., "user":OS user it is for, "pending":[...], "conflicts":[...]}
 *   {"op":"unmount"}  -> {"pending":N} lines, then {"done":true,"left":N} and the daemon exits
 *   {"op":"drop-caches"} -> {"done":true} once cached metadata and file data are forgotten
 *
 * The socket's place is derived from the mount point, so every command finds it.
 */
import type { Argv } from 'yargs'
import { createHash } from 'node:crypto'
import { chmod, readdir, rm } from 'node:fs/promises'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { join, resolve } from 'node:path'
import { ensurePrivateDir } from '../common/index.js'
import { currentUser, odfsDirs } from '../config/index.js'

/** The argument of the commands that talk to a mount's daemon (sync, unmount). */
export interface MountpointArgv {
  mountpoint: string
}

export const mountpointArg = (y: Argv<object>): Argv<MountpointArgv> =>
  y.positional('mountpoint', { type: 'string', demandOption: true }) as Argv<MountpointArgv>

/**
 * The directory of the control sockets of the mounts this OS user runs (one per
 * mount; a mount made with --user is the caller's daemon, so its socket is too).
 */
export function controlSocketDir(env: NodeJS.ProcessEnv = process.env): string {
  return odfsDirs(currentUser(), env).controlSockets
}

/** Where the control socket of a mount point lives. */
export function controlSocketPath(mountpoint: string, env: NodeJS.ProcessEnv = process.env): string {
  const id = createHash('sha256').update(resolve(mountpoint)).digest('hex').slice(0, 16)
  return join(controlSocketDir(env), `${id}.sock`)
}

/** An OS user whose mounts are looked for (auth's StoreUser: `other` when it is not the one running odfs). */
export interface SocketOwner {
  name: string
  uid: number
  home: string
  other: boolean
}

/**
 * Where the control sockets of `user`'s mounts can be. Our own: the one directory
 * our environment names. Another user's (root asking with --user): the places its
 * daemons use by default, as its environment cannot be read (the runtime directory
 * systemd gives it, /run/user/UID, and the cache under its home), and our own, where
 * the daemons we started with --user NAME keep theirs (runningMounts keeps NAME's).
 */
export function controlSocketDirs(user?: SocketOwner, env: NodeJS.ProcessEnv = process.env): string[] {
  if (!user?.other) return [controlSocketDir(env)]
  return [join('/run/user', String(user.uid), 'odfs'), odfsDirs(user, env).controlSockets, controlSocketDir(env)]
}

/**
 * The status of every mount daemon that answers on a socket in `dirs` (default:
 * this user's); a socket left by a daemon that died refuses the connection and is
 * skipped, and a mount found twice is listed once. With `forUser`, only mounts made
 * for that OS user (each daemon says whose it is).
 */
export async function runningMounts(dirs: string[] = controlSocketDirs(), forUser?: string): Promise<Reply[]> {
  const out: Reply[] = []
  const seen = new Set<string>()
  for (const dir of dirs) {
    let names: string[]
    try {
      names = (await readdir(dir)).filter((n) => n.endsWith('.sock')).sort()
    } catch {
      continue
    }
    for (const n of names) {
      const r = await askControl(join(dir, n), { op: 'status' }).catch(() => undefined)
      if (forUser !== undefined && typeof r?.user === 'string' && r.user !== forUser) continue
      if (r && typeof r.mountpoint === 'string' && !seen.has(r.mountpoint)) {
        seen.add(r.mountpoint)
        out.push(r)
      }
    }
  }
  return out
}

export type Reply = Record<string, unknown>
export type Handler = (req: Reply, send: (r: Reply) => void) => Promise<void>

export async function serveControl(path: string, handler: Handler): Promise<Server> {
  await ensurePrivateDir(join(path, '..'))
  await rm(path, { force: true })
  const server = createServer((sock: Socket) => {
    let buf = ''
    sock.on('data', (d) => {
      buf += d.toString()
      let i: number
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        let req: Reply
        try {
          req = JSON.parse(line) as Reply
        } catch {
          sock.end(JSON.stringify({ error: 'bad request' }) + '\n')
          return
        }
        const send = (r: Reply) => {
          if (!sock.destroyed) sock.write(JSON.stringify(r) + '\n')
        }
        handler(req, send).then(() => sock.end(), (e: unknown) => sock.end(JSON.stringify({ error: String((e as Error)?.message ?? e) }) + '\n'))
      }
    })
    sock.on('error', () => undefined)
  })
  await new Promise<void>((res, rej) => {
    server.once('error', rej)
    server.listen(path, () => res())
  })
  await chmod(path, 0o600)
  return server
}

/** Send `req` to the daemon of `mountpoint`; undefined when no daemon answers there. */
export function askDaemon(mountpoint: string, req: Reply, onReply?: (r: Reply) => void): Promise<Reply | undefined> {
  return askControl(controlSocketPath(mountpoint), req, onReply).catch(() => undefined)
}

/** Send one request; `onReply` hears every line; resolves with the last one. */
export function askControl(path: string, req: Reply, onReply: (r: Reply) => void = () => undefined): Promise<Reply | undefined> {
  return new Promise((res, rej) => {
    const sock = createConnection(path)
    let buf = ''
    let last: Reply | undefined
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'))
    sock.on('data', (d) => {
      buf += d.toString()
      let i: number
      while ((i = buf.indexOf('\n')) >= 0) {
        const r = JSON.parse(buf.slice(0, i)) as Reply
        buf = buf.slice(i + 1)
        last = r
        onReply(r)
      }
    })
    sock.on('error', rej)
    sock.on('close', () => res(last))
  })
}
