// The bytes of a client's memory, for the test ops that copy to and from it (ACCESS_RW's buffer and the
// memory behind an IOAS area) through /proc/<pid>/mem. The selftests copy a few bytes thousands of times
// in a row, so a process's handle stays open until it has been idle for a moment; none outlives that.
import { closeSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { readMaps } from '../../../devices/process-maps.ts';

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

/**
 * Move bytes of a pinned-memory owner (`pid:<n>` at an address, or `memfd:<dev>:<ino>` at a file
 * offset): a memfd is reached through a shared mapping of it in `viaPid`, the calling process.
 */
export function ownerMemIo(owner: string, addr: bigint, buf: Buffer, write: boolean, viaPid: number): boolean {
  const pid = /^pid:(\d+)$/.exec(owner)?.[1];
  if (pid !== undefined) return procMemIo(Number(pid), addr, buf, write);
  const file = /^memfd:(\d+):(\d+)$/.exec(owner);
  if (!file) return false;
  const end = addr + BigInt(buf.length);
  const m = readMaps(viaPid).find((x) => x.perms[3] === 's' && x.dev === BigInt(file[1]) && x.inode === BigInt(file[2]) && x.offset <= addr && end <= x.offset + (x.end - x.start));
  return !!m && procMemIo(viaPid, m.start + (addr - m.offset), buf, write);
}
