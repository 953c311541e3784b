// The bytes of a client's memory, for the test ops that copy to and from it (ACCESS_RW's buffer and the
// memory behind an IOAS area) through /proc/<pid>/mem. One open per call: the selftest's copies are
// small, and a handle kept per process would outlive it.
import { closeSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { readMaps } from '../../../devices/process-maps.ts';

const uid = process.getuid?.() ?? 0;

/** Read (write === false) or write `buf` at `ua` of `pid`; false when the process or a page is not there. */
export function procMemIo(pid: number, ua: bigint, buf: Buffer, write: boolean): boolean {
  let fd: number | undefined;
  try {
    // Only a process of the daemon's own user, as device DMA into client memory (client-memory.ts).
    if (statSync(`/proc/${pid}`).uid !== uid) return false;
    fd = openSync(`/proc/${pid}/mem`, write ? 'r+' : 'r');
    for (let done = 0; done < buf.length; ) {
      const at = Number(ua) + done;
      const n = write ? writeSync(fd, buf, done, buf.length - done, at) : readSync(fd, buf, done, buf.length - done, at);
      if (n <= 0) return false;
      done += n;
    }
    return true;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
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
