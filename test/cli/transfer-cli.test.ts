// odfs ls / put / get / hash as child processes (node bin/odfs, built dist/) against
// the emulator, signed in with `odfs login` (device code, auto-consent, file token
// store) under temporary XDG dirs. Covers: listing the virtual tree (text and
// --json), put + hash + get round trip keeping the mtime, a put interrupted by
// SIGINT and resumed by the next run, and one clear line with a non-zero exit on failure.
import t from 'tap'
import { existsSync } from 'node:fs'
import { writeFile, readFile, stat, utimes } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { quickXorHash } from '../../src/graph/index.js'
import { signedInCli, type SignedInCli } from '../support/odfs-cli.js'

let cli: SignedInCli
let emu: SignedInCli['emu']
let dir: string
let store: string[]
let odfs: SignedInCli['odfs']
let start: SignedInCli['start']

t.before(async () => {
  cli = await signedInCli('odfs-transfer-cli-')
  ;({ emu, dir, store, odfs, start } = cli)
})
t.teardown(() => cli?.close())

/**
 * Wait until `done()` holds, looking every 50 ms: the progress watched here is
 * made by a child process (its own clock, real sockets), which no clock of this
 * process can move; nothing is asserted about how long it takes.
 */
async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; !done(); i++) {
    if (i > 1200) throw new Error(`gave up waiting: ${what}`)
    await sleep(50)
  }
}

t.test('ls shows the virtual tree', async (t) => {
  const top = await odfs(['ls', ...store])
  t.equal(top.code, 0, top.stderr)
  t.match(top.stdout, /My files\//)
  t.match(top.stdout, /Shared with me\//)
  t.match(top.stdout, /Shared libraries\//)
  const mine = await odfs(['ls', '--json', ...store, 'My files'])
  t.equal(mine.code, 0, mine.stderr)
  const list = JSON.parse(mine.stdout) as { Name: string; IsDir: boolean; Path: string }[]
  t.ok(list.some((e) => e.Name === 'Documents' && e.IsDir), 'Documents listed as a folder')
  t.ok(list.every((e) => e.Path.startsWith('My files/')))
  const shared = await odfs(['ls', ...store, 'Shared with me'])
  t.equal(shared.code, 0, shared.stderr)
  t.ok(shared.stdout.trim().length > 0, 'something is shared with user1')
})

t.test('put, hash, get round trip keeps bytes and mtime', async (t) => {
  const local = join(dir, 'up.bin')
  const data = randomBytes(3 * 1024 * 1024 + 17)
  await writeFile(local, data)
  const mtime = new Date('2023-03-04T05:06:07Z')
  await utimes(local, mtime, mtime)
  const put = await odfs(['put', ...store, local, 'My files/Documents/up.bin'])
  t.equal(put.code, 0, put.stderr)
  t.match(put.stderr, /quickXorHash verified/)
  const h = await odfs(['hash', ...store, 'My files/Documents/up.bin'])
  t.equal(h.code, 0, h.stderr)
  t.equal(h.stdout.split(/\s+/)[0], quickXorHash(data), "hash prints the server's quickXorHash")
  const back = join(dir, 'back.bin')
  const get = await odfs(['get', ...store, 'My files/Documents/up.bin', back])
  t.equal(get.code, 0, get.stderr)
  t.ok((await readFile(back)).equals(data), 'same bytes')
  t.equal((await stat(back)).mtime.getTime(), mtime.getTime(), 'mtime kept')
  // put into a folder keeps the local name; a zero-byte file works
  const empty = join(dir, 'empty.txt')
  await writeFile(empty, '')
  const pe = await odfs(['put', ...store, empty, 'My files/Documents'])
  t.equal(pe.code, 0, pe.stderr)
  const ls = await odfs(['ls', '--json', ...store, 'My files/Documents'])
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
  const run = start(['put', ...store, local, 'My files/big.bin'])
  const fragments = () => Object.entries(emu.stats.routes).filter(([r]) => r.startsWith('PUT /_upload')).reduce((a, [, n]) => a + n, 0)
  await until(() => fragments() >= 2, 'two fragments sent before the interruption')
  run.p.kill('SIGINT')
  const first = await run.done
  t.not(first.code, 0, 'interrupted put fails')
  t.equal(first.stderr.trim().split('\n').length, 1, `one line: ${first.stderr.trim()}`)
  // Let the emulator drain what the killed process had already put in the socket, then count afresh.
  emu.setFaults({ bandwidth: 0 })
  let last = -1
  let quiet = 0
  await until(() => {
    quiet = emu.stats.bytesIn === last ? quiet + 1 : 0
    last = emu.stats.bytesIn
    return quiet >= 6 // nothing more arrived for 300 ms
  }, 'the emulator has read all the killed process sent')
  emu.resetStats()
  const second = await odfs(['put', ...store, local, 'My files/big.bin'])
  t.equal(second.code, 0, second.stderr)
  t.match(second.stderr, /resumed at byte \d+/)
  const resumedAt = Number(/resumed at byte (\d+)/.exec(second.stderr)![1])
  t.ok(resumedAt >= 10 * 1024 * 1024, `resumed at ${resumedAt}`)
  t.equal(fragments(), Math.ceil((size - resumedAt) / (10 * 1024 * 1024)), 'only the missing fragments were sent')
  t.ok(emu.stats.bytesIn <= size - resumedAt + 64 * 1024, `second run sent ${emu.stats.bytesIn} bytes, not the whole file`)
  const h = await odfs(['hash', ...store, 'My files/big.bin'])
  t.equal(h.stdout.split(/\s+/)[0], quickXorHash(data))
})

t.test('failures: one clear line and a non-zero exit', async (t) => {
  const missing = await odfs(['get', ...store, 'My files/no/such/file.txt', join(dir, 'x')])
  t.equal(missing.code, 1)
  t.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr)
  t.match(missing.stderr, /^odfs: .*no such/i)
  t.notOk(existsSync(join(dir, 'x')), 'nothing written')
  const nolocal = await odfs(['put', ...store, join(dir, 'nope.bin'), 'My files/x.bin'])
  t.equal(nolocal.code, 1)
  t.match(nolocal.stderr, /^odfs: .*no such local file/)
  const folder = await odfs(['get', ...store, 'My files/Documents', join(dir, 'y')])
  t.equal(folder.code, 1)
  t.match(folder.stderr, /is a folder/)
  await writeFile(join(dir, 'bad.bin'), 'bad name')
  const bad = await odfs(['put', ...store, join(dir, 'bad.bin'), 'My files/bad:name.bin'])
  t.equal(bad.code, 1)
  t.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr)
  t.notMatch(bad.stderr, /no such local file/, 'the service refused the name')
})
