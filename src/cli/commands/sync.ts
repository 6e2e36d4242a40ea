/**
 * `odfs sync MOUNTPOINT`: wait until every file written through that mount is on
 * OneDrive. Prints progress to stderr; exits non-zero naming the files that could
 * not be uploaded (they stay in the write-back spool and are retried).
 */
import type { CommandModule } from 'yargs'
import { resolve } from 'node:path'
import { OdfsError } from '../../common/index.js'
import { askDaemon, mountpointArg, type MountpointArgv } from '../control.js'
import { say } from '../output.js'

export const syncCommand: CommandModule<object, MountpointArgv> = {
  builder: mountpointArg,
  handler: async (argv) => {
    const mnt = resolve(argv.mountpoint)
    const last = await askDaemon(mnt, { op: 'sync' }, (r) => {
      if (typeof r.pending === 'number' && r.pending > 0) say(`${r.pending} upload(s) pending`)
    })
    if (!last) throw new OdfsError('ENOENT', `no odfs mount daemon answers for ${mnt}`)
    if (!last.done) throw new OdfsError('EIO', `the daemon of ${mnt} did not finish the sync`)
    const failed = (last.failed ?? []) as { name: string; error: string; fix?: string }[]
    if (failed.length > 0) {
      for (const f of failed) say(`not uploaded: ${f.name}: ${f.error}${f.fix ? ` (${f.fix})` : ''}`)
      throw new OdfsError('EIO', `${failed.length} file(s) could not be uploaded; they stay in the write-back spool and are retried`)
    }
    const status = await askDaemon(mnt, { op: 'status' })
    for (const c of (status?.conflicts ?? []) as { name: string; conflictName: string }[]) {
      say(`conflict: ${c.name} changed on OneDrive meanwhile; this mount's version is ${c.conflictName}`)
    }
    say(`every file written through ${mnt} is on OneDrive`)
  },
}
