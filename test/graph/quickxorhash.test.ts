import t from 'tap'
import { randomBytes } from 'node:crypto'
import { QuickXorHash, quickXorHash, quickXorHashStream } from '../../src/graph/quickxorhash.js'

/** Straight transcription of the definition (docs/graph-service.md §11), bit by bit: the reference. */
function reference(data: Uint8Array): string {
  const bits = new Uint8Array(160)
  for (let i = 0; i < data.length; i++) {
    const s = (11 * i) % 160
    for (let b = 0; b < 8; b++) if ((data[i]! >> b) & 1) bits[(s + b) % 160] ^= 1
  }
  const out = Buffer.alloc(20)
  for (let k = 0; k < 160; k++) if (bits[k]) out[k >> 3] |= 1 << (k & 7)
  let len = BigInt(data.length)
  for (let b = 0; b < 8; b++) {
    out[12 + b] ^= Number(len & 0xffn)
    len >>= 8n
  }
  return out.toString('base64')
}

t.test('published vectors', async (t) => {
  const vectors: [Uint8Array, string][] = [
    [Buffer.alloc(0), 'AAAAAAAAAAAAAAAAAAAAAAAAAAA='],
    [Buffer.from([0x4a]), 'SgAAAAAAAAAAAAAAAQAAAAAAAAA='],
    [Buffer.from([0xb5, 0xb4]), 'taAFAAAAAAAAAAAAAgAAAAAAAAA='],
    [Buffer.from('a'), 'YQAAAAAAAAAAAAAAAQAAAAAAAAA='],
    [Buffer.from('abc'), 'YRDDGAAAAAAAAAAAAwAAAAAAAAA='],
    [Buffer.from('hello world'), 'aCgDG9jwBhDc4Q1yawMZAAAAAAA='],
    [Buffer.from('The quick brown fox jumps over the lazy dog'), 'bMSlbysmxJL6S75XwfMcQZOpcr4='],
  ]
  for (const [input, want] of vectors) {
    t.equal(quickXorHash(input), want, `vector of ${input.length} bytes`)
    t.equal(reference(input), want, 'reference agrees')
  }
})

t.test('fast path equals the bit-by-bit definition for odd sizes, offsets and splits', async (t) => {
  for (const size of [159, 160, 161, 320, 333, 1000, 4096 + 7, 100_003]) {
    const backing = randomBytes(size + 3)
    for (const skew of [0, 1, 3]) {
      const data = backing.subarray(skew, skew + size) // unaligned views exercise the scratch path
      const want = reference(data)
      t.equal(quickXorHash(data), want, `size ${size} skew ${skew} one piece`)
      const h = new QuickXorHash()
      let off = 0
      let step = 1
      while (off < size) {
        h.update(data.subarray(off, off + step))
        off += step
        step = (step * 7 + 3) % 997 || 1
      }
      t.equal(h.digest(), want, `size ${size} skew ${skew} in uneven pieces`)
      t.equal(h.length, size)
    }
  }
})

t.test('stream helper', async (t) => {
  async function* gen() {
    yield Buffer.from('hello ')
    yield Buffer.from('world')
  }
  t.same(await quickXorHashStream(gen()), { hash: 'aCgDG9jwBhDc4Q1yawMZAAAAAAA=', size: 11 })
})

t.test('pieces hashed at their offsets in any order equal the hash in order', async (t) => {
  for (const size of [161, 1000, 100_003, 3 * 327_680 + 17]) {
    const data = randomBytes(size)
    const want = reference(data)
    // Uneven pieces (most not at a multiple of 160), hashed last first, then the rest interleaved.
    const pieces: [number, number][] = []
    for (let off = 0, step = 7; off < size; off += step, step = (step * 13 + 5) % 40_009 || 1) pieces.push([off, Math.min(size, off + step)])
    const order = [...pieces.filter((_, i) => i % 2 === 1).reverse(), ...pieces.filter((_, i) => i % 2 === 0)]
    const h = new QuickXorHash()
    for (const [a, b] of order) h.updateAt(a, data.subarray(a, b))
    t.equal(h.digest(), want, `size ${size}: ${pieces.length} pieces out of order`)
    t.equal(h.length, size)
  }
})

t.test('pieces longer than the SIMD window, starting at any lane', async (t) => {
  const data = randomBytes(300_007)
  const want = reference(data)
  for (const k of [1, 7, 64, 159, 160, 161, 16_384]) {
    const h = new QuickXorHash()
    h.update(data.subarray(0, k)).update(data.subarray(k))
    t.equal(h.digest(), want, `a ${k}-byte piece, then ${data.length - k} bytes in one`)
    const r = new QuickXorHash()
    r.updateAt(k, data.subarray(k)).updateAt(0, data.subarray(0, k))
    t.equal(r.digest(), want, `the same at their offsets, last first`)
  }
})
