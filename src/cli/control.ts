/**
 * The mount daemon's control socket: `odfs sync`, `odfs status` and
 * `odfs unmount` talk to the daemon of a mount point over a unix socket (0600 in a
 * 0700 directory of the user). One JSON object per line each way.
 *
 *   {"op":"sync"}     -> {"pending":N} lines while uploads run, then {"done":true,"failed":[...]}
 *   {"op":"status"}   -> {"mountpoint":..., "pending":[...]}
 *   {"op":"unmount"}  -> {"pending":N} lines, then {"done":true,"left":N} and the daemon exits
 *
 * The socket's place is derived from the mount point, so every command finds it.
 */
import { createHash } from 'node:crypto'
import { chmod, readdir, rm } from 'node:fs/promises'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { homedir, userInfo } from 'node:os'
import { join, resolve } from 'node:path'
import { ensurePrivateDir } from '../common/index.js'

export function cacheRoot(env: NodeJS.ProcessEnv = process.env, user = userInfo().username): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'odfs', user)
}

/** The directory of this user's control sockets (one per running mount). */
export function controlSocketDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'odfs') : join(cacheRoot(env), 'run')
}

/** Where the control socket of a mount point lives. */
export function controlSocketPath(mountpoint: string, env: NodeJS.ProcessEnv = process.env): string {
  const id = createHash('sha256').update(resolve(mountpoint)).digest('hex').slice(0, 16)
  return join(controlSocketDir(env), `${id}.sock`)
}

/**
 * The status of every mount daemon of this user that answers on its socket
 * (a socket left by a daemon that died refuses the connection and is skipped).
 */
export async function runningMounts(env: NodeJS.ProcessEnv = process.env): Promise<Reply[]> {
  const dir = controlSocketDir(env)
  let names: string[]
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.sock')).sort()
  } catch {
    return []
  }
  const out: Reply[] = []
  for (const n of names) {
    const r = await askControl(join(dir, n), { op: 'status' }).catch(() => undefined)
    if (r && typeof r.mountpoint === 'string') out.push(r)
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
