/**
 * Fault suite runner: every `test/faults/*.case.ts` (default export: a case or a
 * list of cases), one after another; prints the table and writes docs/reliability.md.
 * Exit status 1 when a case failed ("not run" cases do not fail the run, they are
 * reported as such).
 *
 *   npm run test:faults -- [--seed N] [--ops N] [--long] [--case SUBSTRING] [--no-doc]
 *
 * docs/reliability.md is written only by a run of every case (no --case).
 */
import { readdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { renderReliabilityDoc, renderTable, runCase, type CaseReport, type FaultCase } from './harness.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = resolve(HERE, '..', '..')
/** Operations per workload in CI; --long runs ten times as many. */
export const CI_OPS = 20000

interface Args { seed: number; ops: number; only?: string; doc: boolean; long: boolean }

function parse(argv: string[]): Args {
  const a: Args = { seed: Math.floor(Math.random() * 2 ** 31), ops: CI_OPS, doc: true, long: false }
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i] ?? ''
    switch (argv[i]) {
      case '--seed': a.seed = Number(v()); break
      case '--ops': a.ops = Number(v()); break
      case '--long': a.long = true; a.ops = CI_OPS * 10; break
      case '--case': a.only = v(); break
      case '--no-doc': a.doc = false; break
      default: throw new Error(`unknown argument ${argv[i]}`)
    }
  }
  if (!Number.isInteger(a.seed) || a.seed < 0) throw new Error('--seed wants a non-negative integer')
  if (!Number.isInteger(a.ops) || a.ops < 1) throw new Error('--ops wants a positive integer')
  return a
}

async function loadCases(): Promise<FaultCase<any>[]> {
  const cases: FaultCase<any>[] = []
  for (const f of readdirSync(HERE).filter((n) => n.endsWith('.case.ts')).sort()) {
    const mod = (await import(pathToFileURL(join(HERE, f.replace(/\.ts$/, '.js'))).href)) as { default: FaultCase<any> | FaultCase<any>[] }
    cases.push(...(Array.isArray(mod.default) ? mod.default : [mod.default]))
  }
  return cases
}

async function main(argv: string[]): Promise<number> {
  const args = parse(argv)
  const log = (line: string) => process.stdout.write(`${line}\n`)
  log(`fault suite seed=${args.seed} ops=${args.ops}`)
  const cases = (await loadCases()).filter((c) => !args.only || c.name.includes(args.only))
  const reports: CaseReport[] = []
  for (const c of cases) {
    log(`== ${c.name}`)
    const r = await runCase(c, { seed: args.seed, ops: args.ops, log: (l) => log(`   ${l}`) })
    log(`   ${r.status}${r.why ? ` (${r.why.split('\n')[0]})` : ''}`)
    reports.push(r)
  }
  log('')
  log(renderTable(reports))
  const command = ['npm run test:faults --', '--seed', String(args.seed), ...(args.long ? ['--long'] : args.ops !== CI_OPS ? ['--ops', String(args.ops)] : []),
    ...(args.only ? ['--case', JSON.stringify(args.only)] : [])].join(' ')
  // a partial run (--case) never overwrites the table of the whole suite
  if (args.doc && !args.only) {
    const doc = renderReliabilityDoc(reports, { command, seed: args.seed, ops: args.ops, date: new Date().toISOString().slice(0, 10), node: process.version })
    writeFileSync(join(ROOT, 'docs', 'reliability.md'), doc)
    log('\nwrote docs/reliability.md')
  }
  log(`reproduce: ${command}`)
  return reports.some((r) => r.status === 'failed') ? 1 : 0
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code
  }, (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`)
    process.exitCode = 2
  })
}
