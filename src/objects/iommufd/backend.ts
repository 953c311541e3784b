// What iommufd's objects need of an IOMMU backend, so that devices, HWPTs and the IOAS are written
// against these interfaces and not against one driver: the TCE IOMMU (src/tce, hwpt.ts, tce-iommu.ts)
// or the selftest's mock IOMMU (src/mock). The kernel draws the same line between iommufd and the
// iommu_ops / iommu_domain_ops of a driver.
import type { FaultQueue } from './eventq.ts';
import type { IommufdObject } from './id-table.ts';
import type { Ioas, IoasDomain } from './ioas.ts';
import type { InvalidateResult, UserDataArray } from './user-data.ts';

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
  /** Made with IOMMU_HWPT_ALLOC_NEST_PARENT: nested HWPTs and vIOMMUs may sit on it. */
  readonly nestParent?: boolean;
  /** The domain's dirty-tracking ops (made with IOMMU_HWPT_ALLOC_DIRTY_TRACKING); none on a TCE domain. */
  readonly dirty?: DirtyOps;
}

/**
 * A nested HWPT (IOMMU_DOMAIN_NESTED): a stage-1 table user space owns, translated through the stage-2 of
 * a nesting parent, directly or through a vIOMMU. It holds that parent (or vIOMMU) until destroyed.
 */
export interface NestedHwpt extends IommufdObject {
  readonly kind: 'hwpt_nested';
  readonly backend: string;
  readonly pasidCompat?: boolean;
  fault?: FaultQueue;
  /** IOMMU_HWPT_INVALIDATE with driver data; without it, EOPNOTSUPP. */
  invalidate?(array: UserDataArray): InvalidateResult;
}

/**
 * A vIOMMU (IOMMU_VIOMMU_ALLOC): the slice of a physical IOMMU one VM sees, over a nesting parent it holds.
 * Nested HWPTs may be made through it, its vDEVICEs name devices by their virtual IDs, and it takes
 * cache invalidations and reports events to its vEVENTQs.
 */
export interface Viommu extends IommufdObject {
  readonly kind: 'viommu';
  readonly backend: string;
  readonly hwpt: PagingHwpt;
  /** The driver's alloc_domain_nested; without it EOPNOTSUPP. */
  allocNested?(flags: number, data: HwptData): NestedHwpt;
  /** The driver's cache_invalidate; without it EOPNOTSUPP. */
  invalidate?(array: UserDataArray): InvalidateResult;
  /** get_hw_queue_size: whether the driver has hardware queues of `type`; without it, none. */
  hwQueueType?(type: number): boolean;
  /**
   * hw_queue_init_phys for queue `index` over guest memory the core has pinned and holds: what the
   * driver does when the queue goes, or throws (EINVAL, EEXIST, EIO...).
   */
  initHwQueue?(queue: IommufdObject, index: number): () => void;
}

/** What IOMMU_HWPT_SET_DIRTY_TRACKING and IOMMU_HWPT_GET_DIRTY_BITMAP need of a domain (iommu_dirty_ops). */
export interface DirtyOps {
  /** Start or stop recording; starting clears what was recorded, for a clean snapshot. */
  setTracking(enable: boolean): void;
  /**
   * Hand every dirty leaf that meets [iova, last] to `record` (its whole IOVA range) and clear it, unless
   * `noClear`.
   */
  readAndClear(iova: bigint, last: bigint, noClear: boolean, record: (start: bigint, length: bigint) => void): void;
}

/** Driver data of IOMMU_HWPT_ALLOC: its type, and the bytes behind data_uptr once the driver wants them. */
export interface HwptData {
  type: number;
  /** copy_from_user of data_len bytes: EFAULT when they cannot be read. */
  read(): Buffer;
  /** data_len, so that a driver can check the length before it reads. */
  length?: number;
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
  /**
   * The driver's domain_alloc_nested over `parent` (a nesting parent of this backend, checked by the
   * core), not yet in a table; a backend without it cannot nest (EOPNOTSUPP).
   */
  allocNested?(parent: PagingHwpt, flags: number, data: HwptData): NestedHwpt;
  /** get_viommu_size: whether the driver makes vIOMMUs of `type`; a backend without it makes none. */
  viommuType?(type: number): boolean;
  /**
   * viommu_init over the nesting parent `hwpt`, with the driver data if any: the vIOMMU (not yet in a
   * table) and the bytes to copy back to the data (the driver's out fields), if any.
   */
  allocViommu?(type: number, hwpt: PagingHwpt, data: HwptData | undefined): { viommu: Viommu; out?: Buffer };
}
