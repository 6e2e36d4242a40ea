// The CLI tests run `node bin/odfs`, which loads dist/bundle/ (npm run build).
// `npm test` builds once before tap starts (scripts/setup.sh); a test file run on
// its own builds here when the bundle is missing or older than src/. A lock
// directory keeps test files that run in parallel from building over each other's feet.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export const ROOT = resolve(import.meta.dirname, '..', '..')
export const ODFS_BIN = join(ROOT, 'bin', 'odfs')

function newest(dir: string): number {
  let m = 0
  for (const n of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, n.name)
    m = Math.max(m, n.isDirectory() ? newest(p) : statSync(p).mtimeMs)
  }
  return m
}

/** The bundle bin/odfs runs is older than a source file (or missing). */
function stale(): boolean {
  try {
    return statSync(join(ROOT, 'dist', 'bundle', 'main.js')).mtimeMs < newest(join(ROOT, 'src'))
  } catch {
    return true
  }
}

export async function ensureBuilt(): Promise<void> {
  const lock = join(ROOT, '.tap', 'build.lock')
  mkdirSync(join(ROOT, '.tap'), { recursive: true })
  for (let i = 0; ; i++) {
    if (!stale()) return
    try {
      mkdirSync(lock)
    } catch {
      if (i > 600) throw new Error('timed out waiting for another test file to build dist/')
      await sleep(200)
      continue
    }
    try {
      if (stale()) execFileSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'ignore' })
    } catch {
      // tsc emits even with type errors (the bundle is made anyway); the check below decides
    } finally {
      rmSync(lock, { recursive: true, force: true })
    }
    if (stale()) throw new Error('dist/bundle/ is older than src/ after a build: run npm run build and read its errors')
    return
  }
}
