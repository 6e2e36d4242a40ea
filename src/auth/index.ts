/**
 * Sign-in and credentials: msal-node flows (device code, authorization code
 * with PKCE), the token cache in the OS keychain or a private file, and the
 * token provider the Graph layer uses.
 */
export * from './errors.js'
export * from './token-store.js'
export * from './http.js'
export * from './msal.js'
export * from './authority-metadata.js'
export * from './login.js'
export * from './token-provider.js'
export * from './cached-token.js'
export * from './user.js'
