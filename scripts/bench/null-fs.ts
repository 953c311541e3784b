// The floor tcefs is measured against: a fuse-native mount with two nodes, /null and /null2 (for clients
// that must not share an inode), whose write handler accepts anything and whose read handler answers a
// fixed 48-byte reply frame. It is mounted through the same subclass as tcefs (src/transport/fuse-mount.ts:
// direct_io, big_writes, the same max_read/max_write), so a round trip here is what FUSE and fuse-native
// cost with no tcefs work at all. By default it keeps fuse-native's own per-request timeout, which tcefs
// turns off: the bare fuse-native floor. With --tuned it takes tcefs's options whole.
//
// `node --import tsx scripts/bench/null-fs.ts MOUNTPOINT [--tuned]`: prints "mounted" once the node answers,
// unmounts on SIGTERM or SIGINT. A separate process, like the tcefs daemon: a process that made
// synchronous calls into a mount served by its own event loop would deadlock.
import { mkdirSync } from 'node:fs';
import Fuse from 'fuse-native';
import { FUSE_TUNING, TunedFuse } from '../../src/transport/fuse-mount.ts';

type Cb = (...args: any[]) => void;

/** The reply tcefs gives VFIO_CHECK_EXTENSION(VFIO_SPAPR_TCE_v2_IOMMU): "TCER", one answer, result 1. */
const REPLY = Buffer.alloc(48);
REPLY.writeUInt32LE(0x52454354, 0);
REPLY.writeUInt16LE(1, 4);
REPLY.writeUInt16LE(1, 6);
REPLY.writeUInt32LE(48, 8);
REPLY.writeUInt32LE(32, 16);
REPLY.writeUInt16LE(1, 20);
REPLY.writeUInt32LE(0x3b65, 24);
REPLY.writeBigInt64LE(1n, 32);

const mnt = process.argv[2];
const tuned = process.argv.includes('--tuned');
if (!mnt) {
  console.error('usage: null-fs.ts MOUNTPOINT [--tuned]');
  process.exit(2);
}
mkdirSync(mnt, { recursive: true });

const now = new Date();
const stat = (mode: number, size: number) => ({ mode, size, uid: process.getuid!(), gid: process.getgid!(), atime: now, mtime: now, ctime: now, nlink: 1 });
const fuse = new TunedFuse(
  mnt,
  {
    getattr(path: string, cb: Cb) {
      if (path === '/') return cb(0, stat(0o40755, 4096));
      if (path === '/null' || path === '/null2') return cb(0, stat(0o100666, 0));
      cb(Fuse.ENOENT);
    },
    readdir(path: string, cb: Cb) {
      cb(path === '/' ? 0 : Fuse.ENOENT, path === '/' ? ['null', 'null2'] : undefined);
    },
    open(_path: string, _flags: number, cb: Cb) {
      cb(0, 1);
    },
    release(_path: string, _fh: number, cb: Cb) {
      cb(0);
    },
    write(_path: string, _fh: number, _buf: Buffer, len: number, _pos: number, cb: Cb) {
      cb(len);
    },
    read(_path: string, _fh: number, buf: Buffer, _len: number, _pos: number, cb: Cb) {
      REPLY.copy(buf);
      cb(REPLY.length);
    },
  },
  { ...(tuned ? FUSE_TUNING : {}), force: true, mkdir: true, fsname: 'tcefs-null', subtype: 'tcefs-null' },
);

fuse.mount((err: Error | null) => {
  if (err) {
    console.error(`null-fs: mount failed: ${err.message}`);
    process.exit(1);
  }
  console.log('mounted');
});

const stop = () =>
  fuse.unmount(() => {
    process.exit(0);
  });
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
