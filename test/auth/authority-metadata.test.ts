// The authority's metadata kept between commands (src/auth/authority-metadata.ts):
// after sign-in, a command asks the identity platform for no metadata; a stale,
// loose or altered file is not used (the metadata is fetched again) and the
// command still works.
import t from 'tap'
import { chmod, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { checkAuthorityMetadata, isAuthorityMetadataUrl, AUTHORITY_METADATA_MAX_AGE_MS } from '../../src/auth/index.js'
import { signedInCliForFile } from '../support/odfs-cli.js'

const cli = signedInCliForFile(t, 'odfs-authority-metadata-')

/** Requests for the OpenID configuration since the last resetStats(). */
function metadataRequests(): number {
  return Object.entries(cli.emu.stats.routes).filter(([k]) => k.includes('openid-configuration')).reduce((a, [, n]) => a + n, 0)
}

function keptFile(): string {
  const host = new URL(cli.emu.info.authority).host
  return join(cli.env.XDG_STATE_HOME!, 'odfs', `authority-a0d1f5e0-0000-4000-8000-00000000a001@${host.replace(/[^A-Za-z0-9._@-]/g, '_')}.json`)
}

/**
 * A command that goes through msal: `odfs status` (a command whose access token in
 * the cache is valid, such as ls, does not load msal at all: cached-token.ts).
 */
async function viaMsal(t: any) {
  const r = await cli.odfs(['status', ...cli.store])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /Signed in as user1@/)
  return r
}

t.test('signed in, a command fetches no metadata: it was kept in a private file', async (t) => {
  const st = await stat(keptFile())
  t.equal(st.mode & 0o777, 0o600, 'the kept metadata is a private file')
  const kept = JSON.parse(await readFile(keptFile(), 'utf8'))
  t.equal(typeof kept.metadata.token_endpoint, 'string')
  cli.emu.resetStats()
  await viaMsal(t)
  await viaMsal(t)
  t.equal(metadataRequests(), 0, 'two commands, no metadata request')
})

t.test('metadata older than a day is fetched again and kept anew', async (t) => {
  const kept = JSON.parse(await readFile(keptFile(), 'utf8'))
  kept.fetchedAt = Date.now() - AUTHORITY_METADATA_MAX_AGE_MS - 60_000
  await writeFile(keptFile(), JSON.stringify(kept), { mode: 0o600 })
  cli.emu.resetStats()
  await viaMsal(t)
  t.equal(metadataRequests(), 1, 'fetched again')
  const now = JSON.parse(await readFile(keptFile(), 'utf8'))
  t.ok(Date.now() - now.fetchedAt < 60_000, 'kept again with a new date')
  cli.emu.resetStats()
  await viaMsal(t)
  t.equal(metadataRequests(), 0)
})

t.test('a file others can read, or endpoints on another host, are not used', async (t) => {
  await chmod(keptFile(), 0o644)
  cli.emu.resetStats()
  const r = await viaMsal(t)
  t.equal(metadataRequests(), 1, 'a loose file: fetched again')
  t.match(r.stderr, /ignoring the kept authority metadata/, 'and said')
  t.equal((await stat(keptFile())).mode & 0o777, 0o600, 'replaced by a private one')

  const kept = JSON.parse(await readFile(keptFile(), 'utf8'))
  kept.metadata.token_endpoint = 'https://attacker.example/token'
  await writeFile(keptFile(), JSON.stringify(kept), { mode: 0o600 })
  cli.emu.resetStats()
  await viaMsal(t)
  t.equal(metadataRequests(), 1, 'a token endpoint elsewhere: fetched again')
  t.equal(JSON.parse(await readFile(keptFile(), 'utf8')).metadata.token_endpoint.startsWith(cli.emu.info.authority), true, 'and kept as the service says')

  await writeFile(keptFile(), 'not json', { mode: 0o600 })
  cli.emu.resetStats()
  await viaMsal(t)
  t.equal(metadataRequests(), 1, 'an unreadable file: fetched again')
})

t.test('what is kept: the OpenID configuration of this authority, endpoints on its origin', async (t) => {
  const a = 'https://login.example.com/tenant-1'
  t.ok(isAuthorityMetadataUrl(a, `${a}/v2.0/.well-known/openid-configuration`))
  t.notOk(isAuthorityMetadataUrl(a, 'https://login.example.com/tenant-2/v2.0/.well-known/openid-configuration'), 'another tenant')
  t.notOk(isAuthorityMetadataUrl(a, `${a}/oauth2/v2.0/token`))
  const good = { authorization_endpoint: `${a}/oauth2/v2.0/authorize`, token_endpoint: `${a}/oauth2/v2.0/token`, issuer: `${a}/v2.0`, jwks_uri: `${a}/discovery/v2.0/keys` }
  t.ok(checkAuthorityMetadata(a, JSON.stringify(good)))
  t.notOk(checkAuthorityMetadata(a, JSON.stringify({ ...good, token_endpoint: 'https://login.example.com.evil/t' })))
  t.notOk(checkAuthorityMetadata(a, JSON.stringify({ ...good, jwks_uri: undefined })), 'msal needs jwks_uri')
  t.notOk(checkAuthorityMetadata(a, '[1,2]'))
})
