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
import { readFileSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/**
 * string-width (through yargs and cliui: it measures help text) builds an
 * Intl.Segmenter and a \p{RGI_Emoji} regular expression when it is loaded, ~35 ms
 * of every command's start although only --help and usage errors measure text.
 * This makes both lazy: built on first use, as they are used (`.segment()`,
 * `.test()`). Every replacement must apply: a changed package fails the build
 * here instead of quietly keeping the cost (or breaking help).
 */
const LAZY_STRING_WIDTH = [
  ['const segmenter = new Intl.Segmenter();',
    'let segmenter$; const segmenter = { segment: (s) => (segmenter$ ??= new Intl.Segmenter()).segment(s) };'],
  ['const rgiEmojiRegex = /^\\p{RGI_Emoji}$/v;',
    "let rgiEmojiRegex$; const rgiEmojiRegex = { test: (s) => (rgiEmojiRegex$ ??= new RegExp('^\\\\p{RGI_Emoji}$', 'v')).test(s) };"],
]
const lazyStringWidth = {
  name: 'lazy-string-width',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/](yargs[\\/]node_modules[\\/])?string-width[\\/]index\.js$/ }, (args) => {
      let text = readFileSync(args.path, 'utf8')
      const version = JSON.parse(readFileSync(join(dirname(args.path), 'package.json'), 'utf8')).version
      for (const [from, to] of LAZY_STRING_WIDTH) {
        if (from.startsWith('const rgiEmojiRegex') && !text.includes('rgiEmojiRegex')) continue // 7.x has no such expression
        if (text.split(from).length !== 2) throw new Error(`scripts/bundle.mjs: string-width ${version} (${args.path}) no longer has \`${from}\`: update LAZY_STRING_WIDTH`)
        text = text.replace(from, () => to)
      }
      return { contents: text, loader: 'js' }
    })
  },
}
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
  plugins: [lazyStringWidth],
})
