/** src/fuse: the fuse-native adapter over Vfs. Public surface. */
export { fuseOps, mountVfs, unmountPath, type FuseMountOptions, type MountedFs } from './adapter.js'
