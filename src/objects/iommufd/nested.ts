// Nested HWPTs: IOMMU_HWPT_ALLOC whose pt_id names a nesting parent (a paging HWPT made with
// IOMMU_HWPT_ALLOC_NEST_PARENT) or a vIOMMU, and IOMMU_HWPT_INVALIDATE, which hands the caller's array of
// driver invalidation entries to a nested HWPT or a vIOMMU. The core's checks come first, in
// drivers/iommu/iommufd's order; the backend's driver (DeviceIommu.allocNested, Viommu) does the rest.
// A TCE domain is never a nesting parent (the TCE backend takes no HWPT_ALLOC flags), so on a TCE host
// every nested allocation is EINVAL and every invalidation finds nothing to invalidate, as on POWER.
import type { IoctlCall } from '../../dispatch/call.ts';
import { EINVAL, EOPNOTSUPP, Errno } from '../../errno.ts';
import { IOMMUFD } from '../../uapi/constants.ts';
import type { HwptData, NestedHwpt, PagingHwpt, Viommu } from './backend.ts';
import type { IommufdFile } from './context.ts';
import type { IommufdDevice } from './device.ts';
import type { IommufdObject } from './id-table.ts';
import { processReader, UserDataArray, type InvalidateResult } from './user-data.ts';

/** Flags a nested allocation may carry; FAULT_ID_VALID is the core's. */
const NESTED_FLAGS = IOMMUFD.IOMMU_HWPT_FAULT_ID_VALID | IOMMUFD.IOMMU_HWPT_ALLOC_PASID;
/** The kernel's bound on one invalidation batch. */
const INVALIDATE_ENTRY_NUM_MAX = 1 << 19;

/** The driver data of the call, read from the caller only when the driver copies it. */
function lazyData(call: IoctlCall): HwptData {
  let bytes: Buffer | undefined;
  return {
    type: call.get('data_type'),
    length: call.get('data_len'),
    read: () => (bytes ??= call.readPointer('data_uptr')),
  };
}

/**
 * IOMMU_HWPT_ALLOC on a nesting parent or a vIOMMU: the nested HWPT, not yet in the table. The caller has
 * checked __reserved, data_type against data_len and the device.
 */
export function allocNested(call: IoctlCall, dev: IommufdDevice, pt: IommufdObject): NestedHwpt {
  const flags = call.get('flags');
  const data = lazyData(call);
  if (pt.kind === 'viommu') {
    const viommu = pt as Viommu;
    if (viommu.backend !== dev.iommu.backend) throw new Errno(EINVAL, `vIOMMU ${viommu.id} is of another IOMMU`);
    if (flags & ~NESTED_FLAGS || !data.length || !viommu.allocNested) throw new Errno(EOPNOTSUPP, `flags 0x${flags.toString(16)} or no driver data`);
    return viommu.allocNested(flags & ~IOMMUFD.IOMMU_HWPT_FAULT_ID_VALID, data);
  }
  const parent = pt as PagingHwpt;
  if (flags & ~NESTED_FLAGS || !data.length || !dev.iommu.allocNested) throw new Errno(EOPNOTSUPP, `flags 0x${flags.toString(16)}, no driver data, or a backend that cannot nest`);
  if (parent.auto || !parent.nestParent || parent.backend !== dev.iommu.backend) throw new Errno(EINVAL, `HWPT ${parent.id} is not a nesting parent for this device`);
  return dev.iommu.allocNested(parent, flags & ~IOMMUFD.IOMMU_HWPT_FAULT_ID_VALID, data);
}

/** IOMMU_HWPT_INVALIDATE: entry_num is written back on every path, with the entries done. */
function invalidate(f: IommufdFile, call: IoctlCall): void {
  let done = 0;
  try {
    if (call.get('__reserved')) throw new Errno(EOPNOTSUPP, '__reserved');
    const num = call.get('entry_num');
    const len = call.get('entry_len');
    const uptr = call.get64('data_uptr');
    // Bounded so that one call cannot keep the daemon busy; entry_len also bounds the zero scan per entry.
    if (num && (uptr === 0n || !len || len > Number(f.daemon.host.memory.pageSize) || num > INVALIDATE_ENTRY_NUM_MAX)) {
      throw new Errno(EINVAL, 'entry array');
    }
    const o = f.objects.get(call.get('hwpt_id'));
    let target: { invalidate?(a: UserDataArray): InvalidateResult };
    if (o.kind === 'hwpt_nested' || o.kind === 'viommu') target = o as NestedHwpt | Viommu;
    else throw new Errno(EINVAL, `object ${o.id} is neither a nested HWPT nor a vIOMMU`);
    if (!target.invalidate) throw new Errno(EOPNOTSUPP, `${o.kind} ${o.id} takes no invalidations`);
    const r = target.invalidate(new UserDataArray(call.get('data_type'), uptr, len, num, processReader(call.pid)));
    done = r.done;
    if (r.error) throw r.error;
  } finally {
    call.set('entry_num', done);
    call.respond();
  }
}

export const nestedCommands = {
  IOMMU_HWPT_INVALIDATE: invalidate,
};
