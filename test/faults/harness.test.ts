import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  defineCase, runCase, renderTable, renderReliabilityDoc, verifyRemoteFolder, verifyLocalFolder, emulatorGraphReader,
  emulatorFaultInjector, type CaseContext,
} from './harness.js'
import mountCases from './mount.case.js'
import { startTestEmulator, tokenFor, graphCaller, type TestEmulator } from '../support/emulator.js'
import { toRemoteName } from '../../src/vfs/names.js'

const ctx: CaseContext = { seed: 1, ops: 10, log: () => undefined }
const summary = (name: string, content: Buffer) => ({ name, size: content.length, sha256: createHash('sha256').update(content).digest('hex') })

t.test('a case that cannot run is "not run" with its reason, never passed, and nothing of it runs', async (t) => {
  let ran = false
  const r = await runCase(defineCase({
    name: 'needs a mount', description: 'd', requires: () => 'no mount here',
    setup: async () => { ran = true }, workload: async () => ({ operations: 1, expected: [] }), verify: async () => ({ filesChecked: 0, bytesLost: 0, problems: [] }),
  }), ctx)
  t.equal(r.status, 'not run')
  t.equal(r.why, 'no mount here')
  t.equal(ran, false)
  t.match(renderTable([r]), /\| needs a mount \| not run \(no mount here\) \| – \| – \| – \| – \|/)
})

// The mount cases run real mounts for minutes: npm run test:faults runs them (and
// writes docs/reliability.md); here only their definitions are checked.
t.test('the mount cases are defined once each, with what they do', async (t) => {
  t.ok(mountCases.length >= 6)
  t.equal(new Set(mountCases.map((c) => c.name)).size, mountCases.length, 'case names are unique')
  for (const c of mountCases) {
    t.match(c.name, /^mount: /)
    t.ok(c.description.length > 20, `${c.name} says what it does`)
  }
})

t.test('a case passes only when verify finds every byte; lost bytes, problems and errors fail it', async (t) => {
  const base = {
    description: 'd',
    setup: async () => ({ torn: false }),
    workload: async () => ({ operations: 5, expected: [] }),
  }
  const passed = await runCase(defineCase({ ...base, name: 'ok', verify: async () => ({ filesChecked: 3, bytesLost: 0, problems: [] }) }), ctx)
  t.match(passed, { status: 'passed', operations: 5, filesChecked: 3, bytesLost: 0 })
  const lost = await runCase(defineCase({ ...base, name: 'lost', verify: async () => ({ filesChecked: 3, bytesLost: 7, problems: [] }) }), ctx)
  t.match(lost, { status: 'failed', bytesLost: 7, why: '7 bytes lost' })
  const thrown = await runCase(defineCase({ ...base, name: 'thrown', workload: async () => { throw new Error('mount went away') }, verify: async () => ({ filesChecked: 0, bytesLost: 0, problems: [] }) }), ctx)
  t.match(thrown, { status: 'failed', why: 'error: mount went away' })
  let tornDown = 0
  let stopped = 0
  const withFaults = await runCase(defineCase({
    ...base, name: 'faults',
    faults: async () => ({ stop: async () => { stopped++; return 42 } }),
    workload: async () => { throw new Error('boom') },
    verify: async () => ({ filesChecked: 0, bytesLost: 0, problems: [] }),
    teardown: async () => { tornDown++ },
  }), ctx)
  t.match(withFaults, { status: 'failed', faultsInjected: 42 })
  t.equal(stopped, 1, 'faults stopped once even when the workload throws')
  t.equal(tornDown, 1, 'teardown runs after a failure')
  const doc = renderReliabilityDoc([passed, lost], { command: 'npm run test:faults -- --seed 1', seed: 1, ops: 10, date: '2026-01-01', node: 'v20' })
  t.match(doc, /```sh\nnpm run test:faults -- --seed 1\n```/)
  t.match(doc, /Passed 1, failed 1, not run 0\./)
})

t.test('verifyLocalFolder: size and sha256 of every expected file, and nothing else', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'odfs-harness-test-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const a = Buffer.from('alpha'), b = Buffer.from('bravo!')
  await writeFile(join(dir, 'a'), a)
  await writeFile(join(dir, 'b'), Buffer.from('bravo?'))
  await writeFile(join(dir, 'stray'), 'x')
  const v = await verifyLocalFolder(dir, [summary('a', a), summary('b', b), summary('c', a)])
  t.equal(v.filesChecked, 3)
  t.equal(v.bytesLost, b.length + a.length, 'the changed file and the missing one')
  t.equal(v.problems.length, 3)
  t.match(v.problems.join('\n'), /"b": 6 bytes sha256 .*expected 6 bytes/)
  t.match(v.problems.join('\n'), /"c" unreadable: ENOENT/)
  t.match(v.problems.join('\n'), /unexpected file "stray"/)
})

t.test('against the emulator', async (t) => {
  const emu: TestEmulator = await startTestEmulator({ rateLimit: 0, etagSettleMs: 0 })
  t.teardown(() => emu.close())
  const token = await tokenFor(emu, 'user1')
  const g = graphCaller(emu, token)
  const files = { 'plain.bin': Buffer.alloc(100_000, 7), 'a:b?.txt': Buffer.from('colon and question mark'), 'end.': Buffer.from('') }
  t.equal((await g('POST', '/me/drive/root/children', { name: 'run1', folder: {} })).status, 201)
  for (const [name, content] of Object.entries(files)) {
    const r = await g('PUT', `/me/drive/root:/run1/${encodeURIComponent(toRemoteName(name))}:/content`, content)
    t.equal(r.status, 201, `uploaded ${name} as ${toRemoteName(name)}`)
  }
  const reader = emulatorGraphReader(emu, token)

  t.test('verifyRemoteFolder finds every file under its remote name with the same content', async (t) => {
    const v = await verifyRemoteFolder(reader, '/run1', Object.entries(files).map(([n, c]) => summary(n, c)))
    t.same(v, { filesChecked: 3, bytesLost: 0, problems: [] })
  })

  t.test('verifyRemoteFolder reports changed, missing and unexpected files', async (t) => {
    const expected = [summary('plain.bin', Buffer.alloc(100_000, 8)), summary('a:b?.txt', files['a:b?.txt']), summary('gone', Buffer.from('xyz'))]
    const v = await verifyRemoteFolder(reader, 'run1/', expected)
    t.equal(v.filesChecked, 3)
    t.equal(v.bytesLost, 100_000 + 3)
    t.match(v.problems.join('\n'), /"plain.bin": stored 100000 bytes/)
    t.match(v.problems.join('\n'), /"gone" \(stored as "gone"\) is missing/)
    t.match(v.problems.join('\n'), /unexpected item "end．"/)
  })

  t.test('emulatorFaultInjector turns faults on for the workload and counts what was injected', async (t) => {
    const inj = await emulatorFaultInjector(emu, { failRate: 1 })
    t.equal(emu.faults.failRate, 1)
    const r = await g('GET', '/me/drive/root/children')
    t.equal(r.status, 503)
    t.equal(await inj.stop(), 1, 'one 503 injected')
    t.equal(emu.faults.failRate, 0, 'previous settings restored')
    t.equal(await inj.stop(), 1, 'stop is idempotent')
    t.equal((await g('GET', '/me/drive/root/children')).status, 200)
  })
})
