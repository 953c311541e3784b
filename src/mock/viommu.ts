// The mock IOMMU's vIOMMU (IOMMU_VIOMMU_TYPE_SELFTEST): nested domains made through it, the cache
// invalidations of IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST (which zero a vDEVICE's device caches that
// DEV_CHECK_CACHE reads), the loopback of iommu_viommu_selftest (out_data = in_data), and hardware
// queues (IOMMU_HW_QUEUE_TYPE_SELFTEST) made in index order.
import { EEXIST, EINVAL, EIO, EOPNOTSUPP, Errno } from '../errno.ts';
import type { HwptData, PagingHwpt } from '../objects/iommufd/backend.ts';
import type { IommufdObject } from '../objects/iommufd/id-table.ts';
import { copyDriverData, type InvalidateResult, type UserDataArray } from '../objects/iommufd/user-data.ts';
import { ViommuCore } from '../objects/iommufd/viommu.ts';
import { iommu_viommu_invalidate_selftest, iommu_viommu_selftest, SELFTEST } from '../uapi/selftest.ts';
import { MockDevice } from './device.ts';
import { MockNestedHwpt } from './nested.ts';

/** iommu_viommu_selftest's first version ends with out_data. */
const VIOMMU_DATA_MIN = 8;

export class MockViommu extends ViommuCore {
  constructor(hwpt: PagingHwpt, readonly inData: number) {
    super('mock', hwpt, SELFTEST.IOMMU_VIOMMU_TYPE_SELFTEST);
  }

  /**
   * viommu_init: with data, the loopback answer. The kernel's mock also maps two pages of its own for
   * the caller to mmap; tcefs has no mmap of the iommufd (a FUSE file cannot be mapped), so the offset and
   * length it reports are zero.
   */
  static create(hwpt: PagingHwpt, data: HwptData | undefined): { viommu: MockViommu; out?: Buffer } {
    if (!data) return { viommu: new MockViommu(hwpt, 0) };
    const cfg = copyDriverData(data, SELFTEST.IOMMU_VIOMMU_TYPE_SELFTEST, iommu_viommu_selftest.size, VIOMMU_DATA_MIN);
    const inData = cfg.readUInt32LE(0);
    cfg.writeUInt32LE(inData, 4);
    return { viommu: new MockViommu(hwpt, inData), out: cfg.subarray(0, data.length ?? cfg.length) };
  }

  /** Hardware queues by index; a queue past index 0 depends on the one before it. */
  private readonly queues: (IommufdObject | undefined)[] = new Array(SELFTEST.IOMMU_TEST_HW_QUEUE_MAX).fill(undefined);

  hwQueueType(type: number): boolean {
    return type === SELFTEST.IOMMU_HW_QUEUE_TYPE_SELFTEST;
  }

  /** Queues are made in index order; each holds the one before it (EBUSY on its destroy), as iommufd_hw_queue_depend makes it. */
  initHwQueue(queue: IommufdObject, index: number): () => void {
    if (index >= SELFTEST.IOMMU_TEST_HW_QUEUE_MAX) throw new Errno(EINVAL, `queue index ${index}`);
    if (this.queues[index]) throw new Errno(EEXIST, `queue ${index} exists`);
    const prev = index ? this.queues[index - 1] : undefined;
    if (index && !prev) throw new Errno(EIO, `queue ${index - 1} does not exist yet`);
    if (prev) prev.users++;
    this.queues[index] = queue;
    return () => {
      this.queues[index] = undefined;
      if (prev) prev.users--;
    };
  }

  allocNested(flags: number, data: HwptData): MockNestedHwpt {
    return MockNestedHwpt.create(this, this, flags, data);
  }

  /** Entries in order until one is bad; an empty array of the right type only checks the type. */
  invalidate(array: UserDataArray): InvalidateResult {
    if (array.entryNum === 0 && array.type === SELFTEST.IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST) return { done: 0 };
    let entries: Buffer[];
    try {
      entries = array.all(SELFTEST.IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, iommu_viommu_invalidate_selftest.size);
    } catch (e) {
      if (!(e instanceof Errno)) throw e;
      return { done: 0, error: e };
    }
    let done = 0;
    try {
      for (; done < entries.length; done++) {
        const inv = entries[done];
        const flags = inv.readUInt32LE(0);
        const virtId = BigInt(inv.readUInt32LE(4));
        const cacheId = inv.readUInt32LE(8);
        if (flags & ~SELFTEST.IOMMU_TEST_INVALIDATE_FLAG_ALL) throw new Errno(EOPNOTSUPP, `entry ${done}: flags 0x${flags.toString(16)}`);
        if (cacheId > SELFTEST.MOCK_DEV_CACHE_ID_MAX) throw new Errno(EINVAL, `entry ${done}: cache_id ${cacheId}`);
        const mock = this.deviceOf(virtId)?.iommu;
        if (!(mock instanceof MockDevice)) throw new Errno(EINVAL, `entry ${done}: no vDEVICE 0x${virtId.toString(16)}`);
        if (flags & SELFTEST.IOMMU_TEST_INVALIDATE_FLAG_ALL) mock.cache.fill(0);
        else mock.cache[cacheId] = 0;
      }
    } catch (e) {
      if (!(e instanceof Errno)) throw e;
      return { done, error: e };
    }
    return { done };
  }
}
