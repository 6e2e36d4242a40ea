/**
 * Writing the policy document (`odfs gateway create|update`): through the
 * private-file writer (src/common/private-file.ts), so a reader never sees a
 * half-written or briefly world-readable file and a symlink planted in the
 * directory is never followed.
 */
import { basename, dirname } from 'node:path'
import { ensurePrivateDir, writePrivateFile } from '../common/index.js'
import type { GatewayPolicyDocument } from './gateway.js'

export async function writePolicyDocument(file: string, doc: GatewayPolicyDocument): Promise<void> {
  // /etc/odfs may be world-listable; the file itself is always 0600.
  await ensurePrivateDir(dirname(file), { mode: 0o755 })
  await writePrivateFile(dirname(file), basename(file), JSON.stringify(doc, null, 2) + '\n')
}

/** The document with its secret replaced, for printing. */
export function redactPolicyDocument(doc: GatewayPolicyDocument): GatewayPolicyDocument {
  return doc.secret === undefined ? { ...doc } : { ...doc, secret: '<redacted>' }
}
