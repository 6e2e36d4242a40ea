/**
 * Every odfs command: its usage, its one-line description and its module, loaded
 * only when that command runs (or its --help is asked for). `odfs --version` and
 * `odfs --help` therefore load no command at all: no msal, no Graph client, no
 * undici, no emulator. A command module exports its builder and handler as a yargs
 * CommandModule (command and describe are written here, once).
 * Add new commands here.
 */
import type { CommandModule } from 'yargs'

/** What a command module exports: a yargs CommandModule without command and describe (they are here). */
export type CommandImpl = CommandModule<any, any>

export interface CommandEntry {
  /** yargs usage, e.g. 'get <path> <local>'; its first word is the command's name. */
  command: string
  describe: string
  load: () => Promise<CommandImpl>
  /** A server or daemon that runs until stopped (start-up tuning for brief commands does not apply). */
  longRunning?: true
}

export const commands: CommandEntry[] = [
  { command: 'gateway <action>', describe: 'Create, update or show the gateway policies (the Azure app registration odfs uses)', load: async () => (await import('./gateway.js')).gatewayCommand },
  { command: 'login', describe: 'Sign in to OneDrive (device code; --browser for a browser on this machine)', load: async () => (await import('./login.js')).loginCommand },
  { command: 'logout', describe: 'Sign out: delete the stored OneDrive tokens of this user', load: async () => (await import('./logout.js')).logoutCommand },
  { command: 'status', describe: 'Show who is signed in and the credential (tokens redacted)', load: async () => (await import('./status.js')).statusCommand },
  { command: 'emulator', describe: 'Run the Microsoft Graph + identity platform emulator (HTTPS on 127.0.0.1)', load: async () => (await import('./emulator.js')).emulatorCommand, longRunning: true },
  { command: 'ls [path]', describe: 'List a folder of the virtual tree (My files, Shared with me, Shared libraries)', load: async () => (await import('./ls.js')).lsCommand },
  { command: 'put <local> <path>', describe: 'Upload a local file (keeps mtime, verifies the hash, resumes when run again)', load: async () => (await import('./put.js')).putCommand },
  { command: 'get <path> <local>', describe: 'Download a file (keeps mtime, verifies the hash)', load: async () => (await import('./get.js')).getCommand },
  { command: 'hash <path>', describe: "Print the server's quickXorHash of a file", load: async () => (await import('./hash.js')).hashCommand },
  { command: 'demo [mountpoint]', describe: 'Start the bundled emulator with demo data, sign in to it and mount it (default ./mnt)', load: async () => (await import('./demo.js')).demoCommand, longRunning: true },
  { command: 'mount <mountpoint>', describe: 'Mount OneDrive at MOUNTPOINT through FUSE (foreground; --daemon detaches)', load: async () => (await import('./mount.js')).mountCommand, longRunning: true },
  { command: 'unmount <mountpoint>', describe: 'Unmount an odfs mount (after its pending uploads)', load: async () => (await import('./unmount.js')).unmountCommand },
  { command: 'shared <command>', describe: 'Sharing links shown under "Shared with me" (add, list, remove)', load: async () => (await import('./shared.js')).sharedCommand },
  { command: 'sync <mountpoint>', describe: 'Wait until every pending upload of a mount has reached OneDrive', load: async () => (await import('./sync.js')).syncCommand },
]

/** The name of a command entry (the first word of its usage). */
export function commandName(c: CommandEntry): string {
  return c.command.split(' ')[0]!
}
