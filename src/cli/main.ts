/**
 * The odfs command line: the one composition root. Each command lives in
 * src/cli/commands/<name>.ts; commands/index.ts lists them. Only the module of the
 * command named on the command line is loaded, so `odfs --help` starts as fast as
 * yargs itself, and `odfs --version` alone is answered before yargs is loaded.
 */
import { readFileSync } from 'node:fs'
import type { Argv } from 'yargs'
import { commandName, commands, type CommandImpl } from './commands/index.js'

/**
 * The version yargs would print (package.json's, found from this module in dist/cli).
 * Loading yargs is most of `odfs --version`'s start-up (measured: bench, docs/performance.md).
 */
function packageVersion(): string | undefined {
  try {
    const v = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown }).version
    return typeof v === 'string' ? v : undefined
  } catch {
    return undefined
  }
}

/**
 * One line on stderr for a failure: the message and the error's code, never a stack
 * trace, and never a secret (a token or a pre-authenticated URL inside a message is
 * scrubbed as in the logs).
 */
async function report(err: unknown): Promise<void> {
  const { errorMessage, isOdfsError, scrubSecrets } = await import('../common/index.js')
  const code = isOdfsError(err) ? ` [${err.code}]` : ''
  console.error(scrubSecrets(`odfs: ${errorMessage(err)}${code}`))
}

/**
 * A brief command (every one but the servers and daemons: mount, demo, emulator)
 * has undici's HTTP parser compiled with the largest WebAssembly tiering budget V8
 * takes, so it never waits at exit for V8 to optimize it (setUndiciWasmTieringBudget
 * in common/http.ts says why). Any word may be the command, since options may come first.
 */
export function isBriefCommand(argv: string[]): boolean {
  const named = new Set(argv.filter((a) => !a.startsWith('-')))
  return !commands.some((c) => c.longRunning && named.has(commandName(c)))
}

export async function main(argv: string[]): Promise<void> {
  // A failure outside the awaited chain (an 'error' event nobody listens to, a
  // forgotten promise) still ends the command with one line and exit status 1.
  const fatal = (err: unknown) => {
    void report(err).finally(() => process.exit(1))
  }
  process.on('uncaughtException', fatal)
  process.on('unhandledRejection', fatal)
  if (argv.length === 1 && argv[0] === '--version') {
    const v = packageVersion()
    if (v) {
      process.stdout.write(`${v}\n`)
      return
    }
  }
  try {
    const { default: yargs } = await import('yargs')
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
    // yargs needs a command's options before it parses: load the modules of the
    // commands named on the command line (any word may be the command, since
    // options may come first); the others are registered by usage and description.
    const named = new Set(argv.filter((a) => !a.startsWith('-')))
    for (const c of commands) {
      const impl: CommandImpl | undefined = named.has(commandName(c)) ? await c.load() : undefined
      cli.command({
        command: c.command,
        describe: c.describe,
        builder: (y: Argv) => {
          const b = impl?.builder
          return typeof b === 'function' ? (b(y) as Argv) : b ? y.options(b) : y
        },
        handler: async (a) => (impl ?? (await c.load())).handler(a),
      })
    }
    if (isBriefCommand(argv)) (await import('../common/index.js')).setUndiciWasmTieringBudget(2147483647)
    // Right after starting a command's handler, yargs lays out the whole help text
    // and keeps it, for a handler that might print it (ours never do; our fail()
    // prints one line): ~60 ms of string-width per command (docs/performance.md).
    const usage = (cli as unknown as { getInternalMethods?(): { getUsageInstance?(): { cacheHelpMessage?: () => void } } })
      .getInternalMethods?.().getUsageInstance?.()
    if (usage?.cacheHelpMessage) usage.cacheHelpMessage = () => {}
    await cli.parseAsync()
  } catch (err) {
    // One clear line, never a stack trace, for any failure that reaches the top.
    await report(err)
    process.exitCode = process.exitCode && process.exitCode !== 0 ? process.exitCode : 1
  }
}
