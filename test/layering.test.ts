// The import graph of src/ follows the layer rule of the architecture:
//   common <- config <- auth, graph <- vfs <- fuse <- cli
// and the emulator is an independent twin that imports only common. A layer
// reaches another only through that layer's index.ts (its public surface).
import t from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative, resolve, dirname, sep } from 'node:path'

const SRC = resolve(import.meta.dirname, '..', 'src')

const ALLOWED: Record<string, string[]> = {
  common: [],
  config: ['common'],
  auth: ['common', 'config'],
  graph: ['common', 'config'],
  vfs: ['common', 'config', 'graph'],
  fuse: ['common', 'config', 'vfs'],
  emulator: ['common'],
  cli: ['common', 'config', 'auth', 'graph', 'vfs', 'fuse', 'emulator'],
  bench: ['common', 'config', 'auth', 'graph', 'vfs', 'fuse', 'emulator'],
  types: [],
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n)
    return statSync(p).isDirectory() ? walk(p) : /\.ts$/.test(n) ? [p] : []
  })
}

const IMPORT_RE = /(?:^|\n)\s*(?:import|export)\b[^'"`;]*?from\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g

function layerOf(file: string): string {
  return relative(SRC, file).split(sep)[0]!
}

t.test('every import respects the layer rule', async (t) => {
  const files = walk(SRC)
  t.ok(files.length > 5, 'found the sources')
  const violations: string[] = []
  for (const file of files) {
    const from = layerOf(file)
    const text = readFileSync(file, 'utf8')
    for (const m of text.matchAll(IMPORT_RE)) {
      const spec = m[1] ?? m[2]!
      if (!spec.startsWith('.')) continue
      const target = resolve(dirname(file), spec)
      const rel = relative(SRC, target)
      if (rel.startsWith('..')) { violations.push(`${relative(SRC, file)} imports outside src: ${spec}`); continue }
      const to = rel.split(sep)[0]!
      if (to === from) continue
      if (!(ALLOWED[from] ?? []).includes(to)) {
        violations.push(`${relative(SRC, file)} (${from}) must not import ${to}: ${spec}`)
        continue
      }
      // across layers, only through the layer's index
      const depth = rel.split(sep).length
      if (!(depth === 2 && /index\.js$/.test(rel)) && !(depth === 1)) {
        violations.push(`${relative(SRC, file)} reaches into ${rel} instead of ${to}/index.js`)
      }
    }
  }
  t.same(violations, [], 'no forbidden import edges')
})

t.test('the emulator shares no code with the client layers', async (t) => {
  const files = walk(join(SRC, 'emulator'))
  const outside: string[] = []
  for (const file of files) {
    for (const m of readFileSync(file, 'utf8').matchAll(IMPORT_RE)) {
      const spec = m[1] ?? m[2]!
      if (!spec.startsWith('.')) continue
      const to = relative(SRC, resolve(dirname(file), spec)).split(sep)[0]
      if (to !== 'emulator' && to !== 'common') outside.push(`${relative(SRC, file)}: ${spec}`)
    }
  }
  t.ok(files.length > 0, 'the emulator has sources')
  t.same(outside, [], 'emulator imports only itself and common')
})
