export * from './store.js'
export * from './errors.js'
export * from './names.js'
