/**
 * src/graph: the only place odfs talks to Microsoft Graph. Public surface.
 * Graph never imports auth: auth implements TokenProvider structurally.
 */
export type { TokenProvider, RetryOptions, RequestPolicy, PipelineCounters } from './middleware.js'
export { backoffDelay, DEFAULT_RETRY } from './middleware.js'
export { GraphError, isGraphError, isNetworkError, parseRetryAfter, innerCodesOf, type GraphErrorKind } from './errors.js'
export { QuickXorHash, quickXorHash, quickXorHashStream } from './quickxorhash.js'
export { Reachability, isUnreachable } from './reachability.js'
export { RateLimiter, type RateLimiterOptions, type RateLimiterStats } from './ratelimit.js'
export {
  createGraphDriveClient, type DriveClient, type GraphDriveClientOptions, type ListOptions, type MoveOptions,
  type SharedEntry, type ClientStats,
} from './client.js'
export { DeltaCursor, type DeltaBatch, type DeltaPageBatch } from './delta.js'
export type { RangeStream, DownloadResult, DownloadSink, DownloadToOptions, DownloadWrite, OpenRangeOptions } from './download.js'
export {
  FRAGMENT_UNIT, MAX_FRAGMENT, DEFAULT_FRAGMENT, validFragmentSize, fragmentsOf, contentRange, offsetFromRanges,
  fileSource, FileUploadSessionStore, isServiceRewrite, DEFAULT_UPLOAD_HOSTS,
  type UploadSource, type UploadOptions, type UploadResult, type UploadSessionStore, type PersistedUploadSession,
} from './upload.js'
export { encodePath, encodeSegment, splitPath, shareIdOf } from './paths.js'
export * from './types.js'
