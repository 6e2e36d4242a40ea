// odfs ls / put / get / hash as child processes (node bin/odfs, built dist/) against
// the emulator, signed in with `odfs login` (device code, auto-consent, file token
// store) under temporary XDG dirs. Covers: listing the virtual tree (text and
// --json), put + hash + get round trip keeping the mtime, a put interrupted by
// SIGINT and resumed by the next run, and one clear line with a non-zero exit on failure.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile, readFile, stat, utimes } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startTestEmulator, PUBLIC_CLIENT, type TestEmulator } from '../support/emulator.js'
import { quickXorHash } from '../../src/graph/index.js'
import { ensureBuilt } from '../support/build.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

interface Run { code: number | null; stdout: string; stderr: string }

function start(args: string[], env: NodeJS.ProcessEnv): { p: ChildProcess; done: Promise<Run> } {
  const p = spawn(process.execPath, [join(root, 'bin/odfs'), ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  p.stdout!.on('data', (d) => (stdout += d))
  p.stderr!.on('data', (d) => (stderr += d))
  const done = new Promise<Run>((resolve, reject) => {
    p.on('error', reject)
    p.on('close', (code) => resolve({ code, stdout, stderr }))
  })
  return { p, done }
}
const odfs = (args: string[], env: NodeJS.ProcessEnv) => start(args, env).done

let emu: TestEmulator
let dir: string
let env: NodeJS.ProcessEnv
const store = ['--token-store', 'file']

t.before(async () => {
  await ensureBuilt() // bin/odfs loads dist/
  emu = await startTestEmulator({ seed: 'demo' })
  dir = await mkdtemp(join(tmpdir(), 'odfs-transfer-cli-'))
  env = { ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), XDG_STATE_HOME: join(dir, 'state'), ODFS_SYSTEM_CONFIG: join(dir, 'etc-gateway.json'), ODFS_LOG_LEVEL: 'warn' }
  const cfg = await odfs(['gateway', 'create', '--config', join(dir, 'config', 'odfs', 'gateway.json'), '--ms-client-id', PUBLIC_CLIENT,
    '--ms-login-endpoint', emu.info.authority, '--ms-graph-endpoint', emu.info.graph, '--ca-file', emu.info.ca], env)
  if (cfg.code !== 0) throw new Error(`gateway create failed: ${cfg.stderr}`)
  emu.identity.setAutoConsent('user1')
  const login = await odfs(['login', ...store], env)
  emu.identity.setAutoConsent(undefined)
  if (login.code !== 0) throw new Error(`login failed: ${login.stderr}`)
})
t.teardown(async () => {
  await emu?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

t.test('ls shows the virtual tree', async (t) => {
  const top = await odfs(['ls', ...store], env)
  t.equal(top.code, 0, top.stderr)
  t.match(top.stdout, /My files\//)
  t.match(top.stdout, /Shared with me\//)
  t.match(top.stdout, /Shared libraries\//)
  const mine = await odfs(['ls', '--json', ...store, 'My files'], env)
  t.equal(mine.code, 0, mine.stderr)
  const list = JSON.parse(mine.stdout) as { Name: string; IsDir: boolean; Path: string }[]
  t.ok(list.some((e) => e.Name === 'Documents' && e.IsDir), 'Documents listed as a folder')
  t.ok(list.every((e) => e.Path.startsWith('My files/')))
  const shared = await odfs(['ls', ...store, 'Shared with me'], env)
  t.equal(shared.code, 0, shared.stderr)
  t.ok(shared.stdout.trim().length > 0, 'something is shared with user1')
})

t.test('put, hash, get round trip keeps bytes and mtime', async (t) => {
  const local = join(dir, 'up.bin')
  const data = randomBytes(3 * 1024 * 1024 + 17)
  await writeFile(local, data)
  const mtime = new Date('2023-03-04T05:06:07Z')
  await utimes(local, mtime, mtime)
  const put = await odfs(['put', ...store, local, 'My files/Documents/up.bin'], env)
  t.equal(put.code, 0, put.stderr)
  t.match(put.stderr, /quickXorHash verified/)
  const h = await odfs(['hash', ...store, 'My files/Documents/up.bin'], env)
  t.equal(h.code, 0, h.stderr)
  t.equal(h.stdout.split(/\s+/)[0], quickXorHash(data), "hash prints the server's quickXorHash")
  const back = join(dir, 'back.bin')
  const get = await odfs(['get', ...store, 'My files/Documents/up.bin', back], env)
  t.equal(get.code, 0, get.stderr)
  t.ok((await readFile(back)).equals(data), 'same bytes')
  t.equal((await stat(back)).mtime.getTime(), mtime.getTime(), 'mtime kept')
  // put into a folder keeps the local name; a zero-byte file works
  const empty = join(dir, 'empty.txt')
  await writeFile(empty, '')
  const pe = await odfs(['put', ...store, empty, 'My files/Documents'], env)
  t.equal(pe.code, 0, pe.stderr)
  const ls = await odfs(['ls', '--json', ...store, 'My files/Documents'], env)
  t.ok((JSON.parse(ls.stdout) as { Name: string; Size: number }[]).some((e) => e.Name === 'empty.txt' && e.Size === 0))
})

t.test('an interrupted put resumes when run again', async (t) => {
  const local = join(dir, 'big.bin')
  const size = 24 * 1024 * 1024
  const data = randomBytes(size)
  await writeFile(local, data)
  emu.setFaults({ bandwidth: 4 * 1024 * 1024 }) // slow enough to interrupt half-way
  t.teardown(() => emu.setFaults({ bandwidth: 0 }))
  emu.resetStats()
  const run = start(['put', ...store, local, 'My files/big.bin'], env)
  const fragments = () => Object.entries(emu.stats.routes).filter(([r]) => r.startsWith('PUT /_upload')).reduce((a, [, n]) => a + n, 0)
  for (let i = 0; i < 600 && fragments() < 2; i++) await new Promise((r) => setTimeout(r, 100))
  t.ok(fragments() >= 2, 'two fragments sent before the interruption')
  run.p.kill('SIGINT')
  const first = await run.done
  t.not(first.code, 0, 'interrupted put fails')
  t.equal(first.stderr.trim().split('\n').length, 1, `one line: ${first.stderr.trim()}`)
  // Let the emulator drain what the killed process had already put in the socket, then count afresh.
  emu.setFaults({ bandwidth: 0 })
  for (let last = -1, i = 0; i < 100 && emu.stats.bytesIn !== last; i++) {
    last = emu.stats.bytesIn
    await new Promise((r) => setTimeout(r, 300))
  }
  emu.resetStats()
  const second = await odfs(['put', ...store, local, 'My files/big.bin'], env)
  t.equal(second.code, 0, second.stderr)
  t.match(second.stderr, /resumed at byte \d+/)
  const resumedAt = Number(/resumed at byte (\d+)/.exec(second.stderr)![1])
  t.ok(resumedAt >= 10 * 1024 * 1024, `resumed at ${resumedAt}`)
  t.equal(fragments(), Math.ceil((size - resumedAt) / (10 * 1024 * 1024)), 'only the missing fragments were sent')
  t.ok(emu.stats.bytesIn <= size - resumedAt + 64 * 1024, `second run sent ${emu.stats.bytesIn} bytes, not the whole file`)
  const h = await odfs(['hash', ...store, 'My files/big.bin'], env)
  t.equal(h.stdout.split(/\s+/)[0], quickXorHash(data))
})

t.test('failures: one clear line and a non-zero exit', async (t) => {
  const missing = await odfs(['get', ...store, 'My files/no/such/file.txt', join(dir, 'x')], env)
  t.equal(missing.code, 1)
  t.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr)
  t.match(missing.stderr, /^odfs: .*no such/i)
  t.notOk(existsSync(join(dir, 'x')), 'nothing written')
  const nolocal = await odfs(['put', ...store, join(dir, 'nope.bin'), 'My files/x.bin'], env)
  t.equal(nolocal.code, 1)
  t.match(nolocal.stderr, /^odfs: .*no such local file/)
  const folder = await odfs(['get', ...store, 'My files/Documents', join(dir, 'y')], env)
  t.equal(folder.code, 1)
  t.match(folder.stderr, /is a folder/)
  const bad = await odfs(['put', ...store, join(dir, 'up.bin'), 'My files/bad:name.bin'], env)
  t.equal(bad.code, 1)
  t.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr)
})
