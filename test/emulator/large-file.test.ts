// A 2 GiB file goes up by upload session and comes back down through an emulator
// running in its own process; its RSS must stay flat (content lives on disk).
import t from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { join } from 'node:path'
import { createDispatcher } from '../../src/common/index.js'
import { QuickXorHash } from '../../src/emulator/index.js'
import { PUBLIC_CLIENT, SCOPES } from '../support/emulator.js'

// 2 GiB through TLS twice takes over a minute alone, longer on a loaded machine:
// tell the runner this file may exceed the default per-file timeout.
t.setTimeout(900_000)

const SIZE = 2 * 1024 ** 3
const FRAGMENT = 32 * 327_680 // 10 MiB

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m![1]) * 1024
}

function fill(buf: Buffer, offset: number): void {
  for (let i = 0; i < buf.length; i++) {
    const p = offset + i
    buf[i] = (p ^ (p >>> 9) ^ (p >>> 17)) & 0xff
  }
}

t.test('2 GiB up and down with flat emulator memory', { timeout: 900_000 }, async (t) => {
  const child = spawn(process.execPath, [...process.execArgv, join(import.meta.dirname, '../support/emulator-child.ts'), JSON.stringify({ rateLimit: 0, autoConsent: 'user1' })], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise((r) => child.once('exit', r))
  t.teardown(async () => {
    child.kill('SIGTERM')
    await exited
  })
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve)
    child.once('exit', () => reject(new Error('emulator child exited')))
  })
  const info = JSON.parse(line)
  const dispatcher = await createDispatcher({ caFile: info.ca })
  t.teardown(() => (dispatcher as any).close())
  const f = (url: string, init: RequestInit = {}) => fetch(url, { ...init, dispatcher } as RequestInit)
  const form = (body: Record<string, string>) => ({ method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body).toString() })
  const dc = (await (await f(`${info.authority}/common/oauth2/v2.0/devicecode`, form({ client_id: PUBLIC_CLIENT, scope: SCOPES }))).json()) as any
  const tok = (await (await f(`${info.authority}/common/oauth2/v2.0/token`, form({ grant_type: 'device_code', client_id: PUBLIC_CLIENT, device_code: dc.device_code }))).json()) as any
  t.ok(tok.access_token, 'signed in')

  const baseline = rssOf(child.pid!)
  let peak = baseline
  const sample = () => { peak = Math.max(peak, rssOf(child.pid!)) }

  const s = await f(`${info.graph}/me/drive/root:/big/2GiB.bin:/createUploadSession`, {
    method: 'POST', headers: { authorization: `Bearer ${tok.access_token}`, 'content-type': 'application/json' }, body: JSON.stringify({ item: { '@microsoft.graph.conflictBehavior': 'replace' } }),
  })
  t.equal(s.status, 200)
  const { uploadUrl } = (await s.json()) as any
  const sent = new QuickXorHash()
  const base = Buffer.alloc(FRAGMENT)
  fill(base, 0)
  const buf = Buffer.alloc(FRAGMENT)
  const t0 = Date.now()
  let last: Response | undefined
  for (let off = 0; off < SIZE; off += FRAGMENT) {
    const n = Math.min(FRAGMENT, SIZE - off)
    const chunk = buf.subarray(0, n)
    base.copy(chunk, 0, 0, n)
    chunk.writeUInt32LE(off / FRAGMENT, 0) // every fragment differs

    sent.update(chunk)
    last = await f(uploadUrl, { method: 'PUT', headers: { 'content-range': `bytes ${off}-${off + n - 1}/${SIZE}` }, body: chunk })
    if (off + n < SIZE) {
      if (last.status !== 202) t.fail(`fragment at ${off}: ${last.status}`)
      await last.arrayBuffer()
    }
    sample()
  }
  const upMs = Date.now() - t0
  t.equal(last!.status, 201)
  const item = (await last!.json()) as any
  t.equal(item.size, SIZE)
  t.equal(item.file.hashes.quickXorHash, sent.digest(), 'server hash matches')

  const c = await f(`${info.graph}/me/drive/items/${item.id}/content`, { headers: { authorization: `Bearer ${tok.access_token}` }, redirect: 'manual' })
  t.equal(c.status, 302)
  const t1 = Date.now()
  const d = await f(c.headers.get('location')!)
  t.equal(d.status, 200)
  const got = new QuickXorHash()
  let i = 0
  for await (const chunk of d.body as unknown as AsyncIterable<Uint8Array>) {
    got.update(chunk)
    if (++i % 200 === 0) sample()
  }
  const downMs = Date.now() - t1
  sample()
  t.equal(got.length, SIZE, 'downloaded size')
  t.equal(got.digest(), sent.digest(), 'downloaded quickXorHash')
  const growth = peak - baseline
  t.comment(`emulator RSS baseline ${(baseline / 2 ** 20).toFixed(0)} MiB, peak ${(peak / 2 ** 20).toFixed(0)} MiB; upload ${(SIZE / 2 ** 20 / (upMs / 1000)).toFixed(0)} MiB/s, download ${(SIZE / 2 ** 20 / (downMs / 1000)).toFixed(0)} MiB/s`)
  t.ok(growth < 300 * 2 ** 20, `RSS growth ${(growth / 2 ** 20).toFixed(0)} MiB stays far below 2 GiB`)
})
