// The invalidation array parser (IOMMU_HWPT_INVALIDATE's entries as the IOMMU core copies them) and the
// mock drivers behind it: a nested domain's IOTLB entries and a vIOMMU's device caches, each stopping at
// the first bad entry with the count of those done (the caller's memory is a buffer here); and the IOAS
// areas a hardware queue holds.
import { describe, expect, it } from 'vitest';
import { E2BIG, EBUSY, EFAULT, EINVAL, ENOENT, EOPNOTSUPP, Errno } from '../../src/errno.ts';
import { Daemon } from '../../src/daemon.ts';
import { Ioas } from '../../src/objects/iommufd/ioas.ts';
import { defaultTopology } from '../../src/topology/topology.ts';
import { MockNestedHwpt } from '../../src/mock/nested.ts';
import { MockDevice } from '../../src/mock/device.ts';
import { copyDriverData, copyStruct, UserDataArray } from '../../src/objects/iommufd/user-data.ts';
import { SELFTEST } from '../../src/uapi/selftest.ts';
import { MockViommu } from '../../src/mock/viommu.ts';
import type { PagingHwpt } from '../../src/objects/iommufd/backend.ts';
import type { IommufdDevice } from '../../src/objects/iommufd/device.ts';
import { Vdevice } from '../../src/objects/iommufd/viommu.ts';

const BASE = 0x10000n;
/** The caller's memory: `mem` at BASE, EFAULT elsewhere. */
const reader = (mem: Buffer) => (addr: bigint, length: number) => {
  const off = Number(addr - BASE);
  if (addr < BASE || off + length > mem.length) throw new Errno(EFAULT, 'outside');
  return Buffer.from(mem.subarray(off, off + length));
};
const u32s = (...v: number[]) => Buffer.from(new Uint32Array(v).buffer);
const HWPT_INV = SELFTEST.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST;
const holder = () => ({ kind: 'hwpt_paging', id: 9, users: 1 });

describe('driver data copies', () => {
  it('take a length between the first version and the current size, zero-filled, of the matching type', () => {
    expect([...copyDriverData({ type: 7, read: () => u32s(5) }, 7, 8, 4)]).toEqual([5, 0, 0, 0, 0, 0, 0, 0]);
    expect(() => copyDriverData({ type: 6, read: () => u32s(5) }, 7, 8, 4)).toThrow(expect.objectContaining({ errno: EINVAL }));
    expect(() => copyDriverData({ type: 7, read: () => Buffer.alloc(3) }, 7, 8, 4)).toThrow(expect.objectContaining({ errno: EINVAL }));
    expect(() => copyDriverData({ type: 7, read: () => Buffer.alloc(9) }, 7, 8, 4)).toThrow(expect.objectContaining({ errno: EINVAL }));
  });

  it('copy_struct_from_user: longer than the struct only when the rest is zero', () => {
    expect(copyStruct(Buffer.from([1, 2, 0, 0]), 2)).toEqual(Buffer.from([1, 2]));
    expect(() => copyStruct(Buffer.from([1, 2, 0, 3]), 2)).toThrow(expect.objectContaining({ errno: E2BIG }));
    expect(copyStruct(Buffer.from([1]), 3)).toEqual(Buffer.from([1, 0, 0]));
  });
});

describe('a mock nested domain\'s invalidations', () => {
  const nested = () => MockNestedHwpt.create(holder(), undefined, 0, { type: SELFTEST.IOMMU_HWPT_DATA_SELFTEST, read: () => u32s(SELFTEST.IOMMU_TEST_IOTLB_DEFAULT) });
  const D = SELFTEST.IOMMU_TEST_IOTLB_DEFAULT;

  it('holds its parent and seeds every IOTLB entry from the data', () => {
    const parent = holder();
    const n = MockNestedHwpt.create(parent, undefined, 0, { type: SELFTEST.IOMMU_HWPT_DATA_SELFTEST, read: () => u32s(0x1234, 0) });
    expect(n.iotlb).toEqual([0x1234, 0x1234, 0x1234, 0x1234]);
    expect(parent.users).toBe(2);
    n.destroy();
    expect(parent.users).toBe(1);
    expect(() => MockNestedHwpt.create(holder(), undefined, 1, { type: SELFTEST.IOMMU_HWPT_DATA_SELFTEST, read: () => u32s(0) })).toThrow(expect.objectContaining({ errno: EOPNOTSUPP }));
  });

  it('zeroes entries in order and stops at the first bad one, counting those done', () => {
    const n = nested();
    // entry 0: iotlb 0; entry 1: bad flags.
    let r = n.invalidate(new UserDataArray(HWPT_INV, BASE, 8, 2, reader(u32s(0, 0, 0xffffffff, 1))));
    expect(r.done).toBe(1);
    expect(r.error?.errno).toBe(EOPNOTSUPP);
    expect(n.iotlb).toEqual([0, D, D, D]);
    r = n.invalidate(new UserDataArray(HWPT_INV, BASE, 8, 2, reader(u32s(0, 2, 0, SELFTEST.MOCK_NESTED_DOMAIN_IOTLB_ID_MAX + 1))));
    expect([r.done, r.error?.errno]).toEqual([1, EINVAL]);
    expect(n.iotlb).toEqual([0, D, 0, D]);
    r = n.invalidate(new UserDataArray(HWPT_INV, BASE, 8, 1, reader(u32s(SELFTEST.IOMMU_TEST_INVALIDATE_FLAG_ALL, 0))));
    expect(r).toEqual({ done: 1 });
    expect(n.iotlb).toEqual([0, 0, 0, 0]);
  });

  it('checks the type first and each entry\'s length against the struct', () => {
    const n = nested();
    const mem = reader(u32s(0, 1, 0, 0));
    expect(n.invalidate(new UserDataArray(SELFTEST.IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID, BASE, 8, 1, mem)).error?.errno).toBe(EINVAL);
    expect(n.invalidate(new UserDataArray(HWPT_INV, BASE, 9, 1, mem)).error?.errno).toBe(EINVAL);
    expect(n.invalidate(new UserDataArray(HWPT_INV, BASE, 1, 1, mem)).error?.errno).toBe(EINVAL);
    expect(n.invalidate(new UserDataArray(HWPT_INV, BASE, 8, 0, mem))).toEqual({ done: 0 });
    expect(n.invalidate(new UserDataArray(HWPT_INV, BASE + 0x100n, 8, 1, mem))).toEqual({ done: 0, error: expect.objectContaining({ errno: EFAULT }) });
    expect(n.iotlb.every((v) => v === SELFTEST.IOMMU_TEST_IOTLB_DEFAULT)).toBe(true);
  });
});

describe('a mock vIOMMU\'s cache invalidations', () => {
  const VIOMMU_INV = SELFTEST.IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST;
  const setup = () => {
    const hwpt = { kind: 'hwpt_paging', id: 2, users: 1 } as unknown as PagingHwpt;
    const { viommu } = MockViommu.create(hwpt, undefined);
    const mock = new MockDevice(0, 0, 4096n);
    const idev = { iommu: mock } as unknown as IommufdDevice;
    new Vdevice(viommu, idev, 0x99n);
    return { viommu, mock, hwpt };
  };
  const D = SELFTEST.IOMMU_TEST_DEV_CACHE_DEFAULT;

  it('zeroes the caches of the device with the virtual ID, in order, until a bad entry', () => {
    const { viommu, mock } = setup();
    let r = viommu.invalidate(new UserDataArray(VIOMMU_INV, BASE, 12, 2, reader(u32s(0, 0x99, 0, 0xffffffff, 0x99, 1))));
    expect([r.done, r.error?.errno]).toEqual([1, EOPNOTSUPP]);
    expect(mock.cache).toEqual([0, D, D, D]);
    r = viommu.invalidate(new UserDataArray(VIOMMU_INV, BASE, 12, 1, reader(u32s(0, 0x9, 1))));
    expect([r.done, r.error?.errno]).toEqual([0, EINVAL]);
    r = viommu.invalidate(new UserDataArray(VIOMMU_INV, BASE, 12, 1, reader(u32s(SELFTEST.IOMMU_TEST_INVALIDATE_FLAG_ALL, 0x99, 0))));
    expect(r).toEqual({ done: 1 });
    expect(mock.cache).toEqual([0, 0, 0, 0]);
  });

  it('an empty array only checks the type; entries of another length follow copy_struct_from_user', () => {
    const { viommu, mock } = setup();
    expect(viommu.invalidate(new UserDataArray(VIOMMU_INV, 0n, 12, 0, reader(Buffer.alloc(0))))).toEqual({ done: 0 });
    expect(viommu.invalidate(new UserDataArray(SELFTEST.IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID, BASE, 12, 1, reader(u32s(0, 0x99, 0)))).error?.errno).toBe(EINVAL);
    expect(viommu.invalidate(new UserDataArray(VIOMMU_INV, BASE, 13, 1, reader(Buffer.from([...u32s(0, 0x99, 0), 1])))).error?.errno).toBe(E2BIG);
    // 8 read: () => cache_id reads as 0.
    expect(viommu.invalidate(new UserDataArray(VIOMMU_INV, BASE, 8, 1, reader(u32s(0, 0x99))))).toEqual({ done: 1 });
    expect(mock.cache).toEqual([0, D, D, D]);
  });

  it('holds its parent; a vDEVICE holds the vIOMMU and leaves its ID free when it goes', () => {
    const { viommu, hwpt } = setup();
    expect(hwpt.users).toBe(2);
    expect(viommu.users).toBe(2);
    const v = viommu.vdevs.get(0x99n)!;
    v.destroy();
    expect(viommu.users).toBe(1);
    expect(viommu.vdevs.size).toBe(0);
    viommu.destroy();
    expect(hwpt.users).toBe(1);
  });

  it('loops in_data back to out_data, cut to the caller\'s length', () => {
    const hwpt = { kind: 'hwpt_paging', id: 2, users: 1 } as unknown as PagingHwpt;
    const { out } = MockViommu.create(hwpt, { type: SELFTEST.IOMMU_VIOMMU_TYPE_SELFTEST, read: () => u32s(0xbeef, 0) });
    expect([...new Uint32Array(out!.buffer, out!.byteOffset, 2)]).toEqual([0xbeef, 0xbeef]);
    expect(() => MockViommu.create(hwpt, { type: SELFTEST.IOMMU_VIOMMU_TYPE_SELFTEST, read: () => u32s(1) })).toThrow(expect.objectContaining({ errno: EINVAL }));
  });
});

describe('areas held whole (a hardware queue\'s memory)', () => {
  const PAGE = 0x10000n;
  const ioas = () => {
    const a = new Ioas(new Daemon(defaultTopology()).host);
    a.map(0x4000_0000n, PAGE, 0x100000n, 3, 'pid:1');
    a.map(0x5000_0000n, PAGE, 0x100000n + PAGE, 3, 'pid:1');
    return a;
  };

  it('UNMAP of a held area is EBUSY until released; other areas unmap', () => {
    const a = ioas();
    const hold = a.lock(0x100000n, 0x100000n + PAGE - 1n);
    expect(() => a.unmap(0x100000n, PAGE)).toThrow(expect.objectContaining({ errno: EBUSY }));
    expect(() => a.unmapAll()).toThrow(expect.objectContaining({ errno: EBUSY }));
    expect(a.unmap(0x100000n + PAGE, PAGE)).toBe(PAGE);
    hold.release();
    hold.release();
    expect(a.unmap(0x100000n, PAGE)).toBe(PAGE);
  });

  it('the whole range must be mapped (ENOENT), and nothing is held then', () => {
    const a = ioas();
    expect(() => a.lock(0x100000n, 0x100000n + 3n * PAGE - 1n)).toThrow(expect.objectContaining({ errno: ENOENT }));
    expect(a.unmapAll()).toBe(2n * PAGE);
  });
});
