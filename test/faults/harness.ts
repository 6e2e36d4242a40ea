/**
 * Fault-suite harness: a case is set up, runs a workload while faults are injected,
 * and is verified against what was written; `test/faults/run.ts` runs every
 * `test/faults/*.case.ts` and reports a table (and docs/reliability.md).
 *
 * A case that cannot run here (no mount yet, not root) says why in `requires` and
 * is reported "not run (why)"; it is never counted as passed.
 */
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FileSummary } from './exerciser.js'
import type { TestEmulator } from '../support/emulator.js'
import type { Faults } from '../../src/emulator/index.js'
import { toRemoteName } from '../../src/vfs/names.js'

export interface CaseContext {
  /** Seed for everything random in the case (printed in the report). */
  seed: number
  /** Operations the workload should run (CI: at least 20,000). */
  ops: number
  log(line: string): void
}

export interface WorkloadResult {
  operations: number
  /** Files written and their expected content, for verify. */
  expected: FileSummary[]
  /** A divergence the workload itself saw (the exerciser checks op by op). */
  problems?: string[]
  bytesLost?: number
}

export interface VerifyResult {
  filesChecked: number
  /** Bytes of written data not found intact (differing bytes where known, else whole files). */
  bytesLost: number
  problems: string[]
}

/** Started before the workload, stopped after it; `stop` answers how many faults were injected. */
export interface FaultInjector {
  stop(): Promise<number>
}

export interface FaultCase<S = unknown> {
  name: string
  /** One line: what the case does and which faults it injects. */
  description: string
  /** Why the case cannot run in this environment, or undefined when it can. */
  requires?(): Promise<string | undefined> | string | undefined
  setup(ctx: CaseContext): Promise<S>
  workload(ctx: CaseContext, state: S): Promise<WorkloadResult>
  faults?(ctx: CaseContext, state: S): Promise<FaultInjector>
  verify(ctx: CaseContext, state: S, workload: WorkloadResult): Promise<VerifyResult>
  teardown?(ctx: CaseContext, state: S): Promise<void>
}

export function defineCase<S>(c: FaultCase<S>): FaultCase<S> {
  return c
}

export type CaseStatus = 'passed' | 'failed' | 'not run'

export interface CaseReport {
  name: string
  description: string
  status: CaseStatus
  /** Why it failed or was not run. */
  why?: string
  operations: number
  faultsInjected: number
  filesChecked: number
  bytesLost: number
  problems: string[]
}

/** Run one case: requires, setup, faults, workload, stop faults, verify, teardown. */
export async function runCase<S>(c: FaultCase<S>, ctx: CaseContext): Promise<CaseReport> {
  const report: CaseReport = {
    name: c.name, description: c.description, status: 'not run', operations: 0, faultsInjected: 0, filesChecked: 0, bytesLost: 0, problems: [],
  }
  const missing = await c.requires?.()
  if (missing) {
    report.why = missing
    return report
  }
  let state: S | undefined
  let injector: FaultInjector | undefined
  try {
    state = await c.setup(ctx)
    injector = await c.faults?.(ctx, state)
    let work: WorkloadResult
    try {
      work = await c.workload(ctx, state)
    } finally {
      if (injector) report.faultsInjected = await injector.stop()
      injector = undefined
    }
    report.operations = work.operations
    const v = await c.verify(ctx, state, work)
    report.filesChecked = v.filesChecked
    report.bytesLost = Math.max(v.bytesLost, work.bytesLost ?? 0)
    report.problems = [...(work.problems ?? []), ...v.problems]
    report.status = report.problems.length === 0 && report.bytesLost === 0 ? 'passed' : 'failed'
    if (report.status === 'failed') report.why = report.problems[0] ?? `${report.bytesLost} bytes lost`
  } catch (e) {
    report.status = 'failed'
    report.why = `error: ${e instanceof Error ? e.message : String(e)}`
    report.problems.push(report.why)
  } finally {
    if (injector) await injector.stop().catch(() => 0)
    if (state !== undefined && c.teardown) {
      await c.teardown(ctx, state).catch((e: unknown) => {
        report.problems.push(`teardown: ${e instanceof Error ? e.message : String(e)}`)
      })
    }
  }
  return report
}

const statusText = (r: CaseReport) => (r.status === 'passed' ? 'passed' : `${r.status} (${r.why ?? 'no reason given'})`)

/** A table cell: the first line only (the whole text is in the case notes), pipes escaped. */
const cell = (text: string) => {
  const [first, ...rest] = text.split('\n')
  return (rest.length ? `${first} …)` : first!).replace(/\|/g, '\\|')
}

/** The results table (Markdown, also readable on a terminal). */
export function renderTable(reports: CaseReport[]): string {
  const rows = [
    '| case | result | operations | faults injected | files checked | bytes lost |',
    '|---|---|---:|---:|---:|---:|',
    ...reports.map((r) => {
      const ran = r.status !== 'not run'
      const n = (x: number) => (ran ? String(x) : '–')
      return `| ${r.name} | ${cell(statusText(r))} | ${n(r.operations)} | ${n(r.faultsInjected)} | ${n(r.filesChecked)} | ${n(r.bytesLost)} |`
    }),
  ]
  return rows.join('\n')
}

export function renderReliabilityDoc(reports: CaseReport[], meta: { command: string; seed: number; ops: number; date: string; node: string }): string {
  const counts = (s: CaseStatus) => reports.filter((r) => r.status === s).length
  return [
    '# Reliability: fault suite results',
    '',
    'Written by `npm run test:faults` (scripts/test-faults.sh → test/faults/run.ts); do not edit by hand.',
    'Each case sets up a target, runs a workload (the data-integrity exerciser, test/faults/exerciser.ts)',
    'while faults are injected, then checks every file written against its expected content (sha256 and',
    'size; for the exerciser also byte by byte, operation by operation). "bytes lost" counts bytes that',
    'differ where both copies are at hand, and whole files where only a hash is. A case that cannot run in',
    'the environment of the run is listed as "not run" with the reason; it is never counted as passed.',
    '',
    `Run: ${meta.date} on Node ${meta.node}, seed ${meta.seed}, ${meta.ops} operations per workload.`,
    `Passed ${counts('passed')}, failed ${counts('failed')}, not run ${counts('not run')}.`,
    '',
    'Reproduce:',
    '',
    '```sh',
    meta.command,
    '```',
    '',
    renderTable(reports),
    '',
    '## Cases',
    '',
    ...reports.map((r) => `- **${r.name}**: ${r.description}${r.problems.length ? `\n  Problems: ${r.problems.slice(0, 5).map((p) => p.split('\n')[0]).join('; ')}` : ''}`),
    '',
  ].join('\n')
}

/** What verify needs from the emulator: Graph calls that return parsed JSON or raw bytes. */
export interface GraphReader {
  /** GET a Graph path (relative to the Graph base), JSON answer; throws on a non-2xx status. */
  json(path: string): Promise<any>
  /** GET a Graph path whose answer is content (following the 302 to the download URL). */
  bytes(path: string): Promise<Buffer>
}

/**
 * Compare files written through the mount with what the service (emulator) stores:
 * every expected file (by local name) must be in the remote folder (by its remote
 * name) with the same size and sha256 of the downloaded content.
 */
export async function verifyRemoteFolder(graph: GraphReader, drivePath: string, expected: FileSummary[]): Promise<VerifyResult> {
  const folder = drivePath.replace(/^\/+|\/+$/g, '')
  const enc = (p: string) => p.split('/').map(encodeURIComponent).join('/')
  const children: Array<{ id: string; name: string; size: number; parentReference?: { driveId?: string } }> = []
  let next: string | undefined = folder ? `/me/drive/root:/${enc(folder)}:/children` : '/me/drive/root/children'
  while (next) {
    const page: { value: typeof children; '@odata.nextLink'?: string } = await graph.json(next)
    children.push(...page.value)
    next = page['@odata.nextLink']
  }
  const byName = new Map(children.map((c) => [c.name, c]))
  const result: VerifyResult = { filesChecked: 0, bytesLost: 0, problems: [] }
  for (const f of expected) {
    const remoteName = toRemoteName(f.name)
    const item = byName.get(remoteName)
    result.filesChecked++
    if (!item) {
      result.bytesLost += f.size
      result.problems.push(`${JSON.stringify(f.name)} (stored as ${JSON.stringify(remoteName)}) is missing`)
      continue
    }
    byName.delete(remoteName)
    const content = await graph.bytes(`/drives/${encodeURIComponent(item.parentReference?.driveId ?? '')}/items/${encodeURIComponent(item.id)}/content`)
    const sha = createHash('sha256').update(content).digest('hex')
    if (content.length !== f.size || sha !== f.sha256 || item.size !== f.size) {
      result.bytesLost += f.size
      result.problems.push(`${JSON.stringify(f.name)}: stored ${content.length} bytes (item size ${item.size}) sha256 ${sha.slice(0, 12)}…, expected ${f.size} bytes sha256 ${f.sha256.slice(0, 12)}…`)
    }
  }
  for (const name of byName.keys()) result.problems.push(`unexpected item ${JSON.stringify(name)} in ${JSON.stringify(drivePath)}`)
  return result
}

/** A GraphReader over the test emulator with an access token (test/support/emulator.ts). */
export function emulatorGraphReader(emu: TestEmulator, token: string): GraphReader {
  const get = async (path: string, auth: boolean) => {
    const url = path.startsWith('https://') ? path : `${emu.info.graph}${path}`
    return emu.fetch(url, { headers: auth ? { authorization: `Bearer ${token}` } : {} })
  }
  const failed = async (r: Response, path: string) => new Error(`GET ${path.split('?')[0]} answered ${r.status}: ${(await r.text()).slice(0, 200)}`)
  return {
    async json(path) {
      const r = await get(path, true)
      if (!r.ok) throw await failed(r, path)
      return r.json()
    },
    async bytes(path) {
      const r = await get(path, true)
      if (r.status === 302) {
        await r.arrayBuffer()
        // the download URL is pre-authenticated: no Authorization header
        const d = await get(r.headers.get('location') ?? '', false)
        if (!d.ok) throw await failed(d, '{downloadUrl}')
        return Buffer.from(await d.arrayBuffer())
      }
      if (!r.ok) throw await failed(r, path)
      return Buffer.from(await r.arrayBuffer())
    },
  }
}

/** The same check on a local directory: every expected file present with its size and sha256, nothing else. */
export async function verifyLocalFolder(dir: string, expected: FileSummary[]): Promise<VerifyResult> {
  const result: VerifyResult = { filesChecked: 0, bytesLost: 0, problems: [] }
  const present = new Set(await readdir(dir))
  for (const f of expected) {
    result.filesChecked++
    let content: Buffer
    try {
      content = await readFile(join(dir, f.name))
    } catch (e) {
      result.bytesLost += f.size
      result.problems.push(`${JSON.stringify(f.name)} unreadable: ${(e as NodeJS.ErrnoException).code ?? String(e)}`)
      continue
    }
    present.delete(f.name)
    const sha = createHash('sha256').update(content).digest('hex')
    if (content.length !== f.size || sha !== f.sha256) {
      result.bytesLost += f.size
      result.problems.push(`${JSON.stringify(f.name)}: ${content.length} bytes sha256 ${sha.slice(0, 12)}…, expected ${f.size} bytes sha256 ${f.sha256.slice(0, 12)}…`)
    }
  }
  for (const name of present) result.problems.push(`unexpected file ${JSON.stringify(name)}`)
  return result
}

/** Faults the emulator injected so far: 429s, 503s, other 5xx answers and cut transfers. */
export function faultsSeen(emu: TestEmulator): number {
  const st = emu.stats
  const status = (code: number) => st.status[String(code)] ?? 0
  return st.throttled429 + st.unavailable503 + st.resets + status(500) + status(502) + status(504)
}

/**
 * Turn emulator faults on for the workload (a 429 storm: `{ rateLimit: 5 }`; 503s:
 * `{ failRate: 0.2 }`; resets: `{ resetRate: 0.2 }`); `stop` restores the previous
 * settings and answers how many faults were injected meanwhile.
 */
export async function emulatorFaultInjector(emu: TestEmulator, faults: Partial<Faults>): Promise<FaultInjector> {
  const before = { ...emu.faults }
  const seen = faultsSeen(emu)
  emu.setFaults(faults)
  let stopped: number | undefined
  return {
    async stop() {
      if (stopped === undefined) {
        emu.setFaults(before)
        stopped = faultsSeen(emu) - seen
      }
      return stopped
    },
  }
}
