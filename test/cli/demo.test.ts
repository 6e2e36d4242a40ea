// `npm run demo` runs `odfs demo`: the emulator with demo data (its info JSON
// first), a gateway policy pointing at it, a device-code sign-in, a listing of My
// files and a FUSE mount (`ready: MOUNTPOINT`), then it keeps both up until
// Ctrl-C. Here the whole path runs as a user runs it: the demo in one process,
// the next steps it prints in others (ls and cp on the mount, odfs sync, get),
// then SIGINT, which unmounts after the pending upload.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureBuilt, ODFS_BIN } from '../support/build.js'

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [ODFS_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => (stdout += d))
    p.stderr.on('data', (d) => (stderr += d))
    p.on('error', reject)
    p.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** Split one printed command line into env and argv (the demo prints no quotes inside quotes). */
function parsePrinted(line: string): { env: Record<string, string>; args: string[] } {
  const words = [...line.trim().matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!)
  const env: Record<string, string> = {}
  while (/^[A-Z_]+=/.test(words[0]!)) {
    const [k, v] = words.shift()!.split(/=(.*)/s)
    env[k!] = v!
  }
  t.equal(words.shift(), 'node')
  t.equal(words.shift(), ODFS_BIN)
  return { env, args: words }
}

t.before(ensureBuilt)

t.test('odfs demo signs in to the bundled emulator; the commands it prints work', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'odfs-demo-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const env = { ...process.env, XDG_STATE_HOME: join(dir, 'xdg'), XDG_CONFIG_HOME: join(dir, 'cfg'), XDG_CACHE_HOME: join(dir, 'cache') }
  delete (env as Record<string, unknown>).XDG_RUNTIME_DIR
  const mnt = join(dir, 'mnt')
  const demo = spawn(process.execPath, [ODFS_BIN, 'demo', mnt, '--state', join(dir, 'demo')], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => promisify(execFile)('fusermount', ['-uz', mnt]).catch(() => undefined))
  let stdout = ''
  let stderr = ''
  demo.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise<number | null>((res) => demo.on('close', (code) => res(code)))
  await new Promise<void>((resolve, reject) => {
    demo.stdout.on('data', (d) => {
      stdout += d
      if (stdout.includes('Ctrl-C unmounts')) resolve()
    })
    demo.on('close', (code) => reject(new Error(`demo exited early (${code}): ${stderr.slice(0, 800)}`)))
  })

  const lines = stdout.split('\n')
  t.match(JSON.parse(lines[0]!), { graph: /^https:\/\/127\.0\.0\.1:\d+\/v1\.0$/, ca: String }, 'the emulator info JSON comes first')
  t.ok(lines.includes(`ready: ${mnt}`), 'ready: MOUNTPOINT on its own line')
  t.match(stdout, /Signed in as user1@contoso\.onmicrosoft\.com/)
  t.match(stdout, /My files:\n(.*\n)*\s+d Documents\//)
  t.match(stdout, /README\.txt/)
  t.match(stdout, /empty\.txt/, 'the demo data holds a zero-byte file')
  const cfgFile = join(dir, 'demo', 'gateway.json')
  const policy = JSON.parse(await readFile(cfgFile, 'utf8'))
  t.equal(policy.DATA_TYPE, 'onedrive_storage_policies#1.0.0')
  t.match(policy.graph_endpoint, /^https:\/\/127\.0\.0\.1:\d+\/v1\.0$/)
  t.equal((await stat(cfgFile)).mode & 0o777, 0o600)

  const printed = (verb: string) => {
    const line = stdout.split('\n').find((l) => l.includes(` ${verb} --config`))
    t.ok(line, `the demo prints an ${verb} command`)
    const p = parsePrinted(line!)
    return (extra: Record<string, string> = {}) => run(p.args, { ...process.env, ...p.env, ...extra })
  }
  const ls = await printed('ls')()
  t.equal(ls.code, 0, `printed ls works: ${ls.stderr.slice(0, 300)}`)
  t.match(ls.stdout, /\S/, 'it lists something in My files/Documents')

  const status = await printed('status')()
  t.equal(status.code, 0, `printed status works: ${status.stderr.slice(0, 300)}`)
  t.match(status.stdout, /user1@contoso\.onmicrosoft\.com/)
  t.match(status.stdout, /"<redacted>"/)

  const local = join(dir, 'hello.txt')
  await writeFile(local, 'hello from the demo test\n')
  // The mount: list it, copy a file in, wait for it with the printed odfs sync, read it back with get.
  t.ok((await readdir(join(mnt, 'My files'))).includes('README.txt'), 'the mount shows My files')
  await writeFile(join(mnt, 'My files', 'via-mount.txt'), 'written through the demo mount\n')
  const syncLine = stdout.split('\n').find((l) => / sync \//.test(l))
  t.ok(syncLine, 'the demo prints an odfs sync command')
  const sp = parsePrinted(syncLine!)
  const synced = await run(sp.args, { ...env, ...sp.env })
  t.equal(synced.code, 0, `printed sync works: ${synced.stderr.slice(0, 300)}`)

  const put = stdout.split('\n').find((l) => l.includes(' put --config'))!
  const p = parsePrinted(put.replace('/etc/hostname', local))
  const up = await run(p.args, { ...process.env, ...p.env })
  t.equal(up.code, 0, `printed put works: ${up.stderr.slice(0, 300)}`)
  const get = stdout.split('\n').find((l) => l.includes(' get --config'))!
  const g = parsePrinted(get.replace('"My files/README.txt"', '"My files/hostname.txt"').replace('/tmp/README.txt', join(dir, 'back.txt')))
  const back = await run(g.args, { ...process.env, ...g.env })
  t.equal(back.code, 0, `get works: ${back.stderr.slice(0, 300)}`)
  t.equal(await readFile(join(dir, 'back.txt'), 'utf8'), 'hello from the demo test\n')

  const g2 = parsePrinted(get.replace('"My files/README.txt"', '"My files/via-mount.txt"').replace('/tmp/README.txt', join(dir, 'via.txt')))
  const back2 = await run(g2.args, { ...process.env, ...g2.env })
  t.equal(back2.code, 0, `get works: ${back2.stderr.slice(0, 300)}`)
  t.equal(await readFile(join(dir, 'via.txt'), 'utf8'), 'written through the demo mount\n', 'the file copied into the mount is on OneDrive')

  await writeFile(join(mnt, 'My files', 'last.txt'), 'pending at Ctrl-C\n')
  demo.kill('SIGINT')
  t.equal(await exited, 0, 'Ctrl-C stops the demo cleanly')
  t.match(stderr, /unmounted; every file is on OneDrive/, 'after the pending upload')
  t.same(await readdir(mnt), [], 'nothing is mounted any more')
  for (const out of [stdout, stderr, ls.stdout, ls.stderr, status.stdout, status.stderr]) {
    t.notMatch(out, /"(access|refresh)_token"\s*:\s*"(?!<redacted>)/, 'no token printed')
    t.notMatch(out, /Bearer\s+ey/, 'no bearer token printed')
  }
})
