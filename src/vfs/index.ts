/** src/vfs: filesystem semantics over the drive backend. Public surface. */
export * from './errors.js'
export * from './tree/index.js'
export * from './names.js'
export { MetadataCache, type Entry } from './cache.js'
export { ChunkReader, CHUNK } from './reader.js'
export { Spool, BOOKKEEPING_RESERVE, type JournalRecord, type LocalState, type SpoolOptions } from './spool.js'
export { WriteBack, LocalFile, MAX_FILE_SIZE, conflictName, type PendingUpload, type Conflict } from './writeback.js'
export { Vfs, XATTR_ID, XATTR_ETAG, XATTR_HASH, type VfsOptions, type Attr, type StatFs } from './vfs.js'
