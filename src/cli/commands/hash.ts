/** `odfs hash PATH`: the server's quickXorHash of a file (base64, as Graph reports it). */
import type { CommandModule } from 'yargs'
import { OdfsError } from '../../common/index.js'
import { sessionOptions, userOption, type SessionArgv } from '../options.js'

interface HashArgv extends SessionArgv {
  path: string
}

export const hashCommand: CommandModule<object, HashArgv> = {
  builder: (y) => y.positional('path', { type: 'string', demandOption: true }).options({ ...sessionOptions, ...userOption }) as never,
  handler: async (argv) => {
    const { withDrive } = await import('../session.js')
    await withDrive(argv, async ({ tree }) => {
      const r = await tree.resolve(argv.path)
      if (r.kind !== 'item') throw new OdfsError('ENOENT', `${argv.path}: no such file`)
      if (r.folder) throw new OdfsError('EISDIR', `${argv.path} is a folder`)
      const h = r.item.file?.hashes?.quickXorHash ?? r.item.remoteItem?.file?.hashes?.quickXorHash
      if (!h) throw new OdfsError('NO_HASH', `${argv.path}: the server reports no quickXorHash yet`)
      process.stdout.write(`${h}  ${argv.path}\n`)
    })
  },
}
