// fuse-native ships no types; this declares the part tcefs uses.
declare module 'fuse-native' {
  type Cb = (...args: any[]) => void;
  class Fuse {
    constructor(mnt: string, ops: Record<string, (...args: any[]) => void>, opts?: Record<string, unknown>);
    mount(cb: Cb): void;
    unmount(cb: Cb): void;
    /** Builds the -o option string from the whitelisted options. */
    _fuseOptions(): string;
    static unmount(mnt: string, cb: Cb): void;
    static ENOENT: number;
    static ENOTDIR: number;
    static EINVAL: number;
    static EBADF: number;
    static EACCES: number;
    static EIO: number;
    static EPERM: number;
  }
  export default Fuse;
}
