// The FUSE side: serves the daemon's tree through fuse-native, mounted as fuse-mount.ts says.
import { exec } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import createDebug from 'debug';
import Fuse from 'fuse-native';
import { FUSE_TUNING, TunedFuse } from './fuse-mount.ts';
import { EACCES, EBUSY, EISDIR, ENOENT, ENOTCONN, ETIMEDOUT, Errno } from '../errno.ts';
import type { Daemon } from '../daemon.ts';
import { FrameChannel, REGION_BASE, REGION_DIRECT } from './channel.ts';
import { CONTROL_HELP, runControlText } from '../control.ts';
import { CLAIM_DIR, DEBUG_DIR, RELEASE_DIR, lookup, type Node } from './tree.ts';
import { IRQ_DIR, releaseWaitHandles } from './paths.ts';
import { openAttr, type AttrFile } from './sysfs.ts';
import { now, perf } from '../perf.ts';

const trace = createDebug('tcefs:fuse');

/** Where debugfs would be mounted: the directory holding the state views. */
const DEBUG_ROOT = DEBUG_DIR.slice(0, DEBUG_DIR.lastIndexOf('/'));

/** How long an open that finds its object busy waits for an in-flight release before failing EBUSY
 * (releases nobody waited for: a process that exited without closing). */
const BUSY_OPEN_WAIT_MS = 500;
/**
 * How long a release wait holds out for files that stay open: a not-last close the client could not
 * tell from a last one (the file is shared with a forked child or another process) costs this much.
 */
export const RELEASE_WAIT_MS = 200;
const run = promisify(exec);

type Cb = (...args: any[]) => void;

/** A region write to BAR 0-5, through the direct window or at its own offset (BAR0's overlaps frames). */
function isBarWrite(pos: number): boolean {
  if (pos >= REGION_DIRECT) return (pos - REGION_DIRECT) / REGION_BASE < 6;
  return pos >= REGION_BASE && pos / REGION_BASE < 6;
}

/** A text node's content is fixed at open so a reader never sees a torn view. */
interface TextOpen {
  content: Buffer;
}

export interface MountOptions {
  allowOther?: boolean;
}

export class TcefsFs {
  private fuse?: Fuse;
  private readonly channels = new Map<number, FrameChannel>();
  private readonly texts = new Map<number, TextOpen>();
  private readonly controls = new Set<number>();
  /** Release waits by the handle they wait for; each is called once that handle's file is released. */
  private readonly releaseWaits = new Map<number, Set<() => void>>();
  /** Every release wait not answered yet, so an unmount can answer them first. */
  private readonly unanswered = new Set<(errno: number) => void>();
  private readonly attrs = new Map<number, AttrFile>();
  private readonly uid = process.getuid?.() ?? 0;
  private readonly gid = process.getgid?.() ?? 0;

  constructor(readonly daemon: Daemon, readonly mountpoint: string) {}

  async mount(options: MountOptions = {}): Promise<void> {
    await replaceStaleMount(this.mountpoint);
    const fuse = new TunedFuse(this.mountpoint, this.ops(), {
      ...FUSE_TUNING,
      force: false,
      mkdir: true,
      allowOther: !!options.allowOther,
      defaultPermissions: !!options.allowOther,
      fsname: 'tcefs',
      subtype: 'tcefs',
    });
    await promisify(fuse.mount.bind(fuse))();
    this.fuse = fuse;
    trace('mounted on %s', this.mountpoint);
  }

  async unmount(): Promise<void> {
    const fuse = this.fuse;
    if (!fuse) return;
    this.fuse = undefined;
    for (const finish of [...this.unanswered]) finish(ENOENT);
    await promisify(fuse.unmount.bind(fuse))().catch(async (e: Error) => {
      trace('unmount failed (%s), detaching lazily', e.message);
      await run(`fusermount -uz ${JSON.stringify(this.mountpoint)}`).catch(() => undefined);
    });
    this.daemon.shutdown();
    trace('unmounted %s', this.mountpoint);
  }

  private controlStatus(): string {
    const f = this.daemon.host.faults;
    return `${CONTROL_HELP}# faults: ${f.armed ? 'armed' : 'off'}, ${f.fired} fired, ${f.checks} checks\n`;
  }

  private node(path: string): Node | undefined {
    return lookup(this.daemon.tree, path);
  }

  private stat(node: Node, path: string) {
    const t = this.daemon.started;
    const base = { uid: this.uid, gid: this.gid, atime: t, mtime: t, ctime: t, nlink: 1 };
    switch (node.type) {
      case 'dir':
        // The views show every client's TCEs, addresses and pids; like the kernel's debugfs (0700) they
        // are the mounting user's, which --allow-other (default_permissions) enforces.
        return { ...base, mode: path === DEBUG_ROOT ? 0o40700 : 0o40755, size: 4096, nlink: 2 };
      case 'link':
        return { ...base, mode: 0o120777, size: node.target.length };
      case 'text':
        // A state view's content is fixed at open, not at the stat before it (which the kernel caches for
        // a second), so a size taken here cuts off readers that trust st_size (Node's readFile) once the
        // state has changed. Views report 0, as debugfs files do, and are read to EOF (direct_io).
        return { ...base, mode: 0o100444, size: path.startsWith(DEBUG_DIR + '/') ? 0 : Buffer.byteLength(node.read()) };
      case 'attr':
        return { ...base, mode: 0o100000 | node.attr.mode, size: node.attr.size };
      case 'control':
        return { ...base, mode: 0o100600, size: 0 };
      case 'device':
        // Nodes are regular files (a FUSE mount is nodev); the preload shim reports them as char devices.
        return { ...base, mode: path === '/dev/vfio/vfio' || path === '/dev/iommu' ? 0o100666 : 0o100600, size: 0 };
    }
  }

  private ops() {
    const self = this;
    const claimPrefix = CLAIM_DIR + '/';
    const irqPrefix = IRQ_DIR + '/';
    const releasePrefix = RELEASE_DIR + '/';
    return {
      getattr(path: string, cb: Cb) {
        if (path.startsWith(releasePrefix)) return self.awaitRelease(path.slice(releasePrefix.length), cb);
        const n = self.node(path);
        if (n) return cb(0, self.stat(n, path));
        // A pending file, and one claimed and still open: fstat() on its fd comes here once a write
        // has dropped the attributes the kernel cached at the claim.
        const claimed = path.startsWith(claimPrefix) ? parseInt(path.slice(claimPrefix.length), 16) : NaN;
        if (claimed && (self.daemon.files.isPending(claimed) || self.channels.has(claimed))) {
          return cb(0, self.stat({ type: 'device', open: () => undefined as never }, path));
        }
        if (path.startsWith(irqPrefix) && self.daemon.irqEvents(parseInt(path.slice(irqPrefix.length), 16))) {
          return cb(0, { ...self.stat({ type: 'control' }, path), mode: 0o100400 });
        }
        cb(Fuse.ENOENT);
      },
      readdir(path: string, cb: Cb) {
        const n = self.node(path);
        if (!n) return cb(Fuse.ENOENT);
        if (n.type !== 'dir') return cb(Fuse.ENOTDIR);
        // With a stat per entry libfuse fills in d_type, which walkers test before they stat (DT_LNK, DT_DIR).
        const names = [...n.entries.keys()];
        cb(0, names, names.map((k) => self.stat(n.entries.get(k)!, path === '/' ? `/${k}` : `${path}/${k}`)));
      },
      readlink(path: string, cb: Cb) {
        const n = self.node(path);
        if (!n) return cb(Fuse.ENOENT);
        if (n.type !== 'link') return cb(Fuse.EINVAL);
        cb(0, n.target);
      },
      open(path: string, flags: number, cb: Cb) {
        const deadline = Date.now() + BUSY_OPEN_WAIT_MS;
        const attempt = () => {
          try {
            cb(0, self.open(path, flags));
          } catch (e) {
            // FUSE delivers RELEASE after close() returns. Shim and tcefs_close users wait for it
            // (awaitRelease), but a process that exits without closing, or a plain close(), leaves the
            // old file holding the group a little longer; give its release a moment to arrive first.
            if (e instanceof Errno && e.errno === EBUSY && Date.now() < deadline) return void setTimeout(attempt, 2);
            if (e instanceof Errno) return cb(-e.errno);
            trace('open %s failed: %O', path, e);
            cb(Fuse.EIO);
          }
        };
        attempt();
      },
      read(_path: string, fh: number, buf: Buffer, len: number, pos: number, cb: Cb) {
        // Frame channels first: they are the hot path.
        const ch = self.channels.get(fh);
        if (ch) {
          if (pos >= REGION_BASE) self.daemon.leases.revoke();
          self.daemon.posts.drain(ch.file);
          const t0 = now();
          const r = ch.read(len, pos);
          perf.fuse.add(t0);
          if (typeof r === 'number') return cb(r);
          r.copy(buf);
          return cb(r.length);
        }
        const ev = self.daemon.irqStreams.get(fh);
        if (ev) {
          // Answered when an interrupt fires, a heartbeat is due, or the device file is released.
          return ev.read(len, (r) => (typeof r === 'number' ? cb(r) : cb(r.copy(buf))));
        }
        const a = self.attrs.get(fh);
        if (a) return cb(sysfsCall(() => a.read(len, pos), buf));
        const t = self.texts.get(fh) ?? (self.controls.has(fh) ? { content: Buffer.from(self.controlStatus()) } : undefined);
        if (!t) return cb(Fuse.EBADF);
        cb(t.content.copy(buf, 0, Math.min(pos, t.content.length), Math.min(pos + len, t.content.length)));
      },
      write(_path: string, fh: number, buf: Buffer, len: number, pos: number, cb: Cb) {
        // Whatever a write does (a frame, a region access, a control command, a sysfs store), leases that
        // promised an answer without asking end first (src/transport/leases.ts).
        self.daemon.leases.revoke();
        const ch = self.channels.get(fh);
        // Only a BAR write leaves what a posted-write grant promised as it was (src/transport/posted.ts).
        if (!ch || !isBarWrite(pos)) self.daemon.leases.revokePosts();
        if (ch) {
          self.daemon.posts.drain(ch.file);
          const t0 = now();
          const r = ch.write(len === buf.length ? buf : buf.subarray(0, len), pos);
          perf.fuse.add(t0);
          return cb(r);
        }
        const a = self.attrs.get(fh);
        if (a) return cb(sysfsCall(() => a.write(len === buf.length ? buf : buf.subarray(0, len), pos)));
        if (self.texts.has(fh)) return cb(Fuse.EACCES);
        if (self.controls.has(fh)) {
          try {
            runControlText(self.daemon, buf.subarray(0, len).toString('utf8'));
            return cb(len);
          } catch (e) {
            trace('control: %s', (e as Error).message);
            return cb(e instanceof Errno ? -e.errno : Fuse.EIO);
          }
        }
        cb(Fuse.EBADF);
      },
      release(_path: string, fh: number, cb: Cb) {
        self.daemon.leases.revoke();
        self.daemon.leases.revokePosts();
        const ev = self.daemon.irqStreams.get(fh);
        if (ev) {
          ev.streams--;
          self.daemon.irqStreams.delete(fh);
        }
        if (ev || self.texts.delete(fh) || self.controls.delete(fh) || self.attrs.delete(fh)) {
          self.daemon.files.unreserve(fh);
          return cb(0);
        }
        const ch = self.channels.get(fh);
        if (ch) self.daemon.posts.drop(ch.file);
        self.channels.delete(fh);
        self.daemon.files.remove(fh);
        const waits = self.releaseWaits.get(fh);
        if (waits) for (const w of [...waits]) w();
        cb(0);
      },
      // Nothing in the tree is created by opening it, as sysfs and the VFIO nodes refuse to be (a
      // directory without a create operation answers EACCES).
      create(_path: string, _mode: number, cb: Cb) {
        cb(Fuse.EACCES);
      },
      truncate(path: string, _size: number, cb: Cb) {
        const n = self.node(path);
        const writable = n?.type === 'attr' && !!(n.attr.mode & 0o222);
        cb(!n ? Fuse.ENOENT : n.type === 'device' || n.type === 'control' || writable ? 0 : Fuse.EACCES);
      },
      ftruncate(_path: string, fh: number, _size: number, cb: Cb) {
        cb(self.channels.has(fh) || self.controls.has(fh) || self.attrs.has(fh) ? 0 : Fuse.EACCES);
      },
      statfs(_path: string, cb: Cb) {
        cb(0, { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, favail: 0, fsid: 0, flag: 0, namemax: 255 });
      },
    };
  }

  /**
   * A lookup of .tcefs/release/<h>[.<h>...][-<anything>]: answered ENOENT once none of the hex handles
   * is an open frame file, ETIMEDOUT if some still is after RELEASE_WAIT_MS. The answer is deferred, not
   * the event loop: fuse-native parks only the libfuse thread that carries this lookup, and others go on
   * to deliver the RELEASE being waited for. Both answers are errors, which the kernel does not cache with
   * libfuse's default negative_timeout of 0; clients add a unique suffix all the same.
   */
  private awaitRelease(name: string, cb: Cb): void {
    const open = new Set(releaseWaitHandles(name).filter((h) => this.channels.has(h)));
    if (!open.size) return cb(-ENOENT);
    const waiters = new Map<number, () => void>();
    let timer: NodeJS.Timeout | undefined;
    const finish = (errno: number) => {
      clearTimeout(timer);
      this.unanswered.delete(finish);
      for (const [h, w] of waiters) {
        const waits = this.releaseWaits.get(h);
        waits?.delete(w);
        if (waits && !waits.size) this.releaseWaits.delete(h);
      }
      cb(-errno);
    };
    for (const h of open) {
      const w = () => {
        open.delete(h);
        if (!open.size) finish(ENOENT);
      };
      waiters.set(h, w);
      let waits = this.releaseWaits.get(h);
      if (!waits) this.releaseWaits.set(h, (waits = new Set()));
      waits.add(w);
    }
    this.unanswered.add(finish);
    timer = setTimeout(() => {
      trace('release wait for %s timed out: %d still open', name, open.size);
      finish(ETIMEDOUT);
    }, RELEASE_WAIT_MS);
  }

  private open(path: string, flags: number): number {
    const files = this.daemon.files;
    if (path.startsWith(CLAIM_DIR + '/')) {
      const file = files.claim(parseInt(path.slice(CLAIM_DIR.length + 1), 16));
      if (!file) throw new Errno(ENOENT, `${path} is not pending`);
      this.channels.set(file.handle, new FrameChannel(file, this.daemon.host.faults, this.daemon.posts));
      return file.handle;
    }
    if (path.startsWith(IRQ_DIR + '/')) {
      const ev = this.daemon.irqEvents(parseInt(path.slice(IRQ_DIR.length + 1), 16));
      if (!ev) throw new Errno(ENOENT, `${path}: no such device file`);
      if ((flags & 3) !== 0) throw new Errno(EACCES, `${path} is read-only`);
      const h = files.reserve();
      ev.streams++;
      this.daemon.irqStreams.set(h, ev);
      return h;
    }
    const n = this.node(path);
    if (!n) throw new Errno(ENOENT, path);
    if (n.type === 'dir') throw new Errno(EISDIR, path);
    if (n.type === 'text') {
      if ((flags & 3) !== 0) throw new Errno(EACCES, `${path} is read-only`);
      const h = files.reserve();
      this.texts.set(h, { content: Buffer.from(n.read()) });
      return h;
    }
    if (n.type === 'attr') {
      const file = openAttr(n.attr, flags, 1 << this.daemon.topology.hostPageShift);
      const h = files.reserve();
      this.attrs.set(h, file);
      return h;
    }
    if (n.type === 'link') throw new Errno(ENOENT, path); // the kernel follows links before open
    if (n.type === 'control') {
      const h = files.reserve();
      this.controls.add(h);
      return h;
    }
    const file = n.open(path);
    const h = files.add(file);
    this.channels.set(h, new FrameChannel(file, this.daemon.host.faults, this.daemon.posts));
    return h;
  }
}

/** A sysfs read or write: bytes copied into `out`, or the count, or the Errno as a negative result. */
function sysfsCall(f: () => Buffer | number, out?: Buffer): number {
  try {
    const r = f();
    if (typeof r === 'number') return r;
    return r.copy(out!);
  } catch (e) {
    if (e instanceof Errno) return -e.errno;
    trace('sysfs: %O', e);
    return Fuse.EIO;
  }
}

/** A daemon killed without unmounting leaves its mount point answering ENOTCONN: detach it first. */
/**
 * Whether something is mounted on `mountpoint`, from /proc/self/mounts (the mount itself is not asked);
 * undefined when that cannot be read.
 */
export async function isMountedAt(mountpoint: string): Promise<boolean | undefined> {
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => undefined);
  return mounts?.split('\n').some((l) => l.split(' ')[1] === mountpoint.replace(/ /g, '\\040'));
}

export async function replaceStaleMount(mountpoint: string): Promise<void> {
  if (!(await isMountedAt(mountpoint))) return;
  try {
    // readdir always reaches the daemon; stat may be answered from the kernel's attribute cache.
    await readdir(mountpoint);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).errno === -ENOTCONN || (e as NodeJS.ErrnoException).code === 'ENOTCONN') {
      trace('replacing stale mount on %s', mountpoint);
      await run(`fusermount -uz ${JSON.stringify(mountpoint)}`);
      return;
    }
    throw e;
  }
  throw new Error(`${mountpoint} is already mounted (is another tcefs running there?)`);
}
