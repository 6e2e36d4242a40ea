/** Path and share-link encoding for Graph URLs (docs/graph-service.md §1.1, §7.2a). */

/** Percent-encode one path segment (RFC 3986 segment rules: space %20, # %23, % %25, ':' and '/' encoded). */
export function encodeSegment(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

/** Split a slash path into its non-empty segments. */
export function splitPath(p: string): string[] {
  return p.split('/').filter((s) => s.length > 0)
}

/** Encode a relative path for `:/{path}:` addressing. */
export function encodePath(p: string | string[]): string {
  return (Array.isArray(p) ? p : splitPath(p)).map(encodeSegment).join('/')
}

/** `u!` + unpadded base64url of the sharing link, the id `/shares/{id}` expects. */
export function shareIdOf(link: string): string {
  return 'u!' + Buffer.from(link, 'utf8').toString('base64').replace(/=+$/, '').replace(/\//g, '_').replace(/\+/g, '-')
}
