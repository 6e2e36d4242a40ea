/**
 * Benchmark (not a test): cost of the identity platform on the hot paths.
 * Run: node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs test/emulator/identity-bench.ts
 * (TS_NODE_TRANSPILE_ONLY=1 speeds start-up). Prints numbers only, never tokens.
 */
import { performance } from 'node:perf_hooks'
import { APPS } from '../../src/emulator/directory.js'
import { startIdp, cleanupCerts } from './identity-support.js'

const PUBLIC = APPS.find((a) => a.clientId.endsWith('a001'))!

async function main(): Promise<void> {
  let t0 = performance.now()
  const s = await startIdp()
  console.log(`start (openssl certs + server): ${(performance.now() - t0).toFixed(0)} ms`)

  const login = async (account: string) => {
    const dc = await s.form('/common/oauth2/v2.0/devicecode', { client_id: PUBLIC.clientId, scope: 'openid profile offline_access Files.ReadWrite.All' })
    s.idp.approveDeviceCode(dc.body.user_code, account)
    return (await s.form('/common/oauth2/v2.0/token', { grant_type: 'device_code', client_id: PUBLIC.clientId, device_code: dc.body.device_code })).body
  }
  t0 = performance.now()
  const first = await login('user1')
  console.log(`first device-code login (includes RSA key generation): ${(performance.now() - t0).toFixed(0)} ms`)

  const n = 200
  t0 = performance.now()
  for (let i = 0; i < n; i++) await login(i % 2 ? 'user1' : 'personal1')
  console.log(`device-code login (2 requests + approve), sequential: ${((performance.now() - t0) / n).toFixed(2)} ms each`)

  let rt = first.refresh_token as string
  t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const r = await s.form('/common/oauth2/v2.0/token', { grant_type: 'refresh_token', client_id: PUBLIC.clientId, refresh_token: rt })
    rt = r.body.refresh_token
  }
  console.log(`refresh_token grant over HTTPS, sequential: ${((performance.now() - t0) / n).toFixed(2)} ms each`)

  const header = `Bearer ${first.access_token}`
  const m = 200_000
  t0 = performance.now()
  for (let i = 0; i < m; i++) if (!s.idp.verifyAccessToken(header).ok) throw new Error('verify failed')
  const us = ((performance.now() - t0) * 1000) / m
  console.log(`verifyAccessToken (JWT, ${first.access_token.length} chars): ${us.toFixed(2)} µs each, ${Math.round(1e6 / us)} per second`)
  const mem = process.memoryUsage()
  console.log(`after ${2 * n + 1} logins and ${n} refreshes: rss ${(mem.rss / 2 ** 20).toFixed(0)} MiB, heap ${(mem.heapUsed / 2 ** 20).toFixed(0)} MiB`)
  await s.close()
  cleanupCerts()
}

await main()
