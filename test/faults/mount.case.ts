/**
 * Fault cases through the FUSE mount against the emulator: odfs runs as a user runs
 * it (test/fuse/support.ts: `odfs mount` as a child process, signed in through the
 * device-code flow), the workload is ordinary programs on the mount point, and
 * verify compares sha256 of every file with what the emulator stores, after
 * `odfs sync` and an unmount.
 *
 * Copy workloads move 200 small files (1–20 KB) with `cp -r`; the exerciser case
 * runs the seeded random-ops exerciser on the mount (its op count capped: every op
 * is a FUSE round trip and a Graph call on this machine, see MOUNT_OPS).
 */
import { createCipheriv, createHash } from 'node:crypto'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { askControl, controlSocketPath } from '../../src/cli/control.js'
import type { Faults } from '../../src/emulator/index.js'
import { graphCaller, tokenFor } from '../support/emulator.js'
import { prng } from '../support/prng.js'
import { sh, world, type Mounted, type World } from '../fuse/support.js'
import { runExerciser, type FileSummary } from './exerciser.js'
import { defineCase, emulatorFaultInjector, emulatorGraphReader, verifyRemoteFolder, type CaseContext, type FaultCase, type VerifyResult, type WorkloadResult } from './harness.js'

/** Emulator settings each case injects while the workload runs. */
export const FAULTS: Record<string, Partial<Faults>> = {
  '429 storm': { rateLimit: 10, rateWindowSec: 1 },
  '503s': { failRate: 0.2 },
  '500/502/504': { serverErrorRate: 0.2 },
  'connection resets': { resetRate: 0.2 },
}

/** Exerciser operations through the mount (the CI default of 20,000 would take hours here). */
export const MOUNT_OPS = 5000

const FILES = 200

interface State {
  w: World
  m: Mounted
  src: string
  folder: string
  teardowns: Array<() => unknown>
  extra: Record<string, unknown>
}

async function setupMount(ctx: CaseContext, folder: string, mountArgs: string[] = ['--write-back', '1']): Promise<State> {
  const teardowns: Array<() => unknown> = []
  const w = await world({ teardown: (f) => teardowns.push(f) })
  const src = join(w.dir, 'src')
  const rand = prng(ctx.seed)
  const expected: FileSummary[] = []
  await sh(`mkdir -p '${src}'`)
  for (let i = 1; i <= FILES; i++) {
    const buf = Buffer.alloc(1000 + Math.floor(rand() * 19_000))
    for (let j = 0; j < buf.length; j++) buf[j] = Math.floor(rand() * 256)
    await writeFile(join(src, `f${i}.bin`), buf)
    expected.push({ name: `f${i}.bin`, size: buf.length, sha256: createHash('sha256').update(buf).digest('hex') })
  }
  const m = await w.mount(mountArgs)
  return { w, m, src, folder, teardowns, extra: { expected } }
}

async function teardown(_ctx: CaseContext, s: State): Promise<void> {
  for (const f of s.teardowns.reverse()) await f()
}

const dst = (s: State) => join(s.m.mnt, 'My files', s.folder)

/** Large files for the upload-session case: several 10 MiB fragments each. */
const BIG = { count: 4, mib: 24 }

/** BIG.count seeded pseudo-random files (AES-CTR of zeros) in w.dir/big; their summaries. */
async function bigFiles(ctx: CaseContext, s: State): Promise<FileSummary[]> {
  await sh(`mkdir -p '${s.w.dir}/big'`)
  const out: FileSummary[] = []
  for (let i = 1; i <= BIG.count; i++) {
    const key = createHash('sha256').update(`${ctx.seed}:big:${i}`).digest().subarray(0, 16)
    const buf = createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(BIG.mib << 20))
    const name = `big${i}.bin`
    await writeFile(join(s.w.dir, 'big', name), buf)
    out.push({ name, size: buf.length, sha256: createHash('sha256').update(buf).digest('hex') })
  }
  return out
}

/** cp of source files f{from}..f{to}, one by one, into the case's folder of the mount (exit 7 at the first failure). */
const copyRange = (s: State, from: number, to: number) =>
  sh(`mkdir -p '${dst(s)}' && for i in $(seq ${from} ${to}); do cp '${s.src}'/f$i.bin '${dst(s)}'/ || exit 7; done`)

/** The last line of a daemon's log (its fatal error, when it died). */
const lastLine = (text: string) => text.trim().split('\n').pop() ?? ''

async function syncAndStop(s: State): Promise<string[]> {
  const problems: string[] = []
  const died = s.m.proc.exitCode !== null || s.m.proc.signalCode !== null
  const sync = await s.w.odfs(['sync', s.m.mnt])
  if (sync.code !== 0) problems.push(`odfs sync: ${lastLine(sync.stderr)}`)
  const r = await s.m.stop()
  if (died) problems.push(`the daemon died during the workload (exit ${r.code}): ${lastLine(r.stderr)}`)
  else if (r.code !== 0) problems.push(`unmount: exit ${r.code}: ${lastLine(r.stderr)}`)
  return problems
}

async function copyWorkload(ctx: CaseContext, s: State): Promise<WorkloadResult> {
  const cp = await sh(`cp -r '${s.src}' '${dst(s)}'`)
  const problems = cp.code === 0 ? [] : [`cp -r: ${cp.stderr.trim().split('\n')[0]}`]
  problems.push(...(await syncAndStop(s)))
  ctx.log(`copied ${FILES} files through the mount`)
  return { operations: FILES, expected: s.extra.expected as FileSummary[], problems }
}

async function verifyRemote(_ctx: CaseContext, s: State, work: WorkloadResult, folder = s.folder): Promise<VerifyResult> {
  return verifyRemoteFolder(emulatorGraphReader(s.w.emu, await tokenFor(s.w.emu, 'user1')), '/' + folder, work.expected)
}

const faultCopy = (name: string, key: string, description: string): FaultCase<State> => defineCase<State>({
  name,
  description,
  setup: (ctx) => setupMount(ctx, key.replace(/\W+/g, '-')),
  faults: (_ctx, s) => emulatorFaultInjector(s.w.emu, FAULTS[key]!),
  workload: copyWorkload,
  verify: (ctx, s, work) => verifyRemote(ctx, s, work),
  teardown,
})

/**
 * A copy into a write-back spool that fills up (a small disk, or --cache-max-size):
 * the writer gets ENOSPC and the daemon says why; every file closed before must
 * arrive. 200 files of 1–20 KB are about 2 MB: they are copied three times over.
 */
function spoolFull(c: Pick<FaultCase<State>, 'name' | 'description' | 'requires' | 'setup'>): FaultCase<State> {
  return defineCase<State>({
    ...c,
    async workload(ctx, s) {
      const problems: string[] = []
      const log = join(s.w.dir, 'closed.log')
      const copy = await sh(`mkdir -p '${dst(s)}' && for r in 1 2 3; do for f in '${s.src}'/*; do cp "$f" '${dst(s)}'/r$r-$(basename "$f") 2>>'${s.w.dir}/cp.err' || exit 7; echo r$r-$(basename "$f") >> '${log}'; done; done`)
      const err = await readFile(join(s.w.dir, 'cp.err'), 'utf8').catch(() => '')
      s.extra.enospc = copy.code === 7 && /No space left on device/.test(err)
      if (!s.extra.enospc) problems.push(`the copy did not end with ENOSPC (exit ${copy.code}: ${err.split('\n')[0]})`)
      const closed = (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean)
      ctx.log(`${closed.length} files closed before the spool was full`)
      // The failed file is removed by the user, as after any ENOSPC; everything else must arrive.
      const inMount = await readdir(dst(s))
      for (const n of inMount) if (!closed.includes(n)) await rm(join(dst(s), n), { force: true })
      problems.push(...(await syncAndStop(s)))
      if (s.extra.enospc && !/write refused: /.test(s.m.output().stderr)) problems.push('the daemon did not log why the write was refused')
      const bySrc = new Map((s.extra.expected as FileSummary[]).map((f) => [f.name, f]))
      const expected = closed.map((n) => ({ ...bySrc.get(n.replace(/^r\d-/, ''))!, name: n }))
      return { operations: closed.length + 1, expected, problems }
    },
    faults: async (_ctx, s) => ({ stop: async () => (s.extra.enospc ? 1 : 0) }),
    verify: (ctx, s, work) => verifyRemote(ctx, s, work),
    teardown,
  })
}

export default [
  faultCopy('mount: 429 storm', '429 storm', `cp -r of ${FILES} files through the mount while the emulator allows 10 resource units/s per user (429 activityLimitReached with Retry-After)`),
  faultCopy('mount: 503s', '503s', `cp -r of ${FILES} files through the mount while 20% of Graph requests answer 503 with Retry-After`),
  faultCopy('mount: 500/502/504', '500/502/504', `cp -r of ${FILES} files through the mount while 20% of Graph requests answer 500, 502 or 504 (no Retry-After)`),
  faultCopy('mount: connection resets', 'connection resets', `cp -r of ${FILES} files through the mount while 20% of downloads and upload fragments are cut mid-body`),
  defineCase<State>({
    name: 'mount: emulator down 30 s',
    description: `cp of ${FILES} files through the mount; after half of them the service is unreachable for 30 s (port closed, connections cut, state kept): the copy goes on into the spool, files read before read the same, ls answers; everything arrives once the service is back`,
    setup: (ctx) => setupMount(ctx, 'down'),
    async workload(ctx, s) {
      const problems: string[] = []
      const half = FILES / 2
      const cp = (from: number, to: number) => copyRange(s, from, to)
      const first = await cp(1, half)
      if (first.code !== 0) problems.push(`cp before the outage: ${first.stderr.trim().split('\n')[0]}`)
      const sums = (names: string[]) => sh(`cd '${dst(s)}' && sha256sum ${names.join(' ')}`)
      const early = Array.from({ length: 5 }, (_, i) => `f${i + 1}.bin`)
      const before = await sums(early)
      const downAt = Date.now()
      await s.w.emu.goDown()
      s.extra.outages = 1
      ctx.log('the service is down')
      const second = await cp(half + 1, FILES)
      if (second.code !== 0) problems.push(`cp during the outage: ${second.stderr.trim().split('\n')[0]}`)
      const during = await sums(early)
      if (during.code !== 0 || during.stdout !== before.stdout) problems.push(`reading files written before the outage: ${during.code !== 0 ? during.stderr.trim().split('\n')[0] : 'other bytes'}`)
      const ls = await sh(`ls -l '${dst(s)}' | wc -l`)
      if (ls.code !== 0 || Number(ls.stdout.trim()) !== FILES + 1) problems.push(`ls during the outage: ${ls.code !== 0 ? ls.stderr.trim() : `${Number(ls.stdout.trim()) - 1} files listed`}`)
      const left = 30_000 - (Date.now() - downAt)
      if (left > 0) await new Promise((r) => setTimeout(r, left))
      else problems.push(`the copy took ${Math.round((Date.now() - downAt) / 1000)} s of the 30 s outage: the mount waited for the service`)
      await s.w.emu.comeBack()
      ctx.log(`the service is back after ${Math.round((Date.now() - downAt) / 1000)} s`)
      problems.push(...(await syncAndStop(s)))
      return { operations: FILES + 10, expected: s.extra.expected as FileSummary[], problems }
    },
    faults: async (_ctx, s) => ({ stop: async () => (s.extra.outages as number | undefined) ?? 0 }),
    verify: (ctx, s, work) => verifyRemote(ctx, s, work),
    teardown,
  }),
  defineCase<State>({
    name: 'mount: SIGKILL ×10 + remount',
    description: `cp -r of ${FILES} files; the daemon is SIGKILLed at 10 seeded random moments and remounted each time, the copy is rerun until it completes; every file must then be whole on OneDrive`,
    setup: (ctx) => setupMount(ctx, 'sigkill'),
    async workload(ctx, s) {
      const rand = prng(ctx.seed ^ 0x5eed)
      let kills = 0
      const problems: string[] = []
      for (let round = 0; round < 10; round++) {
        const copy = sh(`mkdir -p '${dst(s)}' && cp -r '${s.src}'/. '${dst(s)}'/`)
        await new Promise((r) => setTimeout(r, 200 + Math.floor(rand() * 3000)))
        s.m.proc.kill('SIGKILL')
        await s.m.done
        kills++
        await copy
        await sh(`fusermount -uz '${s.m.mnt}' 2>/dev/null; true`)
        s.m = await s.w.mount(['--write-back', '1'], s.m.mnt)
        // Whatever is on OneDrive under a final name now must be one of the written files, whole.
        const got = await verifyRemote(ctx, s, { operations: 0, expected: [] })
        const bad = got.problems.filter((p) => !p.startsWith('unexpected item'))
        problems.push(...bad)
      }
      const last = await sh(`cp -r '${s.src}'/. '${dst(s)}'/`)
      if (last.code !== 0) problems.push(`final cp: ${last.stderr.trim().split('\n')[0]}`)
      problems.push(...(await syncAndStop(s)))
      ctx.log(`${kills} SIGKILLs and remounts`)
      ;(s.extra as { kills: number }).kills = kills
      return { operations: FILES * 11, expected: s.extra.expected as FileSummary[], problems }
    },
    faults: async (_ctx, s) => ({ stop: async () => (s.extra as { kills?: number }).kills ?? 0 }),
    verify: (ctx, s, work) => verifyRemote(ctx, s, work),
    teardown,
  }),
  spoolFull({
    name: 'mount: full spool tmpfs',
    description: 'the write-back spool is a 4 MiB tmpfs (--cache-dir) and the write-back delay long: a copy beyond it gets ENOSPC; every file closed before stays and reaches OneDrive',
    requires: () => (process.getuid?.() === 0 ? undefined : 'mounting a tmpfs needs root'),
    async setup(ctx) {
      const cache = await mkdtemp(join(tmpdir(), 'odfs-faults-spool-'))
      const mounted = await sh(`mount -t tmpfs -o size=4m,mode=0700 odfs-spool '${cache}'`)
      if (mounted.code !== 0) throw new Error(`mount tmpfs: ${mounted.stderr}`)
      const s = await setupMount(ctx, 'spool', ['--write-back', '600', '--cache-dir', cache])
      s.teardowns.unshift(async () => {
        await sh(`umount '${cache}'`)
        await rm(cache, { recursive: true, force: true })
      })
      return s
    },
  }),
  spoolFull({
    name: 'mount: --cache-max-size',
    description: 'the write-back spool may hold 2 MiB (--cache-max-size 2M) and the write-back delay is long: a copy beyond it gets ENOSPC; every file closed before stays and reaches OneDrive',
    setup: (ctx) => setupMount(ctx, 'spool-limit', ['--write-back', '600', '--cache-max-size', '2M']),
  }),
  defineCase<State>({
    name: 'mount: conflict',
    description: 'files edited through the mount while another client replaces them on OneDrive before the write-back delay ends: both versions must stay (the remote one under the name, the local one as the conflict copy)',
    setup: (ctx) => setupMount(ctx, 'conflict', ['--write-back', '600']),
    async workload(ctx, s) {
      const problems: string[] = []
      const expected = (s.extra.expected as FileSummary[]).slice(0, 20)
      const cp = await sh(`mkdir -p '${dst(s)}' && for i in $(seq 1 20); do cp '${s.src}'/f$i.bin '${dst(s)}'/; done`)
      if (cp.code !== 0) problems.push(`cp: ${cp.stderr}`)
      problems.push(...(await s.w.odfs(['sync', s.m.mnt]).then((r) => (r.code === 0 ? [] : [`odfs sync: ${r.stderr}`]))))
      const graph = graphCaller(s.w.emu, await tokenFor(s.w.emu, 'user1'))
      const local: FileSummary[] = []
      const remote: FileSummary[] = []
      for (const f of expected.slice(0, 10)) {
        const l = Buffer.from(`local edit of ${f.name}\n`)
        await writeFile(join(dst(s), f.name), l, { flag: 'a' })
        const orig = await readFile(join(s.src, f.name))
        const lb = Buffer.concat([orig, l])
        local.push({ name: f.name, size: lb.length, sha256: createHash('sha256').update(lb).digest('hex') })
        const rb = Buffer.from(`remote edit of ${f.name}\n`)
        const put = await graph('PUT', `/me/drive/root:/conflict/${f.name}:/content`, rb)
        if (put.status !== 200) problems.push(`the other client's PUT answered ${put.status}`)
        remote.push({ name: f.name, size: rb.length, sha256: createHash('sha256').update(rb).digest('hex') })
      }
      const sync = await s.w.odfs(['sync', s.m.mnt])
      const said = (sync.stderr.match(/conflict: .* this mount's version is /g) ?? []).length
      if (said !== 10) problems.push(`odfs sync reported ${said} conflicts, not 10`)
      problems.push(...(await syncAndStop(s)))
      ctx.log(`${said} conflicts reported`)
      s.extra.local = local
      return { operations: 30, expected: [...remote, ...expected.slice(10)], problems }
    },
    faults: async () => ({ stop: async () => 10 }),
    async verify(ctx, s, work) {
      const v = await verifyRemote(ctx, s, work)
      // The conflict copies are the "unexpected" items: each must hold the local bytes.
      const graph = emulatorGraphReader(s.w.emu, await tokenFor(s.w.emu, 'user1'))
      const kids = (await graph.json('/me/drive/root:/conflict:/children?$top=1000')) as { value: { id: string; name: string; parentReference: { driveId: string } }[] }
      const problems = v.problems.filter((p) => !/^unexpected item ".* \(conflict .*\)\.bin"/.test(p))
      let lost = v.bytesLost
      for (const f of s.extra.local as FileSummary[]) {
        const base = f.name.replace(/\.bin$/, '')
        const item = kids.value.find((k) => k.name.startsWith(`${base} (conflict `))
        if (!item) {
          problems.push(`no conflict copy of ${f.name}`)
          lost += f.size
          continue
        }
        const bytes = await graph.bytes(`/drives/${encodeURIComponent(item.parentReference.driveId)}/items/${encodeURIComponent(item.id)}/content`)
        if (createHash('sha256').update(bytes).digest('hex') !== f.sha256) {
          problems.push(`${item.name} does not hold the local version`)
          lost += f.size
        }
      }
      return { filesChecked: v.filesChecked + 10, bytesLost: lost, problems }
    },
    teardown,
  }),
  defineCase<State>({
    name: 'mount: hostile answers',
    description: 'the emulator reports names with /, NUL, .. and 300 characters, a wrong size, a wrong hash, a listing that is not JSON and a download cut short, while 20 files are copied through the mount: no unsafe name is listed, the damaged answers give EIO to the reader, the daemon lives, the copied files arrive',
    setup: (ctx) => setupMount(ctx, 'hostile-writes'),
    async workload(ctx, s) {
      const problems: string[] = []
      const emu = s.w.emu
      const names = ['slash.txt', 'zero.txt', 'dotdot.txt', 'long.txt', 'size.bin', 'hash.bin', 'trunc.bin', 'ok.txt']
      for (const n of names) await emu.store.writeFile('user1', `hostile/${n}`, `content of ${n}\n`.repeat(100))
      await emu.store.writeFile('user1', 'hostile/json/inner.txt', 'inner')
      const knobs: Partial<Faults> = {
        hostileNameSlash: 'hostile/slash.txt', hostileNameNul: 'hostile/zero.txt', hostileNameDotDot: 'hostile/dotdot.txt', hostileNameLong: 'hostile/long.txt',
        hostileSize: 'hostile/size.bin', hostileHash: 'hostile/hash.bin', hostileJson: 'hostile/json', hostileTruncate: 'hostile/trunc.bin',
      }
      emu.setFaults(knobs)
      s.extra.knobs = Object.keys(knobs).length
      try {
        const dir = join(s.m.mnt, 'My files', 'hostile')
        const ls = await readdir(dir).catch((e: NodeJS.ErrnoException) => e)
        if (!Array.isArray(ls)) problems.push(`ls hostile: ${ls.code}`)
        else {
          const unsafe = ls.filter((n) => n.includes('/') || n.includes('\0') || n === '.' || n === '..' || Buffer.byteLength(n) > 255)
          if (unsafe.length) problems.push(`unsafe names listed: ${JSON.stringify(unsafe)}`)
          if (!ls.includes('ok.txt')) problems.push('ok.txt is not listed')
        }
        const eio = async (what: string, cmd: string) => {
          const r = await sh(cmd)
          if (r.code === 0) problems.push(`${what}: no error (EIO expected)`)
          else if (!/Input\/output error/.test(r.stderr)) problems.push(`${what}: ${r.stderr.trim().split('\n')[0]} (EIO expected)`)
        }
        await eio('cat of a file reported one byte larger', `cat '${dir}/size.bin' > /dev/null`)
        await eio('cat of a file with a wrong hash', `cat '${dir}/hash.bin' > /dev/null`)
        await eio('cat of a download cut short', `cat '${dir}/trunc.bin' > /dev/null`)
        await eio('ls of a folder whose listing is not JSON', `ls '${dir}/json'`)
        const ok = await sh(`cat '${dir}/ok.txt'`)
        if (ok.code !== 0 || ok.stdout !== 'content of ok.txt\n'.repeat(100)) problems.push(`cat ok.txt: ${ok.stderr.trim() || 'other bytes'}`)
        const cp = await sh(`mkdir -p '${dst(s)}' && for i in $(seq 1 20); do cp '${s.src}'/f$i.bin '${dst(s)}'/ || exit 7; done`)
        if (cp.code !== 0) problems.push(`cp: ${cp.stderr.trim().split('\n')[0]}`)
      } finally {
        emu.setFaults(Object.fromEntries(Object.keys(knobs).map((k) => [k, ''])))
      }
      const log = s.m.output().stderr
      if (!/I\/O error/.test(log)) problems.push('the daemon logged no I/O error')
      problems.push(...(await syncAndStop(s)))
      ctx.log(`${problems.length} problem(s)`)
      return { operations: 30, expected: (s.extra.expected as FileSummary[]).slice(0, 20), problems }
    },
    faults: async (_ctx, s) => ({ stop: async () => (s.extra.knobs as number | undefined) ?? 0 }),
    verify: (ctx, s, work) => verifyRemote(ctx, s, work),
    teardown,
  }),
  defineCase<State>({
    name: 'mount: upload sessions expire',
    description: `${BIG.count} files of ${BIG.mib} MiB copied through the mount while uploads run at 4 MiB/s and upload sessions expire 2 s after their last fragment; the daemon is SIGKILLed mid-upload and remounted after the sessions expired: every file must arrive through new sessions`,
    setup: async (ctx) => {
      const s = await setupMount(ctx, 'expire')
      s.extra.big = await bigFiles(ctx, s)
      return s
    },
    async workload(ctx, s) {
      const problems: string[] = []
      const emu = s.w.emu
      emu.setFaults({ bandwidth: 4 << 20, uploadSessionTtlSec: 2 })
      const cp = await sh(`mkdir -p '${dst(s)}' && cp '${s.w.dir}'/big/* '${dst(s)}'/`)
      if (cp.code !== 0) problems.push(`cp: ${cp.stderr.trim().split('\n')[0]}`)
      // Wait until uploads are under way (sessions holding bytes), then kill the daemon.
      const open = () => [...emu.env.sessions.values()].filter((x) => x.received > 0).length
      for (let i = 0; i < 200 && open() < BIG.count; i++) await new Promise((r) => setTimeout(r, 100))
      const left = open()
      if (left === 0) problems.push('no upload session held bytes when the daemon was killed: nothing could expire')
      s.m.proc.kill('SIGKILL')
      await s.m.done
      await sh(`fusermount -uz '${s.m.mnt}' 2>/dev/null; true`)
      emu.setFaults({ bandwidth: 0 })
      await new Promise((r) => setTimeout(r, 3_000)) // past the sessions' 2 s
      const still = [...emu.env.sessions.values()].filter((x) => x.expiresAt >= emu.store.now()).length
      if (still > 0) problems.push(`${still} upload session(s) had not expired before the remount`)
      s.extra.expired = left
      ctx.log(`${left} upload session(s) with bytes left to expire`)
      s.m = await s.w.mount(['--write-back', '1'], s.m.mnt)
      problems.push(...(await syncAndStop(s)))
      emu.setFaults({ uploadSessionTtlSec: 900 })
      return { operations: BIG.count + 1, expected: s.extra.big as FileSummary[], problems }
    },
    faults: async (_ctx, s) => ({ stop: async () => (s.extra.expired as number | undefined) ?? 0 }),
    verify: (ctx, s, work) => verifyRemote(ctx, s, work),
    teardown,
  }),
  defineCase<State>({
    name: 'mount: access tokens expire',
    description: `cp -r of ${FILES} files through the mount while the emulator expires the user's access tokens every 300 ms (each request with an expired one answers 401): the daemon must get new ones from its refresh token and retry, invisibly`,
    setup: (ctx) => setupMount(ctx, 'token-expiry'),
    async faults(_ctx, s) {
      let expired = 0
      const timer = setInterval(() => (expired += s.w.emu.identity.expireAccessTokens('user1')), 300)
      return { stop: async () => (clearInterval(timer), expired) }
    },
    workload: copyWorkload,
    verify: (ctx, s, work) => verifyRemote(ctx, s, work),
    teardown,
  }),
  defineCase<State>({
    name: 'mount: refresh token revoked',
    description: `cp of ${FILES} files through the mount; after half of them the user's sign-in is revoked: the rest go into the spool, the mount keeps answering, odfs sync fails naming \`odfs login\`; after odfs login everything arrives, without a remount`,
    setup: (ctx) => setupMount(ctx, 'revoked'),
    async workload(ctx, s) {
      const problems: string[] = []
      const half = FILES / 2
      const cp = (from: number, to: number) => copyRange(s, from, to)
      const first = await cp(1, half)
      if (first.code !== 0) problems.push(`cp before the revocation: ${first.stderr.trim().split('\n')[0]}`)
      s.w.emu.identity.revoke('user1')
      ctx.log('the sign-in is revoked')
      const second = await cp(half + 1, FILES)
      if (second.code !== 0) problems.push(`cp after the revocation: ${second.stderr.trim().split('\n')[0]}`)
      const ls = await sh(`ls '${dst(s)}' | wc -l`)
      if (ls.code !== 0 || Number(ls.stdout.trim()) !== FILES) problems.push(`ls after the revocation: ${ls.code !== 0 ? ls.stderr.trim() : `${ls.stdout.trim()} files listed`}`)
      const sync = await s.w.odfs(['sync', s.m.mnt])
      if (sync.code === 0) problems.push('odfs sync succeeded with a revoked sign-in')
      else if (!/odfs login/.test(sync.stderr)) problems.push(`odfs sync did not name the fix: ${lastLine(sync.stderr)}`)
      s.w.emu.identity.setAutoConsent('user1') // the user approves the device code
      const login = await s.w.odfs(['login', '--token-store', 'file'])
      s.w.emu.identity.setAutoConsent(undefined)
      if (login.code !== 0) problems.push(`odfs login: ${lastLine(login.stderr)}`)
      ctx.log('signed in again')
      problems.push(...(await syncAndStop(s)))
      return { operations: FILES + 3, expected: s.extra.expected as FileSummary[], problems }
    },
    faults: async () => ({ stop: async () => 1 }),
    verify: (ctx, s, work) => verifyRemote(ctx, s, work),
    teardown,
  }),
  defineCase<State>({
    name: 'mount: exerciser',
    description: `the seeded random-ops data-integrity exerciser on a folder of the mount (${MOUNT_OPS} ops at most), then the emulator's content of every file it left`,
    setup: (ctx) => setupMount(ctx, 'unused'),
    async workload(ctx, s) {
      // Caches dropped before every reopen: the kernel's page cache (as root) and the daemon's own.
      const r = await runExerciser({
        dir: join(s.m.mnt, 'My files'), seed: ctx.seed, ops: Math.min(ctx.ops, MOUNT_OPS), keep: true, log: ctx.log,
        dropKernelCaches: process.getuid?.() === 0,
        dropCaches: async () => {
          await askControl(controlSocketPath(s.m.mnt, s.w.env), { op: 'drop-caches' })
        },
      })
      s.folder = basename(r.workDir)
      s.extra.refDir = r.refDir
      const problems = r.divergence ? [r.divergence] : []
      problems.push(...(await syncAndStop(s)))
      return { operations: r.ops, expected: r.expected, problems, bytesLost: r.bytesLost }
    },
    verify: (ctx, s, work) => verifyRemote(ctx, s, work),
    async teardown(ctx, s) {
      if (s.extra.refDir) await rm(s.extra.refDir as string, { recursive: true, force: true })
      await teardown(ctx, s)
    },
  }),
]
