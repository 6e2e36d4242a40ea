/**
 * Test support for the identity platform: a real HTTPS server on 127.0.0.1
 * (certificates made with openssl in a temp dir) that mounts
 * IdentityPlatform.handle(), plus small fetch helpers that trust its CA.
 */
import https from 'node:https'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { createDispatcher, type Dispatcher, type Clock } from '../../src/common/index.js'
import { IdentityPlatform, type IdentityOptions } from '../../src/emulator/identity/index.js'

export interface IdpServer {
  base: string
  host: string
  caFile: string
  idp: IdentityPlatform
  dispatcher: Dispatcher
  /** fetch against the server (relative paths allowed), redirects not followed. */
  fetch(path: string, init?: RequestInit): Promise<Response>
  /** POST a form. */
  form(path: string, fields: Record<string, string>, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>
  /** POST JSON to a test hook. */
  hook(name: string, body: unknown): Promise<{ status: number; body: any }>
  close(): Promise<void>
}

let certDir: string | undefined
let certs: { ca: string; key: string; cert: string; caFile: string } | undefined

function makeCerts(): NonNullable<typeof certs> {
  if (certs) return certs
  certDir = mkdtempSync(join(tmpdir(), 'odfs-idp-tls-'))
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: certDir, stdio: ['ignore', 'ignore', 'pipe'] })
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-subj', '/CN=odfs test CA', '-keyout', 'ca.key', '-out', 'ca.pem',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr'])
  writeFileSync(join(certDir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '30', '-extfile', 'server.ext', '-out', 'server.pem'])
  const caFile = join(certDir, 'ca.pem')
  certs = { caFile, ca: readFileSync(caFile, 'utf8'), key: readFileSync(join(certDir, 'server.key'), 'utf8'), cert: readFileSync(join(certDir, 'server.pem'), 'utf8') }
  return certs
}

/** Removes the shared certificate dir; call from the test file's teardown. */
export function cleanupCerts(): void {
  if (certDir) rmSync(certDir, { recursive: true, force: true })
  certDir = undefined
  certs = undefined
}

export async function startIdp(opts: Partial<Omit<IdentityOptions, 'baseUrl'>> & { clock?: Clock } = {}): Promise<IdpServer> {
  const c = makeCerts()
  let base = ''
  const idp = new IdentityPlatform({ deviceCodeIntervalSec: 0, ...opts, baseUrl: () => base })
  const server = https.createServer({ key: c.key, cert: c.cert }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (d: Buffer) => chunks.push(d))
    req.on('end', () => {
      const url = new URL(req.url ?? '/', base)
      idp.handle(req, res, url, Buffer.concat(chunks)).then((handled) => {
        if (!handled) {
          res.writeHead(404, { 'content-type': 'application/json' })
          res.end(JSON.stringify({ error: { code: 'itemNotFound', message: 'not an identity route' } }))
        }
      }, (err) => {
        res.writeHead(500)
        res.end(String(err))
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const host = `127.0.0.1:${port}`
  base = `https://${host}`
  const dispatcher = await createDispatcher({ caFile: c.caFile })
  const doFetch = (path: string, init: RequestInit = {}) =>
    fetch(path.startsWith('http') ? path : base + path, { redirect: 'manual', ...init, dispatcher } as RequestInit)
  const parse = async (r: Response) => {
    const text = await r.text()
    try {
      return JSON.parse(text)
    } catch {
      return text
    }
  }
  return {
    base, host, caFile: c.caFile, idp, dispatcher,
    fetch: doFetch,
    async form(path, fields, headers = {}) {
      const r = await doFetch(path, {
        method: 'POST', body: new URLSearchParams(fields).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      })
      return { status: r.status, body: await parse(r), headers: r.headers }
    },
    async hook(name, body) {
      const r = await doFetch(`/_emulator/identity/${name}`, {
        method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' },
      })
      return { status: r.status, body: await parse(r) }
    },
    async close() {
      idp.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await dispatcher.close()
    },
  }
}

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(48).toString('base64url')
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') }
}

export function decodeJwt(token: string): { header: any; payload: any } {
  const [h, p] = token.split('.')
  return { header: JSON.parse(Buffer.from(h!, 'base64url').toString()), payload: JSON.parse(Buffer.from(p!, 'base64url').toString()) }
}
