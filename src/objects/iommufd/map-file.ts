// IOMMU_IOAS_MAP_FILE and IOMMU_IOAS_CHANGE_PROCESS: IOAS areas backed by a memfd instead of a
// process's address space, and moving their pinned-page charge to another process (what a VMM does
// after live update hands its memfds to a new process).
//
// The fd field carries the client's own fd number (not a tcefs handle): the daemon runs on the client's
// machine and looks the file up in /proc/<pid>/fd. A memfd's pages are named by the file (device and
// inode) and the byte offset, so two processes mapping one memfd pin the same pages.
import { readlinkSync, statSync } from 'node:fs';
import type { IoctlCall } from '../../dispatch/call.ts';
import { EBADF, EINVAL, EOPNOTSUPP, EOVERFLOW, Errno } from '../../errno.ts';
import { IOMMUFD } from '../../uapi/constants.ts';
import type { IommufdFile } from './context.ts';
import type { Area, Ioas } from './ioas.ts';
import { clientFile } from '../client-fd.ts';
import { mapDmabuf, type DmaBuf } from './dmabuf.ts';
import { U64_MAX } from './ranges.ts';

const MAP_FLAGS = IOMMUFD.IOMMU_IOAS_MAP_FIXED_IOVA | IOMMUFD.IOMMU_IOAS_MAP_WRITEABLE | IOMMUFD.IOMMU_IOAS_MAP_READABLE;
const RW = IOMMUFD.IOMMU_IOAS_MAP_WRITEABLE | IOMMUFD.IOMMU_IOAS_MAP_READABLE;

/** The memory identity of a client's memfd, or the errno the kernel's fget / pin would give. */
function memfdOf(pid: number, fd: number): { name: string; size: bigint } {
  const at = `/proc/${pid}/fd/${fd}`;
  let link: string;
  try {
    if (!pid || fd < 0) throw new Error('no such fd');
    link = readlinkSync(at);
  } catch {
    throw new Errno(EBADF, `fd ${fd} is not open in process ${pid}`);
  }
  if (link.startsWith('anon_inode:') && link.includes('dmabuf')) throw new Errno(EOPNOTSUPP, 'no dma-buf exporter tcefs knows');
  // Only shmem and hugetlbfs pages can be pinned from a file; anything else fails when it is pinned.
  if (!link.startsWith('/memfd:')) throw new Errno(EINVAL, `fd ${fd} (${link}) is not a memfd`);
  const st = statSync(at, { bigint: true });
  return { name: `memfd:${st.dev}:${st.ino}`, size: st.size };
}

export function mapFile(f: IommufdFile, call: IoctlCall): void {
  const flags = call.get('flags');
  if (flags & ~MAP_FLAGS) throw new Errno(EOPNOTSUPP, 'flags');
  const iova = call.get64('iova');
  const length = call.get64('length');
  if (iova >= U64_MAX || length >= U64_MAX) throw new Errno(EOVERFLOW, 'iova or length');
  if (!(flags & RW)) throw new Errno(EINVAL, 'neither READABLE nor WRITEABLE');
  const ioas = f.ioas(call.get('ioas_id'));
  if (length === 0n) throw new Errno(EINVAL, 'length 0');
  const start = call.get64('start');
  if (start + length - 1n > U64_MAX) throw new Errno(EOVERFLOW, 'start + length wraps');
  const fixed = flags & IOMMUFD.IOMMU_IOAS_MAP_FIXED_IOVA ? iova : undefined;
  // A dma-buf first, as the kernel tries dma_buf_get before it takes the fd as a file to pin.
  const file = clientFile(f.daemon.files, call.pid, call.get('fd'));
  if (file?.kind === 'dmabuf') {
    const buf = file as typeof file & DmaBuf;
    const readable = !!(flags & IOMMUFD.IOMMU_IOAS_MAP_READABLE);
    call.set('iova', mapDmabuf(ioas, buf, start, length, fixed, readable, !!(flags & IOMMUFD.IOMMU_IOAS_MAP_WRITEABLE)));
    call.respond();
    return;
  }
  const { name: memfd, size } = memfdOf(call.pid, call.get('fd'));
  // With a domain the pages are pinned now, and a file pins only the pages it has.
  if (ioas.domains.length && start + length > size) throw new Errno(EINVAL, `the file has ${size} bytes`);
  // The file offset stands where a user address would: it sets the sub-page alignment and names the pages.
  const at = ioas.place(length, start, fixed);
  ioas.insert({
    start: at, last: at + length - 1n, userVa: start, owner: memfd, chargeTo: call.owner,
    readable: !!(flags & IOMMUFD.IOMMU_IOAS_MAP_READABLE), writeable: !!(flags & IOMMUFD.IOMMU_IOAS_MAP_WRITEABLE),
  });
  call.set('iova', at);
  call.respond();
}

/**
 * IOAS_CHANGE_PROCESS: every area of every IOAS must be file-backed (EINVAL otherwise); the caller is
 * charged for all their pinned pages first, so that a charge over its limit changes nothing.
 */
export function changeProcess(f: IommufdFile, call: IoctlCall): void {
  if (call.get('__reserved')) throw new Errno(EOPNOTSUPP, '__reserved');
  const areas: [Ioas, Area][] = [];
  for (const o of f.objects.values()) {
    if (o.kind !== 'ioas') continue;
    const ioas = o as Ioas;
    for (const a of ioas.areas.valuesArray()) {
      if (!a.chargeTo) throw new Errno(EINVAL, `IOAS ${ioas.id} maps user addresses`);
      areas.push([ioas, a]);
    }
  }
  const to = call.owner;
  const host = f.daemon.host;
  const total = areas.reduce((n, [ioas, a]) => n + (a.chargeTo === to ? 0n : ioas.chargedBytes(a)), 0n);
  host.account(to).charge(total);
  for (const [ioas, a] of areas) {
    if (a.chargeTo === to) continue;
    const bytes = ioas.chargedBytes(a);
    host.account(a.chargeTo!).uncharge(bytes);
    host.vm.uncharge(a.chargeTo!, bytes, !!a.lockedVm);
    host.vm.charge(to, bytes, !!a.lockedVm);
    a.chargeTo = to;
  }
}
