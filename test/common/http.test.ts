// createDispatcher's `caFile`: the extra CA is trusted alongside the system roots,
// and only by that dispatcher (no other TLS context of the process starts trusting
// it). Two private CAs, each signing a local HTTPS server: A is given as ca_file,
// B is the only root of a process started with --use-openssl-ca and SSL_CERT_FILE
// (Node then builds its root store from OpenSSL's default paths), so trusting B's
// server there proves the roots are still in the dispatcher's store.
import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect, createSecureContext } from 'node:tls'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureTls } from '../../src/emulator/tls.js'
import { createDispatcher } from '../../src/common/index.js'

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`https://127.0.0.1:${(server.address() as AddressInfo).port}`)))
}

async function server(t: Test, dir: string): Promise<{ url: string; caFile: string }> {
  const tls = ensureTls(dir)
  const s = createServer({ key: tls.key, cert: tls.cert }, (_req, res) => res.end('hello'))
  const url = await listen(s)
  t.teardown(() => s.close())
  return { url, caFile: tls.caFile }
}

t.test('ca_file is trusted with the system roots, by that dispatcher only', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'odfs-http-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const a = await server(t, join(dir, 'a'))
  const b = await server(t, join(dir, 'b'))

  const d = await createDispatcher({ caFile: a.caFile })
  t.teardown(() => d.close())
  const r = await d.request({ origin: a.url, path: '/', method: 'GET' })
  t.equal(await r.body.text(), 'hello', 'the ca_file CA is trusted')

  // Any other TLS context of the process still trusts only the system roots.
  const u = new URL(a.url)
  const code = await new Promise<string>((resolve) => {
    const s = connect({ host: u.hostname, port: Number(u.port), secureContext: createSecureContext() }, () => {
      s.destroy()
      resolve('connected')
    })
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message))
  })
  t.match(code, /UNABLE_TO_VERIFY|SELF_SIGNED/, 'a default context created afterwards does not trust it')
  await t.rejects(d.request({ origin: b.url, path: '/', method: 'GET' }), /certificate|verify/i, 'a CA that is neither a root nor ca_file is refused')

  // In a process whose root store is B, the dispatcher trusts B and A.
  const script = join(dir, 'probe.mjs')
  await writeFile(script, `
    import { createDispatcher } from ${JSON.stringify(new URL('../../src/common/http.ts', import.meta.url).pathname)}
    const d = await createDispatcher({ caFile: process.argv[2] })
    for (const origin of process.argv.slice(3)) {
      const r = await d.request({ origin, path: '/', method: 'GET' })
      process.stdout.write((await r.body.text()) + '\\n')
    }
    await d.close()
  `)
  // (asynchronously: the servers answer from this process)
  const { stdout } = await promisify(execFile)(process.execPath, ['--use-openssl-ca', ...process.execArgv, script, a.caFile, a.url, b.url], {
    env: { ...process.env, SSL_CERT_FILE: b.caFile },
    encoding: 'utf8',
  })
  t.equal(stdout, 'hello\nhello\n', 'the root store (here: B) is kept beside ca_file')
})
