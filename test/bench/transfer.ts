/**
 * Transfer benchmark (not a test: it asserts nothing about time). In one run, on one
 * emulator (a child process, `odfs emulator`, content on tmpfs), it times:
 *
 *   - `odfs get` and `odfs put` of one file (default 1 GiB), the real CLI processes;
 *   - `curl` downloading the same downloadUrl, and an upload session of the same
 *     bytes driven by curl (one curl process PUTting every fragment to the uploadUrl);
 *   - `rclone copyto` both ways, when rclone and nginx are installed (reached through
 *     an nginx TLS proxy for graph.microsoft.com, set up by setUpRclone() below;
 *     /etc/hosts is backed up and restored, also on failure and Ctrl-C);
 *   - a bare GET of the downloadUrl over node:tls (no HTTP parser, hash or module
 *     loading; a diagnostic row: what any Node client pays on this machine, never a
 *     baseline of the targets);
 *   - `odfs --version` against `node -e 0`, and `odfs get` of a 1000-byte file
 *     against `curl` of its downloadUrl (the start-up of a command that signs in and
 *     makes requests, which a script calling odfs once per file pays; medians of 10).
 *
 * and prints throughput, CPU time (user+sys) and peak RSS of each (GNU time), the
 * ratios odfs/curl and odfs/rclone, and the targets they are read against.
 *
 *   npm run bench -- [--size MiB] [--rounds N] [--install] [--no-rclone] [--odfs PATH] [--baseline PATH]
 *
 * --install lets it `apt-get install rclone nginx` when they are missing; without
 * it a missing rclone or nginx only skips that comparison, with a line saying so.
 * --odfs PATH times another build's bin/odfs (e.g. an older commit) for get and put
 * and the start-up lines; the emulator and the sign-in still use this checkout's.
 * --baseline PATH times another build's bin/odfs as well, in the same rounds (rows
 * "get base", "put base"): a before/after comparison under the same machine load.
 * --cpu-prof DIR writes a V8 CPU profile of each `odfs get` and `odfs put` to DIR
 * (open it in Chrome DevTools; profiling slows them, so read their rows accordingly).
 */
import { spawn, spawnSync } from 'node:child_process'
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs'
import { createServer } from 'node:net'
import { randomBytes } from 'node:crypto'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createDispatcher, type Dispatcher } from '../../src/common/index.js'
import { ensureBuilt, ODFS_BIN } from '../support/build.js'
import { cleanup, curlConfig, deviceCodeTokens, graph, PUBLIC_CLIENT, q, run, settle, startEmulator, stopChild, undo, type Info } from './support.js'

const flag = (name: string) => process.argv.includes(`--${name}`)
const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : def
}
const SIZE = arg('size', 1024) * 1024 * 1024
const ROUNDS = arg('rounds', 2)
const FRAG = 10 * 1024 * 1024 // odfs's default fragment, also used for the curl-driven session
const HOSTS = '/etc/hosts'
const argIndex = process.argv.indexOf('--odfs')
/** The odfs under test (this checkout's unless --odfs names another build's bin/odfs). */
const ODFS = argIndex > 0 ? process.argv[argIndex + 1]! : ODFS_BIN
const baseIndex = process.argv.indexOf('--baseline')
/** Another build's bin/odfs timed alongside (--baseline), or undefined. */
const BASE = baseIndex > 0 ? process.argv[baseIndex + 1]! : undefined
const profIndex = process.argv.indexOf('--cpu-prof')
/** Node options of the timed odfs get and put: a CPU profile into --cpu-prof DIR. */
const PROF = profIndex > 0 ? ['--cpu-prof', '--cpu-prof-dir', process.argv[profIndex + 1]!] : []

interface Measured { wall: number; cpu: number; rss: number }

/** Run a command under GNU time: wall seconds, CPU seconds (user+sys), peak RSS (KiB). */
function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): Measured {
  const r = spawnSync('/usr/bin/time', ['-f', '@@ %e %U %S %M', cmd, ...args], { env, encoding: 'utf8', maxBuffer: 1 << 24 })
  const m = /@@ ([\d.]+) ([\d.]+) ([\d.]+) (\d+)\s*$/.exec(r.stderr ?? '')
  if (r.status !== 0 || !m) throw new Error(`${cmd} ${args[0] ?? ''} failed (${r.status}): ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`)
  return { wall: Number(m[1]), cpu: Number(m[2]) + Number(m[3]), rss: Number(m[4]) }
}

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

/** Is 127.0.0.1:443 free for the proxy? */
function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer()
    s.once('error', () => res(false))
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)))
  })
}

/**
 * rclone cannot be pointed at another Graph URL: it reaches the emulator as
 * graph.microsoft.com through /etc/hosts and an nginx TLS proxy with a certificate
 * from a CA of the bench's own. rclone 1.60 sends its bearer to upload URLs (the
 * service answers 401), so the proxy rewrites uploadUrl to a path of its own that
 * drops Authorization. Returns the rclone command line, or why it is skipped.
 */
async function setUpRclone(work: string, info: Info, port: number, d: Dispatcher): Promise<{ args: string[]; env: NodeJS.ProcessEnv; remote: string } | string> {
  if (flag('no-rclone')) return 'rclone: skipped (--no-rclone)'
  if ((!have('rclone') || !have('nginx')) && flag('install')) {
    spawnSync('apt-get', ['install', '-y', 'rclone', 'nginx'], { stdio: 'ignore' })
  }
  if (!have('rclone') || !have('nginx')) return 'rclone: skipped: rclone and nginx are not installed (apt-get install rclone nginx, or run with --install)'
  if (process.getuid?.() !== 0) return 'rclone: skipped: the proxy needs root (port 443 and /etc/hosts)'
  if (!(await portFree(443))) return 'rclone: skipped: 127.0.0.1:443 is in use'
  const app = info.apps.find((a) => a.secret && a.account_types === 'multitenant-and-personal')
  if (!app) return 'rclone: skipped: the emulator has no confidential app'

  const p = join(work, 'proxy')
  mkdirSync(p, { mode: 0o700 })
  run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=odfs bench CA', '-keyout', join(p, 'ca.key'), '-out', join(p, 'ca.pem'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'])
  run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=graph.microsoft.com', '-keyout', join(p, 'proxy.key'), '-out', join(p, 'proxy.csr')])
  writeFileSync(join(p, 'ext.cnf'), 'subjectAltName=DNS:graph.microsoft.com\nextendedKeyUsage=serverAuth\n')
  run('openssl', ['x509', '-req', '-in', join(p, 'proxy.csr'), '-CA', join(p, 'ca.pem'), '-CAkey', join(p, 'ca.key'), '-CAcreateserial', '-days', '1', '-extfile', join(p, 'ext.cnf'), '-out', join(p, 'proxy.pem')])
  const bundle = join(p, 'bundle.pem')
  writeFileSync(bundle, readFileSync(join(p, 'ca.pem'), 'utf8') + readFileSync(info.ca, 'utf8'))
  for (const t of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(p, t))
  const up = `https://localhost:${port}/_upload/`
  writeFileSync(join(p, 'nginx.conf'), `user root;
worker_processes 1;
daemon off;
pid ${p}/nginx.pid;
error_log ${p}/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${p}/body; proxy_temp_path ${p}/proxy; fastcgi_temp_path ${p}/fastcgi; uwsgi_temp_path ${p}/uwsgi; scgi_temp_path ${p}/scgi;
  server {
    listen 127.0.0.1:443 ssl;
    server_name graph.microsoft.com;
    ssl_certificate ${p}/proxy.pem;
    ssl_certificate_key ${p}/proxy.key;
    client_max_body_size 0;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_request_buffering off;
    proxy_buffering off;
    location /_bench_upload/ {
      proxy_set_header Authorization "";
      proxy_pass ${up};
    }
    location / {
      proxy_set_header Accept-Encoding "";
      sub_filter_types *;
      sub_filter_once off;
      sub_filter '${up}' 'https://graph.microsoft.com/_bench_upload/';
      proxy_pass https://127.0.0.1:${port};
    }
  }
}
`)
  const nginx = spawn('nginx', ['-c', join(p, 'nginx.conf'), '-p', p], { stdio: 'ignore' })
  undo.push(() => stopChild(nginx, 'SIGQUIT'))
  for (let i = 0; i < 50 && (await portFree(443)); i++) await new Promise((r) => setTimeout(r, 100))
  if (nginx.exitCode !== null) return `rclone: skipped: nginx did not start (${readFileSync(join(p, 'error.log'), 'utf8').trim().split('\n').pop()})`

  // /etc/hosts is machine-wide: back it up, add the one line, restore by copying back (same inode).
  const backup = join(work, 'hosts.backup')
  copyFileSync(HOSTS, backup)
  undo.push(() => copyFileSync(backup, HOSTS))
  appendFileSync(HOSTS, '\n127.0.0.1 graph.microsoft.com # odfs bench, removed when it ends\n')

  const tok = await deviceCodeTokens(d, info.authority, app.client_id, app.secret)
  const drive = await graph<{ id: string; driveType: string }>(d, tok.access, `${info.graph}/me/drive`)
  const conf = join(p, 'rclone.conf')
  writeFileSync(conf, `[od]
type = onedrive
client_id = ${app.client_id}
client_secret = ${app.secret}
token = ${JSON.stringify({ access_token: tok.access, token_type: 'Bearer', refresh_token: tok.refresh, expiry: new Date(Date.now() + tok.expiresIn * 1000).toISOString() })}
drive_id = ${drive.id}
drive_type = ${drive.driveType}
auth_url = ${info.authority}/common/oauth2/v2.0/authorize
token_url = ${info.authority}/common/oauth2/v2.0/token
`, { mode: 0o600 })
  // rclone's copy monitor uses Go's default client, which reads SSL_CERT_FILE, not --ca-cert.
  return { args: ['--config', conf, '--ca-cert', bundle], env: { ...process.env, SSL_CERT_FILE: bundle }, remote: 'od:' }
}

async function main(): Promise<void> {
  await ensureBuilt()
  const work = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'odfs-bench-'))
  undo.push(() => rmSync(work, { recursive: true, force: true }))
  const { info, port, pid: emulatorPid } = await startEmulator(join(work, 'emulator'))
  const d = await createDispatcher({ caFile: info.ca })
  undo.push(() => void d.close())

  // odfs signed in as user1 under private XDG dirs, as a user would be.
  const env: NodeJS.ProcessEnv = {
    ...process.env, XDG_CONFIG_HOME: join(work, 'config'), XDG_STATE_HOME: join(work, 'state'), ODFS_SYSTEM_CONFIG: join(work, 'etc-gateway.json'), ODFS_LOG_LEVEL: 'warn',
  }
  const store = ['--token-store', 'file']
  run(process.execPath, [ODFS_BIN, 'gateway', 'create', '--config', join(work, 'config', 'odfs', 'gateway.json'), '--ms-client-id', PUBLIC_CLIENT,
    '--ms-login-endpoint', info.authority, '--ms-graph-endpoint', info.graph, '--ca-file', info.ca], env)
  run(process.execPath, [ODFS_BIN, 'login', ...store], env)
  const token = (await deviceCodeTokens(d, info.authority, PUBLIC_CLIENT)).access

  // The source: SIZE random bytes on tmpfs, and the same bytes cut into fragments for curl.
  const src = join(work, 'src.bin')
  const frags = join(work, 'fragments')
  mkdirSync(frags)
  const block = randomBytes(16 << 20)
  const fd = openSync(src, 'w', 0o600)
  for (let o = 0; o < SIZE; o += block.length) writeSync(fd, block, 0, Math.min(block.length, SIZE - o))
  closeSync(fd)
  const fragFiles: { file: string; start: number; end: number }[] = []
  {
    // In a block of its own: the GiB read here is garbage once the fragments are written.
    const all = readFileSync(src)
    for (let o = 0, i = 0; o < SIZE; o += FRAG, i++) {
      const file = join(frags, String(i).padStart(5, '0'))
      const end = Math.min(SIZE, o + FRAG)
      writeFileSync(file, all.subarray(o, end))
      fragFiles.push({ file, start: o, end: end - 1 })
    }
  }

  // The floor of any Node client here (a diagnostic row, not a baseline of the
  // targets): one GET of the downloadUrl over node:tls, the response head skipped,
  // the body written in 8 MiB batches with writev on the main thread; no HTTP
  // parser, no hash, no module loading. The URL and CA come from a private file,
  // never argv.
  const floorScript = join(work, 'node-tls-get.mjs')
  writeFileSync(floorScript, `
    import { connect, createSecureContext } from 'node:tls'
    import { readFileSync, openSync, writevSync, closeSync } from 'node:fs'
    const { url, ca, out } = JSON.parse(readFileSync(process.argv[2], 'utf8'))
    const u = new URL(url)
    const sc = createSecureContext(); sc.context.addCACert(readFileSync(ca, 'utf8'))
    const fd = openSync(out, 'w', 0o600)
    const s = connect({ host: u.hostname, port: Number(u.port || 443), secureContext: sc, servername: u.hostname === '127.0.0.1' ? undefined : u.hostname })
    s.write('GET ' + u.pathname + u.search + ' HTTP/1.1\\r\\nHost: ' + u.host + '\\r\\nConnection: close\\r\\n\\r\\n')
    let head = Buffer.alloc(0), bufs = [], n = 0, pos = 0
    s.on('data', (c) => {
      if (head) {
        head = Buffer.concat([head, c]); const i = head.indexOf('\\r\\n\\r\\n'); if (i < 0) return
        if (!/^HTTP\\/1\\.1 200 /.test(head.toString('latin1', 0, 16))) { console.error('status ' + head.toString('latin1', 0, 12)); process.exit(1) }
        c = head.subarray(i + 4); head = null
      }
      bufs.push(c); n += c.length
      if (n >= 8 << 20) { writevSync(fd, bufs, pos); pos += n; bufs = []; n = 0 }
    })
    s.on('end', () => { writevSync(fd, bufs, pos); closeSync(fd) })
  `)

  const rc = await setUpRclone(work, info, port, d)
  const results = new Map<string, Measured[]>()
  const add = (k: string, m: Measured) => results.set(k, [...(results.get(k) ?? []), m])
  const out = join(work, 'download.bin')
  const drop = () => rmSync(out, { force: true })
  const checkSize = (what: string) => {
    const n = statSync(out).size
    if (n !== SIZE) throw new Error(`${what} wrote ${n} bytes, not ${SIZE}`)
  }

  // The file every download reads, put there by this checkout's odfs (which creates the folder).
  timed(process.execPath, [ODFS_BIN, 'put', ...store, src, 'My files/bench/big.bin'], env)
  const item = await graph<{ id: string; size: number }>(d, token, `${info.graph}/me/drive/root:/bench/big.bin`)
  if (item.size !== SIZE) throw new Error(`odfs put stored ${item.size} bytes`)

  for (let r = 0; r < ROUNDS; r++) {
    // Downloads: odfs, the baseline, curl, rclone (order rotates each round, as for uploads).
    const downloads: [string, () => Measured | Promise<Measured>, string][] = [
      ['get odfs', () => timed(process.execPath, [...PROF, ODFS, 'get', ...store, 'My files/bench/big.bin', out], env), 'odfs get'],
      ['get curl', async () => {
        const dl = await graph<Record<string, string>>(d, token, `${info.graph}/me/drive/items/${item.id}?$select=id,@microsoft.graph.downloadUrl`)
        const cfg = curlConfig(join(work, 'curl-get.cfg'), [`url = ${q(dl['@microsoft.graph.downloadUrl']!)}`, `output = ${q(out)}`, `cacert = ${q(info.ca)}`, 'silent', 'fail'])
        return timed('curl', ['-K', cfg], env)
      }, 'curl'],
    ]
    downloads.push(['get node-tls', async () => {
      const dl = await graph<Record<string, string>>(d, token, `${info.graph}/me/drive/items/${item.id}?$select=id,@microsoft.graph.downloadUrl`)
      const cfg = join(work, 'node-tls-get.json')
      writeFileSync(cfg, JSON.stringify({ url: dl['@microsoft.graph.downloadUrl'], ca: info.ca, out }), { mode: 0o600 })
      return timed(process.execPath, [floorScript, cfg], env)
    }, 'the bare node:tls GET'])
    if (BASE) downloads.push(['get base', () => timed(process.execPath, [BASE, 'get', ...store, 'My files/bench/big.bin', out], env), 'baseline odfs get'])
    if (typeof rc !== 'string') downloads.push(['get rclone', () => timed('rclone', ['copyto', ...rc.args, `${rc.remote}bench/big.bin`, out], rc.env), 'rclone copyto'])
    for (let i = 0; i < downloads.length; i++) {
      const [k, f, what] = downloads[(i + r) % downloads.length]!
      await settle(emulatorPid)
      add(k, await f())
      checkSize(what)
      drop()
    }

    // Uploads: odfs, an upload session driven by curl, rclone (order rotates each round),
    // each to bench/up-WHO-ROUND.bin.
    const uploads: [string, () => Measured | Promise<Measured>][] = [
      ['put odfs', () => timed(process.execPath, [...PROF, ODFS, 'put', ...store, src, `My files/bench/up-odfs-${r}.bin`], env)],
      ['put curl', async () => {
        // The session is created here (one small request, outside the timed span); curl sends every fragment.
        const session = await graph<{ uploadUrl: string }>(d, token, `${info.graph}/me/drive/root:/bench/up-curl-${r}.bin:/createUploadSession`, {
          method: 'POST', body: { item: { '@microsoft.graph.conflictBehavior': 'replace' } },
        })
        const lines = fragFiles.flatMap((f, i) => [
          ...(i > 0 ? ['next'] : []),
          `url = ${q(session.uploadUrl)}`, `upload-file = ${q(f.file)}`, `header = "Content-Range: bytes ${f.start}-${f.end}/${SIZE}"`, 'header = "Expect:"',
          `cacert = ${q(info.ca)}`, 'output = "/dev/null"', 'silent', 'fail',
        ])
        return timed('curl', ['-K', curlConfig(join(work, 'curl-put.cfg'), lines)], env)
      }],
    ]
    if (BASE) uploads.push(['put base', () => timed(process.execPath, [BASE, 'put', ...store, src, `My files/bench/up-base-${r}.bin`], env)])
    if (typeof rc !== 'string') uploads.push(['put rclone', () => timed('rclone', ['copyto', ...rc.args, src, `${rc.remote}bench/up-rclone-${r}.bin`], rc.env)])
    for (let i = 0; i < uploads.length; i++) {
      const [k, f] = uploads[(i + r) % uploads.length]!
      await settle(emulatorPid)
      add(k, await f())
      // Checked, then deleted for good: every GiB kept on tmpfs is memory, and a machine
      // short of it reclaims pages inside every later writer's system calls.
      const up = await graph<{ id: string; size: number }>(d, token, `${info.graph}/me/drive/root:/bench/up-${k.split(' ')[1]}-${r}.bin`)
      if (up.size !== SIZE) throw new Error(`${k} stored ${up.size} bytes`)
      await graph(d, token, `${info.graph}/me/drive/items/${up.id}/permanentDelete`, { method: 'POST' })
    }
  }

  // Start-up: odfs --version against node -e 0 (mean of 10 each, interleaved).
  for (let i = 0; i < 10; i++) {
    add('node -e 0', timed(process.execPath, ['-e', '0'], env))
    add('odfs --version', timed(process.execPath, [ODFS, '--version'], env))
    add('odfs --help', timed(process.execPath, [ODFS, '--help'], env))
    if (BASE) add('base --version', timed(process.execPath, [BASE, '--version'], env))
  }

  // A command that signs in and makes requests: odfs get of a 1000-byte file (the
  // start-up a script calling odfs once per file pays) against curl of its
  // downloadUrl (curl makes one request; odfs signs in, finds the file, asks for the
  // URL, downloads and verifies). Interleaved, 10 each.
  const small = join(work, 'small.bin')
  writeFileSync(small, randomBytes(1000), { mode: 0o600 })
  timed(process.execPath, [ODFS_BIN, 'put', ...store, small, 'My files/bench/small.bin'], env)
  const smallItem = await graph<Record<string, string>>(d, token, `${info.graph}/me/drive/root:/bench/small.bin?$select=id,@microsoft.graph.downloadUrl`)
  const smallOut = join(work, 'small.out')
  const smallCfg = curlConfig(join(work, 'curl-small.cfg'), [`url = ${q(smallItem['@microsoft.graph.downloadUrl']!)}`, `output = ${q(smallOut)}`, `cacert = ${q(info.ca)}`, 'silent', 'fail'])
  for (let i = 0; i < 10; i++) {
    add('odfs get 1000 B', timed(process.execPath, [ODFS, 'get', ...store, 'My files/bench/small.bin', smallOut], env))
    if (BASE) add('base get 1000 B', timed(process.execPath, [BASE, 'get', ...store, 'My files/bench/small.bin', smallOut], env))
    add('curl get 1000 B', timed('curl', ['-K', smallCfg], env))
  }

  report(results, typeof rc === 'string' ? rc : undefined)
}

function report(results: Map<string, Measured[]>, rcloneNote: string | undefined): void {
  const best = (k: string) => {
    const l = results.get(k)
    return l?.length ? l.reduce((a, b) => (b.wall < a.wall ? b : a)) : undefined
  }
  const mean = (k: string) => {
    const l = results.get(k) ?? []
    return { wall: l.reduce((a, b) => a + b.wall, 0) / l.length, cpu: l.reduce((a, b) => a + b.cpu, 0) / l.length }
  }
  const mibs = (m: Measured) => SIZE / 1048576 / m.wall
  console.log(`odfs transfer benchmark: ${SIZE / 1048576} MiB, best of ${ROUNDS} rounds, emulator in a child process, content on tmpfs`)
  console.log('')
  console.log(`${'transfer'.padEnd(12)} ${'MiB/s'.padStart(8)} ${'wall s'.padStart(8)} ${'CPU s'.padStart(8)} ${'peak RSS MiB'.padStart(13)}`)
  for (const k of ['get odfs', 'get base', 'get curl', 'get node-tls', 'get rclone', 'put odfs', 'put base', 'put curl', 'put rclone']) {
    const m = best(k)
    if (m) console.log(`${k.padEnd(12)} ${mibs(m).toFixed(1).padStart(8)} ${m.wall.toFixed(2).padStart(8)} ${m.cpu.toFixed(2).padStart(8)} ${(m.rss / 1024).toFixed(0).padStart(13)}`)
  }
  if (rcloneNote) console.log(rcloneNote)
  // Every round, to show the spread the best hides (wall s / CPU s).
  for (const k of ['get odfs', 'get base', 'get curl', 'get node-tls', 'get rclone', 'put odfs', 'put base', 'put curl', 'put rclone']) {
    const l = results.get(k)
    if (l && l.length > 1) console.log(`  ${k.padEnd(12)} rounds: ${l.map((m) => `${m.wall.toFixed(2)}/${m.cpu.toFixed(2)}`).join('  ')}`)
  }
  console.log('')
  // Each ratio of the bests, then the same ratio round by round: within a round the two
  // transfers ran minutes apart at most, so a machine (or emulator) that speeds up or
  // slows down over the run moves both; the median of those pairs is the steadier reading
  // when the rounds spread.
  const ratio = (a: string, b: string, target: number, what: string) => {
    const x = best(a)
    const y = best(b)
    if (!x || !y) return
    const v = mibs(x) / mibs(y)
    const la = results.get(a) ?? []
    const lb = results.get(b) ?? []
    const paired = la.map((m, i) => (lb[i] ? lb[i]!.wall / m.wall : NaN)).filter((r) => !Number.isNaN(r))
    const sorted = [...paired].sort((p, q) => p - q)
    const mid = sorted.length ? (sorted[Math.floor((sorted.length - 1) / 2)]! + sorted[Math.floor(sorted.length / 2)]!) / 2 : NaN
    const rounds = paired.length > 1 ? `; by round ${paired.map((r) => r.toFixed(2)).join(' ')}, median ${mid.toFixed(2)}` : ''
    console.log(`${what.padEnd(34)} ${v.toFixed(2).padStart(6)}   ${target ? `(target >= ${target}: ${v >= target ? 'met' : 'MISSED'}${rounds})` : rounds ? `(${rounds.slice(2)})` : ''}`)
  }
  ratio('get odfs', 'get curl', 0.85, 'get: odfs / curl')
  ratio('put odfs', 'put curl', 0.85, 'put: odfs / curl-driven session')
  ratio('get odfs', 'get rclone', 1.2, 'get: odfs / rclone copyto')
  ratio('put odfs', 'put rclone', 1.2, 'put: odfs / rclone copyto')
  ratio('get node-tls', 'get curl', 0, 'get: bare node:tls GET / curl')
  ratio('get odfs', 'get base', 0, 'get: odfs / baseline odfs')
  ratio('put odfs', 'put base', 0, 'put: odfs / baseline odfs')
  const n = mean('node -e 0')
  for (const k of ['odfs --version', 'odfs --help', 'base --version']) {
    if (!results.get(k)?.length) continue
    const v = mean(k)
    const r = v.wall / n.wall
    const target = k === 'odfs --version' ? `target <= 2: ${r <= 2 ? 'met' : 'MISSED'}; ` : ''
    console.log(`${(k + ' / node -e 0').padEnd(34)} ${r.toFixed(2).padStart(6)}   (${target}${(v.wall * 1000).toFixed(0)} ms vs ${(n.wall * 1000).toFixed(0)} ms wall, ${(v.cpu * 1000).toFixed(0)} vs ${(n.cpu * 1000).toFixed(0)} ms CPU)`)
  }
  const median = (k: string) => {
    const l = (results.get(k) ?? []).map((m) => m.wall).sort((a, b) => a - b)
    return l.length ? l[Math.floor((l.length - 1) / 2)]! : undefined
  }
  const gets = ['odfs get 1000 B', 'base get 1000 B', 'curl get 1000 B'].map((k) => [k, median(k)] as const).filter(([, v]) => v !== undefined)
  if (gets.length) {
    const nm = median('node -e 0')!
    console.log(`get of a 1000-byte file, median wall: ${gets.map(([k, v]) => `${k.split(' ')[0]} ${(v! * 1000).toFixed(0)} ms`).join(', ')}; node -e 0 ${(nm * 1000).toFixed(0)} ms`)
  }
  console.log('')
  console.log(`machine: ${cpus().length} cores, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} at the end (other work on the machine slows every row)`)
}

main().then(cleanup, (e) => {
  cleanup()
  const cause = e instanceof Error && e.cause instanceof Error ? `: ${e.cause.message}` : ''
  console.error(`bench failed: ${e instanceof Error ? e.message : e}${cause}`)
  process.exitCode = 1
})
