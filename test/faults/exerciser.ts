/**
 * Data-integrity exerciser (issue 9): random writes at random offsets, truncates,
 * sparse extends, reads, renames, replace-by-rename (write a temporary file, fsync,
 * rename it over the file, as editors and rsync do), closes, reopens and fsyncs over N files in a
 * target directory, each checked against a reference copy on local disk, op by op.
 * Everything random comes from one seed, printed first, so a failure replays exactly.
 *
 *   node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs test/faults/exerciser.ts \
 *     --dir DIR [--seed N] [--ops N] [--files N] [--max-size BYTES] [--no-drop-caches]
 *
 * Between a close and the reopen that follows it the kernel's caches are dropped
 * (`echo 3 > /proc/sys/vm/drop_caches`, when running as root) and the caller's
 * `dropCaches` callback runs (a mount drops its own caches there), so reads after a
 * reopen come from wherever the data really is.
 */
import { createHash } from 'node:crypto'
import { constants as fsc } from 'node:fs'
import { mkdtemp, open, readdir, rename, rm, stat, truncate, writeFile, type FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { nameKey, toRemoteName } from '../../src/vfs/names.js'
import { prng } from '../support/prng.js'

export interface ExerciserOptions {
  /** Directory to exercise (a private subdirectory is made in it). */
  dir: string
  seed?: number
  ops?: number
  files?: number
  /** Largest offset + length a write or truncate reaches. */
  maxSize?: number
  /** Drop the kernel's page cache between reopens (needs root); default: when root. */
  dropKernelCaches?: boolean
  /** The caller's own cache drop, run between a close and the reopen after it. */
  dropCaches?: () => Promise<void> | void
  /** Where progress and the report go (default: stderr). */
  log?: (line: string) => void
  /** Operations kept for the report of a divergence. */
  logTail?: number
  /** Keep the work directories (default: removed when the run passes). */
  keep?: boolean
}

export interface FileSummary { name: string; size: number; sha256: string }

export interface ExerciserResult {
  ok: boolean
  seed: number
  /** Operations completed (all of them when ok). */
  ops: number
  files: number
  filesChecked: number
  bytesWritten: number
  /** Bytes that differ between target and reference when the run stopped (0 when ok). */
  bytesLost: number
  kernelCacheDrops: number
  callerCacheDrops: number
  /** Operations run, by kind. */
  opCounts: Record<string, number>
  /** The first divergence, with the operation log tail. */
  divergence?: string
  /** Expected content of every file at the end (from the reference copy). */
  expected: FileSummary[]
  workDir: string
  refDir: string
}

/** Names a rename picks from (all valid POSIX names, several that OneDrive refuses as they are). */
const NAME_PARTS = ['data', 'a:b', 'what?', ' lead', 'trail ', 'end.', 'CON', 'x_vti_y', '~$tmp', 'q"uote', 'p|pe',
  'star*', '<>', 'back\\slash', 'tab\t', '日本', 'é', 'Ωmega', '‛', '：', '．', '#', '&#1;', '%20']

class Divergence extends Error {}

interface Slot {
  name: string
  target?: FileHandle
  ref?: FileHandle
  /** Closed since the last drop: the next open comes after a cache drop. */
  dropBeforeOpen: boolean
}

/** Seeded random bytes. */
function randomBytes(n: number, rand: () => number): Buffer {
  const buf = Buffer.allocUnsafe(n)
  let i = 0
  for (; i + 4 <= n; i += 4) buf.writeUInt32LE((rand() * 4294967296) >>> 0, i)
  for (; i < n; i++) buf[i] = (rand() * 256) & 0xff
  return buf
}

function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return a.length === b.length ? -1 : n
}

function differingBytes(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length)
  let d = Math.abs(a.length - b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) d++
  return d
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

async function readAll(path: string): Promise<Buffer | NodeJS.ErrnoException> {
  try {
    const fh = await open(path, 'r')
    try {
      return await fh.readFile()
    } finally {
      await fh.close()
    }
  } catch (e) {
    return e as NodeJS.ErrnoException
  }
}

export async function runExerciser(opts: ExerciserOptions): Promise<ExerciserResult> {
  const seed = (opts.seed ?? Math.floor(Math.random() * 2 ** 31)) >>> 0
  const totalOps = opts.ops ?? 20000
  const nFiles = opts.files ?? 8
  const maxSize = opts.maxSize ?? 2 * 1024 * 1024
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`))
  const tailLength = opts.logTail ?? 30
  const dropKernel = opts.dropKernelCaches ?? process.getuid?.() === 0
  log(`exerciser seed=${seed} ops=${totalOps} files=${nFiles} max-size=${maxSize} dir=${resolve(opts.dir)}`)

  const rand = prng(seed)
  const int = (n: number) => Math.floor(rand() * n)
  // Write data: slices of a seeded pool at random starts, each stamped with its operation number.
  const MAX_WRITE = Math.min(maxSize, 512 * 1024)
  const pool = randomBytes(2 * MAX_WRITE + 8, rand)
  const workDir = await mkdtemp(join(opts.dir, 'odfs-exerciser-'))
  const refDir = await mkdtemp(join(tmpdir(), 'odfs-exerciser-ref-'))
  const opLog: string[] = []
  const result: ExerciserResult = {
    ok: false, seed, ops: 0, files: nFiles, filesChecked: 0, bytesWritten: 0, bytesLost: 0,
    kernelCacheDrops: 0, callerCacheDrops: 0, opCounts: {}, expected: [], workDir, refDir,
  }
  const slots: Slot[] = Array.from({ length: nFiles }, (_, i) => ({ name: `f${i}`, dropBeforeOpen: false }))
  const keyOf = (name: string) => nameKey(toRemoteName(name))
  const used = new Set(slots.map((s) => keyOf(s.name)))
  let renames = 0

  const note = (line: string) => {
    opLog.push(line)
    if (opLog.length > tailLength) opLog.shift()
  }
  const fail = (what: string): never => {
    throw new Divergence(what)
  }
  /** Run the same step on target and reference; both must succeed or fail with the same code. */
  const both = async <T>(what: string, t: () => Promise<T>, r: () => Promise<T>): Promise<[T, T] | undefined> => {
    let tv: T | undefined, rv: T | undefined, te: NodeJS.ErrnoException | undefined, re: NodeJS.ErrnoException | undefined
    try { rv = await r() } catch (e) { re = e as NodeJS.ErrnoException }
    try { tv = await t() } catch (e) { te = e as NodeJS.ErrnoException }
    if (te || re) {
      if (te?.code !== undefined && te.code === re?.code) return undefined
      fail(`${what}: target ${te ? `failed with ${te.code ?? te.message}` : 'succeeded'}, reference ${re ? `failed with ${re.code ?? re.message}` : 'succeeded'}`)
    }
    return [tv as T, rv as T]
  }

  const dropCaches = async () => {
    if (dropKernel) {
      try {
        await writeFile('/proc/sys/vm/drop_caches', '3\n')
        result.kernelCacheDrops++
      } catch {
        // not permitted here (container, not root): the caller's hook still runs
      }
    }
    if (opts.dropCaches) {
      await opts.dropCaches()
      result.callerCacheDrops++
    }
  }

  const ensureOpen = async (s: Slot) => {
    if (s.target && s.ref) return
    if (s.dropBeforeOpen) {
      note('  (drop caches)')
      await dropCaches()
      s.dropBeforeOpen = false
    }
    const pair = await both(`open ${JSON.stringify(s.name)}`, () => open(join(workDir, s.name), 'r+'), () => open(join(refDir, s.name), 'r+'))
    if (!pair) fail(`open ${JSON.stringify(s.name)} failed on both sides`)
    ;[s.target, s.ref] = pair!
  }

  const closeSlot = async (s: Slot) => {
    if (!s.target || !s.ref) return
    const t = s.target, r = s.ref
    s.target = s.ref = undefined
    s.dropBeforeOpen = true
    await both(`close ${JSON.stringify(s.name)}`, () => t.close(), () => r.close())
  }

  const checkSize = async (s: Slot, what: string) => {
    const pair = await both(`${what}: fstat`, () => s.target!.stat(), () => s.ref!.stat())
    if (pair && pair[0].size !== pair[1].size) fail(`${what}: size is ${pair[0].size}, expected ${pair[1].size}`)
  }

  const compareFile = async (name: string, what: string) => {
    const t = await readAll(join(workDir, name))
    const r = await readAll(join(refDir, name))
    if (!Buffer.isBuffer(r)) fail(`${what}: reference unreadable (${r.code})`)
    if (!Buffer.isBuffer(t)) fail(`${what}: ${JSON.stringify(name)} unreadable on the target (${t.code ?? t.message})`)
    const at = firstDifference(t as Buffer, r as Buffer)
    if (at >= 0) {
      fail(`${what}: ${JSON.stringify(name)} differs from byte ${at} (target ${(t as Buffer).length} bytes, expected ${(r as Buffer).length}; ${differingBytes(t as Buffer, r as Buffer)} bytes differ)`)
    }
    result.filesChecked++
  }

  const compareAll = async (what: string) => {
    const [tn, rn] = [(await readdir(workDir)).sort(), (await readdir(refDir)).sort()]
    if (JSON.stringify(tn) !== JSON.stringify(rn)) fail(`${what}: directory holds ${JSON.stringify(tn)}, expected ${JSON.stringify(rn)}`)
    for (const n of rn) await compareFile(n, what)
  }

  const lostBytes = async (): Promise<number> => {
    let lost = 0
    for (const n of await readdir(refDir).catch(() => [] as string[])) {
      const r = await readAll(join(refDir, n))
      const t = await readAll(join(workDir, n))
      if (!Buffer.isBuffer(r)) continue
      lost += Buffer.isBuffer(t) ? differingBytes(t, r) : r.length
    }
    return lost
  }

  try {
    for (const s of slots) {
      const pair = await both(`create ${s.name}`, () => open(join(workDir, s.name), fsc.O_CREAT | fsc.O_EXCL | fsc.O_RDWR, 0o600),
        () => open(join(refDir, s.name), fsc.O_CREAT | fsc.O_EXCL | fsc.O_RDWR, 0o600))
      ;[s.target, s.ref] = pair!
    }
    const weights: Array<[string, number]> = [
      ['write', 30], ['read', 20], ['truncate', 7], ['extend', 7], ['fsync', 5], ['close', 5], ['reopen', 3],
      ['rename', 4], ['replace', 2], ['truncate-path', 2], ['verify', 1],
    ]
    const totalWeight = weights.reduce((a, [, w]) => a + w, 0)
    const pick = () => {
      let x = int(totalWeight)
      for (const [op, w] of weights) if ((x -= w) < 0) return op
      return 'write'
    }
    const length = () => (rand() < 0.85 ? 1 + int(16 * 1024) : 1 + int(MAX_WRITE))

    for (let n = 0; n < totalOps; n++) {
      const op = pick()
      const s = slots[int(nFiles)]!
      const label = `#${n} ${op} ${JSON.stringify(s.name)}`
      result.opCounts[op] = (result.opCounts[op] ?? 0) + 1
      switch (op) {
        case 'write':
        case 'extend': {
          await ensureOpen(s)
          const size = (await s.ref!.stat()).size
          const len = length()
          // extend: past the end, leaving a hole; write: anywhere up to the end
          const offset = op === 'extend'
            ? Math.min(size + int(1024 * 1024), Math.max(0, maxSize - len))
            : int(Math.max(1, Math.min(size + 1, maxSize - len)))
          const start = int(MAX_WRITE)
          const buf = Buffer.from(pool.subarray(start, start + len))
          if (len >= 4) buf.writeUInt32LE(n, 0)
          note(`${label} offset=${offset} length=${len}`)
          const pair = await both(label, () => s.target!.write(buf, 0, len, offset), () => s.ref!.write(buf, 0, len, offset))
          if (pair && pair[0].bytesWritten !== pair[1].bytesWritten) fail(`${label}: wrote ${pair[0].bytesWritten} bytes, expected ${pair[1].bytesWritten}`)
          result.bytesWritten += len
          await checkSize(s, label)
          break
        }
        case 'read': {
          await ensureOpen(s)
          const size = (await s.ref!.stat()).size
          const offset = int(size + 4096)
          const len = length()
          note(`${label} offset=${offset} length=${len}`)
          const tb = Buffer.alloc(len), rb = Buffer.alloc(len)
          const pair = await both(label, () => s.target!.read(tb, 0, len, offset), () => s.ref!.read(rb, 0, len, offset))
          if (pair) {
            const [t, r] = pair
            if (t.bytesRead !== r.bytesRead) fail(`${label}: read ${t.bytesRead} bytes, expected ${r.bytesRead}`)
            const at = firstDifference(tb.subarray(0, t.bytesRead), rb.subarray(0, r.bytesRead))
            if (at >= 0) fail(`${label}: data differs at file offset ${offset + at}`)
          }
          break
        }
        case 'truncate': {
          await ensureOpen(s)
          const size = (await s.ref!.stat()).size
          const to = rand() < 0.5 ? int(size + 1) : Math.min(maxSize, size + int(1024 * 1024))
          note(`${label} to=${to}`)
          await both(label, () => s.target!.truncate(to), () => s.ref!.truncate(to))
          await checkSize(s, label)
          break
        }
        case 'truncate-path': {
          const size = (await stat(join(refDir, s.name))).size
          const to = int(size + 64 * 1024)
          note(`${label} to=${to}`)
          await both(label, () => truncate(join(workDir, s.name), to), () => truncate(join(refDir, s.name), to))
          break
        }
        case 'fsync': {
          await ensureOpen(s)
          note(label)
          // the reference is the truth whether or not it reaches the disk: only the target syncs
          await both(label, () => s.target!.sync(), async () => undefined)
          break
        }
        case 'close': {
          note(label)
          await closeSlot(s)
          break
        }
        case 'reopen': {
          note(label)
          await closeSlot(s)
          await ensureOpen(s)
          // the whole file, read through a fresh descriptor after the caches were dropped
          await compareFile(s.name, label)
          break
        }
        case 'rename': {
          let to = ''
          for (let tries = 0; tries < 100; tries++) {
            const parts = `${NAME_PARTS[int(NAME_PARTS.length)]}${NAME_PARTS[int(NAME_PARTS.length)]}`
            // the counter on either side, so names also start and end with the awkward parts
            const cand = rand() < 0.5 ? `${parts}-${renames}` : `${renames}-${parts}`
            if (!used.has(keyOf(cand))) {
              to = cand
              break
            }
          }
          renames++
          if (!to) break
          note(`${label} -> ${JSON.stringify(to)}`)
          await both(label, () => rename(join(workDir, s.name), join(workDir, to)), () => rename(join(refDir, s.name), join(refDir, to)))
          used.delete(keyOf(s.name))
          used.add(keyOf(to))
          s.name = to
          break
        }
        case 'replace': {
          // how editors and rsync save: write a new file, fsync it, rename it over the old one
          await closeSlot(s)
          const tmp = `.${s.name}.tmp-${n}`
          const len = rand() < 0.2 ? 0 : length()
          const start = int(MAX_WRITE)
          const buf = Buffer.from(pool.subarray(start, start + len))
          if (len >= 4) buf.writeUInt32LE(n, 0)
          note(`${label} via ${JSON.stringify(tmp)} length=${len}`)
          const create = async (dir: string, sync: boolean) => {
            const fh = await open(join(dir, tmp), fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600)
            try {
              if (len > 0) await fh.write(buf, 0, len, 0)
              if (sync) await fh.sync()
            } finally {
              await fh.close()
            }
          }
          await both(`${label}: write ${JSON.stringify(tmp)}`, () => create(workDir, true), () => create(refDir, false))
          await both(`${label}: rename over`, () => rename(join(workDir, tmp), join(workDir, s.name)), () => rename(join(refDir, tmp), join(refDir, s.name)))
          result.bytesWritten += len
          break
        }
        case 'verify': {
          note(label)
          await compareFile(s.name, label)
          break
        }
      }
      result.ops = n + 1
      if ((n + 1) % 5000 === 0) log(`exerciser ${n + 1}/${totalOps} operations`)
    }
    note('end: close all, drop caches, compare every file')
    for (const s of slots) await closeSlot(s)
    await dropCaches()
    await compareAll('final check')
    result.ok = true
  } catch (e) {
    if (!(e instanceof Divergence)) throw e
    result.bytesLost = await lostBytes()
    result.divergence = [
      `DIVERGENCE after ${result.ops} operations (seed ${seed}): ${e.message}`,
      `replay: node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs test/faults/exerciser.ts --dir ${opts.dir} --seed ${seed} --ops ${totalOps} --files ${nFiles} --max-size ${maxSize}`,
      'last operations:',
      ...opLog.map((l) => `  ${l}`),
    ].join('\n')
    log(result.divergence)
  } finally {
    for (const s of slots) {
      await s.target?.close().catch(() => undefined)
      await s.ref?.close().catch(() => undefined)
    }
  }
  for (const n of (await readdir(refDir)).sort()) {
    const b = await readAll(join(refDir, n))
    if (Buffer.isBuffer(b)) result.expected.push({ name: n, size: b.length, sha256: sha256(b) })
  }
  log(`exerciser ${result.ok ? 'passed' : 'FAILED'}: ${result.ops} operations, ${result.filesChecked} file checks, ${result.bytesWritten} bytes written, ${result.bytesLost} bytes lost, cache drops: ${result.kernelCacheDrops} kernel, ${result.callerCacheDrops} caller`)
  log(`exerciser operations by kind: ${Object.entries(result.opCounts).sort().map(([k, v]) => `${k} ${v}`).join(', ')}`)
  if (result.ok && !opts.keep) {
    await rm(workDir, { recursive: true, force: true })
    await rm(refDir, { recursive: true, force: true })
  }
  return result
}

function cli(argv: string[]): ExerciserOptions {
  const opts: ExerciserOptions = { dir: '' }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const v = () => {
      const x = argv[++i]
      if (x === undefined) throw new Error(`${a} needs a value`)
      return x
    }
    if (a === '--dir') opts.dir = v()
    else if (a === '--seed') opts.seed = Number(v())
    else if (a === '--ops') opts.ops = Number(v())
    else if (a === '--files') opts.files = Number(v())
    else if (a === '--max-size') opts.maxSize = Number(v())
    else if (a === '--no-drop-caches') opts.dropKernelCaches = false
    else if (a === '--keep') opts.keep = true
    else throw new Error(`unknown argument ${a}`)
  }
  if (!opts.dir) throw new Error('usage: exerciser.ts --dir DIR [--seed N] [--ops N] [--files N] [--max-size BYTES] [--no-drop-caches] [--keep]')
  return opts
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  runExerciser(cli(process.argv.slice(2))).then((r) => {
    process.exitCode = r.ok ? 0 : 1
  }, (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`)
    process.exitCode = 2
  })
}
