// A device on the mock IOMMU (the selftest's "iommufd_mock<N>"): its own IOMMU group, the flags it was
// created with (MOCK_FLAGS_DEVICE_NO_DIRTY, MOCK_FLAGS_DEVICE_PASID), the caches DEV_CHECK_CACHE reads,
// and the domain it translates through. Blocked when attached to nothing.
import { E2BIG, EINVAL, ENOMEM, EOPNOTSUPP, Errno } from '../errno.ts';
import type { DeviceIommu, HwInfo, HwptData, PagingHwpt } from '../objects/iommufd/backend.ts';
import type { Ioas } from '../objects/iommufd/ioas.ts';
import { IOMMUFD } from '../uapi/constants.ts';
import { encode } from '../uapi/layout.ts';
import { iommu_hwpt_selftest, iommu_test_hw_info, SELFTEST } from '../uapi/selftest.ts';
import { MockHwpt } from './domain.ts';
import { MOCK_DEV_CACHE_NUM, MOCK_PASID_WIDTH, type MockTableType } from './geometry.ts';

/** What the mock driver's paging allocation takes; FAULT_ID_VALID is the core's. */
const PAGING_FLAGS = IOMMUFD.IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMUFD.IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMUFD.IOMMU_HWPT_ALLOC_PASID;
/** IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED: a mock device has no ATS. */
const CAP_ATS_NOT_SUPPORTED = 8n;
const CAP_DIRTY_TRACKING = 1n;

/**
 * iommu_copy_struct_from_user for IOMMU_HWPT_DATA_SELFTEST: at least up to `iotlb`, shorter reads as
 * zero, longer must be zero past the struct (E2BIG).
 */
export function selftestHwptData(data: HwptData): { iotlb: number; pagetableType: number } {
  if (data.type !== SELFTEST.IOMMU_HWPT_DATA_SELFTEST) throw new Errno(EINVAL, `data_type 0x${data.type.toString(16)}`);
  const b = data.read();
  if (b.length < 4) throw new Errno(EINVAL, `${b.length} bytes of selftest data`);
  if (b.subarray(iommu_hwpt_selftest.size).some((x) => x !== 0)) throw new Errno(E2BIG, 'non-zero bytes past iommu_hwpt_selftest');
  return { iotlb: b.readUInt32LE(0), pagetableType: b.length >= 8 ? b.readUInt32LE(4) : 0 };
}

export const MOCK_DEVICE_FLAGS = SELFTEST.MOCK_FLAGS_DEVICE_NO_DIRTY | SELFTEST.MOCK_FLAGS_DEVICE_PASID;

export class MockDevice implements DeviceIommu {
  readonly backend = 'mock';
  /** A mock device is alone in its group. */
  readonly group = {};
  readonly cache = new Array<number>(MOCK_DEV_CACHE_NUM).fill(SELFTEST.IOMMU_TEST_DEV_CACHE_DEFAULT);
  /** The answers the device got to its page requests (IOMMUFD_PAGE_RESP_*), oldest first. */
  readonly pageResponses: number[] = [];
  /** The domain DMA goes through; undefined while blocked. */
  domain?: PagingHwpt;

  constructor(readonly index: number, readonly flags: number, readonly hostPageSize: bigint) {
    if (flags & ~MOCK_DEVICE_FLAGS) throw new Errno(EINVAL, `device flags 0x${flags.toString(16)}`);
  }

  get name(): string {
    return `iommufd_mock${this.index}`;
  }

  get dirtyCapable(): boolean {
    return !(this.flags & SELFTEST.MOCK_FLAGS_DEVICE_NO_DIRTY);
  }

  get pasidCapable(): boolean {
    return !!(this.flags & SELFTEST.MOCK_FLAGS_DEVICE_PASID);
  }

  hwInfo(type: number): HwInfo {
    if (type !== IOMMUFD.IOMMU_HW_INFO_TYPE_DEFAULT && type !== SELFTEST.IOMMU_HW_INFO_TYPE_SELFTEST) throw new Errno(EOPNOTSUPP, `hw info type 0x${type.toString(16)}`);
    return {
      type: SELFTEST.IOMMU_HW_INFO_TYPE_SELFTEST,
      data: encode(iommu_test_hw_info, { test_reg: SELFTEST.IOMMU_HW_INFO_SELFTEST_REGVAL }),
      capabilities: CAP_ATS_NOT_SUPPORTED | (this.dirtyCapable ? CAP_DIRTY_TRACKING : 0n),
      maxPasidLog2: this.pasidCapable ? MOCK_PASID_WIDTH : 0,
    };
  }

  allocPaging(ioas: Ioas, flags: number, data: HwptData | undefined): PagingHwpt {
    const f = flags & ~IOMMUFD.IOMMU_HWPT_FAULT_ID_VALID;
    if (f & ~PAGING_FLAGS || (f & IOMMUFD.IOMMU_HWPT_ALLOC_DIRTY_TRACKING && !this.dirtyCapable)) throw new Errno(EOPNOTSUPP, `flags 0x${flags.toString(16)}`);
    if (data && data.type !== SELFTEST.IOMMU_HWPT_DATA_SELFTEST) throw new Errno(EOPNOTSUPP, `data_type 0x${data.type.toString(16)}`);
    const tableType = data ? selftestHwptData(data).pagetableType : SELFTEST.MOCK_IOMMUPT_DEFAULT;
    if (tableType !== SELFTEST.MOCK_IOMMUPT_DEFAULT && tableType !== SELFTEST.MOCK_IOMMUPT_HUGE) throw new Errno(EOPNOTSUPP, `page table type ${tableType}`);
    return MockHwpt.create(ioas, false, { tableType: tableType as MockTableType, flags: f, hostPageSize: this.hostPageSize });
  }

  /** Created for one context and bound to it at once: nobody else can hold it, nothing to give back. */
  claim(): void {}

  unclaim(): void {}

  autoDomain(ioas: Ioas): PagingHwpt {
    return MockHwpt.create(ioas, true, { tableType: SELFTEST.MOCK_IOMMUPT_DEFAULT, flags: 0, hostPageSize: this.hostPageSize });
  }

  attach(hwpt: PagingHwpt): void {
    if (!(hwpt instanceof MockHwpt)) throw new Errno(EINVAL, `a ${hwpt.backend} domain cannot translate for a mock device`);
    // A domain with dirty tracking refuses a device that cannot report dirty pages.
    if (hwpt.dirtyCapable && !this.dirtyCapable) throw new Errno(EINVAL, 'the device has no dirty tracking');
    hwpt.devices++;
    this.domain = hwpt;
  }

  detach(hwpt: PagingHwpt): void {
    if (hwpt instanceof MockHwpt) hwpt.devices--;
    if (this.domain === hwpt) this.domain = undefined;
  }

  /** Set by a change of IOMMU_TEST_PASID_RESERVED's domain: the next such change fails (pasid.ts). */
  private reservedPasidError = false;

  /**
   * set_dev_pasid. Like the kernel's mock, every second change of IOMMU_TEST_PASID_RESERVED (1024) to a
   * domain fails ENOMEM, so the tests can reach the core's rollback; blocking it clears that.
   */
  setPasid(pasid: number, hwpt: PagingHwpt | undefined): void {
    if (hwpt && !(hwpt instanceof MockHwpt)) throw new Errno(EINVAL, `a ${hwpt.backend} domain cannot translate for a mock device`);
    if (hwpt && this.pasidCapable && pasid >= 1 << MOCK_PASID_WIDTH) throw new Errno(EINVAL, `PASID ${pasid} is past the device's width`);
    if (pasid !== SELFTEST.IOMMU_TEST_PASID_RESERVED) return;
    if (!hwpt) this.reservedPasidError = false;
    else if (this.reservedPasidError) {
      this.reservedPasidError = false;
      throw new Errno(ENOMEM, `the mock fails this change of PASID ${pasid} on purpose`);
    } else this.reservedPasidError = true;
  }
}
