// odfs get and put as child processes against the emulator: put creates the
// missing folders of its target; get writes through an exclusively created,
// randomly named 0600 temporary file (never through a name someone else could
// plant), refuses a file name from the service that is not one path segment, and
// fails with one clear line when LOCAL's folder is missing.
import t from 'tap'
import { existsSync } from 'node:fs'
import { lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { quickXorHash } from '../../src/graph/index.js'
import { signedInCliForFile } from '../support/odfs-cli.js'

const cli = signedInCliForFile(t, 'odfs-get-put-cli-')

t.test('put creates the missing folders of its target', async (t) => {
  const local = join(cli.dir, 'deep.bin')
  const data = randomBytes(1024 * 1024 + 5)
  await writeFile(local, data)
  const put = await cli.odfs(['put', ...cli.store, local, 'My files/new/dir/deep.bin'])
  t.equal(put.code, 0, put.stderr)
  const ls = await cli.odfs(['ls', '--json', ...cli.store, 'My files/new/dir'])
  t.equal(ls.code, 0, ls.stderr)
  t.same((JSON.parse(ls.stdout) as { Name: string }[]).map((e) => e.Name), ['deep.bin'])
  t.equal((await cli.odfs(['hash', ...cli.store, 'My files/new/dir/deep.bin'])).stdout.split(/\s+/)[0], quickXorHash(data))
  // Two puts creating the same folders at once: both succeed, one folder each level.
  const [a, b] = await Promise.all([
    cli.odfs(['put', ...cli.store, local, 'My files/race/sub/a.bin']),
    cli.odfs(['put', ...cli.store, local, 'My files/race/sub/b.bin']),
  ])
  t.equal(a.code, 0, a.stderr)
  t.equal(b.code, 0, b.stderr)
  const race = await cli.odfs(['ls', '--json', ...cli.store, 'My files/race/sub'])
  t.same((JSON.parse(race.stdout) as { Name: string }[]).map((e) => e.Name).sort(), ['a.bin', 'b.bin'])
  t.same((JSON.parse((await cli.odfs(['ls', '--json', ...cli.store, 'My files'])).stdout) as { Name: string }[]).filter((e) => /^race/.test(e.Name)).map((e) => e.Name), ['race'])
  // A file on the way is an error, not a folder to create.
  const through = await cli.odfs(['put', ...cli.store, local, 'My files/new/dir/deep.bin/x/y.bin'])
  t.equal(through.code, 1)
  t.equal(through.stderr.trim().split('\n').length, 1, through.stderr)
  t.match(through.stderr, /deep\.bin.*not a folder/)
})

t.test('get and put ask for the user\'s drive only where a path lookup cannot do without it', async (t) => {
  const local = join(cli.dir, 'routes.bin')
  await writeFile(local, randomBytes(1000))
  const put = await cli.odfs(['put', ...cli.store, local, 'My files/routes/a.bin'])
  t.equal(put.code, 0, put.stderr)
  const routes = () => JSON.stringify(cli.emu.stats.routes)
  const count = (re: RegExp) => Object.entries(cli.emu.stats.routes).filter(([k]) => re.test(k)).reduce((a, [, n]) => a + n, 0)

  cli.emu.resetStats()
  const get = await cli.odfs(['get', ...cli.store, 'My files/routes/a.bin', join(cli.dir, 'routes-out.bin')])
  t.equal(get.code, 0, get.stderr)
  t.equal(count(/^GET \/me\/drive$/), 0, `get: no request for the drive (${routes()})`)
  t.equal(count(/^GET \/me\/drive\/root:/), 1, 'the path, looked up under /me/drive')
  t.equal(cli.emu.stats.total, 2, `get: the path and the download (${routes()})`)

  cli.emu.resetStats()
  const inFolder = await cli.odfs(['put', ...cli.store, local, 'My files/routes/b.bin'])
  t.equal(inFolder.code, 0, inFolder.stderr)
  t.equal(count(/^GET \/me\/drive$/), 0, `put into an existing folder: its parent found by path too (${routes()})`)

  cli.emu.resetStats()
  const top = await cli.odfs(['put', ...cli.store, local, `My files/routes-top-${Date.now()}.bin`])
  t.equal(top.code, 0, top.stderr)
  t.equal(count(/^GET \/me\/drive$/), 1, `put of a new file at the top: the root is named by the drive's id (${routes()})`)
})

t.test('get writes through a private temporary file, never through a name someone else can plant', async (t) => {
  const out = join(cli.dir, 'get-out')
  await mkdir(out)
  // The old fixed name LOCAL.odfs-partial, planted as a symlink to a file of the victim's.
  const victim = join(out, 'victim.txt')
  await writeFile(victim, 'precious')
  await symlink(victim, join(out, 'readme.txt.odfs-partial'))
  const get = await cli.odfs(['get', ...cli.store, 'My files/README.txt', join(out, 'readme.txt')])
  t.equal(get.code, 0, get.stderr)
  t.equal(await readFile(victim, 'utf8'), 'precious', 'the symlink was not followed')
  t.match(await readFile(join(out, 'readme.txt'), 'utf8'), /Welcome to the odfs emulator/)
  t.equal((await stat(join(out, 'readme.txt'))).mode & 0o777, 0o666 & ~process.umask(), 'the finished file gets the usual mode')

  // While it downloads, the temporary file has a random name and mode 0600.
  const data = randomBytes(6 * 1024 * 1024)
  await writeFile(join(cli.dir, 'slow.bin'), data)
  const put = await cli.odfs(['put', ...cli.store, join(cli.dir, 'slow.bin'), 'My files/slow.bin'])
  t.equal(put.code, 0, put.stderr)
  cli.emu.setFaults({ bandwidth: 2 * 1024 * 1024 })
  t.teardown(() => cli.emu.setFaults({ bandwidth: 0 }))
  const seen: { name: string; mode: number }[] = []
  for (let round = 0; round < 2; round++) {
    const run = cli.start(['get', ...cli.store, 'My files/slow.bin', join(out, 'slow.bin')])
    for (let i = 0; i < 300; i++) {
      const tmp = (await readdir(out)).find((n) => n.startsWith('.slow.bin.') && n.endsWith('.odfs-partial'))
      if (tmp) {
        seen.push({ name: tmp, mode: (await lstat(join(out, tmp))).mode & 0o777 })
        break
      }
      await new Promise((r) => setTimeout(r, 50))
    }
    const done = await run.done
    t.equal(done.code, 0, done.stderr)
  }
  t.equal(seen.length, 2, 'the temporary file was seen in both runs')
  t.ok(seen.every((s) => s.mode === 0o600), `mode 0600: ${seen.map((s) => s.mode.toString(8))}`)
  t.not(seen[0]!.name, seen[1]!.name, 'a new random name each run')
  t.ok((await readFile(join(out, 'slow.bin'))).equals(data))
  t.same((await readdir(out)).filter((n) => n.endsWith('.odfs-partial')), ['readme.txt.odfs-partial'], 'nothing left behind but the planted link')
})

t.test('get refuses a file name from the service that is not one plain path segment', async (t) => {
  const out = join(cli.dir, 'get-names')
  await mkdir(out)
  const item = cli.emu.store.itemByPath('user1', 'README.txt')!
  const name = item.name
  t.teardown(() => { item.name = name })
  for (const bad of ['../escape.txt', 'a/b.txt', '..', 'nul\u0000.txt']) {
    item.name = bad
    const get = await cli.odfs(['get', ...cli.store, 'My files/README.txt', out])
    t.equal(get.code, 1, `${JSON.stringify(bad)}: ${get.stderr}`)
    t.equal(get.stderr.trim().split('\n').length, 1, get.stderr)
    t.match(get.stderr, /not a safe local file name/)
  }
  t.same(await readdir(out), [], 'nothing written')
  t.notOk(existsSync(join(cli.dir, 'escape.txt')), 'nothing written outside LOCAL')
})

t.test('get into a folder that does not exist: one clear line, nothing written', async (t) => {
  const nodir = await cli.odfs(['get', ...cli.store, 'My files/README.txt', join(cli.dir, 'missing', 'dir', 'f')])
  t.equal(nodir.code, 1)
  t.equal(nodir.stderr.trim().split('\n').length, 1, nodir.stderr)
  t.match(nodir.stderr, /^odfs: .*missing\/dir: no such local folder/)
  t.notOk(existsSync(join(cli.dir, 'missing')), 'no folder created')
})

t.test('get --streams 3 fetches a file in parts over three connections, byte for byte', async (t) => {
  const size = 40 * 1024 * 1024 + 4321 // three 16 MiB parts, the last short
  await cli.emu.store.writeFile('user1', 'parts/ramp.bin', { size, pattern: 'ramp' })
  cli.emu.resetStats()
  const out = join(cli.dir, 'ramp.bin')
  const r = await cli.odfs(['get', ...cli.store, '--streams', '3', 'My files/parts/ramp.bin', out])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stderr, /quickXorHash verified/)
  const got = await readFile(out)
  t.equal(got.length, size)
  let wrong = -1
  for (let i = 0; i < size && wrong < 0; i++) if (got[i] !== (i & 0xff)) wrong = i
  t.equal(wrong, -1, 'every byte where it belongs')
  const gets = Object.entries(cli.emu.stats.routes).filter(([k]) => k.startsWith('GET /_download')).reduce((a, [, n]) => a + n, 0)
  t.equal(gets, 3, 'one ranged GET per part')
})
