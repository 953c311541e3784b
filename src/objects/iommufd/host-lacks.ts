// The iommufd commands whose feature a TCE host does not have (vIOMMUs, noiommu DMA; dirty tracking is
// dirty.ts and invalidation nested.ts, where a TCE domain has no dirty ops and is never a nesting parent). Each runs the kernel handler's checks in its
// order (drivers/iommu/iommufd: flags and reserved fields, then object lookups, then the driver's answer),
// so a caller learns exactly what it would learn from a POWER kernel: a bad argument gets the errno of the
// first bad field, a good one the errno of the missing feature. None of them changes any state.
import type { IoctlCall } from '../../dispatch/call.ts';
import { EINVAL, ENOENT, EOPNOTSUPP, EOVERFLOW, Errno } from '../../errno.ts';
import { IOMMUFD } from '../../uapi/constants.ts';
import type { IommufdFile } from './context.ts';
import type { HwptPaging } from './hwpt.ts';
import type { IommufdDevice } from './device.ts';
import { U64_MAX } from './ranges.ts';

/** No vIOMMU can be made on a TCE host, so every vIOMMU ID names nothing (or an object of another kind). */
function noViommu(id: number): never {
  throw new Errno(ENOENT, `no viommu ${id}`);
}

/** VIOMMU_ALLOC: the device is found, but its TCE IOMMU offers no vIOMMU type. */
function viommuAlloc(f: IommufdFile, call: IoctlCall): void {
  if (call.get('flags') || call.get('type') === IOMMUFD.IOMMU_VIOMMU_TYPE_DEFAULT) throw new Errno(EOPNOTSUPP, 'flags or type');
  f.objects.get<IommufdDevice>(call.get('dev_id'), 'device');
  throw new Errno(EOPNOTSUPP, 'a TCE IOMMU has no vIOMMU');
}

function vdeviceAlloc(_f: IommufdFile, call: IoctlCall): void {
  noViommu(call.get('viommu_id'));
}

function hwQueueAlloc(f: IommufdFile, call: IoctlCall): void {
  if (call.get('flags') || call.get('type') === IOMMUFD.IOMMU_HW_QUEUE_TYPE_DEFAULT) throw new Errno(EOPNOTSUPP, 'flags or type');
  const length = call.get64('length');
  if (length === 0n) throw new Errno(EINVAL, 'length 0');
  if (call.get64('nesting_parent_iova') + length - 1n > U64_MAX) throw new Errno(EOVERFLOW, 'range wraps');
  noViommu(call.get('viommu_id'));
}

/** NOIOMMU_GET_PA: a kernel built without CONFIG_IOMMUFD_NOIOMMU, as any kernel with a real IOMMU is meant to be. */
function noiommuGetPa(): void {
  throw new Errno(EOPNOTSUPP, 'no noiommu support');
}

export const hostLacksCommands = {
  IOMMU_VIOMMU_ALLOC: viommuAlloc,
  IOMMU_VDEVICE_ALLOC: vdeviceAlloc,
  IOMMU_HW_QUEUE_ALLOC: hwQueueAlloc,
  IOMMU_IOAS_NOIOMMU_GET_PA: noiommuGetPa,
};
