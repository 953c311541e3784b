// A client's address space as the kernel's get_user_pages sees it, read from /proc/<pid>/maps: which
// ranges are mapped at all (a pin of an unmapped page is EFAULT), and which pages are a memfd's (the
// same page as the file offset a MAP_FILE area names). The daemon runs on the client's machine.
import { readFileSync } from 'node:fs';

export interface Mapping {
  start: bigint;
  /** One past the last byte. */
  end: bigint;
  perms: string;
  offset: bigint;
  /** makedev(major, minor) of the backing file, 0 for anonymous memory. */
  dev: bigint;
  inode: bigint;
  path: string;
}

/** The mappings of `pid` in address order; empty when the process is gone or unreadable. */
export function readMaps(pid: number): Mapping[] {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/maps`, 'utf8');
  } catch {
    return [];
  }
  const out: Mapping[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const major = BigInt(`0x${m[5]}`);
    const minor = BigInt(`0x${m[6]}`);
    // glibc's makedev, which stat's st_dev follows.
    const dev = (minor & 0xffn) | ((major & 0xfffn) << 8n) | ((minor & ~0xffn) << 12n) | ((major & ~0xfffn) << 32n);
    out.push({ start: BigInt(`0x${m[1]}`), end: BigInt(`0x${m[2]}`), perms: m[3], offset: BigInt(`0x${m[4]}`), dev, inode: BigInt(m[7]), path: m[8] });
  }
  return out;
}

/** Whether every byte of [ua, ua + length) is mapped (contiguous mappings may be several). */
export function isMapped(maps: Mapping[], ua: bigint, length: bigint): boolean {
  let at = ua;
  const end = ua + length;
  for (const m of maps) {
    if (m.end <= at) continue;
    if (m.start > at) return false;
    at = m.end;
    if (at >= end) return true;
  }
  return at >= end;
}

/**
 * What backs the page at `ua`, named as pinned memory names it: a memfd's `memfd:<dev>:<ino>` and the
 * file offset, or the process itself (`pid:<pid>`) and the address; `end` is where the mapping that
 * holds it ends (the backing runs on linearly up to there). Undefined where nothing is mapped.
 */
export function backingOf(maps: Mapping[], pid: number, ua: bigint): { owner: string; addr: bigint; end: bigint } | undefined {
  const m = maps.find((x) => x.start <= ua && ua < x.end);
  if (!m) return undefined;
  if (m.path.startsWith('/memfd:') && m.perms[3] === 's') return { owner: `memfd:${m.dev}:${m.inode}`, addr: m.offset + (ua - m.start), end: m.end };
  return { owner: `pid:${pid}`, addr: ua, end: m.end };
}
