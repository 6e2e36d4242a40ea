/**
 * The command-line options every command that needs a gateway shares, defined
 * once. `gatewayOverridesFromArgv` turns parsed options into GatewayOverrides,
 * reading the client secret from a file or stdin when asked (a secret given as
 * `--ms-client-secret VALUE` is visible to other users in `ps`).
 */
import { open } from 'node:fs/promises'
import type { Options } from 'yargs'
import { ConfigError, type GatewayOverrides } from './gateway.js'

export const gatewayOptions = {
  config: { type: 'string', describe: 'Gateway policy file read after /etc/odfs/gateway.json and $XDG_CONFIG_HOME/odfs/gateway.json', group: 'Gateway:' },
  'ms-client-id': { type: 'string', describe: 'Application (client) ID of the Azure app registration', group: 'Gateway:' },
  'ms-client-secret': {
    type: 'string',
    nargs: 1,
    describe: 'Client secret of the app registration. WARNING: a value given here is visible to other users (ps); prefer "-" to read it from stdin, or --ms-client-secret-file',
    group: 'Gateway:',
  },
  'ms-client-secret-file': { type: 'string', describe: 'Read the client secret from this file (first line)', group: 'Gateway:' },
  'ms-tenant': { type: 'string', describe: 'Directory (tenant) ID; required for single-tenant apps', group: 'Gateway:' },
  'ms-user-api-rate-limit': { type: 'number', describe: 'Graph API operations per second per user (default 20)', group: 'Gateway:' },
  'ms-account-types': {
    type: 'string',
    choices: ['single-tenant', 'multitenant', 'multitenant-and-personal', 'personal'],
    describe: 'Supported account types of the app registration',
    group: 'Gateway:',
  },
  'ms-cloud': { type: 'string', choices: ['global', 'usgov', 'usgov-dod', 'china'], describe: 'Microsoft cloud (login and Graph hosts)', group: 'Gateway:' },
  'ms-shared-libraries': { type: 'boolean', describe: 'Also request Sites.ReadWrite.All for shared document libraries', group: 'Gateway:' },
  'ms-auth-callback': { type: 'string', describe: 'Redirect URI registered for browser sign-in (default: a loopback address)', group: 'Gateway:' },
  'ms-login-endpoint': { type: 'string', describe: 'Override the login host of the cloud (e.g. an emulator)', group: 'Gateway:' },
  'ms-graph-endpoint': { type: 'string', describe: 'Override the Graph host of the cloud (e.g. an emulator)', group: 'Gateway:' },
  'ca-file': { type: 'string', describe: 'PEM file with an extra CA certificate to trust', group: 'Gateway:' },
} as const satisfies Record<string, Options>

export interface GatewayArgv {
  config?: string
  'ms-client-id'?: string
  'ms-client-secret'?: string
  'ms-client-secret-file'?: string
  'ms-tenant'?: string
  'ms-user-api-rate-limit'?: number
  'ms-account-types'?: string
  'ms-cloud'?: string
  'ms-shared-libraries'?: boolean
  'ms-auth-callback'?: string
  'ms-login-endpoint'?: string
  'ms-graph-endpoint'?: string
  'ca-file'?: string
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer))
  return Buffer.concat(chunks).toString('utf8')
}

/** A secret file, refused like a policy file holding a secret when group or others may read it. */
async function readSecretFile(f: string): Promise<string> {
  const fh = await open(f, 'r')
  try {
    const st = await fh.stat()
    if ((st.mode & 0o077) !== 0) {
      throw new ConfigError('CONFIG_INVALID', [`--ms-client-secret-file ${f}: the file is readable by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); fix it with: chmod 600 ${f}`])
    }
    return await fh.readFile('utf8')
  } finally {
    await fh.close()
  }
}

function firstLine(text: string): string {
  return (text.split(/\r?\n/)[0] ?? '').trim()
}

export async function gatewayOverridesFromArgv(argv: GatewayArgv, stdin: NodeJS.ReadableStream = process.stdin): Promise<GatewayOverrides> {
  let secret = argv['ms-client-secret']
  if (secret !== undefined && argv['ms-client-secret-file'] !== undefined) {
    throw new ConfigError('CONFIG_INVALID', ['give either --ms-client-secret or --ms-client-secret-file, not both'])
  }
  if (secret === '-') {
    secret = firstLine(await readAll(stdin))
    if (!secret) throw new ConfigError('CONFIG_INVALID', ['--ms-client-secret -: nothing was read from stdin'])
  }
  if (argv['ms-client-secret-file'] !== undefined) {
    const f = argv['ms-client-secret-file']
    let text: string
    try {
      text = await readSecretFile(f)
    } catch (e) {
      if (e instanceof ConfigError) throw e
      throw new ConfigError('CONFIG_INVALID', [`--ms-client-secret-file ${f}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`])
    }
    secret = firstLine(text)
    if (!secret) throw new ConfigError('CONFIG_INVALID', [`--ms-client-secret-file ${f}: the file is empty`])
  }
  const rate = argv['ms-user-api-rate-limit']
  const o: GatewayOverrides = {
    clientId: argv['ms-client-id'],
    secret,
    tenant: argv['ms-tenant'],
    // yargs turns a non-number into NaN; validation reports it naming the option.
    userApiRateLimit: rate,
    accountTypes: argv['ms-account-types'],
    cloud: argv['ms-cloud'],
    sharedLibraries: argv['ms-shared-libraries'],
    authCallback: argv['ms-auth-callback'],
    loginEndpoint: argv['ms-login-endpoint'],
    graphEndpoint: argv['ms-graph-endpoint'],
    caFile: argv['ca-file'],
  }
  for (const k of Object.keys(o) as (keyof GatewayOverrides)[]) if (o[k] === undefined) delete o[k]
  return o
}
