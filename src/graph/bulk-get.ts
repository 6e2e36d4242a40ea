/**
 * A streamed GET on a connection of its own, for bulk downloads (a read to the end
 * of a file from its pre-authenticated download URL: `odfs get`, a resumed one, the
 * write-back's fetch of a whole file). Everything else, the mount's ranged reads and
 * the parts of a download over several connections included, goes through the
 * undici dispatcher and its pooled connections.
 *
 * Why: undici parses every byte of a body with llhttp compiled to wasm (each chunk
 * is copied into wasm memory first) and hands it on through two streams. Measured
 * per GiB from the emulator (docs/performance.md): 0.85 s more CPU than reading the
 * TLS socket directly in a stand-alone client, 0.28 s more inside odfs's downloader;
 * CPU a busy transfer node's other transfers, and here the service, go without.
 * Here the socket's chunks are the body's chunks: only the head is parsed.
 *
 * What it speaks: HTTP/1.1, a GET with no body, `Connection: close` (the connection
 * is never reused, so no keep-alive state exists), and answers framed by
 * Content-Length, by chunked transfer coding, or by the end of the connection.
 * Interim 1xx answers are skipped. Timeouts are those of the dispatcher
 * (common/http.ts ConnectOptions): connecting, waiting for the head, and the body
 * going idle while its reader is not holding it back.
 *
 * Errors carry the codes undici's would, so the pipeline classifies them the same
 * way (reachability.ts): a connect timeout is UND_ERR_CONNECT_TIMEOUT, a head or
 * body timeout UND_ERR_HEADERS_TIMEOUT / UND_ERR_BODY_TIMEOUT, a connection that
 * ends before the answer is complete UND_ERR_SOCKET; socket errors keep their own.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net'
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls'
import { Readable } from 'node:stream'
import type { ConnectOptions } from '../common/index.js'

export interface BulkGetRequest {
  url: URL
  headers: Record<string, string>
  signal?: AbortSignal
  connect: ConnectOptions
}

export interface BulkGetAnswer {
  status: number
  statusText: string
  /** Header lines in order, names in lower case. */
  headers: [string, string][]
  /** The body (null for answers that have none). Destroying it closes the connection. */
  body: BulkBody | null
}

/** The largest head accepted (status line and headers). */
const MAX_HEAD = 64 * 1024

function failure(message: string, code: string): Error {
  return Object.assign(new Error(message), { code })
}

/** A header name or value that would let a request be split or smuggled is refused. */
function checkHeader(name: string, value: string): void {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n\0]/.test(value)) {
    throw new TypeError(`invalid request header ${JSON.stringify(name)}`)
  }
}

function requestHead(url: URL, headers: Record<string, string>): string {
  let head = `GET ${url.pathname || '/'}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n`
  for (const [k, v] of Object.entries(headers)) {
    const name = k.toLowerCase()
    // Framing and the connection are this module's to say.
    if (name === 'host' || name === 'connection' || name === 'content-length' || name === 'transfer-encoding') continue
    checkHeader(k, v)
    head += `${k}: ${v}\r\n`
  }
  return head + 'Connection: close\r\n\r\n'
}

interface Head {
  status: number
  statusText: string
  headers: [string, string][]
}

/** Parse a head (without its final blank line); undefined if it is not HTTP/1.x. */
function parseHead(text: string): Head | undefined {
  const lines = text.split('\r\n')
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '')
  if (!m) return undefined
  const headers: [string, string][] = []
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!
    const colon = line.indexOf(':')
    // No folded lines, no header without a name (RFC 9112 §5).
    if (colon <= 0 || line[0] === ' ' || line[0] === '\t') return undefined
    headers.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()])
  }
  return { status: Number(m[1]), statusText: m[2] ?? '', headers }
}

/** How the body of an answer ends. */
type Framing = { kind: 'none' } | { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' }

function framingOf(head: Head): Framing | undefined {
  const { status, headers } = head
  if (status === 204 || status === 304) return { kind: 'none' }
  const te = headers.filter(([k]) => k === 'transfer-encoding').map(([, v]) => v)
  if (te.length > 0) {
    // Only chunked alone frames a body this client can read (no compression was asked for).
    const codings = te.join(',').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)
    return codings.length === 1 && codings[0] === 'chunked' ? { kind: 'chunked' } : undefined
  }
  const cl = [...new Set(headers.filter(([k]) => k === 'content-length').map(([, v]) => v))]
  if (cl.length > 1 || (cl.length === 1 && !/^\d{1,15}$/.test(cl[0]!))) return undefined
  if (cl.length === 1) return Number(cl[0]) === 0 ? { kind: 'none' } : { kind: 'length', left: Number(cl[0]) }
  return { kind: 'close' }
}

/** Decodes chunked transfer coding (RFC 9112 §7.1); extensions and trailers are read and dropped. */
class Dechunker {
  #state: 'size' | 'data' | 'dataEnd' | 'trailer' | 'done' = 'size'
  #line = ''
  #left = 0

  get done(): boolean {
    return this.#state === 'done'
  }

  /** Feed bytes; `out` gets each piece of data (subarrays of `b`, never copies). */
  feed(b: Buffer, out: (piece: Buffer) => void): void {
    let i = 0
    while (i < b.length && this.#state !== 'done') {
      if (this.#state === 'data') {
        const n = Math.min(this.#left, b.length - i)
        out(b.subarray(i, i + n))
        i += n
        this.#left -= n
        if (this.#left === 0) this.#state = 'dataEnd'
        continue
      }
      const nl = b.indexOf(10, i)
      const end = nl < 0 ? b.length : nl + 1
      this.#line += b.toString('latin1', i, end)
      i = end
      if (this.#line.length > 8192) throw failure('chunked body: a line longer than 8 KiB', 'UND_ERR_SOCKET')
      if (nl < 0) return
      const line = this.#line.replace(/\r?\n$/, '')
      this.#line = ''
      if (this.#state === 'dataEnd') {
        if (line !== '') throw failure('chunked body: no line end after a chunk', 'UND_ERR_SOCKET')
        this.#state = 'size'
      } else if (this.#state === 'size') {
        const m = /^([0-9A-Fa-f]{1,12})(?:[ \t]*;.*)?$/.exec(line)
        if (!m) throw failure('chunked body: bad chunk size line', 'UND_ERR_SOCKET')
        this.#left = parseInt(m[1]!, 16)
        this.#state = this.#left === 0 ? 'trailer' : 'data'
      } else if (line === '') {
        this.#state = 'done' // the blank line after the trailers
      }
    }
  }
}


/**
 * Where a body's bytes go when its reader lends the memory for them
 * (BulkBody.readInto): the socket reads into that memory, so a byte is neither
 * copied nor allocated on its way from the kernel to the reader.
 */
export interface BodySink {
  /** Memory for the next bytes of the body, at least one byte long: the sink's own, lent until filled() is called. */
  space(): Uint8Array
  /**
   * The first `n` bytes of the memory last lent hold the next bytes of the body. A
   * promise holds the connection (no space is asked for) until it settles; a throw
   * or a rejection fails the body with that error.
   */
  filled(n: number): Promise<void> | void
}

/**
 * The body of an answer. Read it as a stream, or call readInto() before reading
 * anything to have its bytes placed in the reader's own memory. Destroying it
 * closes the connection.
 */
export class BulkBody extends Readable {
  /** @internal */
  constructor(private readonly x: Exchange) {
    super({ highWaterMark: 1 << 20 })
  }
  override _read(): void {
    this.x.pull()
  }
  /**
   * Read the whole body into `sink`; resolves when the body is complete and every
   * filled() has settled, rejects with the body's error (after any pending filled()
   * has settled, so the sink is never written to by two readers at once).
   */
  readInto(sink: BodySink): Promise<void> {
    // A stream reader (resume, pipe, a 'data' or 'readable' listener) was there first.
    if (this.readableFlowing !== null) return Promise.reject(new Error('readInto: the body is already being read'))
    return this.x.readInto(sink)
  }
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.x.abandon(err)
    cb(err)
  }
}

/** Memory the socket reads into while no reader lends any, and for the head. */
const SCRATCH = 64 * 1024
/** A streamed body's bytes are read into slabs of this size, handed on as views. */
const SLAB = 1 << 20

/**
 * One request and its answer, read with the socket's `onread`: Node reads each
 * piece into memory this exchange chooses (scratch for the head; a slab for a
 * streamed body, whose views are pushed; the sink's memory for readInto) instead
 * of allocating a buffer per read.
 */
class Exchange {
  readonly socket: Socket
  #mode: 'head' | 'wait' | 'stream' | 'direct' = 'head'
  #answered = false
  /** The exchange is over (body complete, or failed): nothing the socket does matters any more. */
  #over = false
  /** It is over because it failed. */
  #failed = false
  /** Every byte of the body has been received (held in #backlog until delivered). */
  #complete = false
  /** The reader holds the connection back (the stream's buffer is full, or a filled() is pending). */
  #held = false
  #framing: Framing | undefined
  #dechunker: Dechunker | undefined
  /** Bytes of the head received so far. */
  #head: Buffer | undefined
  #body: BulkBody | undefined
  #sink: BodySink | undefined
  /** readInto has every byte (only its last filled() may still be pending). */
  #delivered = false
  /** readInto's outcome. */
  #direct: { resolve: () => void; reject: (e: unknown) => void } | undefined
  /** The last filled() promise, settled or not. */
  #filling: Promise<unknown> = Promise.resolve()
  /** Body bytes received while no memory of the reader's was lent (own copies), oldest first. */
  #backlog: Buffer[] = []
  readonly #scratch = Buffer.allocUnsafeSlow(SCRATCH)
  #slab: Buffer | undefined
  #slabUsed = 0
  readonly #connectTimer: NodeJS.Timeout
  readonly #onAbort = () => this.#fail(this.req.signal!.reason)

  constructor(
    private readonly req: BulkGetRequest,
    private readonly requestHead: string,
    private readonly resolve: (a: BulkGetAnswer) => void,
    private readonly reject: (e: unknown) => void,
  ) {
    const { url, connect } = req
    const tls = url.protocol === 'https:'
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
    const port = Number(url.port) || (tls ? 443 : 80)
    const onread = { buffer: () => this.#memory(), callback: (n: number, buf: Uint8Array) => this.#received(n, buf) }
    this.socket = tls
      ? tlsConnect({
          host,
          port,
          servername: isIP(host) ? undefined : host,
          ALPNProtocols: ['http/1.1'],
          // tls.connect takes `onread` as net.connect does (Node's docs); @types/node omits it.
          onread,
          ...(connect.secureContext ? { secureContext: connect.secureContext } : {}),
        } as ConnectionOptions)
      : netConnect({ host, port, onread })
    req.signal?.addEventListener('abort', this.#onAbort, { once: true })
    this.#connectTimer = setTimeout(
      () => this.#fail(failure(`connect to ${url.host} timed out after ${connect.connectTimeoutMs} ms`, 'UND_ERR_CONNECT_TIMEOUT')),
      connect.connectTimeoutMs,
    )
    const s = this.socket
    s.once(tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(this.#connectTimer)
      s.setTimeout(connect.headersTimeoutMs)
      s.write(requestHead)
    })
    s.on('timeout', () => {
      this.#fail(this.#answered
        ? failure(`download from ${url.host} idle for ${connect.bodyTimeoutMs} ms`, 'UND_ERR_BODY_TIMEOUT')
        : failure(`no answer from ${url.host} within ${connect.headersTimeoutMs} ms`, 'UND_ERR_HEADERS_TIMEOUT'))
    })
    s.on('error', (e) => this.#fail(e))
    // After 'end' or 'error' 'close' changes nothing; alone, the connection was lost.
    const ended = () => {
      if (this.#complete || this.#failed) return
      if (this.#body && this.#framing?.kind === 'close') return this.#finish()
      this.#fail(failure(this.#answered ? `download from ${url.host} cut short` : `${url.host} closed the connection before answering`, 'UND_ERR_SOCKET'))
    }
    s.on('end', ended)
    s.on('close', ended)
  }

  /** The memory the socket reads its next piece into (Node asks after every piece). */
  #memory(): Uint8Array {
    if (this.#over || this.#held || this.#backlog.length > 0) return this.#scratch
    if (this.#mode === 'direct') {
      try {
        return this.#lend()
      } catch (e) {
        this.#fail(e)
        return this.#scratch
      }
    }
    if (this.#mode === 'stream') {
      if (!this.#slab || SLAB - this.#slabUsed < SCRATCH) {
        this.#slab = Buffer.allocUnsafeSlow(SLAB)
        this.#slabUsed = 0
      }
      return this.#slab.subarray(this.#slabUsed)
    }
    return this.#scratch
  }

  /** A piece of `n` bytes was read into `mem` (what #memory() returned); false stops reading. */
  #received(n: number, mem: Uint8Array): boolean {
    if (this.#over) return false
    const piece = Buffer.from(mem.buffer, mem.byteOffset, n)
    const own = mem !== this.#scratch
    try {
      switch (this.#mode) {
        case 'head':
          this.#readHead(Buffer.from(piece)) // the scratch is read into again: copied
          break
        case 'wait':
          this.#keep(piece)
          break
        case 'stream':
          if (own) {
            this.#slabUsed += n
            if (this.#take(piece, (p) => this.#push(p))) this.#finish()
          } else {
            this.#keep(piece)
            this.#pushBacklog()
          }
          break
        case 'direct':
          if (own) this.#inPlace(piece)
          else {
            this.#keep(piece)
            this.#drain()
          }
          break
      }
    } catch (e) {
      this.#fail(e)
    }
    return !this.#over && !this.#held && this.#mode !== 'wait'
  }

  /** Body bytes of `b` (framing removed), as views of it, to `out`; true when the body is complete. */
  #take(b: Buffer, out: (piece: Buffer) => void): boolean {
    const f = this.#framing!
    if (f.kind === 'length') {
      const piece = b.length > f.left ? b.subarray(0, f.left) : b
      f.left -= piece.length
      if (piece.length > 0) out(piece)
      return f.left === 0
    }
    if (f.kind === 'chunked') {
      this.#dechunker!.feed(b, out)
      return this.#dechunker!.done
    }
    if (b.length > 0) out(b)
    return false
  }

  /** Body bytes of `b`, copied into the backlog (b is memory that will be read into again). */
  #keep(b: Buffer): void {
    if (this.#take(b, (p) => this.#backlog.push(Buffer.from(p)))) this.#complete = true
  }

  #push(p: Buffer): void {
    if (!this.#body!.push(p)) this.#hold()
  }

  #pushBacklog(): void {
    while (this.#backlog.length > 0) this.#push(this.#backlog.shift()!)
    if (this.#complete) this.#finish()
  }

  /** `b` was read into the sink's memory: framing is removed where it lies, and the sink told. */
  #inPlace(b: Buffer): void {
    let w = 0
    const done = this.#take(b, (p) => {
      const from = p.byteOffset - b.byteOffset
      if (from !== w) b.copyWithin(w, from, from + p.length)
      w += p.length
    })
    if (w > 0) this.#fill(w)
    if (done) {
      this.#complete = true
      this.#finish()
    }
  }

  /** The sink's memory for the next bytes (a sink that lends none fails the body). */
  #lend(): Uint8Array {
    const m = this.#sink!.space()
    if (m.length === 0) throw new RangeError('the download sink lent no memory')
    return m
  }

  /** Tell the sink `n` bytes are in; a promise holds the connection until it settles. */
  #fill(n: number): void {
    const r = this.#sink!.filled(n)
    if (!r) return
    this.#hold()
    this.#filling = r.then(
      () => {
        if (this.#over && !this.#complete) return
        this.#held = false
        try {
          this.#drain()
        } catch (e) {
          // The sink failed (space() or filled() threw): the body fails, never stalls held.
          this.#fail(e)
        }
      },
      (e: unknown) => this.#fail(e),
    )
  }

  /** Copy the backlog into the sink's memory; then read on, or end. */
  #drain(): void {
    while (this.#backlog.length > 0 && !this.#held) {
      const b = this.#backlog[0]!
      const m = this.#lend()
      const k = Math.min(m.length, b.length)
      m.set(b.subarray(0, k))
      if (k === b.length) this.#backlog.shift()
      else this.#backlog[0] = b.subarray(k)
      this.#fill(k)
    }
    if (this.#held) return
    if (this.#complete) this.#finish()
    else this.#read()
  }

  #hold(): void {
    this.#held = true
    // A reader that is busy (a slow disk) is not the connection going idle.
    this.socket.setTimeout(0)
  }

  #read(): void {
    if (this.#over) return
    this.socket.setTimeout(this.req.connect.bodyTimeoutMs)
    this.socket.resume()
  }

  /** The stream's reader wants more. */
  pull(): void {
    if (this.#mode === 'wait') {
      this.#mode = 'stream'
      this.#held = false
      this.#pushBacklog()
      if (!this.#over && !this.#held) this.#read()
    } else if (this.#held && this.#mode === 'stream') {
      this.#held = false
      this.#read()
    }
  }

  readInto(sink: BodySink): Promise<void> {
    if (this.#mode !== 'wait') return Promise.reject(new Error('readInto: the body is already being read'))
    this.#mode = 'direct'
    this.#sink = sink
    this.#held = false
    return new Promise<void>((resolve, reject) => {
      this.#direct = { resolve, reject }
      try {
        this.#drain()
      } catch (e) {
        this.#fail(e)
      }
    })
  }

  /** The reader destroyed the body. */
  abandon(err: Error | null): void {
    if (this.#over) return
    this.#fail(err ?? failure('download abandoned by its reader', 'UND_ERR_ABORTED'))
  }

  #readHead(chunk: Buffer): void {
    const { url } = this.req
    this.#head = this.#head ? Buffer.concat([this.#head, chunk]) : chunk
    for (;;) {
      const all: Buffer = this.#head
      const end = all.indexOf('\r\n\r\n')
      if (end < 0) {
        if (all.length > MAX_HEAD) this.#fail(failure(`answer head larger than ${MAX_HEAD} bytes`, 'UND_ERR_HEADERS_OVERFLOW'))
        return
      }
      const h = parseHead(all.toString('latin1', 0, end))
      const rest = all.subarray(end + 4)
      if (!h) return this.#fail(failure(`malformed answer from ${url.host}`, 'HPE_INVALID_CONSTANT'))
      if (h.status >= 100 && h.status < 200) {
        // An interim answer (100, 103): the real one follows.
        this.#head = rest
        if (rest.length === 0) return
        continue
      }
      const f = framingOf(h)
      if (!f) return this.#fail(failure(`answer from ${url.host} with a body framing this client does not read`, 'HPE_UNEXPECTED_CONTENT_LENGTH'))
      this.#answered = true
      this.#head = undefined
      this.#framing = f
      if (f.kind === 'none') {
        this.#complete = true
        this.#end()
        this.resolve({ status: h.status, statusText: h.statusText, headers: h.headers, body: null })
        return
      }
      if (f.kind === 'chunked') this.#dechunker = new Dechunker()
      this.#body = new BulkBody(this)
      // Held until the reader says how it reads (a stream, or into its own memory).
      this.#mode = 'wait'
      this.#hold()
      if (rest.length > 0 && this.#take(rest, (p) => this.#backlog.push(p))) this.#complete = true
      if (this.#complete) this.#end()
      // The signal still stops the body, as it does a body undici streams.
      this.resolve({ status: h.status, statusText: h.statusText, headers: h.headers, body: this.#body })
      return
    }
  }

  /** Nothing more is read from the connection (Connection: close). */
  #end(): void {
    if (this.#over) return
    this.#over = true
    this.#cleanup()
  }

  #finish(): void {
    this.#complete = true
    this.#end()
    if (this.#backlog.length > 0) return // delivered when the reader takes the rest
    if (this.#mode === 'stream') this.#body!.push(null)
    else if (this.#mode === 'direct' && !this.#held) {
      // (While a filled() is pending, its settling drains and finishes again.)
      this.#delivered = true
      const d = this.#direct!
      void this.#filling.then(() => d.resolve(), () => {})
    }
  }

  #fail(e: unknown): void {
    if (this.#failed) return
    // Complete and over, nothing can fail any more, except a sink still being handed the rest.
    if (this.#over && this.#complete && !(this.#mode === 'direct' && !this.#delivered)) return
    this.#failed = true
    this.#over = true
    this.#cleanup()
    if (!this.#answered) {
      this.#answered = true
      this.reject(e)
      return
    }
    if (this.#mode === 'direct') {
      const d = this.#direct!
      // A filled() still pending (a write) settles first: the caller reopens only then.
      void this.#filling.then(() => d.reject(e), () => d.reject(e))
    } else if (!this.#body!.destroyed) {
      this.#body!.destroy(e as Error)
    }
  }

  #cleanup(): void {
    clearTimeout(this.#connectTimer)
    this.req.signal?.removeEventListener('abort', this.#onAbort)
    this.socket.setTimeout(0)
    this.socket.destroy()
  }
}

/**
 * Send a GET and resolve with the answer once its head has arrived; the body
 * follows (BulkBody). Rejects with a network error (codes as undici's) when the
 * connection fails before the head, or with the signal's reason when it aborts.
 */
export function bulkGet(req: BulkGetRequest): Promise<BulkGetAnswer> {
  const { url, signal } = req
  if (signal?.aborted) return Promise.reject(signal.reason)
  let head: string
  try {
    head = requestHead(url, req.headers)
  } catch (e) {
    return Promise.reject(e)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return Promise.reject(new TypeError(`unsupported protocol ${url.protocol}`))
  return new Promise<BulkGetAnswer>((resolve, reject) => void new Exchange(req, head, resolve, reject))
}
