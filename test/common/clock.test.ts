import t from 'tap'
import { getEventListeners } from 'node:events'
import { ManualClock } from '../../src/common/clock.js'

t.test('ManualClock wakes sleepers only when time passes their deadline', async (t) => {
  const clock = new ManualClock(1000)
  let woke = 0
  const p1 = clock.sleep(100).then(() => woke++)
  const p2 = clock.sleep(300).then(() => woke++)
  await clock.advance(50)
  t.equal(woke, 0)
  await clock.advance(60)
  await p1
  t.equal(woke, 1)
  t.equal(clock.pendingSleepers, 1)
  await clock.advance(200)
  await p2
  t.equal(woke, 2)
  t.equal(clock.now(), 1310)
})

t.test('ManualClock sleep rejects on abort', async (t) => {
  const clock = new ManualClock()
  const ac = new AbortController()
  const p = clock.sleep(1000, ac.signal)
  ac.abort(new Error('stop'))
  await t.rejects(p, /stop/)
  t.equal(clock.pendingSleepers, 0)
})

t.test('ManualClock leaves no abort listener behind once a sleep ends', async (t) => {
  const clock = new ManualClock()
  const ac = new AbortController()
  for (let i = 0; i < 20; i++) {
    const p = clock.sleep(10, ac.signal)
    await clock.advance(10)
    await p
  }
  t.equal(getEventListeners(ac.signal, 'abort').length, 0)
})
