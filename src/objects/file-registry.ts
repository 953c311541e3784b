// Every open file by handle. A handle is what a client puts in an fd-valued field (the daemon cannot
// see the client's fd table), and it is also the FUSE file handle. Handles are random 31-bit numbers so
// that one client cannot name another's files by counting.
//
// Files created by an ioctl that returns an fd (VFIO_GROUP_GET_DEVICE_FD) start "pending": the client
// claims one by opening .tcefs/fd/<handle>, which makes that open() return the pending file.
import { randomInt } from 'node:crypto';
import createDebug from 'debug';
import { HANDLE_FOREIGN, HANDLE_NONE } from '../transport/frame.ts';
import type { OpenFile } from '../dispatch/open-file.ts';

const trace = createDebug('tcefs:files');
const warn = createDebug('tcefs:error');

/** A failing release is a tcefs bug, never the client's: log it and keep serving. */
function safeRelease(f: OpenFile): void {
  try {
    f.release();
  } catch (e) {
    warn('internal error releasing %s: %O', f, e);
  }
}

/** Unclaimed pending files are released after this long, so a client that never claims cannot pin a device. */
export const CLAIM_TIMEOUT_MS = 30_000;

export class FileRegistry {
  /** Run after every release (the daemon prunes per-process records there). */
  afterRelease?: () => void;
  private readonly open = new Map<number, OpenFile>();
  private readonly pending = new Map<number, { file: OpenFile; timer: NodeJS.Timeout; creator: number }>();
  private readonly reserved = new Set<number>();

  private newHandle(): number {
    for (;;) {
      const h = randomInt(1, 0x7fffffff);
      if (h !== HANDLE_NONE && h !== HANDLE_FOREIGN && !this.open.has(h) && !this.pending.has(h) && !this.reserved.has(h)) return h;
    }
  }

  /** A handle for something that is not a file object (a text node's open), kept out of everyone's way. */
  reserve(): number {
    const h = this.newHandle();
    this.reserved.add(h);
    return h;
  }

  unreserve(handle: number): boolean {
    return this.reserved.delete(handle);
  }

  add(file: OpenFile): number {
    file.handle = this.newHandle();
    this.open.set(file.handle, file);
    trace('open %s', file);
    return file.handle;
  }

  get(handle: number): OpenFile | undefined {
    return this.open.get(handle);
  }

  /** Release a file: called on the last close of its FUSE handle. Release cannot fail, so it never throws. */
  remove(handle: number): void {
    const f = this.open.get(handle);
    if (!f) return;
    this.open.delete(handle);
    trace('release %s', f);
    for (const [h, p] of this.pending) if (p.creator === handle) this.dropPending(h);
    safeRelease(f);
    this.afterRelease?.();
  }

  /**
   * A file an ioctl of `creator` made, waiting to be claimed. It goes if unclaimed after
   * CLAIM_TIMEOUT_MS, or at once when its creator is released (a client killed before claiming).
   */
  addPending(file: OpenFile, creator: number): number {
    file.handle = this.newHandle();
    const timer = setTimeout(() => this.dropPending(file.handle), CLAIM_TIMEOUT_MS);
    timer.unref();
    this.pending.set(file.handle, { file, timer, creator });
    trace('pending %s', file);
    return file.handle;
  }

  isPending(handle: number): boolean {
    return this.pending.has(handle);
  }

  /** Turn a pending file into an open one; undefined if there is none (already claimed or expired). */
  claim(handle: number): OpenFile | undefined {
    const p = this.pending.get(handle);
    if (!p) return undefined;
    clearTimeout(p.timer);
    this.pending.delete(handle);
    this.open.set(handle, p.file);
    trace('claimed %s', p.file);
    return p.file;
  }

  private dropPending(handle: number): void {
    const p = this.pending.get(handle);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(handle);
    trace('unclaimed %s released', p.file);
    safeRelease(p.file);
    this.afterRelease?.();
  }

  /** Release everything (daemon shutdown). */
  releaseAll(): void {
    for (const h of [...this.pending.keys()]) this.dropPending(h);
    for (const h of [...this.open.keys()]) this.remove(h);
  }

  get size(): number {
    return this.open.size + this.pending.size;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  list(): OpenFile[] {
    return [...this.open.values()];
  }
}
