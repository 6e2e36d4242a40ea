/**
 * `odfs gateway create|update|show`: the counterpart of the seed's
 * `globus-connect-server storage-gateway create|update onedrive`. Writes the
 * onedrive_storage_policies#1.0.0 document (mode 0600) from the --ms-* options;
 * `show` prints the effective policies with the secret redacted and the redirect
 * URI to register with Microsoft. The secret is never echoed back.
 *
 * Target file: --config FILE, else /etc/odfs/gateway.json for root, else
 * $XDG_CONFIG_HOME/odfs/gateway.json.
 */
import { access } from 'node:fs/promises'
import type { CommandModule } from 'yargs'
import {
  gatewayOptions, gatewayOverridesFromArgv, KEY_TO_FLAG, loadGatewayConfig, overridesToDocument, OVERRIDE_TO_KEY,
  readPolicyFile, redactPolicyDocument, redirectUriToRegister, SYSTEM_CONFIG_FILE, toPolicyDocument, userConfigFile,
  validateGatewayDocument, writePolicyDocument, ConfigError,
  type GatewayArgv, type GatewayConfig, type GatewayOverrides, type GatewayPolicyDocument,
} from '../../config/index.js'

interface GatewayCmdArgv extends GatewayArgv {
  action: 'create' | 'update' | 'show'
  json?: boolean
}

function targetFile(argv: GatewayArgv): string {
  if (argv.config) return argv.config
  return process.getuid?.() === 0 ? SYSTEM_CONFIG_FILE : userConfigFile()
}

/** The effective configuration as a policy document (for show). */
function effectiveDocument(c: GatewayConfig): GatewayPolicyDocument {
  return toPolicyDocument({
    client_id: c.clientId,
    secret: c.secret,
    tenant: c.tenant,
    user_api_rate_limit: c.userApiRateLimit,
    auth_callback: c.authCallback,
    account_types: c.accountTypes,
    cloud: c.cloud,
    shared_libraries: c.sharedLibraries,
    login_endpoint: c.loginEndpoint,
    graph_endpoint: c.graphBaseUrl,
    ca_file: c.caFile,
  })
}

function printSummary(c: GatewayConfig, doc: GatewayPolicyDocument, json: boolean | undefined): void {
  const redirect = redirectUriToRegister(c)
  if (json) {
    process.stdout.write(JSON.stringify({ policies: redactPolicyDocument(doc), redirect_uri: redirect, authority: c.authority, graph: c.graphBaseUrl, scopes: c.scopes, source: c.source }, null, 2) + '\n')
    return
  }
  process.stdout.write(
    JSON.stringify(redactPolicyDocument(doc), null, 2) + '\n\n' +
      `Authority:    ${c.authority}\n` +
      `Graph:        ${c.graphBaseUrl}\n` +
      `Scopes:       ${c.scopes.join(' ')}\n` +
      `Redirect URI: ${redirect}\n` +
      (c.authCallback
        ? '  register it under Authentication > Web in the Azure app registration\n'
        : '  register it under Authentication > Mobile and desktop applications (any port matches);\n  also set "Allow public client flows" to Yes for device-code sign-in\n') +
      (c.source.length ? `Read from:    ${c.source.join(', ')}\n` : ''),
  )
}

export const gatewayCommand: CommandModule<object, GatewayCmdArgv> = {
  builder: (y) =>
    y
      .positional('action', { choices: ['create', 'update', 'show'] as const, describe: 'create a new policy file, update one, or show the effective policies' })
      .options({ ...gatewayOptions, json: { type: 'boolean', default: false, describe: 'show: machine-readable JSON' } })
      .example('$0 gateway create --ms-client-id CLIENT_ID --ms-client-secret - < secret.txt', 'secret read from stdin, never from argv')
      .example('$0 gateway create --ms-client-id CLIENT_ID --ms-tenant TENANT_ID --ms-account-types single-tenant', '') as never,
  handler: async (argv) => {
    const overrides = await gatewayOverridesFromArgv(argv)
    if (argv.action === 'show') {
      const c = await loadGatewayConfig({ configFile: argv.config, overrides })
      printSummary(c, effectiveDocument(c), argv.json)
      return
    }
    const file = targetFile(argv)
    const exists = await access(file).then(() => true, () => false)
    if (argv.action === 'create' && exists) throw new ConfigError('CONFIG_EXISTS', [`${file} already exists: use odfs gateway update to change it`])
    if (argv.action === 'update' && !exists) throw new ConfigError('CONFIG_MISSING', [`${file} does not exist: use odfs gateway create first`])
    const problems: string[] = []
    const base = argv.action === 'update' ? await readPolicyFile(file, true, problems) : {}
    if (problems.length || !base) throw new ConfigError('CONFIG_UNREADABLE', problems)
    const origin = new Map<keyof GatewayPolicyDocument, string>()
    for (const k of Object.keys(base)) origin.set(k as keyof GatewayPolicyDocument, file)
    for (const k of Object.keys(overrides) as (keyof GatewayOverrides)[]) origin.set(OVERRIDE_TO_KEY[k], `option ${KEY_TO_FLAG[k]}`)
    const merged = { ...base, ...overridesToDocument(overrides) }
    const c = validateGatewayDocument(merged, origin, [file])
    const doc = toPolicyDocument(merged)
    await writePolicyDocument(file, doc)
    process.stdout.write(`Gateway policies ${argv.action === 'create' ? 'written to' : 'updated in'} ${file} (mode 0600).\n`)
    printSummary(c, doc, argv.json)
  },
}
