// The iommufd commands whose feature tcefs does not have (noiommu DMA; dirty tracking, nesting, vIOMMUs
// and hardware queues have files of their own, where a TCE host is answered as POWER would). Each runs
// the kernel handler's checks in its order (drivers/iommu/iommufd: flags and reserved fields, then object lookups, then the driver's answer),
// so a caller learns exactly what it would learn from a POWER kernel: a bad argument gets the errno of the
// first bad field, a good one the errno of the missing feature. None of them changes any state.
import type { IoctlCall } from '../../dispatch/call.ts';
import { EINVAL, EOPNOTSUPP, EOVERFLOW, Errno } from '../../errno.ts';
import { IOMMUFD } from '../../uapi/constants.ts';
import type { IommufdFile } from './context.ts';
import { U64_MAX } from './ranges.ts';

/** NOIOMMU_GET_PA: a kernel built without CONFIG_IOMMUFD_NOIOMMU, as any kernel with a real IOMMU is meant to be. */
function noiommuGetPa(): void {
  throw new Errno(EOPNOTSUPP, 'no noiommu support');
}

export const hostLacksCommands = {
  IOMMU_IOAS_NOIOMMU_GET_PA: noiommuGetPa,
};
