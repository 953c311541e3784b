// The iommufd commands for features a TCE host lacks: every number is known, sizes are checked first
// (the kernel selftest's cmd_length), then each handler's checks in the kernel's order, then the answer
// of a host without the feature. None of them changes state.
import { beforeEach, describe, expect, it } from 'vitest';
import { E2BIG, EBADF, EINVAL, ENOENT, ENOTTY, EOPNOTSUPP, EOVERFLOW } from '../../src/errno.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import type { IommufdFile } from '../../src/objects/iommufd/context.ts';
import { IOMMUFD } from '../../src/uapi/constants.ts';
import { IOCTLS } from '../../src/uapi/ioctls.ts';
import { Harness } from '../helpers/direct.ts';

const { IOMMU_IOAS_MAP_FIXED_IOVA: FIXED, IOMMU_IOAS_MAP_READABLE: R, IOMMU_IOAS_MAP_WRITEABLE: W } = IOMMUFD;
const U64_MAX = (1n << 64n) - 1n;

let h: Harness;
let i: OpenFile;
beforeEach(() => {
  h = new Harness();
  i = h.open('/dev/iommu');
});

/** The errno of a call (0 for success). */
const err = (name: string, fields: Record<string, number | bigint> = {}) => -h.call(i, name, fields).result || 0;
const ioasAlloc = () => h.call(i, 'IOMMU_IOAS_ALLOC').out.out_ioas_id as number;
/** A device bound to the context and a paging domain for it on a fresh IOAS. */
function domain() {
  const dev = h.open('/dev/vfio/devices/vfio2');
  const devId = h.call(dev, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: i.handle }).out.out_devid as number;
  const ioas = ioasAlloc();
  const hwpt = h.call(i, 'IOMMU_HWPT_ALLOC', { dev_id: devId, pt_id: ioas }).out.out_hwpt_id as number;
  expect(hwpt).toBeGreaterThan(0);
  return { devId, ioas, hwpt };
}
const objectIds = () => (i as IommufdFile).objects.values().map((o) => `${o.kind}:${o.id}`).sort();

describe('every iommufd number is known, with the size rules first (selftest cmd_length)', () => {
  for (const d of IOCTLS.filter((x) => x.arg === 'size')) {
    it(d.name, () => {
      const s = d.struct!;
      // IOMMU_TEST_CMD exists only with --selftest (CONFIG_IOMMUFD_TEST): ENOTTY without, whatever the size.
      const selftest = d.name === 'IOMMU_TEST_CMD';
      if (selftest) {
        expect(-h.call(i, d.name).result).toBe(ENOTTY);
        h = new Harness(undefined, { selftest: true });
        i = h.open('/dev/iommu');
      }
      const raw = (size: number, extra: number) => {
        const b = Buffer.alloc(s.size + 1);
        b.writeUInt32LE(size, 0);
        b[s.size] = extra;
        return -h.call(i, d.name, {}, { raw: b }).result;
      };
      expect(raw(d.minsz! - 1, 0xff)).toBe(EINVAL);
      expect(raw(s.size + 1, 0xff)).toBe(E2BIG);
      const full = raw(s.size, 0xff);
      expect(full).not.toBe(ENOTTY);
      expect(raw(s.size + 1, 0)).toBe(full);
      if (selftest) expect(full).toBe(EOPNOTSUPP); // op 0
    });
  }
});

describe('dirty tracking: a TCE domain has none', () => {
  it('SET_DIRTY_TRACKING: flags, then the HWPT, then EOPNOTSUPP', () => {
    const { ioas, hwpt } = domain();
    expect(err('IOMMU_HWPT_SET_DIRTY_TRACKING', { flags: 2, hwpt_id: hwpt })).toBe(EOPNOTSUPP);
    expect(err('IOMMU_HWPT_SET_DIRTY_TRACKING', { flags: 1, hwpt_id: 0 })).toBe(ENOENT);
    expect(err('IOMMU_HWPT_SET_DIRTY_TRACKING', { flags: 1, hwpt_id: ioas })).toBe(ENOENT); // wrong kind
    expect(err('IOMMU_HWPT_SET_DIRTY_TRACKING', { flags: 1, hwpt_id: hwpt })).toBe(EOPNOTSUPP);
    expect(err('IOMMU_HWPT_SET_DIRTY_TRACKING', { flags: 0, hwpt_id: hwpt })).toBe(EOPNOTSUPP);
  });

  it('GET_DIRTY_BITMAP checks the range against the IOAS before it finds no dirty ops', () => {
    const { hwpt } = domain();
    const get = (f: Record<string, number | bigint>) => err('IOMMU_HWPT_GET_DIRTY_BITMAP', { hwpt_id: hwpt, iova: 0n, length: 1n << 16n, page_size: 1n << 16n, data: 0x1000n, ...f });
    expect(get({ flags: 2 })).toBe(EOPNOTSUPP);
    expect(get({ __reserved: 1 })).toBe(EOPNOTSUPP);
    expect(get({ hwpt_id: 0 })).toBe(ENOENT);
    expect(get({ length: 0n })).toBe(EINVAL);
    expect(get({ iova: U64_MAX, length: 2n })).toBe(EOVERFLOW);
    expect(get({ iova: 0x1000n })).toBe(EINVAL); // the IOAS's alignment is the 64K host page
    expect(get({ page_size: 0n })).toBe(EINVAL);
    expect(get({ page_size: 1n << 20n })).toBe(EINVAL);
    expect(get({ flags: IOMMUFD.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR })).toBe(EOPNOTSUPP);
  });
});

describe('HWPT_INVALIDATE: nothing takes user invalidations', () => {
  it('checks reserved, the entry array and the object, and reports 0 entries done on every path', () => {
    const { ioas, hwpt } = domain();
    const inv = (f: Record<string, number | bigint>) => h.call(i, 'IOMMU_HWPT_INVALIDATE', { hwpt_id: hwpt, entry_num: 5, ...f });
    for (const [f, e] of [
      [{ __reserved: 1 }, EOPNOTSUPP],
      [{ data_uptr: 0n, entry_len: 16 }, EINVAL],
      [{ data_uptr: 0x1000n, entry_len: 0 }, EINVAL],
      [{ data_uptr: 0x1000n, entry_len: (1 << 16) + 1 }, EINVAL],
      [{ data_uptr: 0x1000n, entry_len: 16, entry_num: (1 << 19) + 1 }, EINVAL],
      [{ data_uptr: 0x1000n, entry_len: 16, hwpt_id: 999 }, ENOENT],
      [{ data_uptr: 0x1000n, entry_len: 16 }, EINVAL], // a paging HWPT
      [{ data_uptr: 0x1000n, entry_len: 16, hwpt_id: ioas }, EINVAL],
      [{ entry_num: 0 }, EINVAL],
    ] as const) {
      const r = inv(f);
      expect(-r.result, JSON.stringify(f, (_k, v) => (typeof v === 'bigint' ? `${v}` : v))).toBe(e);
      expect(r.out.entry_num).toBe(0);
    }
  });
});

describe('vIOMMU objects: a TCE IOMMU offers no vIOMMU type', () => {
  it('VIOMMU_ALLOC: flags and the default type first, then the device, then EOPNOTSUPP', () => {
    const { devId, hwpt } = domain();
    expect(err('IOMMU_VIOMMU_ALLOC', { type: 1, dev_id: 0, flags: 1 })).toBe(EOPNOTSUPP);
    expect(err('IOMMU_VIOMMU_ALLOC', { type: 0, dev_id: devId })).toBe(EOPNOTSUPP);
    expect(err('IOMMU_VIOMMU_ALLOC', { type: 1, dev_id: 0 })).toBe(ENOENT);
    expect(err('IOMMU_VIOMMU_ALLOC', { type: 1, dev_id: hwpt })).toBe(ENOENT);
    expect(err('IOMMU_VIOMMU_ALLOC', { type: 1, dev_id: devId, hwpt_id: hwpt })).toBe(EOPNOTSUPP);
  });

  it('VDEVICE, VEVENTQ and HW_QUEUE find no vIOMMU, after their own argument checks', () => {
    const { devId, hwpt } = domain();
    expect(err('IOMMU_VDEVICE_ALLOC', { viommu_id: 0, dev_id: devId })).toBe(ENOENT);
    expect(err('IOMMU_VDEVICE_ALLOC', { viommu_id: hwpt, dev_id: devId })).toBe(ENOENT);
    expect(err('IOMMU_VEVENTQ_ALLOC', { type: 1, veventq_depth: 1, flags: 1 })).toBe(EOPNOTSUPP);
    expect(err('IOMMU_VEVENTQ_ALLOC', { type: 1, veventq_depth: 1, __reserved: 1 })).toBe(EOPNOTSUPP);
    expect(err('IOMMU_VEVENTQ_ALLOC', { type: 0, veventq_depth: 1 })).toBe(EOPNOTSUPP);
    expect(err('IOMMU_VEVENTQ_ALLOC', { type: 1, veventq_depth: 0 })).toBe(EINVAL);
    expect(err('IOMMU_VEVENTQ_ALLOC', { type: 1, veventq_depth: (1 << 19) + 1 })).toBe(EINVAL);
    expect(err('IOMMU_VEVENTQ_ALLOC', { type: 1, veventq_depth: 16 })).toBe(ENOENT);
    expect(err('IOMMU_HW_QUEUE_ALLOC', { type: 0, length: 4096n })).toBe(EOPNOTSUPP);
    expect(err('IOMMU_HW_QUEUE_ALLOC', { type: 1, length: 0n })).toBe(EINVAL);
    expect(err('IOMMU_HW_QUEUE_ALLOC', { type: 1, length: 2n, nesting_parent_iova: U64_MAX })).toBe(EOVERFLOW);
    expect(err('IOMMU_HW_QUEUE_ALLOC', { type: 1, length: 4096n })).toBe(ENOENT);
  });
});

describe('IOAS_MAP_FILE and IOAS_CHANGE_PROCESS', () => {
  // The fd is the client's own; this test process is the client (a memfd is mapped in test/c/iommufd_lengths.c).
  const me = { pid: process.pid };
  it('MAP_FILE runs the checks of MAP, then the file\'s', () => {
    const ioas = ioasAlloc();
    const mf = (f: Record<string, number | bigint>) =>
      -h.call(i, 'IOMMU_IOAS_MAP_FILE', { ioas_id: ioas, flags: FIXED | R | W, fd: 0, length: 1n << 16n, ...f }, me).result;
    expect(mf({ flags: 8 | R })).toBe(EOPNOTSUPP);
    expect(mf({ iova: U64_MAX })).toBe(EOVERFLOW);
    expect(mf({ flags: FIXED })).toBe(EINVAL);
    expect(mf({ ioas_id: 0 })).toBe(ENOENT);
    expect(mf({ length: 0n })).toBe(EINVAL);
    expect(mf({ start: U64_MAX - 1n })).toBe(EOVERFLOW);
    expect(mf({ fd: 1 << 20 })).toBe(EBADF);
    expect(mf({ fd: -1 })).toBe(EBADF);
    expect(mf({})).toBe(EINVAL); // stdin is no memfd
    expect((i as IommufdFile).ioas(ioas).areas.size).toBe(0);
  });

  it('CHANGE_PROCESS moves the pinned-page charge of file areas to the caller, all or nothing', () => {
    const { ioas } = domain();
    const io = (i as IommufdFile).ioas(ioas);
    // A file area as MAP_FILE makes it (the memfd lookup itself is exercised by test/c/iommufd_lengths.c).
    const at = io.place(1n << 20n, 0n, 0n);
    io.insert({ start: at, last: at + (1n << 20n) - 1n, userVa: 0n, owner: 'memfd:1:2', chargeTo: 'pid:300', readable: true, writeable: true });
    const account = (pid: number) => h.daemon.host.account(`pid:${pid}`);
    expect([account(300).locked, account(200).locked]).toEqual([1n << 20n, 0n]);
    account(200).limit = 1n << 16n;
    expect(-h.call(i, 'IOMMU_IOAS_CHANGE_PROCESS', {}, { pid: 200 }).result).toBeGreaterThan(0);
    expect([account(300).locked, account(200).locked]).toEqual([1n << 20n, 0n]);
    account(200).limit = 1n << 30n;
    expect(h.call(i, 'IOMMU_IOAS_CHANGE_PROCESS', {}, { pid: 200 }).result).toBe(0);
    expect([account(300).locked, account(200).locked]).toEqual([0n, 1n << 20n]);
    expect(h.call(i, 'IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova: at, length: 1n << 20n }).result).toBe(0);
    expect(account(200).locked).toBe(0n);
  });

  it('CHANGE_PROCESS succeeds with nothing to move and refuses user-address areas', () => {
    expect(err('IOMMU_IOAS_CHANGE_PROCESS', { __reserved: 1 })).toBe(EOPNOTSUPP);
    expect(err('IOMMU_IOAS_CHANGE_PROCESS')).toBe(0);
    const ioas = ioasAlloc();
    expect(err('IOMMU_IOAS_CHANGE_PROCESS')).toBe(0);
    expect(h.call(i, 'IOMMU_IOAS_MAP', { ioas_id: ioas, flags: FIXED | R | W, user_va: 0x7f00_0000_0000n, length: 1n << 16n, iova: 0n }).result).toBe(0);
    expect(err('IOMMU_IOAS_CHANGE_PROCESS')).toBe(EINVAL);
  });
});

describe('NOIOMMU_GET_PA', () => {
  it('refuses', () => {
    expect(err('IOMMU_IOAS_NOIOMMU_GET_PA', { ioas_id: ioasAlloc(), length: 4096n })).toBe(EOPNOTSUPP);
  });
});

it('no refused call changes the object table', () => {
  const { devId, ioas, hwpt } = domain();
  const before = objectIds();
  for (const d of IOCTLS.filter((x) => x.arg === 'size' && x.struct)) {
    if (['IOMMU_DESTROY', 'IOMMU_IOAS_ALLOC', 'IOMMU_HWPT_ALLOC', 'IOMMU_IOAS_MAP', 'IOMMU_IOAS_MAP_FILE', 'IOMMU_IOAS_COPY', 'IOMMU_VFIO_IOAS', 'IOMMU_OPTION', 'IOMMU_FAULT_QUEUE_ALLOC'].includes(d.name)) continue;
    for (const fields of [{}, { dev_id: devId, hwpt_id: hwpt, ioas_id: ioas, type: 1, length: 1n << 16n, veventq_depth: 4 }]) {
      const present = Object.fromEntries(Object.entries(fields).filter(([k]) => d.struct!.byName.has(k)));
      h.call(i, d.name, present);
    }
  }
  expect(objectIds()).toEqual(before);
});
