// The calls a new file or folder makes survive a 500/502/504 without Retry-After:
// the folder POST and the upload session POST are resent (neither can create a
// second item), and a folder POST resent after its first attempt went through
// recognises its own folder (409 on the resend).
import t from 'tap'
import type { Dispatcher } from 'undici'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { createGraphDriveClient, type DriveClient } from '../../src/graph/index.js'
import { cutProxy, type CutProxy } from './fault-support.js'

let emu: TestEmulator
let proxy: CutProxy
t.before(async () => {
  emu = await startTestEmulator({ seed: 'empty', rateLimit: 0 })
  proxy = await cutProxy(emu.port)
})
t.teardown(async () => {
  await proxy?.close()
  await emu?.close()
})

/**
 * A dispatcher on which the next request matching `method` and `path` is answered
 * 500/502/504 by the emulator itself (its serverErrorRate is 1 for that request
 * only; the test's requests run one at a time).
 */
function failNext(inner: Dispatcher): { dispatcher: Dispatcher; arm(method: string, path: RegExp): void; failed: number } {
  let armed: { method: string; path: RegExp } | undefined
  const state = { failed: 0 }
  const dispatcher = inner.compose((dispatch) => (opts, handler) => {
    const hit = armed && opts.method === armed.method && armed.path.test(String(opts.path).split('?')[0]!)
    if (!hit) return dispatch(opts, handler)
    armed = undefined
    emu.setFaults({ serverErrorRate: 1 })
    const off = () => emu.setFaults({ serverErrorRate: 0 })
    return dispatch(opts, {
      ...handler,
      onConnect: handler.onConnect?.bind(handler),
      onHeaders: (status, headers, resume, text) => {
        off()
        if (status >= 500) state.failed++
        return handler.onHeaders!(status, headers, resume, text)
      },
      onData: handler.onData?.bind(handler),
      onComplete: handler.onComplete?.bind(handler),
      onError: (e) => {
        off()
        handler.onError?.(e)
      },
      onUpgrade: handler.onUpgrade?.bind(handler),
      onBodySent: handler.onBodySent?.bind(handler),
    })
  })
  return {
    dispatcher,
    arm(method, path) {
      armed = { method, path }
    },
    get failed() {
      return state.failed
    },
  }
}

async function client(baseUrl: string, dispatcher: Dispatcher): Promise<DriveClient> {
  const token = await tokenFor(emu, 'user1')
  return createGraphDriveClient({ baseUrl, tokenProvider: { getAccessToken: async () => token }, dispatcher, retry: { baseDelayMs: 1, maxDelayMs: 5 } })
}

t.test('a folder POST answered 500 is resent: mkdir succeeds, one folder', async (t) => {
  const f = failNext(emu.dispatcher)
  const c = await client(emu.info.graph, f.dispatcher)
  const drive = await c.getMyDrive()
  f.arm('POST', /\/children$/)
  const item = await c.createFolder({ driveId: drive.id, itemId: 'root' }, 'after-500')
  t.equal(f.failed, 1, 'the first POST was answered with a 5xx')
  t.equal(item.name, 'after-500')
  t.ok(item.folder, 'a folder')
  const kids = await c.listChildren({ driveId: drive.id, itemId: 'root' })
  t.equal(kids.filter((k) => k.name === 'after-500').length, 1, 'exactly one folder of that name')
})

t.test('an upload whose session POST is answered 500 is resent and completes', async (t) => {
  const f = failNext(emu.dispatcher)
  const c = await client(emu.info.graph, f.dispatcher)
  const drive = await c.getMyDrive()
  const data = Buffer.alloc(100_000, 7)
  f.arm('POST', /\/createUploadSession$/)
  const r = await c.upload({ driveId: drive.id, itemId: 'root' }, 'session-500.bin', { size: data.length, read: async (o, n) => data.subarray(o, o + n) })
  t.equal(f.failed, 1, 'the first session POST was answered with a 5xx')
  t.equal(r.item.size, data.length)
  t.ok(r.verified, 'the bytes arrived (quickXorHash verified)')
})

t.test('a folder POST whose answer is lost: the resend meets its own folder (409) and succeeds', async (t) => {
  const c = await client(proxy.graph, emu.dispatcher)
  const drive = await c.getMyDrive()
  await c.createFolder({ driveId: drive.id, itemId: 'root' }, 'warm-up')
  const before = emu.stats.status['409'] ?? 0
  const cuts = proxy.cuts
  proxy.arm(64) // the POST is carried out, its answer cut after a few bytes
  const item = await c.createFolder({ driveId: drive.id, itemId: 'root' }, 'lost-answer')
  t.equal(proxy.cuts, cuts + 1, 'the answer was lost once')
  t.equal(item.name, 'lost-answer')
  t.ok(item.folder)
  t.equal((emu.stats.status['409'] ?? 0) - before, 1, 'the resent POST met its own folder (409)')
})

t.test('a folder POST with conflictBehavior=rename is not resent after a 500', async (t) => {
  const f = failNext(emu.dispatcher)
  const c = await client(emu.info.graph, f.dispatcher)
  const drive = await c.getMyDrive()
  f.arm('POST', /\/children$/)
  const e = await c.createFolder({ driveId: drive.id, itemId: 'root' }, 'renamed', 'rename').then(() => undefined, (x: { status?: number }) => x)
  t.ok(e && e.status! >= 500, 'the 5xx is reported')
  t.equal(f.failed, 1, 'and the POST was sent once')
})
