/**
 * `odfs demo [MOUNTPOINT]` (what `npm run demo` runs): the embedded default. It
 * starts the bundled emulator with demo data and prints its info JSON as the first
 * line, writes a gateway policy pointing at it (the same `login_endpoint` /
 * `graph_endpoint` / `ca_file` keys a real deployment uses for a national cloud or
 * a private CA: no code path of its own), signs the demo account in by device code
 * (the emulator approves at once), lists `My files`, mounts the drive at
 * MOUNTPOINT (default ./mnt) exactly as `odfs mount` does, prints
 * `ready: MOUNTPOINT` once the mount answers and then what to try. Ctrl-C
 * unmounts after pending uploads and stops the emulator (--once: unmount and stop
 * at once, for tests and scripts).
 *
 * Everything lives under --state (default $XDG_STATE_HOME/odfs/demo), so the
 * demo never touches a real gateway's configuration.
 */
import type { CommandModule } from 'yargs'
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { createLogger } from '../../common/index.js'
import { odfsDirs } from '../../config/index.js'
import { startEmulator } from '../../emulator/index.js'
import { loginWithDeviceCode, removeOtherAccounts } from '../../auth/index.js'
import { openGateway, withDrive, type SessionArgv } from '../session.js'
import { mountOptions, runUntilSignal, startMount, type MountArgv } from './mount.js'

interface DemoArgv {
  mountpoint?: string
  state?: string
  port: number
  account: string
  once: boolean
  'token-store': string
}

/** The demo signs in with the emulator's public (no secret) multitenant-and-personal app. */
const DEMO_APP_ACCOUNT_TYPES = 'multitenant-and-personal'

export const demoCommand: CommandModule<object, DemoArgv> = {
  builder: (y) =>
    y.positional('mountpoint', { type: 'string', describe: 'Where to mount (default ./mnt)' }).options({
      state: { type: 'string', describe: 'Demo state directory (default $XDG_STATE_HOME/odfs/demo)' },
      port: { type: 'number', default: 0, describe: 'Emulator port (0 = any free port)' },
      account: { type: 'string', default: 'user1', describe: 'Demo account to sign in (user1, user2, personal1, ...)' },
      once: { type: 'boolean', default: false, describe: 'Set up, mount, print, then unmount, stop the emulator and exit' },
      'token-store': { type: 'string', choices: ['auto', 'keychain', 'file'], default: 'file', describe: 'Where the demo keeps its tokens' },
    }) as never,
  handler: async (argv) => {
    const out = (s = '') => process.stdout.write(s + '\n')
    const stateRoot = resolve(argv.state ?? join(odfsDirs().state, 'demo'))
    await mkdir(stateRoot, { recursive: true, mode: 0o700 })
    const log = createLogger({ name: 'odfs-demo', level: process.env.ODFS_LOG_LEVEL ?? 'warn' })

    const emu = await startEmulator({
      port: argv.port, state: join(stateRoot, 'emulator'), seed: 'demo', autoConsent: argv.account,
      deviceCodeIntervalSec: 1, logger: log,
    })
    out(JSON.stringify(emu.info))
    try {
      const app = emu.info.apps.find((a) => !a.secret && a.account_types === DEMO_APP_ACCOUNT_TYPES)
      if (!app) throw new Error('the emulator has no public multitenant-and-personal app registration')
      const configFile = join(stateRoot, 'gateway.json')
      const policy = {
        DATA_TYPE: 'onedrive_storage_policies#1.0.0',
        client_id: app.client_id,
        account_types: DEMO_APP_ACCOUNT_TYPES,
        user_api_rate_limit: 20,
        shared_libraries: true,
        login_endpoint: emu.info.authority,
        graph_endpoint: emu.info.graph,
        ca_file: emu.info.ca,
      }
      await writeFile(configFile, JSON.stringify(policy, null, 2) + '\n', { mode: 0o600 })
      await chmod(configFile, 0o600)

      // Tokens of the demo go under the demo's own state dir: every step below gets this environment.
      const env = { ...process.env, XDG_STATE_HOME: join(stateRoot, 'xdg-state') }
      const sessionArgv: SessionArgv = { config: configFile, 'token-store': argv['token-store'] }
      const g = await openGateway(sessionArgv, { log, env })
      try {
        const result = await loginWithDeviceCode({
          app: g.app, config: g.config, dispatcher: g.dispatcher, log,
          onPrompt: (p) => out(`Signing in by device code: ${p.verificationUri} code ${p.userCode} (the emulator approves it as ${argv.account})`),
        })
        await removeOtherAccounts(g.app, result.account!.homeAccountId)
        out(`Signed in as ${result.account!.username}; tokens in ${g.store.location}`)
      } finally {
        await g.dispatcher.close()
      }

      const listing = await withDrive(sessionArgv, async ({ tree }) => tree.list('My files'), { log, env })
      out('')
      out('My files:')
      for (const e of listing) out(`  ${e.folder ? 'd' : '-'} ${e.folder ? '' : String(e.size ?? 0).padStart(10) + ' '}${e.name}${e.folder ? '/' : ''}`)

      const odfs = `XDG_STATE_HOME=${env.XDG_STATE_HOME} node ${resolve(process.argv[1] ?? 'bin/odfs')}`
      const opts = `--config ${configFile} --token-store ${argv['token-store']}`
      out('')
      out(`The emulator: graph ${emu.info.graph}, authority ${emu.info.authority}, CA ${emu.info.ca}`)

      const mnt = resolve(argv.mountpoint ?? 'mnt')
      await mkdir(mnt, { recursive: true })
      const mountArgv = {
        ...Object.fromEntries(Object.entries(mountOptions).map(([k, o]) => [k, (o as { default?: unknown }).default])),
        ...sessionArgv, mountpoint: mnt, 'cache-dir': join(stateRoot, 'cache'), 'log-level': process.env.ODFS_LOG_LEVEL ?? 'warn',
      } as MountArgv
      const m = await startMount(mountArgv, log, (msg) => process.stderr.write(`odfs: ${msg}\n`), { env })
      out(`ready: ${mnt}`)
      out('Try, in another terminal:')
      out(`  ls -l "${mnt}/My files" "${mnt}/Shared with me"`)
      out(`  cp /etc/hostname "${mnt}/My files/"`)
      out(`  ${odfs} sync ${mnt}`)
      out(`  ${odfs} ls ${opts} "My files/Documents"`)
      out(`  ${odfs} put ${opts} /etc/hostname "My files/hostname.txt"`)
      out(`  ${odfs} get ${opts} "My files/README.txt" /tmp/README.txt`)
      out(`  ${odfs} hash ${opts} "My files/README.txt"`)
      out(`  ${odfs} status ${opts}`)
      out('By hand with curl (device code, then a listing):')
      out(`  curl --cacert ${emu.info.ca} -d client_id=${app.client_id} --data-urlencode 'scope=Files.ReadWrite.All offline_access' ${emu.info.authority}/common/oauth2/v2.0/devicecode`)
      out(`  curl --cacert ${emu.info.ca} -d grant_type=urn:ietf:params:oauth:grant-type:device_code -d client_id=${app.client_id} -d device_code=DEVICE_CODE ${emu.info.authority}/common/oauth2/v2.0/token`)
      out(`  curl --cacert ${emu.info.ca} -H "Authorization: Bearer ACCESS_TOKEN" '${emu.info.graph}/me/drive/root/children?$top=5'`)
      if (argv.once) {
        const left = await m.stop()
        if (left > 0) process.stderr.write(`odfs: ${left} upload(s) left in the write-back spool\n`)
        return
      }
      out('')
      out('Ctrl-C unmounts (after pending uploads) and stops the emulator.')
      await runUntilSignal(m, (msg) => process.stderr.write(`odfs: ${msg}\n`))
    } finally {
      await emu.close()
    }
  },
}
