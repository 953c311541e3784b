// How tcefs mounts through fuse-native, in one place so the benchmark's null node mounts the same way.
//
// fuse-native cannot ask for direct_io, and without it reads of a size-0 node never reach the daemon, so
// a subclass appends it to the mount options. It also adds big_writes (else the kernel splits every
// write into 4 KiB chunks) and drops libfuse's own debug mode, which fuse-native turns on whenever DEBUG
// contains '*' (DEBUG=tcefs:* must not flood stderr with libfuse traces).
//
// fuse-native's per-operation timeout is turned off: it arms and clears a timer on every request (over a
// microsecond of each write+read round trip; docs/benchmarks.md measures it) to answer EIO for a handler
// that never calls back, and every tcefs handler calls back before it returns or, for a busy open, after
// a bounded wait.
import Fuse from 'fuse-native';

export class TunedFuse extends Fuse {
  _fuseOptions(): string {
    const opts = super._fuseOptions().replace(/^-o/, '').split(',').filter((o: string) => o && o !== 'debug');
    if (process.env.TCEFS_FUSE_DEBUG) opts.push('debug');
    opts.push('direct_io', 'big_writes', 'max_write=131072', 'max_read=131072');
    return '-o' + opts.join(',');
  }
}

/** Constructor options of every tcefs mount (the caller adds its names and permissions). */
export const FUSE_TUNING = { timeout: false } as const;
