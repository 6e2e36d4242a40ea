/**
 * `odfs get PATH LOCAL`: download a file of the virtual tree. Streams into
 * LOCAL.odfs-partial, verifies quickXorHash, sets the mtime, then renames into
 * place, so LOCAL is never a half-written file.
 */
import type { CommandModule } from 'yargs'
import { createWriteStream } from 'node:fs'
import { rename, rm, stat, utimes } from 'node:fs/promises'
import { once } from 'node:events'
import { join, resolve } from 'node:path'
import { OdfsError } from '../../common/index.js'
import { sessionOptions, userOption, type SessionArgv } from '../options.js'

interface GetArgv extends SessionArgv {
  path: string
  local: string
}

export const getCommand: CommandModule<object, GetArgv> = {
  builder: (y) =>
    y.positional('path', { type: 'string', demandOption: true }).positional('local', { type: 'string', demandOption: true })
      .options({ ...sessionOptions, ...userOption }) as never,
  handler: async (argv) => {
    const { mtimeOf } = await import('../../graph/index.js')
    const { progressBar, withDrive } = await import('./ls.js')
    await withDrive(argv, async ({ client, tree, signal }) => {
      const r = await tree.resolve(argv.path)
      if (r.kind !== 'item') throw new OdfsError('ENOENT', `${argv.path}: no such file`)
      if (r.folder) throw new OdfsError('EISDIR', `${argv.path} is a folder`)
      let local = resolve(argv.local)
      if ((await stat(local).catch(() => undefined))?.isDirectory()) local = join(local, r.name)
      const partial = `${local}.odfs-partial`
      const out = createWriteStream(partial, { mode: 0o644 })
      const size = r.item.size ?? r.item.remoteItem?.size ?? 0
      const bar = progressBar(r.name, size)
      try {
        const res = await client.download(r.ref, async (chunk) => {
          if (!out.write(chunk)) await once(out, 'drain')
        }, { signal, onProgress: (n) => bar.update(n) })
        out.end()
        await once(out, 'finish')
        bar.stop()
        const mtime = mtimeOf(r.item)
        if (mtime) await utimes(partial, mtime, mtime)
        await rename(partial, local)
        process.stderr.write(`odfs: downloaded ${res.bytes} bytes to ${local}; ${res.verified ? 'quickXorHash verified' : 'hash not verified (server reports none)'}\n`)
      } catch (e) {
        bar.stop()
        out.destroy()
        await rm(partial, { force: true })
        throw e
      }
    })
  },
}
