/**
 * quickXorHash: the content hash OneDrive reports for every file
 * (`file.hashes.quickXorHash`), docs/graph-service.md §11.
 *
 * Byte i of the stream is XORed into a 160-bit accumulator at bit offset
 * 11*i mod 160. Offsets repeat every 160 bytes, so the hot loop only XORs byte i
 * into lane i mod 160 (40 little-endian 32-bit words, a word at a time when the
 * input is 4-byte aligned); the lanes are spread to their bit offsets once, in
 * digest(). Finally the 64-bit length is XORed into bytes 12..19 and the 20
 * bytes are base64-encoded.
 */
import { endianness } from 'node:os'

const WIDTH_BYTES = 20
const LANES = 160
const WORDS = LANES / 4
const LITTLE_ENDIAN = endianness() === 'LE'
/** Scratch size for re-aligning unaligned input (a multiple of 160). */
const SCRATCH = 160 * 512

export class QuickXorHash {
  readonly #words = new Uint32Array(WORDS)
  readonly #lanes = new Uint8Array(this.#words.buffer)
  /** Total bytes hashed. */
  #length = 0
  #scratch: Uint8Array | undefined

  get length(): number {
    return this.#length
  }

  update(data: Uint8Array): this {
    const n = data.length
    if (n === 0) return this
    const lanes = this.#lanes
    let pos = this.#length % LANES
    let i = 0
    // Bring the lane position to a block start byte by byte.
    if (pos !== 0) {
      const head = Math.min(n, LANES - pos)
      for (; i < head; i++) lanes[pos++] ^= data[i]!
      if (pos === LANES) pos = 0
    }
    const blocks = Math.floor((n - i) / LANES)
    if (blocks > 0 && LITTLE_ENDIAN) {
      this.#xorBlocks(data, i, blocks)
      i += blocks * LANES
    }
    for (; i < n; i++) {
      lanes[pos++] ^= data[i]!
      if (pos === LANES) pos = 0
    }
    this.#length += n
    return this
  }

  /** XOR `blocks` whole 160-byte blocks starting at data[start] (lane position 0). */
  #xorBlocks(data: Uint8Array, start: number, blocks: number): void {
    const offset = data.byteOffset + start
    if (offset % 4 === 0) {
      this.#xorAligned(new Uint32Array(data.buffer, offset, blocks * WORDS))
      return
    }
    // Unaligned: copy through an aligned scratch buffer (memcpy is far cheaper than byte XORs).
    const scratch = (this.#scratch ??= new Uint8Array(SCRATCH))
    const sw = new Uint32Array(scratch.buffer)
    let remaining = blocks * LANES
    let from = start
    while (remaining > 0) {
      const take = Math.min(remaining, SCRATCH)
      scratch.set(data.subarray(from, from + take))
      this.#xorAligned(take === SCRATCH ? sw : sw.subarray(0, take / 4))
      from += take
      remaining -= take
    }
  }

  #xorAligned(src: Uint32Array): void {
    const w = this.#words
    let w0 = w[0]!, w1 = w[1]!, w2 = w[2]!, w3 = w[3]!, w4 = w[4]!, w5 = w[5]!, w6 = w[6]!, w7 = w[7]!
    let w8 = w[8]!, w9 = w[9]!
    const n = src.length
    // Words 10..39 go straight to the array; 0..9 are kept in registers as a cheap partial unroll.
    for (let j = 0; j < n; j += WORDS) {
      w0 ^= src[j]!; w1 ^= src[j + 1]!; w2 ^= src[j + 2]!; w3 ^= src[j + 3]!; w4 ^= src[j + 4]!
      w5 ^= src[j + 5]!; w6 ^= src[j + 6]!; w7 ^= src[j + 7]!; w8 ^= src[j + 8]!; w9 ^= src[j + 9]!
      for (let k = 10; k < WORDS; k++) w[k] ^= src[j + k]!
    }
    w[0] = w0; w[1] = w1; w[2] = w2; w[3] = w3; w[4] = w4; w[5] = w5; w[6] = w6; w[7] = w7; w[8] = w8; w[9] = w9
  }

  /** The 20 raw hash bytes. Does not reset the state. */
  digestBytes(): Buffer {
    const out = Buffer.alloc(WIDTH_BYTES)
    const lanes = this.#lanes
    for (let k = 0; k < LANES; k++) {
      const v = lanes[k]!
      if (v === 0) continue
      const bit = (11 * k) % 160
      const byte = bit >> 3
      const shift = bit & 7
      out[byte] ^= (v << shift) & 0xff
      if (shift !== 0) out[(byte + 1) % WIDTH_BYTES] ^= v >> (8 - shift)
    }
    // XOR the 64-bit little-endian length into the last 8 bytes.
    let len = this.#length
    for (let b = 0; b < 8; b++) {
      out[12 + b] ^= len % 256
      len = Math.floor(len / 256)
    }
    return out
  }

  /** Base64, as Graph reports it (28 characters). */
  digest(): string {
    return this.digestBytes().toString('base64')
  }
}

/** quickXorHash of one buffer (or several, in order). */
export function quickXorHash(...chunks: Uint8Array[]): string {
  const h = new QuickXorHash()
  for (const c of chunks) h.update(c)
  return h.digest()
}

/** quickXorHash of an async iterable of chunks (a Node Readable, a generator). */
export async function quickXorHashStream(source: AsyncIterable<Uint8Array>): Promise<{ hash: string; size: number }> {
  const h = new QuickXorHash()
  for await (const c of source) h.update(c)
  return { hash: h.digest(), size: h.length }
}
