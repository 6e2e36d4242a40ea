/**
 * Response helpers for the identity platform: JSON and HTML bodies with the
 * headers login.microsoftonline.com sends, and its error shape
 * `{error, error_description: "AADSTSnnnn: ...", error_codes, timestamp, trace_id, correlation_id}`.
 */
import type http from 'node:http'
import { randomUUID } from 'node:crypto'
import type { Clock } from '../../common/index.js'

export interface AadError {
  status: number
  error: string
  /** AADSTS number; 0 for errors that carry none (slow_down). */
  code: number
  description: string
  suberror?: string
  /** Extra fields (e.g. `claims`). */
  extra?: Record<string, unknown>
}

export function aadError(status: number, error: string, code: number, description: string, suberror?: string): AadError {
  return suberror === undefined ? { status, error, code, description } : { status, error, code, description, suberror }
}

/** `2026-01-01 12:00:00Z`, the format of the real `timestamp` field. */
export function aadTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z')
}

export function correlationIdOf(req: http.IncomingMessage): string {
  const h = req.headers['client-request-id']
  const v = Array.isArray(h) ? h[0] : h
  return v && /^[0-9a-fA-F-]{36}$/.test(v) ? v : randomUUID()
}

export function errorBody(err: AadError, clock: Clock, correlationId: string): Record<string, unknown> {
  const traceId = randomUUID()
  const ts = aadTimestamp(clock.now())
  const prefix = err.code ? `AADSTS${err.code}: ` : ''
  const body: Record<string, unknown> = {
    error: err.error,
    error_description: `${prefix}${err.description}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${ts}`,
    error_codes: err.code ? [err.code] : [],
    timestamp: ts,
    trace_id: traceId,
    correlation_id: correlationId,
  }
  if (err.code) body.error_uri = `https://login.microsoftonline.com/error?code=${err.code}`
  if (err.suberror) body.suberror = err.suberror
  if (err.extra) Object.assign(body, err.extra)
  return body
}

const NO_STORE = { 'cache-control': 'no-store, no-cache', pragma: 'no-cache' }

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = Buffer.from(JSON.stringify(body))
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(data.length),
    'x-ms-request-id': randomUUID(),
    ...NO_STORE,
    ...headers,
  })
  res.end(data)
}

export function sendHtml(res: http.ServerResponse, status: number, html: string, headers: Record<string, string> = {}): void {
  const data = Buffer.from(html)
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': String(data.length),
    'x-frame-options': 'DENY',
    ...NO_STORE,
    ...headers,
  })
  res.end(data)
}

export function redirect(res: http.ServerResponse, location: string): void {
  res.writeHead(302, { location, 'content-length': '0', ...NO_STORE })
  res.end()
}

/** Parses an `application/x-www-form-urlencoded` body; `undefined` for another content type. */
export function parseForm(req: http.IncomingMessage, body: Buffer): Record<string, string> | undefined {
  const ct = (req.headers['content-type'] ?? '').toLowerCase()
  if (!ct.startsWith('application/x-www-form-urlencoded')) return undefined
  return toRecord(new URLSearchParams(body.toString('utf8')))
}

export function toRecord(p: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of p) if (!(k in out)) out[k] = v
  return out
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}
