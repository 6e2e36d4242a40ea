// goDown/comeBack: the emulator's port stops answering (refused, open connections
// cut) and comes back on the same port with everything it held: items, tokens.
import t from 'tap'
import { graphCaller, startTestEmulator, tokenFor } from '../support/emulator.js'

t.test('an outage keeps the state; the same port and token work afterwards', async (t) => {
  const emu = await startTestEmulator({ seed: 'empty' })
  t.teardown(() => emu.close())
  const token = await tokenFor(emu, 'user1')
  const graph = graphCaller(emu, token)
  t.equal((await graph('PUT', '/me/drive/root:/kept.txt:/content', Buffer.from('kept'))).status, 201)
  await emu.goDown()
  const err = await graph('GET', '/me/drive/root:/kept.txt').then(() => undefined, (e: Error) => e)
  t.ok(err, 'unreachable while down')
  t.match(String((err?.cause as { code?: string } | undefined)?.code ?? err), /ECONNREFUSED|ECONNRESET|UND_ERR/, 'refused')
  await emu.comeBack()
  const r = await graph('GET', '/me/drive/root:/kept.txt')
  t.equal(r.status, 200, 'back, with the same token')
  t.equal(r.body.size, 4, 'and the same item')
})
