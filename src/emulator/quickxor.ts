/**
 * QuickXorHash, the content hash OneDrive reports as `file.hashes.quickXorHash`
 * (docs/graph-service.md §11). The emulator's own implementation, independent of any
 * client code. Incremental: feed chunks in order, `digest()` at the end; `clone()`
 * lets a caller hash a fragment tentatively and keep or drop the result.
 *
 * Byte i of the stream is XORed into the 160-bit accumulator rotated by 11*i mod 160.
 * Because 11*160 ≡ 0 (mod 160), the rotation depends only on i mod 160, so bytes
 * are first XORed into 160 one-byte lanes and only placed at their bit offset once,
 * in digest().
 */
export class QuickXorHash {
  #lanes = new Uint8Array(160)
  /** The same 160 bytes as 40 words: XOR is bytewise, so word XOR is the same thing, 4× fewer steps. */
  #words = new Uint32Array(this.#lanes.buffer)
  #length = 0

  update(chunk: Uint8Array): this {
    const lanes = this.#lanes
    let lane = this.#length % 160
    const n = chunk.length
    let i = 0
    // Head until lane 0, then whole 160-byte rounds without the modulo, then the tail.
    while (i < n && lane !== 0) {
      lanes[lane]! ^= chunk[i]!
      i++
      lane = lane === 159 ? 0 : lane + 1
    }
    const rounds = Math.floor((n - i) / 160)
    const full = i + rounds * 160
    if (rounds > 0 && (chunk.byteOffset + i) % 4 === 0) {
      const w = this.#words
      const src = new Uint32Array(chunk.buffer, chunk.byteOffset + i, rounds * 40)
      for (let k = 0; k < src.length; k += 40) {
        for (let j = 0; j < 40; j++) w[j]! ^= src[k + j]!
      }
      i = full
    }
    for (; i < full; i += 160) {
      for (let j = 0; j < 160; j++) lanes[j]! ^= chunk[i + j]!
    }
    for (; i < n; i++) {
      lanes[lane]! ^= chunk[i]!
      lane = lane === 159 ? 0 : lane + 1
    }
    this.#length += n
    return this
  }

  get length(): number {
    return this.#length
  }

  clone(): QuickXorHash {
    const c = new QuickXorHash()
    c.#lanes.set(this.#lanes)
    c.#length = this.#length
    return c
  }

  /** The 20-byte hash. */
  digestBytes(): Buffer {
    const out = Buffer.alloc(20)
    for (let j = 0; j < 160; j++) {
      const v = this.#lanes[j]!
      if (v === 0) continue
      const bit = (11 * j) % 160
      for (let k = 0; k < 8; k++) {
        if ((v >> k) & 1) {
          const pos = (bit + k) % 160
          out[pos >> 3]! ^= 1 << (pos & 7)
        }
      }
    }
    let len = BigInt(this.#length)
    for (let k = 0; k < 8; k++) {
      out[12 + k]! ^= Number(len & 0xffn)
      len >>= 8n
    }
    return out
  }

  /** Base64 (28 characters), as Graph reports it. */
  digest(): string {
    return this.digestBytes().toString('base64')
  }
}

export function quickXorHash(data: Uint8Array): string {
  return new QuickXorHash().update(data).digest()
}
