// Dirty tracking on paging HWPTs: IOMMU_HWPT_SET_DIRTY_TRACKING and IOMMU_HWPT_GET_DIRTY_BITMAP, with the
// core's checks in drivers/iommu/iommufd's order (flags and reserved fields, the HWPT, the range against
// the IOAS and page_size, then the domain's dirty ops). The domain (backend.ts DirtyOps) says which leaves
// are dirty; the core turns them into bits of the user's bitmap, which it reaches in the caller's memory.
// A TCE domain has no dirty ops (TCEs carry no dirty bit): EOPNOTSUPP, as a POWER kernel answers.
import type { IoctlCall } from '../../dispatch/call.ts';
import { EINVAL, EOPNOTSUPP, EOVERFLOW, Errno } from '../../errno.ts';
import { IOMMUFD } from '../../uapi/constants.ts';
import type { PagingHwpt } from './backend.ts';
import type { IommufdFile } from './context.ts';
import { DirtyBitmap, orInto } from './dirty-bitmap.ts';
import { U64_MAX } from './ranges.ts';
import { readUserMemory, writeUserMemory } from './user-memory.ts';

function setDirtyTracking(f: IommufdFile, call: IoctlCall): void {
  if (call.get('flags') & ~IOMMUFD.IOMMU_HWPT_DIRTY_TRACKING_ENABLE) throw new Errno(EOPNOTSUPP, 'flags');
  const hwpt = f.objects.get<PagingHwpt>(call.get('hwpt_id'), 'hwpt_paging');
  if (!hwpt.dirty) throw new Errno(EOPNOTSUPP, `HWPT ${hwpt.id} has no dirty tracking`);
  hwpt.dirty.setTracking(!!(call.get('flags') & IOMMUFD.IOMMU_HWPT_DIRTY_TRACKING_ENABLE));
}

/** iommufd_check_iova_range: the range must be whole pages of the IOAS and of page_size. */
export function checkDirtyRange(iovaAlignment: bigint, iova: bigint, length: bigint, pageSize: bigint): void {
  if (length === 0n) throw new Errno(EINVAL, 'length 0');
  const last = iova + length - 1n;
  if (last > U64_MAX) throw new Errno(EOVERFLOW, 'iova + length wraps');
  const align = iovaAlignment - 1n;
  if (iova & align || (last + 1n) & align) throw new Errno(EINVAL, 'range not aligned to the IOAS');
  if (pageSize === 0n) throw new Errno(EINVAL, 'page_size 0');
  // The kernel masks with page_size - 1 whether or not it is a power of two.
  const mask = BigInt.asUintN(64, pageSize - 1n);
  if (iova & mask || BigInt.asUintN(64, last + 1n) & mask) throw new Errno(EINVAL, 'range not aligned to page_size');
}

function getDirtyBitmap(f: IommufdFile, call: IoctlCall): void {
  const flags = call.get('flags');
  if (flags & ~IOMMUFD.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR || call.get('__reserved')) throw new Errno(EOPNOTSUPP, 'flags or __reserved');
  const hwpt = f.objects.get<PagingHwpt>(call.get('hwpt_id'), 'hwpt_paging');
  const iova = call.get64('iova');
  const length = call.get64('length');
  const pageSize = call.get64('page_size');
  checkDirtyRange(hwpt.ioas.iovaAlignment, iova, length, pageSize);
  if (!hwpt.dirty) throw new Errno(EOPNOTSUPP, `HWPT ${hwpt.id} has no dirty tracking`);
  const bitmap = new DirtyBitmap(iova, length, pageSize);
  const noClear = !!(flags & IOMMUFD.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR);
  hwpt.dirty.readAndClear(iova, iova + length - 1n, noClear, (start, len) => bitmap.record(start, len));
  const data = call.get64('data');
  for (const span of bitmap.spans()) {
    // The kernel pins the bitmap's pages as it goes and drops the bits of a page it cannot pin: the
    // call still succeeds, and the leaves were cleared all the same.
    try {
      const at = data + span.offset;
      writeUserMemory(call.pid, at, orInto(readUserMemory(call.pid, at, span.bits.length), span.bits));
    } catch (e) {
      if (!(e instanceof Errno)) throw e;
    }
  }
}

export const dirtyCommands = {
  IOMMU_HWPT_SET_DIRTY_TRACKING: setDirtyTracking,
  IOMMU_HWPT_GET_DIRTY_BITMAP: getDirtyBitmap,
};
