/**
 * The emulator's TLS material: a private CA and a server certificate for
 * IP:127.0.0.1 and DNS:localhost, made with the openssl CLI at first start and
 * kept in the state directory so that a client configured with `ca.pem` keeps
 * trusting the emulator across restarts.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'
import { OdfsError } from '../common/index.js'

export interface TlsMaterial {
  caFile: string
  ca: string
  key: string
  cert: string
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
  } catch (cause) {
    throw new OdfsError('EMULATOR_TLS', `openssl ${args[0]} failed: ${(cause as Error).message}`, { cause })
  }
}

function stillValid(certPem: string): boolean {
  try {
    const c = new X509Certificate(certPem)
    return Date.parse(c.validTo) > Date.now() + 24 * 3600_000
  } catch {
    return false
  }
}

/** Returns the CA and server certificate in `stateDir`, creating them when missing or expiring. */
export function ensureTls(stateDir: string): TlsMaterial {
  mkdirSync(stateDir, { recursive: true })
  const caFile = join(stateDir, 'ca.pem')
  const caKey = join(stateDir, 'ca.key')
  const keyFile = join(stateDir, 'server.key')
  const certFile = join(stateDir, 'server.pem')
  const have = [caFile, caKey, keyFile, certFile].every((f) => existsSync(f))
  if (!have || !stillValid(readFileSync(certFile, 'utf8')) || !stillValid(readFileSync(caFile, 'utf8'))) {
    const days = '825'
    if (!have || !stillValid(readFileSync(caFile, 'utf8'))) {
      openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '3650', '-subj', '/CN=odfs emulator CA',
        '-keyout', 'ca.key', '-out', 'ca.pem',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], stateDir)
    }
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr'], stateDir)
    writeFileSync(join(stateDir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n')
    openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', days,
      '-extfile', 'server.ext', '-out', 'server.pem'], stateDir)
    for (const f of ['server.csr', 'server.ext', 'ca.srl']) rmSync(join(stateDir, f), { force: true })
  }
  return { caFile, ca: readFileSync(caFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') }
}
