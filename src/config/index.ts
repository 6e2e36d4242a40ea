/**
 * Gateway configuration: the app registration policies (onedrive_storage_policies#1.0.0),
 * where they are read from, their validation, and the shared --ms-* options.
 */
export * from './dirs.js'
export * from './gateway.js'
export * from './options.js'
export * from './write.js'
