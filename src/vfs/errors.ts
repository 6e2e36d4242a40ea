/**
 * The one place an errno is chosen for a failure of the drive backend. Everything
 * below (graph) raises GraphError classified by Graph code; the mount and the
 * commands turn it into an errno here and nowhere else.
 */
import { constants } from 'node:os'
import { isGraphError } from '../graph/index.js'

export type ErrnoName = 'ENOENT' | 'EEXIST' | 'EACCES' | 'ENOSPC' | 'EINVAL' | 'ENAMETOOLONG' | 'EIO' | 'EAGAIN' | 'ETIMEDOUT' | 'ENOTEMPTY' | 'ENOTDIR' | 'EISDIR' | 'EFBIG' | 'EBUSY'

/** Errno name for any error (GraphError by its code; anything unknown or exhausted: EIO). */
export function errnoFor(err: unknown): ErrnoName {
  if (isGraphError(err)) {
    if (err.exhausted) return 'EIO'
    switch (err.classify()) {
      case 'notFound': return 'ENOENT'
      case 'nameConflict': return 'EEXIST'
      case 'accessDenied': return 'EACCES'
      case 'quotaExceeded': return 'ENOSPC'
      case 'invalidName': return 'EINVAL'
      case 'pathTooLong': return 'ENAMETOOLONG'
      case 'tooLarge': return 'EFBIG'
      case 'locked': return 'EBUSY'
      default: return 'EIO'
    }
  }
  // Plain Node errors that already carry an errno (local files) keep it.
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code === 'string' && code in constants.errno && /^E[A-Z]+$/.test(code)) return code as ErrnoName
  return 'EIO'
}

/** Positive errno number of a name (fuse-native callbacks take the negative). */
export function errnoValue(name: ErrnoName): number {
  return (constants.errno as Record<string, number>)[name] ?? constants.errno.EIO
}
