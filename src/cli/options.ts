/**
 * The sign-in options every command that acts for a user shares. Kept apart from
 * session.ts (which loads msal, keytar and undici) so that a command's --help and
 * option parsing load none of them.
 */
import type { Options } from 'yargs'
import { gatewayOptions, type GatewayArgv } from '../config/index.js'

export const sessionOptions = {
  ...gatewayOptions,
  'token-store': {
    type: 'string',
    choices: ['auto', 'keychain', 'file'],
    default: 'auto',
    describe: 'Where tokens are kept: the OS keychain, or a 0600 file under $XDG_STATE_HOME/odfs (auto: keychain, else file with a warning)',
    group: 'Sign-in:',
  },
} as const satisfies Record<string, Options>

export const userOption = {
  user: { type: 'string', describe: 'Act for this OS user (root only; e.g. a service account); tokens go to a file in its home', group: 'Sign-in:' },
} as const satisfies Record<string, Options>

export interface SessionArgv extends GatewayArgv {
  'token-store'?: string
  user?: string
}
