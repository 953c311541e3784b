// A device on the mock IOMMU (the selftest's "iommufd_mock<N>"): its own IOMMU group, the flags it was
// created with (MOCK_FLAGS_DEVICE_NO_DIRTY, MOCK_FLAGS_DEVICE_PASID), the caches DEV_CHECK_CACHE reads,
// and the domain it translates through. Blocked when attached to nothing.
import { EINVAL, ENOMEM, Errno } from '../errno.ts';
import type { DeviceIommu, PagingHwpt } from '../objects/iommufd/backend.ts';
import type { Ioas } from '../objects/iommufd/ioas.ts';
import { SELFTEST } from '../uapi/selftest.ts';
import { MockHwpt } from './domain.ts';
import { MOCK_DEV_CACHE_NUM } from './geometry.ts';

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
  private owner?: object;

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

  claim(owner: object): void {
    // Created for one context and bound to it at once: nobody else can hold it.
    this.owner = owner;
  }

  unclaim(): void {
    this.owner = undefined;
  }

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
    if (hwpt && this.pasidCapable && pasid >= 1 << SELFTEST.MOCK_PASID_WIDTH) throw new Errno(EINVAL, `PASID ${pasid} is past the device's width`);
    if (pasid !== SELFTEST.IOMMU_TEST_PASID_RESERVED) return;
    if (!hwpt) this.reservedPasidError = false;
    else if (this.reservedPasidError) {
      this.reservedPasidError = false;
      throw new Errno(ENOMEM, `the mock fails this change of PASID ${pasid} on purpose`);
    } else this.reservedPasidError = true;
  }
}
