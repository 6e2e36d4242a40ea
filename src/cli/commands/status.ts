/**
 * `odfs status`: the signed-in user's credential as the seed's
 * OneDriveUserCredentialPolicies document, tokens redacted.
 */
import type { CommandModule } from 'yargs'
import { sessionOptions, userOption, type SessionArgv } from '../options.js'

interface StatusArgv extends SessionArgv {
  json?: boolean
}

export const statusCommand: CommandModule<object, StatusArgv> = {
  builder: (y) => y.options({ ...sessionOptions, ...userOption, json: { type: 'boolean', default: false, describe: 'Machine-readable JSON' } }) as never,
  handler: async (argv) => {
    const { accountKind, credentialDocument, findSignedInAccount, MsalTokenProvider } = await import('../../auth/index.js')
    const { openGateway } = await import('../session.js')
    const g = await openGateway(argv)
    try {
      const account = await findSignedInAccount(g.app, g.config)
      const provider = new MsalTokenProvider({ app: g.app, config: g.config, account, log: g.log })
      const r = await provider.acquire(false)
      const doc = credentialDocument(r.account ?? account, r.scopes, r.expiresOn ?? new Date())
      const extra = {
        username: account.username,
        kind: accountKind(account),
        tenant_id: account.tenantId,
        client_id: g.config.clientId,
        authority: g.config.authority,
        token_store: g.store.location,
      }
      if (argv.json) {
        process.stdout.write(JSON.stringify({ ...doc, account: extra }, null, 2) + '\n')
      } else {
        process.stdout.write(
          `Signed in as ${extra.username} (${extra.kind} account, tenant ${extra.tenant_id})\n` +
            `Gateway: client ${extra.client_id} at ${extra.authority}\n` +
            `Tokens kept in: ${extra.token_store}\n\n` +
            JSON.stringify(doc, null, 2) + '\n',
        )
      }
    } finally {
      await g.dispatcher.close()
    }
  },
}
