// The iommufd commands whose feature tcefs does not have (hardware queues, noiommu DMA; dirty tracking,
// nesting and vIOMMUs have files of their own, where a TCE domain is answered as POWER would). Each runs
// the kernel handler's checks in its order (drivers/iommu/iommufd: flags and reserved fields, then object lookups, then the driver's answer),
// so a caller learns exactly what it would learn from a POWER kernel: a bad argument gets the errno of the
// first bad field, a good one the errno of the missing feature. None of them changes any state.
import type { IoctlCall } from '../../dispatch/call.ts';
import { EINVAL, EOPNOTSUPP, EOVERFLOW, Errno } from '../../errno.ts';
import { IOMMUFD } from '../../uapi/constants.ts';
import type { IommufdFile } from './context.ts';
import { U64_MAX } from './ranges.ts';

function hwQueueAlloc(f: IommufdFile, call: IoctlCall): void {
  if (call.get('flags') || call.get('type') === IOMMUFD.IOMMU_HW_QUEUE_TYPE_DEFAULT) throw new Errno(EOPNOTSUPP, 'flags or type');
  const length = call.get64('length');
  if (length === 0n) throw new Errno(EINVAL, 'length 0');
  if (call.get64('nesting_parent_iova') + length - 1n > U64_MAX) throw new Errno(EOVERFLOW, 'range wraps');
  f.objects.get(call.get('viommu_id'), 'viommu');
  throw new Errno(EOPNOTSUPP, 'no vIOMMU of tcefs has hardware queues');
}

/** NOIOMMU_GET_PA: a kernel built without CONFIG_IOMMUFD_NOIOMMU, as any kernel with a real IOMMU is meant to be. */
function noiommuGetPa(): void {
  throw new Errno(EOPNOTSUPP, 'no noiommu support');
}

export const hostLacksCommands = {
  IOMMU_HW_QUEUE_ALLOC: hwQueueAlloc,
  IOMMU_IOAS_NOIOMMU_GET_PA: noiommuGetPa,
};
