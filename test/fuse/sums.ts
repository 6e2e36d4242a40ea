// Helpers of the mount fault tests: a source tree of small files with their sums,
// and the sums of what the emulator stores in a folder.
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { tokenFor } from '../support/emulator.js'
import { emulatorGraphReader } from '../faults/harness.js'
import { sh, type World } from './support.js'

/** name -> sha256 of every file the emulator holds in a folder of the drive. */
export async function remoteSums(w: World, folder: string): Promise<Map<string, string>> {
  const graph = emulatorGraphReader(w.emu, await tokenFor(w.emu, 'user1'))
  const out = new Map<string, string>()
  let next: string | undefined = `/me/drive/root:/${folder.split('/').map(encodeURIComponent).join('/')}:/children`
  while (next) {
    const page = (await graph.json(next)) as { value: { id: string; name: string; parentReference: { driveId: string } }[]; '@odata.nextLink'?: string }
    for (const c of page.value) {
      const bytes = await graph.bytes(`/drives/${encodeURIComponent(c.parentReference.driveId)}/items/${encodeURIComponent(c.id)}/content`)
      out.set(c.name, createHash('sha256').update(bytes).digest('hex'))
    }
    next = page['@odata.nextLink']
  }
  return out
}

/** 200 small files with distinct content in a local directory; name -> sha256. */
export async function makeSource(w: World, n = 200): Promise<{ src: string; sums: Map<string, string> }> {
  const src = join(w.dir, 'src')
  const r = await sh(`mkdir -p '${src}' && for i in $(seq 1 ${n}); do head -c $((1000 + i * 97)) /dev/urandom > '${src}'/f$i.bin; done; cd '${src}' && sha256sum *`)
  if (r.code !== 0) throw new Error(r.stderr)
  const sums = new Map<string, string>()
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const [sum, name] = line.split(/\s+/)
    sums.set(name!, sum!)
  }
  return { src, sums }
}
