// @microsoft/microsoft-graph-client 3.0.7 lists, uploads (simple and by upload
// session) and downloads through the emulator.
import t from 'tap'
import { Client, OneDriveLargeFileUploadTask, ResponseType } from '@microsoft/microsoft-graph-client'
import { startTestEmulator, tokenFor, type TestEmulator } from '../support/emulator.js'
import { quickXorHash } from '../../src/emulator/index.js'

let emu: TestEmulator
let client: Client

t.before(async () => {
  emu = await startTestEmulator({ seed: 'demo', rateLimit: 0 })
  const token = await tokenFor(emu, 'user1')
  client = Client.initWithMiddleware({
    authProvider: { getAccessToken: async () => token },
    baseUrl: emu.info.authority,
    customHosts: new Set(['127.0.0.1']),
    fetchOptions: { dispatcher: emu.dispatcher } as RequestInit,
  })
})
t.teardown(() => emu.close())

t.test('lists children', async (t) => {
  const r = await client.api('/me/drive/root/children').select('name,size').get()
  t.ok(r.value.some((i: any) => i.name === 'Documents'))
  t.ok(r.value.some((i: any) => i.name === 'README.txt'))
})

t.test('simple upload and download', async (t) => {
  const data = Buffer.from('uploaded through the Graph SDK\n')
  const item = await client.api('/me/drive/root:/sdk/simple.txt:/content').header('Content-Type', 'application/octet-stream').put(data)
  t.equal(item.size, data.length)
  const got = await client.api(`/me/drive/items/${item.id}/content`).responseType(ResponseType.ARRAYBUFFER).get()
  t.same(Buffer.from(got), data)
  const part = await client.api(`/me/drive/items/${item.id}/content`).header('Range', 'bytes=0-7').responseType(ResponseType.ARRAYBUFFER).get()
  t.equal(Buffer.from(part).toString(), 'uploaded')
})

t.test('upload session via OneDriveLargeFileUploadTask (conflictBehavior replace)', async (t) => {
  const data = Buffer.alloc(2 * 1024 * 1024 + 12345)
  for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff
  for (let round = 0; round < 2; round++) {
    const task = await OneDriveLargeFileUploadTask.create(client, data, { fileName: 'big-sdk.bin', rangeSize: 640 * 1024, conflictBehavior: 'replace' })
    const res: any = await task.upload()
    const item = res.responseBody ?? res
    t.equal(item.name, 'big-sdk.bin', `round ${round}: no rename on re-upload`)
    t.equal(item.size, data.length)
    t.equal(item.file.hashes.quickXorHash, quickXorHash(data))
  }
  const listed = await client.api('/me/drive/root/children').get()
  t.equal(listed.value.filter((i: any) => i.name.startsWith('big-sdk')).length, 1)
  const s = emu.stats.routes
  t.ok((s['PUT /_upload/{id}'] ?? 0) >= 8, 'fragments went to the upload URL')
})
