// Bundles the compiled CLI (dist/cli/main.js, from tsc) and the packages it imports
// into dist/bundle/, which bin/odfs runs. Why: Node 20 resolves, reads and compiles
// every ES module and package file on its own at each start, and that was most of
// a command's start-up (yargs alone ~150 ms, msal-node ~210 ms; bundled ~90 and
// ~60 ms: docs/performance.md). Code splitting keeps each command's modules in a
// chunk of their own, loaded only when that command runs, as the dynamic imports
// in src/cli ask (undici, imported dynamically, is such a chunk too). Native addons
// (fuse-native, keytar) and cli-progress, which src loads with createRequire when
// stderr is a terminal, stay in node_modules.
import { build } from 'esbuild'
import { rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const outdir = join(root, 'dist', 'bundle')
rmSync(outdir, { recursive: true, force: true })
await build({
  entryPoints: [join(root, 'dist', 'cli', 'main.js')],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['fuse-native', 'keytar'],
  // Packages written as CommonJS call require(); an ES module has none, so each chunk gets one.
  banner: { js: "import { createRequire as __odfsCreateRequire } from 'node:module'; const require = __odfsCreateRequire(import.meta.url);" },
  // Identifiers keep their names, so stack traces and logs stay readable.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  logLevel: 'warning',
})
