// The FUSE adapter answers every kernel call exactly once, whatever the Vfs does:
// a synchronous throw, a rejection, an answer the callback itself chokes on. No
// exception leaves it (one would reach fuse-native's native callback and end the
// daemon). No mount needed: the callbacks are called as fuse-native calls them.
import t from 'tap'
import { constants } from 'node:os'
import { setImmediate as tick } from 'node:timers/promises'
import { fuseOps } from '../../src/fuse/index.js'
import { createLogger } from '../../src/common/index.js'
import { VfsError, type Vfs } from '../../src/vfs/index.js'
import { collectUnhandled } from '../support/unhandled.js'

const { EIO, ENOENT } = constants.errno

function setup(vfs: Partial<Vfs>) {
  const lines: string[] = []
  const log = createLogger({ level: 'debug', destination: { write: (l: string) => lines.push(l) } as never })
  const ops = fuseOps({ describe: (e: unknown) => String(e), ...vfs } as Vfs, log)
  return { ops, lines }
}

/** Call an op and collect its answers (after the event loop has settled). */
async function call(op: (...a: any[]) => void, ...args: unknown[]): Promise<unknown[][]> {
  const answers: unknown[][] = []
  op(...args, (...a: unknown[]) => answers.push(a))
  for (let i = 0; i < 20; i++) await tick()
  return answers
}

t.test('a Vfs method that throws synchronously: EIO once, with a log line', async (t) => {
  const { ops, lines } = setup({ getattr: () => { throw new TypeError('boom') } })
  t.same(await call(ops.getattr!, '/x'), [[-EIO]])
  t.ok(lines.some((l) => l.includes('"I/O error"') && l.includes('boom')), 'logged')
})

t.test('a rejection: the errno errnoFor chooses, once', async (t) => {
  const { ops } = setup({ getattr: async () => { throw new VfsError('notFound', 'no such file') } })
  t.same(await call(ops.getattr!, '/x'), [[-ENOENT]])
  const { ops: ops2 } = setup({ read: async () => { throw new Error('socket hang up') } })
  t.same(await call(ops2.read!, '/x', 3, Buffer.alloc(4), 4, 0), [[-EIO]])
})

t.test('results are answered as fuse-native expects', async (t) => {
  const { ops } = setup({ read: async () => 4, open: async () => 7 })
  t.same(await call(ops.read!, '/x', 3, Buffer.alloc(4), 4, 0), [[4]])
  t.same(await call(ops.open!, '/x', 0), [[0, 7]])
})

t.test('a callback that throws does not escape and is not called twice', async (t) => {
  const unhandled = collectUnhandled(t)
  const { ops, lines } = setup({ open: async () => 7 })
  let calls = 0
  ops.open!('/x', 0, () => {
    calls++
    throw new Error('native side gone')
  })
  for (let i = 0; i < 20; i++) await tick()
  t.equal(calls, 1, 'answered once')
  t.same(unhandled, [], 'nothing escaped')
  t.ok(lines.some((l) => l.includes('answering the kernel failed')), 'logged')
})
