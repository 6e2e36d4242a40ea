/**
 * One HTTP dispatcher per process for everything odfs fetches (identity platform,
 * Graph, download and upload URLs). It exists so that an extra CA (config key
 * `ca_file`, used to reach the emulator or a TLS-inspecting proxy) is trusted
 * alongside the system roots without NODE_EXTRA_CA_CERTS having to be set before
 * node starts. Requests go through its request() (identity platform, transfers) or
 * through the fetch of the same undici module (Graph calls; see loadUndici).
 */
import { readFileSync } from 'node:fs'
import { createSecureContext, type SecureContext } from 'node:tls'
import { setFlagsFromString } from 'node:v8'
import type { Dispatcher } from 'undici'
import { OdfsError } from './errors.js'

export type { Dispatcher } from 'undici'

export interface DispatcherOptions {
  /** PEM file with one or more extra CA certificates to trust. */
  caFile?: string
  /** Connections kept per origin (transfers run a few in parallel). */
  connections?: number
}

/**
 * undici's module, loaded on first use: it is the largest package odfs loads, and
 * commands that make no request (odfs --help, gateway) should not pay for it. In the
 * bundle bin/odfs runs it is a chunk of its own; its CommonJS exports arrive as the
 * module's default export there (and also in Node's own interop), so that is what is read.
 */
export async function loadUndici(): Promise<UndiciModule> {
  if (undiciTieringBudget !== undefined) {
    setFlagsFromString(`--wasm-tiering-budget=${undiciTieringBudget}`)
    undiciTieringBudget = undefined
  }
  const m = (await import('undici')) as unknown as UndiciModule & { default?: UndiciModule }
  return m.default ?? m
}

let undiciTieringBudget: number | undefined

/**
 * V8 recompiles WebAssembly functions that run often with its optimizing tier, on a
 * background thread, and a process waits for that compile before it exits: for
 * undici's HTTP parser (compiled when undici loads) ~100 ms at the end of every
 * brief command, for code that has long done its work (docs/performance.md). A
 * brief command (src/cli/main.ts) sets V8's tiering budget, which V8 reads when it
 * compiles a module, to `budget` right before undici loads: modules compiled before
 * it (quickXorHash's, which gains 2x when optimized on a large file) keep V8's default.
 */
export function setUndiciWasmTieringBudget(budget: number): void {
  undiciTieringBudget = budget
}

type UndiciModule = typeof import('undici')

/**
 * How a dispatcher made by createDispatcher connects: what a client that opens its
 * own connection (graph/bulk-get.ts, for bulk downloads) must do alike.
 */
export interface ConnectOptions {
  /** The TLS context with the extra CA; undefined: Node's default (the system roots). */
  secureContext?: SecureContext
  connectTimeoutMs: number
  /** Until the head of an answer has arrived. */
  headersTimeoutMs: number
  /** A body with no byte arriving for this long (large transfers stream for minutes; only idle ones time out). */
  bodyTimeoutMs: number
}

const TIMEOUTS = { connectTimeoutMs: 10_000, headersTimeoutMs: 120_000, bodyTimeoutMs: 120_000 }
const connectOptions = new WeakMap<object, ConnectOptions>()

/** The connect options of a dispatcher made by createDispatcher (undefined for any other). */
export function connectOptionsOf(d: Dispatcher | undefined): ConnectOptions | undefined {
  return d ? connectOptions.get(d) : undefined
}

export async function createDispatcher(opts: DispatcherOptions = {}): Promise<Dispatcher> {
  let secureContext: ReturnType<typeof createSecureContext> | undefined
  if (opts.caFile) {
    let pem: string
    try {
      pem = readFileSync(opts.caFile, 'utf8')
    } catch (cause) {
      throw new OdfsError('CA_FILE_UNREADABLE', `cannot read ca_file ${opts.caFile}: ${(cause as Error).message}`, { cause })
    }
    if (!pem.includes('BEGIN CERTIFICATE')) {
      throw new OdfsError('CA_FILE_INVALID', `ca_file ${opts.caFile} holds no PEM certificate`)
    }
    // One TLS context for every connection (given `ca` instead, each connection would
    // parse the ~140 system roots again: 0.9 s of a 300 MiB odfs get). The default
    // context with the extra CA added to it: Node gives such a context a store of its
    // own, a copy of the system roots (others keep trusting only those), in ~2 ms,
    // where createSecureContext({ ca: [...rootCertificates, pem] }) parsed every root
    // from PEM again in ~50 ms at every command's start. test/common/http.test.ts
    // checks both halves.
    secureContext = createSecureContext()
    try {
      ;(secureContext as unknown as { context: { addCACert(pem: string): void } }).context.addCACert(pem)
    } catch (cause) {
      throw new OdfsError('CA_FILE_INVALID', `ca_file ${opts.caFile}: ${(cause as Error).message}`, { cause })
    }
  }
  const connect: ConnectOptions = { ...(secureContext ? { secureContext } : {}), ...TIMEOUTS }
  const { Agent } = await loadUndici()
  const agent = new Agent({
    connect: { ...(secureContext ? { secureContext } : {}), timeout: connect.connectTimeoutMs },
    connections: opts.connections ?? 16,
    keepAliveTimeout: 30_000,
    bodyTimeout: connect.bodyTimeoutMs,
    headersTimeout: connect.headersTimeoutMs,
  })
  connectOptions.set(agent, connect)
  return agent
}
