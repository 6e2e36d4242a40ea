// The emulator's public surface: start it in-process or from `odfs emulator`.
export { startEmulator, routeTemplate, DEFAULT_FAULTS, type Emulator, type EmulatorOptions, type EmulatorInfo, type Faults, type Stats } from './server.js'
export { Store, type Item, type Drive } from './store/index.js'
export { QuickXorHash, quickXorHash } from './quickxor.js'
export { ensureTls } from './tls.js'
export * as directory from './directory.js'
