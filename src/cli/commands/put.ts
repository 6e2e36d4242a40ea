/**
 * `odfs put LOCAL PATH`: upload a local file to the virtual tree. PATH may be an
 * existing folder (the file keeps its name), an existing file (replaced) or a new
 * name; missing folders on the way are created (as `rclone copyto` and
 * `aws s3 cp` do). Keeps the mtime, verifies quickXorHash, and resumes
 * an interrupted upload when run again (the session is persisted under
 * $XDG_STATE_HOME/odfs/uploads).
 */
import type { CommandModule } from 'yargs'
import { basename, resolve } from 'node:path'
import { stat } from 'node:fs/promises'
import { OdfsError } from '../../common/index.js'
import type { DriveClient, ItemRef } from '../../graph/index.js'
import type { TreeResolver } from '../../vfs/index.js'
import { sessionOptions, userOption, type SessionArgv } from '../options.js'

interface PutArgv extends SessionArgv {
  local: string
  path: string
}

const notFound = (e: unknown) => (e as { classify?: () => string }).classify?.() === 'notFound'

/**
 * The folder at `segs` (a virtual path), created with any missing parents. A
 * folder someone else creates at the same moment (nameAlreadyExists) is used.
 */
async function ensureFolder(tree: TreeResolver, client: DriveClient, segs: string[], signal: AbortSignal): Promise<ItemRef> {
  const path = segs.join('/')
  const r = await tree.resolve(path).catch((e: unknown) => {
    if (notFound(e) && segs.length > 1) return undefined
    throw e
  })
  if (r?.kind === 'item') {
    if (!r.folder) throw new OdfsError('ENOTDIR', `${path} is a file, not a folder`)
    return r.ref
  }
  if (r && r.kind !== 'missing') throw new OdfsError('EACCES', `${path}: folders cannot be created here`)
  const parent = r ? r.parent : await ensureFolder(tree, client, segs.slice(0, -1), signal)
  const name = r ? r.name : segs[segs.length - 1]!
  try {
    const item = await client.createFolder(parent, name, 'fail', signal)
    return { driveId: item.parentReference?.driveId || parent.driveId, itemId: item.id }
  } catch (e) {
    if ((e as { classify?: () => string }).classify?.() !== 'nameConflict') throw e
    const again = await tree.resolve(path)
    if (again.kind !== 'item' || !again.folder) throw new OdfsError('ENOTDIR', `${path} exists and is not a folder`)
    return again.ref
  }
}

export const putCommand: CommandModule<object, PutArgv> = {
  builder: (y) =>
    y.positional('local', { type: 'string', demandOption: true }).positional('path', { type: 'string', demandOption: true })
      .options({ ...sessionOptions, ...userOption }) as never,
  handler: async (argv) => {
    const { fileSource, FileUploadSessionStore, splitPath } = await import('../../graph/index.js')
    const { progressBar } = await import('../output.js')
    const { withDrive } = await import('../session.js')
    const local = resolve(argv.local)
    const st = await stat(local).catch(() => undefined)
    if (!st) throw new OdfsError('ENOENT', `${argv.local}: no such local file`)
    if (!st.isFile()) throw new OdfsError('EISDIR', `${argv.local} is not a regular file`)
    await withDrive(argv, async ({ session, client, tree, signal }) => {
      const segs = splitPath(argv.path)
      const r = await tree.resolve(argv.path).catch(async (e: unknown) => {
        // A folder on the way is missing: create it (and its missing parents).
        if (!notFound(e) || segs.length < 3) throw e
        return { kind: 'missing' as const, parent: await ensureFolder(tree, client, segs.slice(0, -1), signal), name: segs[segs.length - 1]! }
      })
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
      const sessions = new FileUploadSessionStore(session.paths.uploads, session.user.other ? { uid: session.user.uid, gid: session.user.gid } : {})
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
