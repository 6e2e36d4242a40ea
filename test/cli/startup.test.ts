// `odfs --version` start-up: answered from package.json before yargs (most of the
// start-up cost) is loaded, with the same answer yargs gives. A module hook makes
// loading yargs fail, so the test fails if the fast path goes.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ensureBuilt, ODFS_BIN, ROOT } from '../support/build.js'
import { signedInCli } from '../support/odfs-cli.js'
import { isBriefCommand } from '../../src/cli/main.js'

t.test('odfs --version prints the package version without loading yargs', async (t) => {
  await ensureBuilt()
  const dir = await mkdtemp(join(tmpdir(), 'odfs-startup-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // Resolving yargs throws in a process started with this hook: the package itself, or
  // its chunk in the bundle bin/odfs runs (dist/bundle/yargs-HASH.js).
  await writeFile(join(dir, 'hooks.mjs'), "export async function resolve(s, c, next) { if (s === 'yargs' || /(^|\\/)yargs-[A-Z0-9]+\\.js$/.test(s)) throw new Error('yargs was loaded'); return next(s, c) }\n")
  await writeFile(join(dir, 'register.mjs'), `import { register } from 'node:module'\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)})\n`)
  const version = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version
  const fast = spawnSync(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, ODFS_BIN, '--version'], { encoding: 'utf8' })
  t.equal(fast.stderr, '', 'nothing on stderr')
  t.equal(fast.status, 0)
  t.equal(fast.stdout, `${version}\n`, 'the version of package.json')

  // The hook does bite: anything else goes through yargs.
  const viaYargs = spawnSync(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, ODFS_BIN, '--help'], { encoding: 'utf8' })
  t.match(viaYargs.stderr, /yargs was loaded/, 'the hook stops yargs')
  // And yargs, when it answers --version (after a command word), says the same.
  const slow = spawnSync(process.execPath, [ODFS_BIN, 'status', '--version'], { encoding: 'utf8' })
  t.equal(slow.stdout, fast.stdout, 'the same answer as yargs')
})

/**
 * A --require hook that prints, in order, every WebAssembly compile (COMPILE and
 * the module's size in bytes) and every V8 flag set (FLAG and the flag).
 */
async function wasmEventsHook(dir: string): Promise<string> {
  const file = join(dir, 'flags.cjs')
  await writeFile(file, [
    "const v8 = require('node:v8'); const { syncBuiltinESMExports } = require('node:module')",
    'const say = (m) => process.stderr.write(m + "\\n")',
    'const size = (b) => (b && typeof b.byteLength === "number" ? b.byteLength : -1)',
    'const W = globalThis.WebAssembly; const M = W.Module',
    'W.Module = function (b, ...a) { say(`COMPILE ${size(b)}`); return new M(b, ...a) }; W.Module.prototype = M.prototype',
    "const c = W.compile; W.compile = function (b, ...a) { say(`COMPILE ${size(b)}`); return c.call(this, b, ...a) }",
    "const i = W.instantiate; W.instantiate = function (b, ...a) { if (!(b instanceof M)) say(`COMPILE ${size(b)}`); return i.call(this, b, ...a) }",
    'const set = v8.setFlagsFromString',
    'v8.setFlagsFromString = (f) => { say(`FLAG ${f}`); return set(f) }',
    'syncBuiltinESMExports()',
  ].join('\n'))
  return file
}

/** The hook's lines, in order. */
const wasmEvents = (stderr: string) => stderr.split('\n').filter((l) => /^(COMPILE|FLAG) /.test(l))

t.test('which commands are brief (undici\'s parser not optimized) and which are servers (V8\'s default)', async (t) => {
  for (const argv of [['status'], ['ls', 'My files'], ['get', 'a', 'b'], ['put', 'x', 'y'], ['--token-store', 'file', 'login'], ['sync', 'mnt'], ['unmount', 'mnt']]) {
    t.equal(isBriefCommand(argv), true, `odfs ${argv.join(' ')}`)
  }
  for (const argv of [['mount', 'mnt'], ['--daemon', 'mount', 'mnt'], ['emulator'], ['demo'], ['demo', '--help']]) {
    t.equal(isBriefCommand(argv), false, `odfs ${argv.join(' ')}`)
  }
})

t.test('odfs get: the quickXorHash module is compiled with the default budget, undici\'s parser with the raised one', async (t) => {
  const cli = await signedInCli('odfs-startup-wasm-')
  t.teardown(() => cli.close())
  const hook = await wasmEventsHook(cli.dir)
  const local = join(cli.dir, 'small.bin')
  await writeFile(local, 'x'.repeat(1000))
  const put = await cli.odfs(['put', ...cli.store, local, 'My files/small.bin'])
  t.equal(put.code, 0, put.stderr)
  // Not spawnSync: the emulator answers from this process's event loop.
  const r = await new Promise<{ status: number | null; stderr: string }>((resolve, reject) => {
    const p = spawn(process.execPath, ['--require', hook, ODFS_BIN, 'get', ...cli.store, 'My files/small.bin', join(cli.dir, 'out.bin')], { env: cli.env, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    p.stderr!.on('data', (d) => (stderr += d))
    p.on('error', reject)
    p.on('close', (status) => resolve({ status, stderr }))
  })
  t.equal(r.status, 0, r.stderr)
  const events = wasmEvents(r.stderr)
  const flag = events.indexOf('FLAG --wasm-tiering-budget=2147483647')
  const sizes = (l: string[]) => l.map((e) => Number(e.split(' ')[1]))
  t.ok(flag > 0, `set once the hash module was compiled (${events.join(', ')})`)
  t.ok(sizes(events.slice(0, flag)).every((n) => n > 0 && n < 1024), 'before it: the quickXorHash module alone (a few hundred bytes)')
  t.ok(sizes(events.slice(flag + 1)).some((n) => n > 16384), "after it: undici's parser (tens of KiB)")
})

t.test('no Intl.Segmenter is built at start-up (the bundle makes string-width lazy); help still lays out its text', async (t) => {
  await ensureBuilt()
  const dir = await mkdtemp(join(tmpdir(), 'odfs-startup-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // Counts the segmenters built, and says how many at exit.
  await writeFile(join(dir, 'segmenters.cjs'), [
    'let n = 0; const S = Intl.Segmenter',
    'Intl.Segmenter = class extends S { constructor(...a) { super(...a); n++ } }',
    "process.on('exit', () => process.stderr.write(`SEGMENTERS ${n}\\n`))",
  ].join('\n'))
  const run = (...args: string[]) => spawnSync(process.execPath, ['--require', join(dir, 'segmenters.cjs'), ODFS_BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), XDG_STATE_HOME: join(dir, 'state'), ODFS_SYSTEM_CONFIG: join(dir, 'none.json') },
  })
  const ls = run('ls', 'My files')
  t.match(ls.stderr, /client_id is not set/, 'the command ran (and stopped at the missing configuration)')
  t.match(ls.stderr, /^SEGMENTERS 0$/m, 'no segmenter built')
  const help = run('get', '--help')
  t.equal(help.status, 0)
  t.match(help.stdout, /^ +--streams +Connections/m, 'options laid out in columns')
  t.match(help.stderr, /^SEGMENTERS [1-9]\d*$/m, 'help text is measured with a segmenter, built on first use')
})
