/**
 * Mount memory benchmark (not a test: it prints numbers and asserts nothing about
 * time). The issue's promise: the daemon's RSS stays under 200 MB while a 4 GiB
 * file is written through the mount, synced and read back.
 *
 * One run, on one emulator (`odfs emulator`, a child process, content on disk):
 *
 *   write   `dd` of SIZE pseudo-random bytes (AES-CTR from openssl) into the mount
 *   sync    `odfs sync MOUNTPOINT` (the upload of the spooled file)
 *   read    page cache dropped, then `dd` of the file out of the mount into sha256sum
 *
 * while the daemon's VmRSS is sampled from /proc/PID/status every 100 ms (its
 * VmHWM is reset at each phase's start through /proc/PID/clear_refs, so each
 * phase's peak is its own). Then the same bytes are uploaded (an upload session
 * driven by one curl process, 10 MiB fragments like odfs's) and downloaded (curl
 * into sha256sum) against the same emulator, as the physical reference.
 *
 *   npm run bench:memory -- [--size MiB] [--chunk-cache-size SIZE] [--as unit|foreground]
 *
 * Without --chunk-cache-size the daemon runs with its default.
 *
 * --as unit (the default) runs the daemon with the environment the systemd unit
 * gives it (its Environment= lines, read from systemd/odfs-mount@.service; `odfs
 * mount --daemon` sets the same); --as foreground runs it as a plain `odfs mount`
 * in a terminal, with whatever environment this process has.
 *
 * BENCH_DAEMON_NODE_OPTIONS is passed to the daemon alone as NODE_OPTIONS (to look
 * into its memory: --trace-gc, --heapsnapshot-signal=SIGUSR2, a --require'd sampler).
 *
 * Needs root (drop_caches, clear_refs of the daemon) and /dev/fuse.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createDispatcher, type Dispatcher } from '../../src/common/index.js'
import { ensureBuilt, ODFS_BIN, ROOT } from '../support/build.js'
import { cleanup, curlConfig, deviceCodeTokens, fetchAgain, graph, PUBLIC_CLIENT, q, run, startEmulator, stopChild, undo, type Info } from './support.js'

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? process.argv[i + 1]! : def
}
const SIZE = Number(arg('size', '4096')) * 1024 * 1024
const CACHE_MAX = arg('chunk-cache-size', '')
const AS = arg('as', 'unit')
if (AS !== 'unit' && AS !== 'foreground') throw new Error('--as wants unit or foreground')

/** The Environment= assignments of the systemd unit (what a daemon started by it gets). */
function unitEnvironment(): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of readFileSync(join(ROOT, 'systemd', 'odfs-mount@.service'), 'utf8').split('\n')) {
    const m = /^Environment=(.*)$/.exec(line.trim())
    if (!m) continue
    for (const kv of m[1]!.split(/\s+/)) {
      const i = kv.indexOf('=')
      if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1)
    }
  }
  return out
}
const FRAG = 10 * 1024 * 1024
const LIMIT_MB = 200

interface Phase { name: string; seconds: number; peakKiB: number; note?: string }

/** Run a shell command line asynchronously (the sampler keeps running); throws on failure. */
function sh(cmd: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn('bash', ['-c', `set -o pipefail; ${cmd}`], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    p.stdout.on('data', (d) => (out += d))
    p.stderr.on('data', (d) => (err += d))
    p.on('close', (code) => (code === 0 ? res(out) : rej(new Error(`${cmd.slice(0, 80)}: exit ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`))))
  })
}

/** VmRSS or VmHWM of a process, KiB. */
function vm(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) : 0
}

/** Time `f` while sampling the daemon's RSS; the phase's peak is the larger of the samples and VmHWM. */
async function phase(name: string, pid: number, f: () => Promise<string | void>): Promise<Phase> {
  writeFileSync(`/proc/${pid}/clear_refs`, '5') // resets VmHWM to the current RSS
  let peak = vm(pid, 'VmRSS')
  const timer = setInterval(() => {
    peak = Math.max(peak, vm(pid, 'VmRSS'))
  }, 100)
  const t0 = process.hrtime.bigint()
  try {
    const note = await f()
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9
    return { name, seconds, peakKiB: Math.max(peak, vm(pid, 'VmHWM')), ...(note ? { note } : {}) }
  } finally {
    clearInterval(timer)
  }
}

async function emulatorBytesOut(d: Dispatcher, info: Info): Promise<number> {
  const r = await fetchAgain(`${new URL(info.graph).origin}/_emulator/stats`, { dispatcher: d } as RequestInit)
  return ((await r.json()) as { bytesOut: number }).bytesOut
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root (drop_caches and the daemon\'s clear_refs need it)')
  await ensureBuilt()
  // On disk, not tmpfs: the emulator's content, the spool and the source would otherwise be RAM.
  const work = mkdtempSync(join(tmpdir(), 'odfs-bench-mem-'))
  undo.push(() => rmSync(work, { recursive: true, force: true }))
  const { info } = await startEmulator(join(work, 'emulator'))
  const d = await createDispatcher({ caFile: info.ca })
  undo.push(() => void d.close())

  const env: NodeJS.ProcessEnv = {
    ...process.env, XDG_CONFIG_HOME: join(work, 'config'), XDG_STATE_HOME: join(work, 'state'), XDG_CACHE_HOME: join(work, 'cache'),
    ODFS_SYSTEM_CONFIG: join(work, 'etc-gateway.json'), ODFS_LOG_LEVEL: 'warn',
  }
  delete env.XDG_RUNTIME_DIR
  const store = ['--token-store', 'file']
  run(process.execPath, [ODFS_BIN, 'gateway', 'create', '--config', join(work, 'config', 'odfs', 'gateway.json'), '--ms-client-id', PUBLIC_CLIENT,
    '--ms-login-endpoint', info.authority, '--ms-graph-endpoint', info.graph, '--ca-file', info.ca], env)
  run(process.execPath, [ODFS_BIN, 'login', ...store], env)

  const mnt = join(work, 'mnt')
  mkdirSync(mnt)
  const daemon = spawn(process.execPath, [ODFS_BIN, 'mount', mnt, ...store, '--write-back', '3600', ...(CACHE_MAX ? ['--chunk-cache-size', CACHE_MAX] : [])], {
    // BENCH_DAEMON_NODE_OPTIONS reaches the daemon only (e.g. --trace-gc, --heapsnapshot-signal=SIGUSR2).
    cwd: ROOT, env: { ...env, ...(AS === 'unit' ? unitEnvironment() : {}), NODE_OPTIONS: process.env.BENCH_DAEMON_NODE_OPTIONS ?? '' }, stdio: ['ignore', 'pipe', 'pipe'],
  })
  let daemonErr = ''
  daemon.stderr!.on('data', (x) => (daemonErr = (daemonErr + x).slice(-4000)))
  undo.push(() => {
    stopChild(daemon, 'SIGKILL')
    spawnSync('fusermount', ['-uz', mnt])
  })
  await new Promise<void>((res, rej) => {
    daemon.stdout!.on('data', (x) => String(x).includes(`ready: ${mnt}`) && res())
    daemon.once('exit', (code) => rej(new Error(`mount exited (${code}): ${daemonErr}`)))
  })
  const pid = daemon.pid!
  const idle = vm(pid, 'VmRSS')

  const file = join(mnt, 'My files', 'big.bin')
  const src = join(work, 'src.bin')
  const mib = SIZE / 1048576
  // The same pseudo-random stream every time: AES-CTR of zeros, cut at SIZE.
  const stream = `openssl enc -aes-128-ctr -nosalt -pass pass:odfs-bench -in /dev/zero 2>/dev/null | head -c ${SIZE}`
  run('bash', ['-c', `${stream} > '${src}'`]) // openssl ends on SIGPIPE when head has enough
  const want = (await sh(`sha256sum < '${src}'`)).split(' ')[0]!

  const mb = (kib: number) => (kib / 1024).toFixed(0)
  const daemonEnv = AS === 'unit' ? Object.entries(unitEnvironment()).map(([k, v]) => `${k}=${v}`).join(' ') : 'none added'
  console.log(`odfs mount memory benchmark: ${mib} MiB file, --chunk-cache-size ${CACHE_MAX || 'default'}, emulator content and spool on disk`)
  console.log(`daemon run as: ${AS} (environment: ${daemonEnv})`)
  console.log(`daemon RSS at rest after mounting: ${mb(idle)} MiB`)
  console.log('')
  console.log(`${'phase'.padEnd(28)} ${'MiB/s'.padStart(8)} ${'wall s'.padStart(8)} ${'peak RSS MiB'.padStart(13)}`)
  const line = (name: string, seconds: number, peakKiB?: number, note?: string) =>
    console.log(`${name.padEnd(28)} ${(mib / seconds).toFixed(1).padStart(8)} ${seconds.toFixed(1).padStart(8)} ${peakKiB === undefined ? '' : mb(peakKiB).padStart(13)}${note ? `   (${note})` : ''}`)
  const phases: Phase[] = []
  const done = (p: Phase) => {
    phases.push(p)
    line(p.name, p.seconds, p.peakKiB, p.note)
  }
  const dropCaches = () => sh('sync; echo 3 > /proc/sys/vm/drop_caches')
  await dropCaches()
  done(await phase('write (dd into the mount)', pid, () => sh(`dd if='${src}' of='${file}' bs=1M status=none`)))
  done(await phase('sync (odfs sync: upload)', pid, () => sh(`'${process.execPath}' '${ODFS_BIN}' sync '${mnt}'`, env).then(() => undefined)))
  await dropCaches()
  const before = await emulatorBytesOut(d, info)
  let got = ''
  done(await phase('read (dd out of the mount)', pid, async () => {
    got = (await sh(`dd if='${file}' bs=1M status=none | sha256sum`)).split(' ')[0]!
    const fetched = (await emulatorBytesOut(d, info)) - before
    return `${(fetched / 1048576).toFixed(0)} MiB fetched from the emulator`
  }))
  if (got !== want) throw new Error(`read back ${got}, wrote ${want}`)
  const daemonHwm = vm(pid, 'VmHWM')

  // The reference: curl against the same emulator, same bytes.
  const tok = (await deviceCodeTokens(d, info.authority, PUBLIC_CLIENT)).access
  const frags = join(work, 'fragments')
  mkdirSync(frags)
  run('split', ['-b', String(FRAG), '-a', '5', '-d', src, join(frags, 'f')])
  const fragFiles = readdirSync(frags).sort()
  const session = await graph<{ uploadUrl: string }>(d, tok, `${info.graph}/me/drive/root:/curl.bin:/createUploadSession`, {
    method: 'POST', body: { item: { '@microsoft.graph.conflictBehavior': 'replace' } },
  })
  const lines = fragFiles.flatMap((f, i) => {
    const start = i * FRAG
    const end = Math.min(SIZE, start + FRAG) - 1
    return [...(i > 0 ? ['next'] : []), `url = ${q(session.uploadUrl)}`, `upload-file = ${q(join(frags, f))}`,
      `header = "Content-Range: bytes ${start}-${end}/${SIZE}"`, 'header = "Expect:"', `cacert = ${q(info.ca)}`, 'output = "/dev/null"', 'silent', 'fail']
  })
  const putCfg = curlConfig(join(work, 'curl-put.cfg'), lines)
  await dropCaches()
  const t0 = process.hrtime.bigint()
  await sh(`curl -K '${putCfg}'`)
  const curlPut = Number(process.hrtime.bigint() - t0) / 1e9
  rmSync(frags, { recursive: true, force: true })
  const item = await graph<Record<string, string>>(d, tok, `${info.graph}/me/drive/root:/curl.bin?$select=id,size,@microsoft.graph.downloadUrl`)
  if (Number(item.size) !== SIZE) throw new Error(`the curl-driven session stored ${item.size} bytes`)
  const getCfg = curlConfig(join(work, 'curl-get.cfg'), [`url = ${q(item['@microsoft.graph.downloadUrl']!)}`, `cacert = ${q(info.ca)}`, 'silent', 'fail'])
  await dropCaches()
  const t1 = process.hrtime.bigint()
  const curlSum = (await sh(`curl -K '${getCfg}' | sha256sum`)).split(' ')[0]!
  const curlGet = Number(process.hrtime.bigint() - t1) / 1e9
  if (curlSum !== want) throw new Error(`curl read back ${curlSum}, wrote ${want}`)

  line('curl upload session', curlPut)
  line('curl download', curlGet)
  console.log('')
  const sync = phases[1]!
  const read = phases[2]!
  console.log(`sync / curl upload:   ${(curlPut / sync.seconds).toFixed(2)}`)
  console.log(`read / curl download: ${(curlGet / read.seconds).toFixed(2)}`)
  const peak = Math.max(...phases.map((p) => p.peakKiB), daemonHwm)
  console.log(`daemon peak RSS: ${mb(peak)} MiB (limit ${LIMIT_MB} MB = ${(LIMIT_MB * 1e6 / 1048576).toFixed(0)} MiB): ${peak * 1024 < LIMIT_MB * 1e6 ? 'under' : 'OVER'}`)
  console.log(`sha256 of what was written, read back through the mount and by curl: ${want} (equal)`)
  if (!existsSync(file)) throw new Error('the file vanished')
  stopChild(daemon)
}

main().then(cleanup, (e) => {
  cleanup()
  console.error(`bench failed: ${e instanceof Error ? e.message : e}`)
  process.exitCode = 1
})
