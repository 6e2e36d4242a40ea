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
import { signedInCliForFile } from '../support/odfs-cli.js'

const cli = signedInCliForFile(t, 'odfs-transfer-cli-')

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
  const top = await cli.odfs(['ls', ...cli.store])
  t.equal(top.code, 0, top.stderr)
  t.match(top.stdout, /My files\//)
  t.match(top.stdout, /Shared with me\//)
  t.match(top.stdout, /Shared libraries\//)
  const mine = await cli.odfs(['ls', '--json', ...cli.store, 'My files'])
  t.equal(mine.code, 0, mine.stderr)
  const list = JSON.parse(mine.stdout) as { Name: string; IsDir: boolean; Path: string }[]
  t.ok(list.some((e) => e.Name === 'Documents' && e.IsDir), 'Documents listed as a folder')
  t.ok(list.every((e) => e.Path.startsWith('My files/')))
  const shared = await cli.odfs(['ls', ...cli.store, 'Shared with me'])
  t.equal(shared.code, 0, shared.stderr)
  t.ok(shared.stdout.trim().length > 0, 'something is shared with user1')
})

t.test('put, hash, get round trip keeps bytes and mtime', async (t) => {
  const local = join(cli.dir, 'up.bin')
  const data = randomBytes(3 * 1024 * 1024 + 17)
  await writeFile(local, data)
  const mtime = new Date('2023-03-04T05:06:07Z')
  await utimes(local, mtime, mtime)
  const put = await cli.odfs(['put', ...cli.store, local, 'My files/Documents/up.bin'])
  t.equal(put.code, 0, put.stderr)
  t.match(put.stderr, /quickXorHash verified/)
  const h = await cli.odfs(['hash', ...cli.store, 'My files/Documents/up.bin'])
  t.equal(h.code, 0, h.stderr)
  t.equal(h.stdout.split(/\s+/)[0], quickXorHash(data), "hash prints the server's quickXorHash")
  const back = join(cli.dir, 'back.bin')
  const get = await cli.odfs(['get', ...cli.store, 'My files/Documents/up.bin', back])
  t.equal(get.code, 0, get.stderr)
  t.ok((await readFile(back)).equals(data), 'same bytes')
  t.equal((await stat(back)).mtime.getTime(), mtime.getTime(), 'mtime kept')
  // put into a folder keeps the local name; a zero-byte file works
  const empty = join(cli.dir, 'empty.txt')
  await writeFile(empty, '')
  const pe = await cli.odfs(['put', ...cli.store, empty, 'My files/Documents'])
  t.equal(pe.code, 0, pe.stderr)
  const ls = await cli.odfs(['ls', '--json', ...cli.store, 'My files/Documents'])
  t.ok((JSON.parse(ls.stdout) as { Name: string; Size: number }[]).some((e) => e.Name === 'empty.txt' && e.Size === 0))
})

t.test('an interrupted put resumes when run again', async (t) => {
  const local = join(cli.dir, 'big.bin')
  const size = 24 * 1024 * 1024
  const data = randomBytes(size)
  await writeFile(local, data)
  cli.emu.setFaults({ bandwidth: 4 * 1024 * 1024 }) // slow enough to interrupt half-way
  t.teardown(() => cli.emu.setFaults({ bandwidth: 0 }))
  cli.emu.resetStats()
  const run = cli.start(['put', ...cli.store, local, 'My files/big.bin'])
  const fragments = () => Object.entries(cli.emu.stats.routes).filter(([r]) => r.startsWith('PUT /_upload')).reduce((a, [, n]) => a + n, 0)
  await until(() => fragments() >= 2, 'two fragments sent before the interruption')
  run.p.kill('SIGINT')
  const first = await run.done
  t.not(first.code, 0, 'interrupted put fails')
  t.equal(first.stderr.trim().split('\n').length, 1, `one line: ${first.stderr.trim()}`)
  // Let the emulator drain what the killed process had already put in the socket, then count afresh.
  cli.emu.setFaults({ bandwidth: 0 })
  let last = -1
  let quiet = 0
  await until(() => {
    quiet = cli.emu.stats.bytesIn === last ? quiet + 1 : 0
    last = cli.emu.stats.bytesIn
    return quiet >= 6 // nothing more arrived for 300 ms
  }, 'the emulator has read all the killed process sent')
  cli.emu.resetStats()
  const second = await cli.odfs(['put', ...cli.store, local, 'My files/big.bin'])
  t.equal(second.code, 0, second.stderr)
  t.match(second.stderr, /resumed at byte \d+/)
  const resumedAt = Number(/resumed at byte (\d+)/.exec(second.stderr)![1])
  t.ok(resumedAt >= 10 * 1024 * 1024, `resumed at ${resumedAt}`)
  t.equal(fragments(), Math.ceil((size - resumedAt) / (10 * 1024 * 1024)), 'only the missing fragments were sent')
  t.ok(cli.emu.stats.bytesIn <= size - resumedAt + 64 * 1024, `second run sent ${cli.emu.stats.bytesIn} bytes, not the whole file`)
  const h = await cli.odfs(['hash', ...cli.store, 'My files/big.bin'])
  t.equal(h.stdout.split(/\s+/)[0], quickXorHash(data))
})

t.test('failures: one clear line and a non-zero exit', async (t) => {
  const missing = await cli.odfs(['get', ...cli.store, 'My files/no/such/file.txt', join(cli.dir, 'x')])
  t.equal(missing.code, 1)
  t.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr)
  t.match(missing.stderr, /^odfs: .*no such/i)
  t.notOk(existsSync(join(cli.dir, 'x')), 'nothing written')
  const nolocal = await cli.odfs(['put', ...cli.store, join(cli.dir, 'nope.bin'), 'My files/x.bin'])
  t.equal(nolocal.code, 1)
  t.match(nolocal.stderr, /^odfs: .*no such local file/)
  const folder = await cli.odfs(['get', ...cli.store, 'My files/Documents', join(cli.dir, 'y')])
  t.equal(folder.code, 1)
  t.match(folder.stderr, /is a folder/)
  await writeFile(join(cli.dir, 'bad.bin'), 'bad name')
  const bad = await cli.odfs(['put', ...cli.store, join(cli.dir, 'bad.bin'), 'My files/bad:name.bin'])
  t.equal(bad.code, 1)
  t.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr)
  t.notMatch(bad.stderr, /no such local file/, 'the service refused the name')
})
