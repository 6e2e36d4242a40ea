/**
 * Transfer benchmark (not a test): against the emulator on loopback (run as a child
 * process, `odfs emulator`, so client and server do not share one thread), 1 GiB download
 * and upload by this client vs the same transfer with plain Node `https` (no Graph
 * client, no rate limiter, no hashing), in the same run; prints throughputs, the two
 * ratios (target >= 0.9) and calls per listing.
 *
 *   node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs test/bench/transfer.ts [--size MiB] [--rounds N]
 */
import https from 'node:https'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { dirname, join, resolve } from 'node:path'
import { startEmulator } from '../../src/emulator/index.js'
import { createDispatcher } from '../../src/common/index.js'
import { createGraphDriveClient, type UploadSource } from '../../src/graph/index.js'

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : def
}
const SIZE = arg('size', 1024) * 1024 * 1024
const ROUNDS = arg('rounds', 2)
const FRAG = 10 * 1024 * 1024
const PUBLIC_CLIENT = 'a0d1f5e0-0000-4000-8000-00000000a001'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const LOADER = resolve(ROOT, 'node_modules/@tapjs/typescript/dist/esm/import.mjs')

interface Info { graph: string; authority: string; ca: string }

/** Start `odfs emulator` from the sources in a child process; resolves with its info line. */
function startChildEmulator(): Promise<{ info: Info; stop(): Promise<void> }> {
  const main = resolve(ROOT, 'src/cli/main.ts')
  // Content on tmpfs where there is one: the emulator's disk writes would otherwise
  // set the pace of both uploads, and page-cache writeback makes them noisy.
  const state = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'odfs-bench-'))
  const child = spawn(process.execPath, ['--import', LOADER, '-e',
    `import(${JSON.stringify(main)}).then((m) => m.main(['emulator', '--seed', 'empty', '--rate-limit', '0', '--auto-consent', 'user1', '--state', ${JSON.stringify(state)}]))`,
  ], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] })
  return new Promise((res, rej) => {
    const rl = createInterface({ input: child.stdout! })
    rl.once('line', (line) => {
      res({
        info: JSON.parse(line) as Info,
        stop: () => new Promise<void>((r) => {
          child.once('exit', () => {
            rmSync(state, { recursive: true, force: true })
            r()
          })
          child.kill('SIGTERM')
        }),
      })
    })
    child.once('exit', (code) => rej(new Error(`emulator exited with ${code}`)))
  })
}

async function main() {
  const emu = await startChildEmulator()
  const dispatcher = createDispatcher({ caFile: emu.info.ca })
  const agent = new https.Agent({ ca: readFileSync(emu.info.ca), keepAlive: true })
  const mib = (bps: number) => `${(bps / 1048576).toFixed(1)} MiB/s`
  try {
    const token = await getToken(emu.info.authority, dispatcher)
    const client = createGraphDriveClient({ baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher })
    const drive = await client.getMyDrive()
    const chunk = Buffer.alloc(FRAG)
    for (let i = 0; i < FRAG; i++) chunk[i] = i & 0xff
    const source: UploadSource = { size: SIZE, read: async (o, n) => (n === FRAG ? chunk : chunk.subarray(0, n)) }
    const first = await client.upload({ driveId: drive.id, itemId: 'root' }, 'big.bin', source, { fragmentSize: FRAG })
    const ref = { driveId: drive.id, itemId: first.item.id }

    const best = { dlClient: 0, dlRaw: 0, dlPlain: 0, ulClient: 0, ulPlain: 0 }
    for (let r = 0; r < ROUNDS; r++) {
      best.dlPlain = Math.max(best.dlPlain, await timed(() => plainDownload(emu.info.graph, token, ref, agent)))
      best.dlClient = Math.max(best.dlClient, await timed(async () => {
        const res = await client.download(ref, () => {}, { verify: true })
        if (res.bytes !== SIZE || !res.verified) throw new Error('client download incomplete or unverified')
      }))
      best.dlRaw = Math.max(best.dlRaw, await timed(async () => {
        const res = await client.download(ref, () => {}, { verify: false })
        if (res.bytes !== SIZE) throw new Error('client download incomplete')
      }))
      // Alternate which upload goes first: the second one pays for the first one's
      // dirty pages being written back by the emulator's disk.
      const ulPlain = async () => { best.ulPlain = Math.max(best.ulPlain, await timed(() => plainUpload(emu.info.graph, token, drive.id, agent, chunk))) }
      const ulClient = async () => {
        best.ulClient = Math.max(best.ulClient, await timed(async () => {
          const res = await client.upload({ driveId: drive.id, itemId: 'root' }, 'up-client.bin', source, { fragmentSize: FRAG })
          if (!res.verified) throw new Error('client upload unverified')
        }))
      }
      if (r % 2 === 0) { await ulPlain(); await ulClient() } else { await ulClient(); await ulPlain() }
    }
    console.log(`size ${SIZE / 1048576} MiB, best of ${ROUNDS} rounds, emulator in a child process on loopback`)
    console.log(`download: client ${mib(best.dlClient)} (hash verified), plain https ${mib(best.dlPlain)}, ratio ${(best.dlClient / best.dlPlain).toFixed(3)}`)
    console.log(`          client without hashing ${mib(best.dlRaw)}, ratio ${(best.dlRaw / best.dlPlain).toFixed(3)}`)
    console.log(`upload:   client ${mib(best.ulClient)} (hash verified), plain https ${mib(best.ulPlain)}, ratio ${(best.ulClient / best.ulPlain).toFixed(3)}`)
  } finally {
    agent.destroy()
    await emu.stop()
    await (dispatcher as unknown as { close(): Promise<void> }).close()
  }

  // Calls per listing (in-process emulator: its admin handle creates 5000 items quickly).
  const local = await startEmulator({ seed: 'empty', deviceCodeIntervalSec: 0, rateLimit: 0, autoConsent: 'user1' })
  const d2 = createDispatcher({ caFile: local.info.ca })
  try {
    const token = await getToken(local.info.authority, d2)
    const client = createGraphDriveClient({ baseUrl: local.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher: d2 })
    const drive = await client.getMyDrive()
    await local.store.createMany('user1', 'listing', 5000)
    const folder = local.store.itemByPath('user1', 'listing')!
    local.resetStats()
    const kids = await client.listChildren({ driveId: drive.id, itemId: folder.id })
    const calls = local.stats.total
    console.log(`listing:  ${kids.length} items in ${calls} calls (${(kids.length / calls).toFixed(0)} items per call)`)
  } finally {
    await local.close()
    await (d2 as unknown as { close(): Promise<void> }).close()
  }

  async function timed(fn: () => Promise<void>): Promise<number> {
    const t0 = performance.now()
    await fn()
    return SIZE / ((performance.now() - t0) / 1000)
  }
}

function request(url: string, opts: https.RequestOptions, body?: Buffer): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, opts, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function plainDownload(graph: string, token: string, ref: { driveId: string; itemId: string }, agent: https.Agent): Promise<void> {
  const meta = await request(`${graph}/drives/${ref.driveId}/items/${ref.itemId}?$select=id,@microsoft.graph.downloadUrl`, { agent, headers: { authorization: `Bearer ${token}` } })
  const url = JSON.parse(meta.body.toString())['@microsoft.graph.downloadUrl'] as string
  await new Promise<void>((resolve, reject) => {
    https.get(url, { agent }, (res) => {
      let n = 0
      res.on('data', (c: Buffer) => (n += c.length))
      res.on('end', () => (n === SIZE ? resolve() : reject(new Error(`plain download got ${n}`))))
      res.on('error', reject)
    }).on('error', reject)
  })
}

async function plainUpload(graph: string, token: string, driveId: string, agent: https.Agent, chunk: Buffer): Promise<void> {
  const body = Buffer.from(JSON.stringify({ item: { '@microsoft.graph.conflictBehavior': 'replace' } }))
  const s = await request(`${graph}/drives/${driveId}/items/root:/up-plain.bin:/createUploadSession`, {
    method: 'POST', agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': body.length },
  }, body)
  const uploadUrl = JSON.parse(s.body.toString()).uploadUrl as string
  for (let o = 0; o < SIZE; o += FRAG) {
    const n = Math.min(FRAG, SIZE - o)
    const r = await request(uploadUrl, {
      method: 'PUT', agent, headers: { 'content-length': n, 'content-range': `bytes ${o}-${o + n - 1}/${SIZE}` },
    }, n === FRAG ? chunk : chunk.subarray(0, n))
    if (r.status >= 300) throw new Error(`plain upload fragment at ${o}: HTTP ${r.status}`)
  }
}

async function getToken(authority: string, dispatcher: unknown): Promise<string> {
  const post = (path: string, f: Record<string, string>) =>
    fetch(authority + path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(f).toString(), dispatcher } as RequestInit)
  const dc = (await (await post('/common/oauth2/v2.0/devicecode', { client_id: PUBLIC_CLIENT, scope: 'Files.ReadWrite.All offline_access' })).json()) as { device_code: string }
  for (let i = 0; i < 50; i++) {
    const r = (await (await post('/common/oauth2/v2.0/token', { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: PUBLIC_CLIENT, device_code: dc.device_code })).json()) as { access_token?: string }
    if (r.access_token) return r.access_token
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error('no token')
}

main().catch((e) => {
  console.error(`bench failed: ${e instanceof Error ? e.message : e}`)
  process.exitCode = 1
})
