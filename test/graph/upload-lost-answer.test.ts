// The last fragment of an upload reaches the service, which commits the file and
// closes the session, but the answer is lost on the way back (a connection reset
// or timeout while the service assembles a large file is common in the field).
// The client must find the committed file, not upload everything again.
import t from 'tap'
import type { Dispatcher } from 'undici'
import { startTestEmulator, tokenFor } from '../support/emulator.js'
import { createGraphDriveClient, type UploadSource } from '../../src/graph/index.js'

function pattern(offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length)
  for (let k = 0; k < length; k++) b[k] = ((offset + k) * 7 + ((offset + k) >> 11)) & 0xff
  return b
}

/** The emulator's dispatcher, except that the answer to the final fragment PUT is dropped once. */
function losingFinalAnswer(real: Dispatcher, size: number) {
  const state = { dropped: 0 }
  const request = async (opts: Dispatcher.RequestOptions) => {
    const range = Object.entries((opts.headers ?? {}) as Record<string, string>).find(([k]) => k.toLowerCase() === 'content-range')?.[1]
    const res = await real.request(opts as never)
    if (opts.method === 'PUT' && range?.endsWith(`-${size - 1}/${size}`) && state.dropped === 0) {
      state.dropped++
      await res.body.text() // the service did everything; only the answer is gone
      throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })
    }
    return res
  }
  const proxy = new Proxy(real, {
    get(target, prop) {
      if (prop === 'request') return request
      const v = Reflect.get(target, prop)
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
  return { dispatcher: proxy as Dispatcher, state }
}

t.test('a lost answer to the last fragment: the committed file is found, nothing is resent', async (t) => {
  const emu = await startTestEmulator({ seed: 'empty', etagSettleMs: 0 })
  t.teardown(() => emu.close())
  const token = await tokenFor(emu, 'user1')
  const frag = 327_680 * 2
  const size = frag * 5 + 777
  const { dispatcher, state } = losingFinalAnswer(emu.dispatcher as unknown as Dispatcher, size)
  const client = createGraphDriveClient({
    baseUrl: emu.info.graph, tokenProvider: { getAccessToken: async () => token }, dispatcher, fragmentSize: frag,
    retry: { baseDelayMs: 1, maxDelayMs: 5 },
  })
  const drive = await client.getMyDrive()
  const source: UploadSource = { size, read: async (o, n) => pattern(o, n) }
  emu.resetStats()
  const res = await client.upload({ driveId: drive.id, itemId: 'root' }, 'lost-answer.bin', source)
  t.equal(state.dropped, 1, 'the final answer was dropped once')
  t.equal(res.verified, true, 'the file the service holds is verified against the local hash')
  t.equal(res.item.size, size)
  t.ok(emu.stats.bytesIn >= size && emu.stats.bytesIn < size + 65_536, `the service received every byte once (${emu.stats.bytesIn} bytes in for ${size})`)
  const puts = Object.entries(emu.stats.routes).filter(([k]) => k.startsWith('PUT /_upload')).reduce((a, [, n]) => a + n, 0)
  t.equal(puts, 6, 'six fragment PUTs: no fragment uploaded again')
  const sessions = Object.entries(emu.stats.routes).filter(([k]) => k.includes('createUploadSession')).reduce((a, [, n]) => a + n, 0)
  t.equal(sessions, 1, 'no second upload session')
})
