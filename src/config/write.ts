/**
 * Writing the policy document (`odfs gateway create|update`) and the helpers
 * for private files: written to a temporary name with mode 0600, then renamed,
 * so a reader never sees a half-written or briefly world-readable file.
 */
import { chmod, mkdir, open, rename, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { GatewayPolicyDocument } from './gateway.js'

export async function writePrivateFile(file: string, text: string, opts: { dirMode?: number; uid?: number; gid?: number } = {}): Promise<void> {
  const dir = dirname(file)
  await mkdir(dir, { recursive: true, mode: opts.dirMode ?? 0o700 })
  const tmp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await open(tmp, 'wx', 0o600)
  try {
    await fh.writeFile(text)
    await fh.sync()
    if (opts.uid !== undefined && opts.gid !== undefined) await fh.chown(opts.uid, opts.gid)
  } catch (e) {
    await fh.close()
    await rm(tmp, { force: true })
    throw e
  }
  await fh.close()
  await chmod(tmp, 0o600)
  await rename(tmp, file)
}

export async function writePolicyDocument(file: string, doc: GatewayPolicyDocument): Promise<void> {
  // /etc/odfs may be world-listable; the file itself is always 0600.
  await writePrivateFile(file, JSON.stringify(doc, null, 2) + '\n', { dirMode: 0o755 })
}

/** The document with its secret replaced, for printing. */
export function redactPolicyDocument(doc: GatewayPolicyDocument): GatewayPolicyDocument {
  return doc.secret === undefined ? { ...doc } : { ...doc, secret: '<redacted>' }
}
