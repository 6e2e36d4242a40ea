/**
 * `odfs ls [--json] PATH`: list a directory of the virtual tree (My files/...,
 * Shared with me/..., Shared libraries/SITE/LIBRARY/...) without a mount, the way
 * `rclone lsjson` does.
 */
import type { CommandModule } from 'yargs'
import type { VirtualEntry } from '../../vfs/index.js'
import { sessionOptions, userOption, type SessionArgv } from '../options.js'

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
    const { withDrive } = await import('../session.js')
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
