// A nested domain of the mock IOMMU: no table of its own that tcefs walks, only the IOTLB entries the
// selftests seed (iommu_hwpt_selftest.iotlb), check (MD_CHECK_IOTLB) and invalidate (HWPT_INVALIDATE with
// IOMMU_HWPT_INVALIDATE_DATA_SELFTEST). It sits on a nesting parent, or on a vIOMMU (viommu set), and
// holds it while it exists.
import { EINVAL, EOPNOTSUPP, Errno } from '../errno.ts';
import type { HwptData, NestedHwpt } from '../objects/iommufd/backend.ts';
import type { FaultQueue } from '../objects/iommufd/eventq.ts';
import type { IommufdObject } from '../objects/iommufd/id-table.ts';
import { copyDriverData, type InvalidateResult, type UserDataArray } from '../objects/iommufd/user-data.ts';
import { IOMMUFD } from '../uapi/constants.ts';
import { iommu_hwpt_invalidate_selftest, iommu_hwpt_selftest, SELFTEST } from '../uapi/selftest.ts';

/** iommu_hwpt_selftest's first version ends with iotlb. */
const HWPT_SELFTEST_MIN = 4;
/** iommu_hwpt_invalidate_selftest's first version ends with iotlb_id. */
const INVALIDATE_MIN = 8;

/** What a nested domain sits on when made through a vIOMMU: the vIOMMU's devices are looked up there. */
export interface MockViommuLike extends IommufdObject {
  readonly kind: 'viommu';
  /** The virtual ID of the vDEVICE `device` (a DeviceIommu) has on this vIOMMU, if any. */
  virtIdOf(device: object): bigint | undefined;
}

export class MockNestedHwpt implements NestedHwpt {
  readonly kind = 'hwpt_nested';
  readonly backend = 'mock';
  id = 0;
  users = 1;
  fault?: FaultQueue;
  readonly iotlb: number[];

  /** @param holds the nesting parent HWPT, or the vIOMMU it was made through */
  constructor(
    readonly holds: IommufdObject,
    readonly viommu: MockViommuLike | undefined,
    private readonly flags: number,
    iotlb: number,
  ) {
    this.iotlb = new Array<number>(SELFTEST.MOCK_NESTED_DOMAIN_IOTLB_NUM).fill(iotlb);
    holds.users++;
  }

  /** The driver's part of an allocation: flags it takes, then its data (IOMMU_HWPT_DATA_SELFTEST). */
  static create(holds: IommufdObject, viommu: MockViommuLike | undefined, flags: number, data: HwptData): MockNestedHwpt {
    if (flags & ~IOMMUFD.IOMMU_HWPT_ALLOC_PASID) throw new Errno(EOPNOTSUPP, `flags 0x${flags.toString(16)}`);
    if (data.type !== SELFTEST.IOMMU_HWPT_DATA_SELFTEST) throw new Errno(EOPNOTSUPP, `data_type 0x${data.type.toString(16)}`);
    const cfg = copyDriverData(data, SELFTEST.IOMMU_HWPT_DATA_SELFTEST, iommu_hwpt_selftest.size, HWPT_SELFTEST_MIN);
    return new MockNestedHwpt(holds, viommu, flags, cfg.readUInt32LE(0));
  }

  get pasidCompat(): boolean {
    return !!(this.flags & IOMMUFD.IOMMU_HWPT_ALLOC_PASID);
  }

  /** Entries in order until one is bad; the ones before it are done. */
  invalidate(array: UserDataArray): InvalidateResult {
    if (array.type !== SELFTEST.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST) return { done: 0, error: new Errno(EINVAL, `data_type 0x${array.type.toString(16)}`) };
    let done = 0;
    try {
      for (; done < array.entryNum; done++) {
        const inv = array.entry(done, SELFTEST.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, iommu_hwpt_invalidate_selftest.size, INVALIDATE_MIN);
        const flags = inv.readUInt32LE(0);
        const id = inv.readUInt32LE(4);
        if (flags & ~SELFTEST.IOMMU_TEST_INVALIDATE_FLAG_ALL) throw new Errno(EOPNOTSUPP, `entry ${done}: flags 0x${flags.toString(16)}`);
        if (id > SELFTEST.MOCK_NESTED_DOMAIN_IOTLB_ID_MAX) throw new Errno(EINVAL, `entry ${done}: iotlb_id ${id}`);
        if (flags & SELFTEST.IOMMU_TEST_INVALIDATE_FLAG_ALL) this.iotlb.fill(0);
        else this.iotlb[id] = 0;
      }
    } catch (e) {
      if (!(e instanceof Errno)) throw e;
      return { done, error: e };
    }
    return { done };
  }

  destroy(): void {
    if (this.fault) this.fault.users--;
    this.holds.users--;
  }
}
