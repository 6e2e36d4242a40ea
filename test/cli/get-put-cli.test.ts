// odfs get and put as child processes against the emulator: put creates the
// missing folders of its target.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { quickXorHash } from '../../src/graph/index.js'
import { signedInCli, type SignedInCli } from '../support/transfer-cli.js'

let cli: SignedInCli
let dir: string
let store: string[]
let odfs: SignedInCli['odfs']

t.before(async () => {
  cli = await signedInCli('odfs-get-put-cli-')
  ;({ dir, store, odfs } = cli)
})
t.teardown(() => cli?.close())

t.test('put creates the missing folders of its target', async (t) => {
  const local = join(dir, 'deep.bin')
  const data = randomBytes(1024 * 1024 + 5)
  await writeFile(local, data)
  const put = await odfs(['put', ...store, local, 'My files/new/dir/deep.bin'])
  t.equal(put.code, 0, put.stderr)
  const ls = await odfs(['ls', '--json', ...store, 'My files/new/dir'])
  t.equal(ls.code, 0, ls.stderr)
  t.same((JSON.parse(ls.stdout) as { Name: string }[]).map((e) => e.Name), ['deep.bin'])
  t.equal((await odfs(['hash', ...store, 'My files/new/dir/deep.bin'])).stdout.split(/\s+/)[0], quickXorHash(data))
  // Two puts creating the same folders at once: both succeed, one folder each level.
  const [a, b] = await Promise.all([
    odfs(['put', ...store, local, 'My files/race/sub/a.bin']),
    odfs(['put', ...store, local, 'My files/race/sub/b.bin']),
  ])
  t.equal(a.code, 0, a.stderr)
  t.equal(b.code, 0, b.stderr)
  const race = await odfs(['ls', '--json', ...store, 'My files/race/sub'])
  t.same((JSON.parse(race.stdout) as { Name: string }[]).map((e) => e.Name).sort(), ['a.bin', 'b.bin'])
  t.same((JSON.parse((await odfs(['ls', '--json', ...store, 'My files'])).stdout) as { Name: string }[]).filter((e) => /^race/.test(e.Name)).map((e) => e.Name), ['race'])
  // A file on the way is an error, not a folder to create.
  const through = await odfs(['put', ...store, local, 'My files/new/dir/deep.bin/x/y.bin'])
  t.equal(through.code, 1)
  t.equal(through.stderr.trim().split('\n').length, 1, through.stderr)
  t.match(through.stderr, /deep\.bin.*not a folder/)
})
