/**
 * `odfs emulator`: run the Graph + identity emulator standalone. Prints the info
 * JSON (graph URL, authority, CA file, apps, accounts) as the first stdout line,
 * logs to stderr, and runs until SIGINT/SIGTERM, then closes cleanly.
 */
import type { CommandModule } from 'yargs'
import { createLogger } from '../../common/index.js'

interface EmulatorArgv {
  port: number
  state?: string
  seed: 'demo' | 'empty'
  'auto-consent'?: string
  latency: number
  bandwidth: number
  'fail-rate': number
  'reset-rate': number
  'rate-limit': number
  'access-token-ttl'?: number
  'upload-session-ttl'?: number
  'shared-with-me-retired': boolean
  'server-error-rate': number
  'corrupt-hashes': boolean
}

export const emulatorCommand: CommandModule<object, EmulatorArgv> = {
  builder: (y) =>
    y
      .option('port', { type: 'number', default: 0, describe: 'Port (0 = any free port)' })
      .option('state', { type: 'string', describe: 'State directory (certificates, file content); default: a temp dir removed on exit' })
      .option('seed', { choices: ['demo', 'empty'] as const, default: 'demo' as const, describe: 'Initial data' })
      .option('auto-consent', { type: 'string', describe: 'Approve sign-ins at once as this test account (e.g. user1)' })
      .option('latency', { type: 'number', default: 0, describe: 'Added latency per request (ms)' })
      .option('bandwidth', { type: 'number', default: 0, describe: 'Bytes per second per body (0 = unlimited)' })
      .option('fail-rate', { type: 'number', default: 0, describe: 'Fraction of Graph requests answered 503' })
      .option('reset-rate', { type: 'number', default: 0, describe: 'Fraction of content transfers cut mid-body' })
      .option('rate-limit', { type: 'number', default: 100, describe: 'Graph requests per second per user before 429 (0 = unlimited)' })
      .option('access-token-ttl', { type: 'number', describe: 'Access token lifetime (s)' })
      .option('upload-session-ttl', { type: 'number', describe: 'Upload session lifetime (s, sliding)' })
      .option('shared-with-me-retired', { type: 'boolean', default: false, describe: 'sharedWithMe returns nothing, as the retired endpoint does' })
      .option('server-error-rate', { type: 'number', default: 0, describe: 'Fraction of Graph requests answered 500/502/504' })
      .option('corrupt-hashes', { type: 'boolean', default: false, describe: 'Report wrong quickXorHash values (test fault)' })
      .epilog('Faults can also be changed while it runs: POST /_emulator/faults with a JSON object (see src/emulator/README.md).') as any,
  handler: async (argv) => {
    const { startEmulator } = await import('../../emulator/index.js')
    const log = createLogger({ name: 'odfs-emulator' })
    const emu = await startEmulator({
      port: argv.port, state: argv.state, seed: argv.seed, autoConsent: argv['auto-consent'],
      latencyMs: argv.latency, bandwidth: argv.bandwidth, failRate: argv['fail-rate'], resetRate: argv['reset-rate'],
      rateLimit: argv['rate-limit'], accessTokenTtlSec: argv['access-token-ttl'], uploadSessionTtlSec: argv['upload-session-ttl'],
      sharedWithMeRetired: argv['shared-with-me-retired'], serverErrorRate: argv['server-error-rate'], corruptHashes: argv['corrupt-hashes'], logger: log,
    })
    process.stdout.write(JSON.stringify(emu.info) + '\n')
    log.info({ graph: emu.info.graph, state: emu.info.state }, 'emulator listening')
    await new Promise<void>((resolve) => {
      const stop = (sig: string) => {
        log.info({ signal: sig }, 'emulator stopping')
        process.off('SIGINT', onInt)
        process.off('SIGTERM', onTerm)
        resolve()
      }
      const onInt = () => stop('SIGINT')
      const onTerm = () => stop('SIGTERM')
      process.on('SIGINT', onInt)
      process.on('SIGTERM', onTerm)
    })
    await emu.close()
  },
}
