// fuse-native 2.2.6 ships no types: the part odfs uses.
declare module 'fuse-native' {
  type Op = (...args: any[]) => void
  interface FuseOpts {
    force?: boolean
    mkdir?: boolean
    debug?: boolean
    autoUnmount?: boolean
    allowOther?: boolean
    defaultPermissions?: boolean
    fsname?: string
    subtype?: string
    timeout?: number | false | Record<string, number | false>
    [k: string]: unknown
  }
  class Fuse {
    constructor(mnt: string, ops: Record<string, Op>, opts?: FuseOpts)
    readonly mnt: string
    readonly opts: FuseOpts
    mount(cb: (err: Error | null) => void): void
    unmount(cb: (err: Error | null) => void): void
    protected _fuseOptions(): string
    static unmount(mnt: string, cb: (err: Error | null) => void): void
  }
  export = Fuse
}
