/**
 * Local <-> OneDrive names. Placeholder with the agreed API (identity mapping and a
 * case-insensitive compare) until the reversible encoding of forbidden names lands.
 */

/** The name to send to OneDrive for a local name. */
export function toRemoteName(localName: string): string {
  return localName
}

/** The name to show locally for a OneDrive name. */
export function toLocalName(remoteName: string): string {
  return remoteName
}

/** OneDrive compares names case-insensitively. */
export function sameName(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase()
}
