/**
 * `odfs unmount MOUNTPOINT`: ask the mount's daemon to unmount (it uploads what is
 * pending first, as on SIGTERM); with no daemon answering (it died), clear the
 * mount point with `fusermount -uz`.
 */
import type { CommandModule } from 'yargs'
import { resolve } from 'node:path'
import { errorMessage, OdfsError } from '../../common/index.js'
import { unmountPath } from '../../fuse/index.js'
import { askControl, controlSocketPath } from '../control.js'

interface UnmountArgv {
  mountpoint: string
}

export const unmountCommand: CommandModule<object, UnmountArgv> = {
  builder: (y) => y.positional('mountpoint', { type: 'string', demandOption: true }) as never,
  handler: async (argv) => {
    const mnt = resolve(argv.mountpoint)
    const say = (m: string) => process.stderr.write(`odfs: ${m}\n`)
    let last
    try {
      last = await askControl(controlSocketPath(mnt), { op: 'unmount' })
    } catch {
      last = undefined
    }
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
