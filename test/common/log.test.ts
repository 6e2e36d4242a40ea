import t from 'tap'
import { Writable } from 'node:stream'
import { createLogger, scrubSecrets } from '../../src/common/log.js'

function sink() {
  const lines: any[] = []
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l))
      cb()
    },
  })
  return { lines, stream }
}

t.test('logger redacts credential fields wherever they sit', async (t) => {
  const { lines, stream } = sink()
  const log = createLogger({ level: 'debug', destination: stream as any })
  log.info({ secret: 's3cr3t', refresh_token: 'rt-abc', req: { headers: { authorization: 'Bearer xyz' } }, ok: 1 }, 'hello')
  t.equal(lines.length, 1)
  const text = JSON.stringify(lines[0])
  t.notMatch(text, /s3cr3t|rt-abc|xyz/)
  t.equal(lines[0].secret, '<redacted>')
  t.equal(lines[0].ok, 1)
})

t.test('scrubSecrets removes tokens from free text', async (t) => {
  const jwt = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjMifQ.sig'
  const out = scrubSecrets(`Authorization: Bearer abc.def and ${jwt} url?access_token=zzz&x=1 {"refresh_token":"rrr"}`)
  t.notMatch(out, /abc\.def|eyJzdWIi|zzz|rrr/)
  t.match(out, /x=1/)
})
