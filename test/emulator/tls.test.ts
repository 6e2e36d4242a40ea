// The emulator's CA and server certificate: made once per state dir, reused on
// the next start, valid for IP:127.0.0.1 and DNS:localhost.
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureTls, startEmulator } from '../../src/emulator/index.js'

t.test('certificates are made once and reused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'odfs-tls-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const a = ensureTls(dir)
  const b = ensureTls(dir)
  t.equal(a.ca, b.ca, 'CA reused')
  t.equal(a.cert, b.cert, 'server certificate reused')
  const cert = new X509Certificate(a.cert)
  const ca = new X509Certificate(a.ca)
  t.ok(cert.verify(ca.publicKey), 'server certificate signed by the CA')
  t.match(cert.subjectAltName, /IP Address:127\.0\.0\.1/)
  t.match(cert.subjectAltName, /DNS:localhost/)
  t.ok(ca.ca, 'CA certificate is a CA')
})

t.test('a given state dir is kept across restarts, with the same CA', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'odfs-state-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const e1 = await startEmulator({ state: dir, seed: 'empty' })
  const ca1 = readFileSync(e1.info.ca, 'utf8')
  t.equal(e1.info.ca, join(dir, 'ca.pem'))
  await e1.close()
  t.ok(existsSync(dir), 'user-given state dir not deleted')
  const e2 = await startEmulator({ state: dir, seed: 'empty' })
  t.equal(readFileSync(e2.info.ca, 'utf8'), ca1)
  await e2.close()
})
