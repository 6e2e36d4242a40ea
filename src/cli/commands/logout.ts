/** `odfs logout`: delete the user's tokens from the store that holds them. */
import type { CommandModule } from 'yargs'
import { sessionOptions, userOption, type SessionArgv } from '../options.js'

export const logoutCommand: CommandModule<object, SessionArgv> = {
  builder: (y) => y.options({ ...sessionOptions, ...userOption }) as never,
  handler: async (argv) => {
    const { resolveTokenStore } = await import('../../auth/index.js')
    const { openGateway } = await import('../session.js')
    const g = await openGateway(argv)
    try {
      const removed: string[] = []
      if (await g.store.clear()) removed.push(g.store.location)
      // With auto, a file left behind by an earlier fallback is removed too.
      if (g.store.kind === 'keychain' && (argv['token-store'] ?? 'auto') === 'auto') {
        const file = await resolveTokenStore({ mode: 'file', config: g.config, user: g.user, env: g.env })
        if (await file.clear()) removed.push(file.location)
      }
      process.stdout.write(removed.length ? `Signed out: removed tokens from ${removed.join(' and ')}.\n` : `Not signed in: nothing stored in ${g.store.location}.\n`)
    } finally {
      await g.dispatcher.close()
    }
  },
}
