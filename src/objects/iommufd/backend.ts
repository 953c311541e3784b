// What iommufd's objects need of an IOMMU backend, so that devices, HWPTs and the IOAS are written
// against these interfaces and not against one driver: the TCE IOMMU (src/tce, hwpt.ts, tce-iommu.ts)
// or the selftest's mock IOMMU (src/mock). The kernel draws the same line between iommufd and the
// iommu_ops / iommu_domain_ops of a driver.
import type { FaultQueue } from './eventq.ts';
import type { IommufdObject } from './id-table.ts';
import type { Ioas, IoasDomain } from './ioas.ts';

/** A paging HWPT: an object in the context's table and a domain that the IOAS mirrors its areas into. */
export interface PagingHwpt extends IommufdObject, IoasDomain {
  readonly kind: 'hwpt_paging';
  readonly ioas: Ioas;
  /** Made by an attach to an IOAS; it goes with its last device. */
  readonly auto: boolean;
  /** Which backend made it; a device attaches only to domains of its own backend. */
  readonly backend: string;
  /** Made with IOMMU_HWPT_ALLOC_PASID: it may translate for PASIDs, and the RID beside them. */
  readonly pasidCompat?: boolean;
  /** The fault queue its page requests go to (IOMMU_HWPT_FAULT_ID_VALID); the HWPT holds it until destroyed. */
  fault?: FaultQueue;
}

/** Driver data of IOMMU_HWPT_ALLOC: its type, and the bytes behind data_uptr once the driver wants them. */
export interface HwptData {
  type: number;
  /** copy_from_user of data_len bytes: EFAULT when they cannot be read. */
  read(): Buffer;
}

/** IOMMU_GET_HW_INFO's answer. */
export interface HwInfo {
  type: number;
  data: Buffer;
  capabilities: bigint;
  maxPasidLog2: number;
}

/** The IOMMU side of a device bound to an iommufd (a PCI function behind a PE, a mock device...). */
export interface DeviceIommu {
  readonly backend: string;
  /** Devices with the same group share DMA ownership and must share a domain (an IOMMU group). */
  readonly group: object;
  /** Binding: take the group's DMA for `owner` (EBUSY if another owner holds it), DMA blocked. */
  claim(owner: object): void;
  /** Unbinding: the last device of the group gives its DMA back. */
  unclaim(owner: object): void;
  /** device_iommu_capable(IOMMU_CAP_DIRTY_TRACKING). */
  readonly dirtyCapable: boolean;
  /** IOMMU_GET_HW_INFO for the type asked for (IOMMU_HW_INFO_TYPE_DEFAULT: the driver's own); EOPNOTSUPP otherwise. */
  hwInfo(type: number): HwInfo;
  /**
   * IOMMU_HWPT_ALLOC of a paging domain on `ioas` (not yet in a table), after the core's flag checks;
   * `flags` still holds FAULT_ID_VALID, which the core handles. EOPNOTSUPP for what it cannot make.
   */
  allocPaging(ioas: Ioas, flags: number, data: HwptData | undefined, account: string): PagingHwpt;
  /** The domain an attach to `ioas` makes when no existing automatic one fits (not yet in a table). */
  autoDomain(ioas: Ioas, account: string): PagingHwpt;
  /** Start translating through `hwpt`: EINVAL when this device cannot use it. */
  attach(hwpt: PagingHwpt): void;
  /** Stop translating through `hwpt` (cannot fail); DMA is blocked again. */
  detach(hwpt: PagingHwpt): void;
  /**
   * The driver's set_dev_pasid: translate `pasid` through `hwpt`, or block it (undefined). A backend
   * without it cannot attach PASIDs (EOPNOTSUPP).
   */
  setPasid?(pasid: number, hwpt: PagingHwpt | undefined): void;
}
