// The mock IOMMU backend and IOMMU_TEST_CMD (CONFIG_IOMMUFD_TEST): the mock page table, the op table's
// decoding, and the ops against an in-process daemon with --selftest, in the kernel's errnos. Addresses
// are this process's own mapped memory, since the selftest checks the client's /proc/<pid>/maps.
import { readFileSync } from 'node:fs';
import { beforeEach, describe, expect, it } from 'vitest';
import type { IoctlCall } from '../../src/dispatch/call.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import { E2BIG, EBUSY, EEXIST, EFAULT, EINVAL, EIO, ENOENT, ENOTTY, EOPNOTSUPP, EOVERFLOW, EADDRINUSE } from '../../src/errno.ts';
import { MockPageTable } from '../../src/mock/page-table.ts';
import type { IommufdFile } from '../../src/objects/iommufd/context.ts';
import { TestOpTable, type TestCall } from '../../src/objects/iommufd/selftest/test-cmd.ts';
import type { SelftestDevice } from '../../src/objects/iommufd/selftest/mock-domain.ts';
import { IOMMUFD } from '../../src/uapi/constants.ts';
import { encode, type Value } from '../../src/uapi/layout.ts';
import { iommu_hwpt_selftest, iommu_test_cmd, SELFTEST, TEST_OP, type TestOpName } from '../../src/uapi/selftest.ts';
import { defaultTopology } from '../../src/topology/topology.ts';
import { Harness } from '../helpers/direct.ts';

const { IOMMU_IOAS_MAP_FIXED_IOVA: FIXED, IOMMU_IOAS_MAP_READABLE: R, IOMMU_IOAS_MAP_WRITEABLE: W } = IOMMUFD;
const MOCK_PAGE = 2048n;
const APERTURE = BigInt(SELFTEST.MOCK_APERTURE_START);

describe('the mock page table', () => {
  const e = (start: bigint, last: bigint, addr: bigint) => ({ start, last, owner: 'pid:1', addr, readable: true, writeable: true });

  it('translates every byte of a mapped extent and nothing around it', () => {
    const t = new MockPageTable(MOCK_PAGE);
    t.map(e(0x10000n, 0x17fffn, 0x7000_0000n));
    expect(t.lookup(0x10000n)?.addr).toBe(0x7000_0000n);
    expect(t.lookup(0x12345n)?.addr).toBe(0x7000_2345n);
    expect(t.lookup(0x17fffn)?.addr).toBe(0x7000_7fffn);
    expect(t.lookup(0xffffn)).toBeUndefined();
    expect(t.lookup(0x18000n)).toBeUndefined();
  });

  it('refuses unaligned and overlapping maps', () => {
    const t = new MockPageTable(MOCK_PAGE);
    expect(() => t.map(e(0x400n, 0xfffn, 0n))).toThrow(expect.objectContaining({ errno: EINVAL }));
    expect(() => t.map(e(0x800n, 0xbffn, 0n))).toThrow(expect.objectContaining({ errno: EINVAL }));
    t.map(e(0x1000n, 0x1fffn, 0n));
    expect(() => t.map(e(0x1800n, 0x27ffn, 0n))).toThrow(expect.objectContaining({ errno: EEXIST }));
    expect(() => t.map(e(0x800n, 0x17ffn, 0n))).toThrow(expect.objectContaining({ errno: EEXIST }));
    expect(t.size).toBe(1);
  });

  it('unmaps a middle piece, keeping both ends translated as before', () => {
    const t = new MockPageTable(MOCK_PAGE);
    t.map(e(0n, 0x3fffn, 0x100000n));
    expect(t.unmap(0x1000n, 0x27ffn)).toBe(0x1800n);
    expect(t.lookup(0xfffn)?.addr).toBe(0x100fffn);
    expect(t.lookup(0x1000n)).toBeUndefined();
    expect(t.lookup(0x27ffn)).toBeUndefined();
    expect(t.lookup(0x2800n)?.addr).toBe(0x102800n);
    expect(t.mappedBytes()).toBe(0x4000n - 0x1800n);
    expect(t.unmap(0n, 0xffffn)).toBe(0x2800n);
    expect(t.size).toBe(0);
  });
});

describe('IOMMU_TEST_CMD decoding', () => {
  /** A call stand-in over a real iommu_test_cmd image. */
  const fakeCall = (op: number, fields: Record<string, Value>) => {
    const buf = encode(iommu_test_cmd, { size: iommu_test_cmd.size, op, ...fields });
    let responded = false;
    const call = {
      get: (f: string) => Number(buf.readUInt32LE(iommu_test_cmd.byName.get(f)!.offset)),
      get64: (f: string) => buf.readBigUInt64LE(iommu_test_cmd.byName.get(f)!.offset),
      set: (f: string, v: Value) => buf.writeUInt32LE(Number(v), iommu_test_cmd.byName.get(f)!.offset),
      respond: () => (responded = true),
    } as unknown as IoctlCall;
    return { call, buf, responded: () => responded };
  };
  const file = {} as IommufdFile;

  it('hands each op its own union member by short field names', () => {
    const seen: Record<string, Value>[] = [];
    const table = new TestOpTable([{
      IOMMU_TEST_OP_ADD_RESERVED: { member: 'add_reserved', handler: (_f, c) => void seen.push({ id: c.id, start: c.get64('start'), length: c.get64('length') }) },
      IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE: { member: 'mock_domain_replace', handler: (_f, c) => { c.set('pt_id', c.get('pt_id') + 1); c.respond(); } },
    }]);
    table.run(file, fakeCall(TEST_OP.IOMMU_TEST_OP_ADD_RESERVED, { id: 7, 'add_reserved.start': 1n << 40n, 'add_reserved.length': 4096n }).call);
    expect(seen).toEqual([{ id: 7, start: 1n << 40n, length: 4096n }]);
    const r = fakeCall(TEST_OP.IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, { 'mock_domain_replace.pt_id': 41 });
    table.run(file, r.call);
    expect(r.buf.readUInt32LE(16)).toBe(42);
    expect(r.responded()).toBe(true);
    expect(table.names().sort()).toEqual(['IOMMU_TEST_OP_ADD_RESERVED', 'IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE']);
  });

  it('answers an op nobody registered, or no op at all, EOPNOTSUPP', () => {
    const table = new TestOpTable([]);
    for (const op of [0, TEST_OP.IOMMU_TEST_OP_DMABUF_REVOKE, 24, 0xffffffff]) {
      expect(() => table.run(file, fakeCall(op, {}).call)).toThrow(expect.objectContaining({ errno: EOPNOTSUPP }));
    }
  });

  it('refuses a table where an op is registered twice, or names a member the struct lacks', () => {
    const op = { member: 'memory_limit', handler: () => undefined };
    expect(() => new TestOpTable([{ IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: op }, { IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: op }])).toThrow(/twice/);
    expect(() => new TestOpTable([{ IOMMU_TEST_OP_DIRTY: { member: 'dirt', handler: () => undefined } }])).toThrow(/no member/);
    expect(() => new TestOpTable([{ NOT_AN_OP: op } as unknown as Record<TestOpName, typeof op>])).toThrow(/unknown/);
  });

  it('refuses a field outside the op\'s member (a programming error, not a user errno)', () => {
    const table = new TestOpTable([{ IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: { member: 'memory_limit', handler: (_f, c: TestCall) => c.get('pt_id') } }]);
    expect(() => table.run(file, fakeCall(TEST_OP.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, {}).call)).toThrow(/no memory_limit.pt_id/);
  });
});

/** A writable anonymous mapping of this process at least `bytes` long, page aligned. */
function ownMemory(bytes: bigint): bigint {
  for (const l of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) rw-p 00000000 00:00 0\s*$/.exec(l);
    if (m && BigInt(`0x${m[2]}`) - BigInt(`0x${m[1]}`) >= bytes) return BigInt(`0x${m[1]}`);
  }
  throw new Error('no anonymous mapping large enough');
}

describe('IOMMU_TEST_CMD against the daemon', () => {
  const pid = process.pid;
  let h: Harness;
  let i: OpenFile;
  const test = (op: TestOpName, fields: Record<string, Value> = {}) => h.call(i, 'IOMMU_TEST_CMD', { op: TEST_OP[op], ...fields }, { pid });
  const mockDomain = (pt: number, flags?: number) => {
    const r = flags === undefined ? test('IOMMU_TEST_OP_MOCK_DOMAIN', { id: pt }) : test('IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS', { id: pt, 'mock_domain_flags.dev_flags': flags });
    return { result: r.result, stdev: r.out['mock_domain.out_stdev_id'] as number, hwpt: r.out['mock_domain.out_hwpt_id'] as number, idev: r.out['mock_domain.out_idev_id'] as number };
  };
  const ioasAlloc = () => h.call(i, 'IOMMU_IOAS_ALLOC', {}, { pid }).out.out_ioas_id as number;
  const map = (ioas_id: number, iova: bigint, length: bigint, user_va: bigint) => h.call(i, 'IOMMU_IOAS_MAP', { ioas_id, flags: FIXED | R | W, user_va, length, iova }, { pid }).result;
  const refs = (uptr: bigint, length: bigint, n: number) => test('IOMMU_TEST_OP_MD_CHECK_REFS', { 'check_refs.uptr': uptr, 'check_refs.length': length, 'check_refs.refs': n }).result;
  const checkMap = (id: number, iova: bigint, length: bigint, uptr: bigint) => test('IOMMU_TEST_OP_MD_CHECK_MAP', { id, 'check_map.iova': iova, 'check_map.length': length, 'check_map.uptr': uptr }).result;
  const destroy = (id: number) => h.call(i, 'IOMMU_DESTROY', { id }, { pid }).result;

  beforeEach(() => {
    // --selftest runs a 4K host, as the CLI makes it.
    const topology = defaultTopology();
    topology.hostPageShift = 12;
    h = new Harness(topology, { selftest: true });
    i = h.open('/dev/iommu');
  });

  it('does not exist without --selftest: ENOTTY, before the size is even looked at', () => {
    const plain = new Harness();
    const f = plain.open('/dev/iommu');
    expect(plain.call(f, 'IOMMU_TEST_CMD', { op: TEST_OP.IOMMU_TEST_OP_MOCK_DOMAIN }).result).toBe(-ENOTTY);
    expect(plain.call(f, 'IOMMU_TEST_CMD', { size: 4 }).result).toBe(-ENOTTY);
    expect(h.call(i, 'IOMMU_TEST_CMD', { size: 4 }).result).toBe(-EINVAL);
    expect(h.call(i, 'IOMMU_TEST_CMD', { op: 0x7fff }).result).toBe(-EOPNOTSUPP);
  });

  it('MOCK_DOMAIN makes a selftest object, an idev and an automatic mock HWPT, in that ID order', () => {
    const ioas = ioasAlloc();
    const d = mockDomain(ioas);
    expect(d).toEqual({ result: 0, stdev: ioas + 1, idev: ioas + 2, hwpt: ioas + 3 });
    // In use: the idev by its selftest object, the HWPT by the device, the IOAS by the HWPT.
    expect(destroy(d.idev)).toBe(-EBUSY);
    expect(destroy(d.hwpt)).toBe(-EBUSY);
    expect(destroy(ioas)).toBe(-EBUSY);
    // A second device shares the automatic domain.
    expect(mockDomain(ioas).hwpt).toBe(d.hwpt);
    expect(destroy(d.stdev)).toBe(0);
    expect(h.call(i, 'IOMMU_DESTROY', { id: d.idev }).result).toBe(-ENOENT);
  });

  it('the mock domain has the mock aperture and page size, and its device the mock flags', () => {
    const ioas = ioasAlloc();
    mockDomain(ioas);
    const r = h.call(i, 'IOMMU_IOAS_IOVA_RANGES', { ioas_id: ioas, num_iovas: 4, allowed_iovas: 0x1000n }, { pid });
    expect(r.out.out_iova_alignment).toBe(MOCK_PAGE);
    const d = r.blobs[0].data;
    expect([d.readBigUInt64LE(0), d.readBigUInt64LE(8)]).toEqual([APERTURE, BigInt(SELFTEST.MOCK_APERTURE_LAST)]);
    expect(mockDomain(ioas, 1 << 1).result).toBe(-EINVAL);
    expect(mockDomain(ioasAlloc() + 100).result).toBe(-ENOENT);
    // Failed creations leave no object and no device number behind (iommufd_mock<N> as an IDA numbers them).
    const next = mockDomain(ioas);
    expect((i as IommufdFile).objects.values().filter((o) => o.kind === 'selftest').length).toBe(2);
    expect((i as IommufdFile).objects.get<SelftestDevice>(next.stdev, 'selftest').mock.name).toBe('iommufd_mock1');
  });

  it('MD_CHECK_MAP reads the mock page table, MD_CHECK_REFS the pin counts; closing leaves no pins', () => {
    const buf = ownMemory(0x10000n);
    const ioas = ioasAlloc();
    expect(map(ioas, APERTURE, 0x8000n, buf)).toBe(0);
    expect(refs(buf, 0x8000n, 0)).toBe(0); // no domain: nothing pinned yet
    const { hwpt } = mockDomain(ioas);
    expect(checkMap(hwpt, APERTURE, 0x8000n, buf)).toBe(0);
    expect(checkMap(hwpt, APERTURE + 0x800n, 0x800n, buf + 0x800n)).toBe(0);
    expect(checkMap(hwpt, APERTURE, 0x8000n, buf + 0x800n)).toBe(-EINVAL);
    expect(checkMap(hwpt, APERTURE, 0x8800n, buf)).toBe(-EINVAL);
    expect(checkMap(hwpt, APERTURE + 1n, 0x800n, buf)).toBe(-EINVAL);
    expect(checkMap(ioas, APERTURE, 0x800n, buf)).toBe(-ENOENT);
    expect(refs(buf, 0x8000n, 1)).toBe(0);
    expect(refs(buf, 0x9000n, 1)).toBe(-EIO);
    expect(refs(buf + 1n, 0x1000n, 1)).toBe(-EINVAL);
    expect(refs(0x1000n, 0x1000n, 0)).toBe(-EFAULT);
    // A second domain does not pin again.
    mockDomain(ioas);
    expect(refs(buf, 0x8000n, 1)).toBe(0);
    h.close(i);
    i = h.open('/dev/iommu');
    expect(refs(buf, 0x8000n, 0)).toBe(0);
    expect(h.daemon.host.memory.pinnedBytes()).toBe(0n);
    expect(h.daemon.describe().iommufdObjects).toBe(0);
  });

  it('MD_CHECK_REFS and MD_CHECK_MAP walk runs: a gap or a second pin in the middle of a range is found', () => {
    const buf = ownMemory(0x10000n);
    const ioas = ioasAlloc();
    const { hwpt } = mockDomain(ioas);
    expect(map(ioas, APERTURE, 0x2000n, buf)).toBe(0);
    expect(map(ioas, APERTURE + 0x4000n, 0x2000n, buf + 0x4000n)).toBe(0);
    expect(refs(buf, 0x2000n, 1)).toBe(0);
    expect(refs(buf + 0x4000n, 0x2000n, 1)).toBe(0);
    expect(refs(buf, 0x6000n, 1)).toBe(-EIO);
    expect(refs(buf + 0x2000n, 0x2000n, 0)).toBe(0);
    expect(checkMap(hwpt, APERTURE, 0x6000n, buf)).toBe(-EINVAL);
    // The same page mapped twice is pinned twice.
    expect(map(ioas, APERTURE + 0x8000n, 0x1000n, buf + 0x1000n)).toBe(0);
    expect(refs(buf, 0x1000n, 1)).toBe(0);
    expect(refs(buf + 0x1000n, 0x1000n, 2)).toBe(0);
    expect(refs(buf, 0x2000n, 1)).toBe(-EIO);
  });

  it('a pin of memory the process has not mapped fails EFAULT', () => {
    const ioas = ioasAlloc();
    mockDomain(ioas);
    expect(map(ioas, APERTURE, 0x1000n, 0x1000n)).toBe(-EFAULT);
  });

  it('ADD_RESERVED takes IOVA away from maps, and not over what is mapped', () => {
    const buf = ownMemory(0x10000n);
    const ioas = ioasAlloc();
    const reserve = (start: bigint, length: bigint, id = ioas) => test('IOMMU_TEST_OP_ADD_RESERVED', { id, 'add_reserved.start': start, 'add_reserved.length': length }).result;
    expect(reserve(0x100000n, 0x1000n)).toBe(0);
    expect(map(ioas, 0x100000n, 0x1000n, buf)).toBe(-EINVAL);
    expect(map(ioas, 0x200000n, 0x1000n, buf)).toBe(0);
    expect(reserve(0x200000n, 0x1000n)).toBe(-EADDRINUSE);
    expect(reserve(0x300000n, 0n)).toBe(-EINVAL);
    expect(reserve(0xffff_ffff_ffff_f000n, 0x2000n)).toBe(-EOVERFLOW);
    expect(reserve(0x300000n, 0x1000n, ioas + 50)).toBe(-ENOENT);
  });

  it('SET_TEMP_MEMORY_LIMIT needs room for one batch entry', () => {
    expect(test('IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT', { 'memory_limit.limit': 11 }).result).toBe(-EINVAL);
    expect(test('IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT', { 'memory_limit.limit': 12 }).result).toBe(0);
    expect(h.daemon.selftest!.memoryLimit).toBe(12);
  });

  it('DEV_CHECK_CACHE sees the default cache values of a mock idev', () => {
    const { idev, stdev } = mockDomain(ioasAlloc());
    const cache = (id: number, value: number, dev = idev) => test('IOMMU_TEST_OP_DEV_CHECK_CACHE', { id: dev, 'check_dev_cache.id': id, 'check_dev_cache.cache': value }).result;
    for (let k = 0; k < SELFTEST.MOCK_DEV_CACHE_NUM; k++) expect(cache(k, SELFTEST.IOMMU_TEST_DEV_CACHE_DEFAULT)).toBe(0);
    expect(cache(0, 0)).toBe(-EINVAL);
    expect(cache(SELFTEST.MOCK_DEV_CACHE_NUM, SELFTEST.IOMMU_TEST_DEV_CACHE_DEFAULT)).toBe(-EINVAL);
    expect(cache(0, SELFTEST.IOMMU_TEST_DEV_CACHE_DEFAULT, stdev)).toBe(-ENOENT);
  });

  it('MOCK_DOMAIN_REPLACE moves a device to another HWPT or IOAS, the automatic domain going with it', () => {
    const a = ioasAlloc();
    const b = ioasAlloc();
    const d = mockDomain(a);
    const replace = (pt: number, id = d.stdev) => test('IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', { id, 'mock_domain_replace.pt_id': pt });
    const r = replace(b);
    expect(r.result).toBe(0);
    const moved = r.out['mock_domain_replace.pt_id'] as number;
    expect(moved).not.toBe(d.hwpt);
    expect(destroy(d.hwpt)).toBe(-ENOENT);
    expect(replace(d.idev, d.idev).result).toBe(-ENOENT);
    expect(replace(d.stdev).result).toBe(-EINVAL);
  });

  it('HWPT_ALLOC for a mock device: flags and IOMMU_HWPT_DATA_SELFTEST as the mock driver takes them', () => {
    const ioas = ioasAlloc();
    const { idev } = mockDomain(ioas);
    const noDirty = mockDomain(ioas, SELFTEST.MOCK_FLAGS_DEVICE_NO_DIRTY).idev;
    const alloc = (flags: number, data?: Buffer, dev = idev) => h.call(i, 'IOMMU_HWPT_ALLOC', {
      dev_id: dev, pt_id: ioas, flags, data_type: data ? SELFTEST.IOMMU_HWPT_DATA_SELFTEST : 0, data_len: data?.length ?? 0, data_uptr: data ? 0x1000n : 0n,
    }, { pid, blobs: data ? [{ fieldOffset: 32, data }] : [] }).result;
    const cfg = (pagetable_type: number) => encode(iommu_hwpt_selftest, { iotlb: SELFTEST.IOMMU_TEST_IOTLB_DEFAULT, pagetable_type });
    expect(alloc(0)).toBe(0);
    expect(alloc(IOMMUFD.IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMUFD.IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMUFD.IOMMU_HWPT_ALLOC_PASID)).toBe(0);
    expect(alloc(IOMMUFD.IOMMU_HWPT_ALLOC_DIRTY_TRACKING, undefined, noDirty)).toBe(-EOPNOTSUPP);
    expect(alloc(1 << 7)).toBe(-EOPNOTSUPP);
    expect(alloc(0, cfg(SELFTEST.MOCK_IOMMUPT_HUGE))).toBe(0);
    expect(alloc(0, cfg(7))).toBe(-EOPNOTSUPP);
    expect(alloc(0, Buffer.concat([cfg(0), Buffer.from([1])]))).toBe(-E2BIG);
    expect(alloc(0, Buffer.alloc(2))).toBe(-EINVAL);
  });

  it('GET_HW_INFO for a mock device: the selftest type, its register, no ATS, PASID width with the flag', () => {
    const ioas = ioasAlloc();
    const plain = mockDomain(ioas).idev;
    const pasid = mockDomain(ioas, SELFTEST.MOCK_FLAGS_DEVICE_PASID).idev;
    const info = (dev_id: number, flags = 0, in_data_type = 0) => h.call(i, 'IOMMU_GET_HW_INFO', { dev_id, data_len: 8, data_uptr: 0x1000n, flags, in_data_type }, { pid });
    const r = info(plain);
    expect(r.result).toBe(0);
    expect(r.out.out_data_type).toBe(SELFTEST.IOMMU_HW_INFO_TYPE_SELFTEST);
    expect(r.blobs[0].data.readUInt32LE(4)).toBe(SELFTEST.IOMMU_HW_INFO_SELFTEST_REGVAL);
    expect(r.out.out_capabilities).toBe(1n | 8n);
    expect(r.out.out_max_pasid_log2).toBe(0);
    expect(info(pasid).out.out_max_pasid_log2).toBe(SELFTEST.MOCK_PASID_WIDTH);
    expect(info(plain, IOMMUFD.IOMMU_HW_INFO_FLAG_INPUT_TYPE, SELFTEST.IOMMU_HW_INFO_TYPE_SELFTEST).result).toBe(0);
    expect(info(plain, IOMMUFD.IOMMU_HW_INFO_FLAG_INPUT_TYPE, 3).result).toBe(-EOPNOTSUPP);
  });

  it('a TCE device cannot join a mock domain, nor a mock device a TCE one', () => {
    const ioas = ioasAlloc();
    const { hwpt, stdev } = mockDomain(ioas);
    const d = h.open('/dev/vfio/devices/vfio2');
    expect(h.call(d, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: i.handle }).result).toBe(0);
    expect(h.call(d, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { pt_id: hwpt }).result).toBe(-EINVAL);
    // Attached to the IOAS it gets a TCE domain of its own beside the mock one.
    const r = h.call(d, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { pt_id: ioas });
    expect(r.result).toBe(0);
    expect(r.out.pt_id).not.toBe(hwpt);
    expect(test('IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', { id: stdev, 'mock_domain_replace.pt_id': r.out.pt_id as number }).result).toBe(-EINVAL);
  });
});
