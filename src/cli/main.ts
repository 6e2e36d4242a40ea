/**
 * The odfs command line: the one composition root. Each command lives in
 * src/cli/commands/<name>.ts and exports a yargs CommandModule; this file only
 * registers them.
 */
import yargs, { type CommandModule } from 'yargs'
import { errorMessage, isOdfsError } from '../common/index.js'
import { commands } from './commands/index.js'

export async function main(argv: string[]): Promise<void> {
  const cli = yargs(argv)
    .scriptName('odfs')
    .usage('$0 <command> [options]\n\nMount Microsoft OneDrive as a local filesystem.')
    .strict()
    .demandCommand(1, 'Name a command: odfs --help lists them.')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .fail((msg, err) => {
      if (err) throw err
      console.error(`odfs: ${msg}\nRun odfs --help for usage.`)
      process.exit(2)
    })
  for (const c of commands) cli.command(c as CommandModule)
  try {
    await cli.parseAsync()
  } catch (err) {
    // One clear line, never a stack trace, for any failure that reaches the top.
    const code = isOdfsError(err) ? ` [${err.code}]` : ''
    console.error(`odfs: ${errorMessage(err)}${code}`)
    process.exitCode = process.exitCode && process.exitCode !== 0 ? process.exitCode : 1
  }
}
