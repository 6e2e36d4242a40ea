/** src/vfs: filesystem semantics over the drive backend. Public surface. */
export * from './errors.js'
export * from './tree/index.js'
export * from './names.js'
