/**
 * The emulator's Microsoft identity platform. The HTTPS server mounts
 * `IdentityPlatform.handle()` and asks `verifyAccessToken()` about every Graph
 * request's Authorization header.
 */
export { IdentityPlatform, type IdentityOptions, type TokenCheck } from './platform.js'
