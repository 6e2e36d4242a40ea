/**
 * `odfs login`: sign the OS user (or `--user NAME`) in to OneDrive once. Device
 * code by default (headless machines); `--browser` for authorization code with
 * PKCE through a loopback redirect or the configured auth_callback.
 */
import type { CommandModule } from 'yargs'
import { sessionOptions, userOption, type SessionArgv } from '../options.js'

interface LoginArgv extends SessionArgv {
  browser?: boolean
}

export const loginCommand: CommandModule<object, LoginArgv> = {
  builder: (y) =>
    y.options({
      ...sessionOptions,
      ...userOption,
      browser: { type: 'boolean', default: false, describe: 'Authorization code with PKCE through a browser instead of a device code' },
    }) as never,
  handler: async (argv) => {
    const { accountKind, loginWithBrowser, loginWithDeviceCode, removeOtherAccounts } = await import('../../auth/index.js')
    const { openGateway } = await import('../session.js')
    const g = await openGateway(argv)
    const out = (s: string) => process.stdout.write(s + '\n')
    const ac = new AbortController()
    const onSig = () => ac.abort(new Error('sign-in interrupted'))
    process.once('SIGINT', onSig)
    process.once('SIGTERM', onSig)
    try {
      const result = argv.browser
        ? await loginWithBrowser({
            app: g.app, config: g.config, dispatcher: g.dispatcher, log: g.log, signal: ac.signal,
            pasteInput: process.stdin,
            onAuthorizeUrl: (url, redirectUri) => {
              out(`Open this address in a browser and sign in:\n\n  ${url}\n`)
              out(g.config.authCallback
                ? `After signing in, the browser is sent to ${redirectUri}; paste the full address it ends on here and press Enter:`
                : `Waiting for the browser to return to ${redirectUri} (if the browser runs on another machine, paste the address it ends on here).`)
            },
          })
        : await loginWithDeviceCode({
            app: g.app, config: g.config, dispatcher: g.dispatcher, log: g.log, signal: ac.signal,
            onPrompt: (p) => {
              out(`To sign in, open ${p.verificationUri} in a browser and enter the code ${p.userCode}`)
              out(`(the code is valid for ${Math.round(p.expiresInSec / 60)} minutes; waiting for you to finish)`)
            },
          })
      const acc = result.account!
      await removeOtherAccounts(g.app, acc.homeAccountId)
      out(`Signed in as ${acc.username} (${accountKind(acc)} account, tenant ${acc.tenantId}).`)
      out(`Tokens are kept in ${g.store.location}.`)
    } finally {
      process.off('SIGINT', onSig)
      process.off('SIGTERM', onSig)
      process.stdin.pause()
      await g.dispatcher.close()
    }
  },
}
