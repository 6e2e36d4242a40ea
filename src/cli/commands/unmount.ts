/**
 * `odfs unmount MOUNTPOINT`: ask the mount's daemon to unmount (it uploads what is
 * pending first, as on SIGTERM); with no daemon answering (it died), clear the
 * mount point with `fusermount -uz`.
 */
import type { CommandModule } from 'yargs'
import { resolve } from 'node:path'
import { errorMessage, OdfsError } from '../../common/index.js'
import { unmountPath } from '../../fuse/index.js'
import { askDaemon, mountpointArg, type MountpointArgv } from '../control.js'
import { say } from '../output.js'

export const unmountCommand: CommandModule<object, MountpointArgv> = {
  builder: mountpointArg,
  handler: async (argv) => {
    const mnt = resolve(argv.mountpoint)
    const last = await askDaemon(mnt, { op: 'unmount' })
    if (last?.done) {
      const left = Number(last.left ?? 0)
      say(left ? `unmounted ${mnt}; ${left} upload(s) stay in the write-back spool for the next mount` : `unmounted ${mnt}`)
      if (left) process.exitCode = 1
      return
    }
    try {
      await unmountPath(mnt)
      say(`no daemon answered for ${mnt}; cleared the mount point`)
    } catch (e) {
      throw new OdfsError('EINVAL', `${mnt} is not an odfs mount (${errorMessage(e).split('\n')[0]})`)
    }
  },
}
