// The bytes of a client's memory, for the test ops that copy to and from it (ACCESS_RW's buffer and the
// memory behind an IOAS area) through /proc/<pid>/mem. The selftests copy a few bytes thousands of times
// in a row, so a process's handle stays open until it has been idle for a moment; none outlives that.
import { closeSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { readMaps, type Mapping } from '../../../devices/process-maps.ts';

const uid = process.getuid?.() ?? 0;
/** A handle unused this long is closed. */
const IDLE_MS = 1000;

const handles = new Map<number, { fd: number; timer: NodeJS.Timeout }>();

function closeHandle(pid: number): void {
  const h = handles.get(pid);
  if (!h) return;
  handles.delete(pid);
  clearTimeout(h.timer);
  try {
    closeSync(h.fd);
  } catch {
    // already gone
  }
}

function handle(pid: number): number {
  const h = handles.get(pid);
  if (h) {
    h.timer.refresh();
    return h.fd;
  }
  // Only a process of the daemon's own user, as device DMA into client memory (client-memory.ts).
  if (statSync(`/proc/${pid}`).uid !== uid) throw new Error(`process ${pid} is another user's`);
  const fd = openSync(`/proc/${pid}/mem`, 'r+');
  const timer = setTimeout(() => closeHandle(pid), IDLE_MS);
  timer.unref();
  handles.set(pid, { fd, timer });
  return fd;
}

/** Open /proc/<pid>/mem handles (leak checks). */
export function openMemHandles(): number {
  return handles.size;
}

function transfer(fd: number, ua: bigint, buf: Buffer, write: boolean): boolean {
  for (let done = 0; done < buf.length; ) {
    const at = Number(ua) + done;
    const n = write ? writeSync(fd, buf, done, buf.length - done, at) : readSync(fd, buf, done, buf.length - done, at);
    if (n <= 0) return false;
    done += n;
  }
  return true;
}

/** Read (write === false) or write `buf` at `ua` of `pid`; false when the process or a page is not there. */
export function procMemIo(pid: number, ua: bigint, buf: Buffer, write: boolean): boolean {
  // A failure on a kept handle may only mean its process is gone and the pid reused: try a fresh one.
  for (let attempt = 0; attempt < 2; attempt++) {
    const kept = handles.has(pid);
    try {
      if (transfer(handle(pid), ua, buf, write)) return true;
    } catch {
      // not there (any more)
    }
    closeHandle(pid);
    if (!kept) return false;
  }
  return false;
}

/** How many processes' shared mappings SharedBackings keeps (the most recently pinned). */
const MAX_OWNERS = 64;

/**
 * The shared mappings a process had when its pages were pinned. A pinned page outlives its process; when
 * the page is shared memory, the daemon can still reach it through another process that maps the same
 * object (a forked test's child maps the parent's MAP_SHARED buffer, pins it, and exits).
 */
export class SharedBackings {
  private readonly byOwner = new Map<string, Mapping[]>();

  remember(owner: string, maps: Mapping[], ua: bigint, length: bigint): void {
    const end = ua + length;
    const shared = maps.filter((m) => m.perms[3] === 's' && m.inode !== 0n && m.start < end && ua < m.end);
    if (!shared.length) return;
    const list = this.byOwner.get(owner) ?? [];
    this.byOwner.delete(owner);
    for (const m of shared) if (!list.some((x) => x.start === m.start && x.end === m.end && x.inode === m.inode && x.dev === m.dev)) list.push(m);
    this.byOwner.set(owner, list);
    if (this.byOwner.size > MAX_OWNERS) this.byOwner.delete(this.byOwner.keys().next().value!);
  }

  /** The shared mapping of `owner` that held [ua, ua + length) when it was pinned. */
  find(owner: string, ua: bigint, length: bigint): Mapping | undefined {
    return this.byOwner.get(owner)?.find((m) => m.start <= ua && ua + length <= m.end);
  }
}

/** Bytes at `offset` of the shared object (dev, inode), through a shared mapping of it in `pid`. */
function viaSharedMapping(dev: bigint, inode: bigint, offset: bigint, buf: Buffer, write: boolean, pid: number): boolean {
  const end = offset + BigInt(buf.length);
  const m = readMaps(pid).find((x) => x.perms[3] === 's' && x.dev === dev && x.inode === inode && x.offset <= offset && end <= x.offset + (x.end - x.start));
  return !!m && procMemIo(pid, m.start + (offset - m.offset), buf, write);
}

/**
 * Move bytes of a pinned-memory owner (`pid:<n>` at an address, or `memfd:<dev>:<ino>` at a file
 * offset) through `viaPid`, the calling process, where the owner cannot be reached itself: a memfd
 * through the caller's shared mapping of it, a process that is gone through the caller's mapping of the
 * shared memory it had pinned.
 */
export function ownerMemIo(owner: string, addr: bigint, buf: Buffer, write: boolean, viaPid: number, shared?: SharedBackings): boolean {
  const pid = /^pid:(\d+)$/.exec(owner)?.[1];
  if (pid !== undefined) {
    if (procMemIo(Number(pid), addr, buf, write)) return true;
    const m = shared?.find(owner, addr, BigInt(buf.length));
    return !!m && viaSharedMapping(m.dev, m.inode, m.offset + (addr - m.start), buf, write, viaPid);
  }
  const file = /^memfd:(\d+):(\d+)$/.exec(owner);
  return !!file && viaSharedMapping(BigInt(file[1]), BigInt(file[2]), addr, buf, write, viaPid);
}
