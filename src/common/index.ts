export * from './errors.js'
export * from './clock.js'
export * from './log.js'
export * from './http.js'
