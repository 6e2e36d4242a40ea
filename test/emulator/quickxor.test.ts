import t from 'tap'
import { QuickXorHash, quickXorHash } from '../../src/emulator/index.js'

t.test('published vectors (docs/graph-service.md §11)', async (t) => {
  const vectors: [Buffer, string][] = [
    [Buffer.alloc(0), 'AAAAAAAAAAAAAAAAAAAAAAAAAAA='],
    [Buffer.from([0x4a]), 'SgAAAAAAAAAAAAAAAQAAAAAAAAA='],
    [Buffer.from([0xb5, 0xb4]), 'taAFAAAAAAAAAAAAAgAAAAAAAAA='],
    [Buffer.from('a'), 'YQAAAAAAAAAAAAAAAQAAAAAAAAA='],
    [Buffer.from('abc'), 'YRDDGAAAAAAAAAAAAwAAAAAAAAA='],
    [Buffer.from('hello world'), 'aCgDG9jwBhDc4Q1yawMZAAAAAAA='],
    [Buffer.from('The quick brown fox jumps over the lazy dog'), 'bMSlbysmxJL6S75XwfMcQZOpcr4='],
  ]
  for (const [input, want] of vectors) t.equal(quickXorHash(input), want, `hash of ${JSON.stringify(input.toString('latin1'))}`)
})

t.test('incremental hashing equals one-shot at every split, and clone is independent', async (t) => {
  const data = Buffer.alloc(1000)
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff
  const whole = quickXorHash(data)
  for (const split of [0, 1, 159, 160, 161, 333, 999]) {
    const h = new QuickXorHash().update(data.subarray(0, split))
    const c = h.clone()
    h.update(data.subarray(split))
    t.equal(h.digest(), whole, `split at ${split}`)
    t.equal(c.length, split, 'clone kept its own length')
  }
  t.not(quickXorHash(data.subarray(0, 999)), whole)
})

t.test('word-aligned and unaligned chunks hash the same', async (t) => {
  const backing = Buffer.alloc(5000 + 3)
  for (let i = 0; i < backing.length; i++) backing[i] = (i * 131 + 17) & 0xff
  const ref = new QuickXorHash()
  for (let i = 0; i < 5000; i++) ref.update(backing.subarray(1 + i, 2 + i))
  for (const start of [0, 1, 2, 3]) {
    const view = new Uint8Array(backing.buffer, backing.byteOffset + start, 5000)
    const want = new QuickXorHash()
    for (let i = 0; i < 5000; i++) want.update(view.subarray(i, i + 1))
    t.equal(new QuickXorHash().update(view).digest(), want.digest(), `offset ${start}`)
  }
  t.ok(ref.digest())
})
