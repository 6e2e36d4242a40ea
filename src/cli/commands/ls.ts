/**
 * `odfs ls [--json] PATH`: list a directory of the virtual tree (My files/...,
 * Shared with me/..., Shared libraries/SITE/LIBRARY/...) without a mount, the way
 * `rclone lsjson` does. This file also holds the small helpers the other transfer
 * commands (put, get, hash) share: opening the drive client for the session and a
 * progress bar on a terminal.
 */
import type { CommandModule } from 'yargs'
import { createRequire } from 'node:module'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { DriveClient } from '../../graph/index.js'
import type { TreeResolver, VirtualEntry } from '../../vfs/index.js'
import { sessionOptions, userOption, type SessionArgv } from '../options.js'
import type { UserSession } from '../session.js'
import { rememberedLinks } from '../shared-links.js'

export interface DriveSession {
  session: UserSession
  client: DriveClient
  tree: TreeResolver
  signal: AbortSignal
}

/** Open the user's session and a drive client; close both afterwards; Ctrl-C aborts cleanly. */
export async function withDrive<T>(argv: SessionArgv, fn: (d: DriveSession) => Promise<T>): Promise<T> {
  // Loaded here, not at the top, so that this module (and every command's --help) stays cheap.
  const { createGraphDriveClient } = await import('../../graph/index.js')
  const { TreeResolver } = await import('../../vfs/index.js')
  const { openUserSession } = await import('../session.js')
  const session = await openUserSession(argv)
  const ac = new AbortController()
  const onSig = () => ac.abort(new Error('interrupted'))
  process.once('SIGINT', onSig)
  process.once('SIGTERM', onSig)
  try {
    const client = createGraphDriveClient({
      baseUrl: session.config.graphBaseUrl,
      tokenProvider: session.tokenProvider,
      dispatcher: session.dispatcher,
      rateLimit: session.config.userApiRateLimit,
      log: session.log,
    })
    const links = await rememberedLinks(session.config, argv.user)
    return await fn({ session, client, tree: new TreeResolver(client, { links, signal: ac.signal }), signal: ac.signal })
  } finally {
    process.off('SIGINT', onSig)
    process.off('SIGTERM', onSig)
    await session.close()
  }
}

/** Where resumable upload sessions are kept (uploadUrls are credentials: 0700 dir, 0600 files). */
export function uploadStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME || join(homedir(), '.local', 'state')
  return join(base, 'odfs', 'uploads')
}

/** A progress bar on stderr when it is a terminal; a no-op otherwise. */
export function progressBar(label: string, total: number): { update(n: number): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} }
  const cliProgress = createRequire(import.meta.url)('cli-progress') as typeof import('cli-progress')
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {percentage}% {value}/{total} bytes {speed}`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  )
  const start = Date.now()
  bar.start(total, 0, { speed: '' })
  return {
    update(n) {
      const s = (Date.now() - start) / 1000
      bar.update(n, { speed: s > 0 ? `${(n / s / 1048576).toFixed(1)} MiB/s` : '' })
    },
    stop() {
      bar.stop()
    },
  }
}

interface LsArgv extends SessionArgv {
  path: string
  json?: boolean
}

function lsjson(e: VirtualEntry, parent: string) {
  return {
    Path: parent ? `${parent.replace(/\/+$/, '')}/${e.name}` : e.name,
    Name: e.name,
    Size: e.folder ? -1 : (e.size ?? 0),
    ModTime: e.mtime ?? null,
    IsDir: e.folder,
    ID: e.ref?.itemId ?? null,
    DriveID: e.ref?.driveId ?? null,
    ...(e.item?.file?.hashes?.quickXorHash ? { Hashes: { quickxor: e.item.file.hashes.quickXorHash } } : {}),
  }
}

export const lsCommand: CommandModule<object, LsArgv> = {
  builder: (y) =>
    y
      .positional('path', { type: 'string', default: '', describe: 'e.g. "My files/Documents"' })
      .options({ ...sessionOptions, ...userOption, json: { type: 'boolean', default: false, describe: 'One JSON array, like rclone lsjson' } }) as never,
  handler: async (argv) => {
    await withDrive(argv, async ({ tree }) => {
      const entries = await tree.list(argv.path ?? '')
      if (argv.json) {
        process.stdout.write(JSON.stringify(entries.map((e) => lsjson(e, argv.path ?? ''))) + '\n')
        return
      }
      for (const e of entries) {
        const size = e.folder ? '-' : String(e.size ?? 0)
        const mtime = e.mtime ? new Date(e.mtime).toISOString().replace(/\.\d+Z$/, 'Z') : '-'
        process.stdout.write(`${e.folder ? 'd' : '-'} ${size.padStart(14)} ${mtime.padEnd(20)} ${e.name}${e.folder ? '/' : ''}\n`)
      }
    })
  },
}
