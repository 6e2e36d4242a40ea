/**
 * `odfs status`: the signed-in user's credential as the seed's
 * OneDriveUserCredentialPolicies document, tokens redacted; and, for each mount
 * of this user that is running, its pending uploads and conflicts (asked of the
 * daemon over its control socket; nothing more is said when none runs). Root's
 * `odfs status --user NAME` shows NAME's credential and NAME's mounts.
 */
import type { CommandModule } from 'yargs'
import { sessionOptions, userOption, type SessionArgv } from '../options.js'
import { controlSocketDirs, runningMounts, type Reply } from '../control.js'

interface StatusArgv extends SessionArgv {
  json?: boolean
}

export const statusCommand: CommandModule<object, StatusArgv> = {
  builder: (y) => y.options({ ...sessionOptions, ...userOption, json: { type: 'boolean', default: false, describe: 'Machine-readable JSON' } }) as never,
  handler: async (argv) => {
    const { accountKind, credentialDocument, findSignedInAccount, lookupUser, MsalTokenProvider } = await import('../../auth/index.js')
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
      // --user NAME (root): NAME's mounts: those NAME started (sockets in NAME's
      // directories) and those we started for NAME with --user (in ours).
      const owner = await lookupUser(argv.user)
      const mounts = (await runningMounts(controlSocketDirs(owner), owner.other ? owner.name : undefined)).map(mountSummary)
      if (argv.json) {
        process.stdout.write(JSON.stringify({ ...doc, account: extra, ...(mounts.length ? { mounts } : {}) }, null, 2) + '\n')
      } else {
        process.stdout.write(
          `Signed in as ${extra.username} (${extra.kind} account, tenant ${extra.tenant_id})\n` +
            `Gateway: client ${extra.client_id} at ${extra.authority}\n` +
            `Tokens kept in: ${extra.token_store}\n\n` +
            JSON.stringify(doc, null, 2) + '\n',
        )
        for (const m of mounts) {
          process.stdout.write(`\nMounted at ${m.mountpoint}: ${m.pending.length} upload(s) pending, ${m.conflicts.length} conflict(s)\n`)
          for (const p of m.pending) process.stdout.write(`  pending: ${p.name} (${p.size} bytes, ${p.state}${p.error ? `: ${p.error}` : ''})\n`)
          for (const c of m.conflicts) process.stdout.write(`  conflict: ${c.name} changed on OneDrive meanwhile; this mount's version is ${c.conflictName}\n`)
        }
      }
    } finally {
      await g.dispatcher.close()
    }
  },
}

interface MountSummary {
  mountpoint: string
  pending: { name: string; size: number; state: string; error?: string }[]
  conflicts: { name: string; conflictName: string }[]
}

function mountSummary(r: Reply): MountSummary {
  const pending = Array.isArray(r.pending) ? (r.pending as MountSummary['pending']) : []
  const conflicts = Array.isArray(r.conflicts) ? (r.conflicts as MountSummary['conflicts']) : []
  return {
    mountpoint: String(r.mountpoint),
    pending: pending.map((p) => ({ name: p.name, size: p.size, state: p.state, ...(p.error ? { error: p.error } : {}) })),
    conflicts: conflicts.map((c) => ({ name: c.name, conflictName: c.conflictName })),
  }
}
