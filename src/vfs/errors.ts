/**
 * The one place an errno is chosen. Everything below (graph) raises GraphError
 * classified by Graph code; the filesystem core raises VfsError with a domain
 * code (notEmpty, crossDrive ...). The mount and the commands turn either into an
 * errno here and nowhere else.
 */
import { constants } from 'node:os'
import { OdfsError, type OdfsErrorOptions } from '../common/index.js'
import { isGraphError } from '../graph/index.js'

export type ErrnoName =
  | 'ENOENT' | 'EEXIST' | 'EACCES' | 'ENOSPC' | 'EINVAL' | 'ENAMETOOLONG' | 'EIO' | 'EAGAIN' | 'ETIMEDOUT' | 'ENOTEMPTY'
  | 'ENOTDIR' | 'EISDIR' | 'EFBIG' | 'EBUSY' | 'EXDEV' | 'EROFS' | 'EPERM' | 'ENOTSUP' | 'ENODATA' | 'EBADF' | 'ERANGE'

/** What went wrong in filesystem terms; errnoFor() decides the errno of each. */
export type VfsErrorCode =
  | 'notFound' | 'exists' | 'notEmpty' | 'notDir' | 'isDir' | 'virtualDir' | 'readOnlyMount' | 'crossDrive'
  | 'unsupported' | 'notPermitted' | 'noAttribute' | 'tooLarge' | 'badHandle' | 'invalid' | 'uploadFailed' | 'noSpace'
  | 'badData'

export class VfsError extends OdfsError {
  declare readonly code: VfsErrorCode
  constructor(code: VfsErrorCode, message: string, opts: OdfsErrorOptions = {}) {
    super(code, message, { level: 'debug', ...opts })
  }
}

export function isVfsError(e: unknown): e is VfsError {
  return e instanceof VfsError
}

function vfsErrno(code: VfsErrorCode): ErrnoName {
  switch (code) {
    case 'notFound': return 'ENOENT'
    case 'exists': return 'EEXIST'
    case 'notEmpty': return 'ENOTEMPTY'
    case 'notDir': return 'ENOTDIR'
    case 'isDir': return 'EISDIR'
    // The virtual directories (root, Shared with me, Shared libraries) hold no files of
    // their own: creating there is refused like a directory without write permission.
    case 'virtualDir': return 'EACCES'
    case 'readOnlyMount': return 'EROFS'
    case 'crossDrive': return 'EXDEV'
    // ENOTSUP (not EPERM) for setxattr: cp -a and rsync -X treat it as "no xattrs here" and go on.
    case 'unsupported': return 'ENOTSUP'
    case 'notPermitted': return 'EPERM'
    case 'noAttribute': return 'ENODATA'
    case 'tooLarge': return 'EFBIG'
    case 'badHandle': return 'EBADF'
    case 'invalid': return 'EINVAL'
    case 'uploadFailed': return 'EIO'
    case 'badData': return 'EIO'
    // The write-back spool is full (--cache-max-size or its disk): the writer's ENOSPC.
    case 'noSpace': return 'ENOSPC'
  }
}

/** Errno name for any error (GraphError by its code, VfsError by its code; anything unknown or exhausted: EIO). */
export function errnoFor(err: unknown): ErrnoName {
  // An upload refused for want of space is ENOSPC to the writer's fsync, not a plain EIO.
  if (isVfsError(err) && err.code === 'uploadFailed' && err.cause !== undefined && errnoFor(err.cause) === 'ENOSPC') return 'ENOSPC'
  if (isVfsError(err)) return vfsErrno(err.code)
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
