// An open file: what one open() of a node returns, like a kernel struct file. It owns the state its
// ioctls create, and release() tears that state down when the last reference goes.
import type { FileKind } from '../uapi/ioctls.ts';
import type { CommandTable } from './table.ts';

/** poll() event bits (asm-generic/poll.h). */
export const POLLIN = 0x1;
export const POLLOUT = 0x4;
export const POLLRDNORM = 0x40;
export const POLLWRNORM = 0x100;

export abstract class OpenFile {
  /** Protocol handle, also the FUSE file handle; set by the file registry. */
  handle = 0;
  abstract readonly kind: FileKind;

  constructor(readonly path: string) {}

  /** The commands this file answers now (a container's table changes when an IOMMU backend is set). */
  abstract commands(): CommandTable<any>;

  /** Tear down what this file owns. Must not throw: release cannot fail. */
  release(): void {}

  /** pread() on device region space; files without regions refuse it. */
  regionRead(_offset: bigint, _length: number): Buffer | number {
    return -22; // EINVAL: not a device
  }
  regionWrite(_offset: bigint, _data: Buffer): number {
    return -22;
  }

  /**
   * Region space [start, end) where every write of any length that fits succeeds whole and answers its
   * length, whatever it holds, for as long as nothing but such writes reaches the daemon: what a client
   * may post without waiting for the answer (src/transport/posted.ts). None for files without regions.
   */
  postWindows(): [bigint, bigint][] {
    return [];
  }

  /** poll(): a file with no poll of its own is always ready, as the kernel's DEFAULT_POLLMASK says. */
  pollEvents(): number {
    return POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM;
  }

  toString(): string {
    return `${this.path}#${this.handle.toString(16)}`;
  }
}
