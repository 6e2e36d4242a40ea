/**
 * `odfs put LOCAL PATH`: upload a local file to the virtual tree. PATH may be an
 * existing folder (the file keeps its name), an existing file (replaced) or a new
 * name in an existing folder. Keeps the mtime, verifies quickXorHash, and resumes
 * an interrupted upload when run again (the session is persisted under
 * $XDG_STATE_HOME/odfs/uploads).
 */
import type { CommandModule } from 'yargs'
import { basename, resolve } from 'node:path'
import { stat } from 'node:fs/promises'
import { OdfsError } from '../../common/index.js'
import type { ItemRef } from '../../graph/index.js'
import { sessionOptions, userOption, type SessionArgv } from '../options.js'

interface PutArgv extends SessionArgv {
  local: string
  path: string
}

export const putCommand: CommandModule<object, PutArgv> = {
  builder: (y) =>
    y.positional('local', { type: 'string', demandOption: true }).positional('path', { type: 'string', demandOption: true })
      .options({ ...sessionOptions, ...userOption }) as never,
  handler: async (argv) => {
    const { fileSource, FileUploadSessionStore } = await import('../../graph/index.js')
    const { progressBar, uploadStateDir, withDrive } = await import('./ls.js')
    const local = resolve(argv.local)
    const st = await stat(local).catch(() => undefined)
    if (!st) throw new OdfsError('ENOENT', `${argv.local}: no such local file`)
    if (!st.isFile()) throw new OdfsError('EISDIR', `${argv.local} is not a regular file`)
    await withDrive(argv, async ({ client, tree, signal }) => {
      const r = await tree.resolve(argv.path)
      let parent: ItemRef
      let name: string
      if (r.kind === 'missing') {
        parent = r.parent
        name = r.name
      } else if (r.kind === 'item' && r.folder) {
        parent = r.ref
        name = basename(local)
      } else if (r.kind === 'item') {
        const p = r.item.parentReference
        if (!p?.id) throw new OdfsError('EINVAL', `${argv.path}: cannot find the folder of this file`)
        parent = { driveId: p.driveId || r.ref.driveId, itemId: p.id }
        name = r.item.name ?? basename(local)
      } else {
        throw new OdfsError('EACCES', `${argv.path}: files cannot be created here`)
      }
      const sessions = new FileUploadSessionStore(uploadStateDir())
      // Sessions left behind by earlier runs that have expired are cancelled on the service.
      await client.cancelAbandonedUploads(sessions).catch(() => 0)
      const src = await fileSource(local)
      const bar = progressBar(name, src.size)
      try {
        const res = await client.upload(parent, name, src, {
          mtime: st.mtime,
          conflictBehavior: 'replace',
          sessionStore: sessions,
          sourceId: `${local}:${st.size}:${st.mtimeMs}`,
          onProgress: (n) => bar.update(n),
          signal,
        })
        bar.stop()
        const note = res.resumedFrom > 0 ? ` (resumed at byte ${res.resumedFrom})` : ''
        const check = res.verified ? 'quickXorHash verified' : res.serviceRewrite ? 'changed by the service after upload (Office file)' : 'hash not verified'
        process.stderr.write(`odfs: uploaded ${src.size} bytes to ${argv.path}${note}; ${check}\n`)
      } finally {
        bar.stop()
        await src.close()
      }
    })
  },
}
