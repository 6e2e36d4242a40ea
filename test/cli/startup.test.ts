// `odfs --version` start-up: answered from package.json before yargs (most of the
// start-up cost) is loaded, with the same answer yargs gives. A module hook makes
// loading yargs fail, so the test fails if the fast path goes.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ensureBuilt, ODFS_BIN, ROOT } from '../support/build.js'

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

t.test('a brief command raises the WebAssembly tiering budget before anything is compiled; servers keep the default', async (t) => {
  await ensureBuilt()
  const dir = await mkdtemp(join(tmpdir(), 'odfs-startup-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // Records every V8 flag set, and whether any WebAssembly had been compiled by then.
  await writeFile(join(dir, 'flags.cjs'), [
    "const v8 = require('node:v8'); const { syncBuiltinESMExports } = require('node:module')",
    'let compiled = 0; const W = globalThis.WebAssembly; const M = W.Module',
    'W.Module = function (...a) { compiled++; return new M(...a) }; W.Module.prototype = M.prototype',
    "for (const k of ['compile', 'instantiate']) { const f = W[k]; W[k] = function (...a) { compiled++; return f.apply(this, a) } }",
    'const set = v8.setFlagsFromString',
    "v8.setFlagsFromString = (f) => { process.stderr.write(`FLAG ${f} after ${compiled} wasm\\n`); return set(f) }",
    'syncBuiltinESMExports()',
  ].join('\n'))
  const run = (...args: string[]) => spawnSync(process.execPath, ['--require', join(dir, 'flags.cjs'), ODFS_BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), XDG_STATE_HOME: join(dir, 'state'), ODFS_SYSTEM_CONFIG: join(dir, 'none.json') },
  })
  for (const args of [['status'], ['ls', 'My files'], ['get', '--help']]) {
    const r = run(...args)
    t.match(r.stderr, /^FLAG --wasm-tiering-budget=2147483647 after 0 wasm$/m, `odfs ${args.join(' ')}: set, before any WebAssembly was compiled`)
  }
  for (const args of [['mount', '--help'], ['emulator', '--help'], ['demo', '--help']]) {
    t.notMatch(run(...args).stderr, /FLAG/, `odfs ${args[0]}: V8's default`)
  }
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
