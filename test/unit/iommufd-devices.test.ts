// iommufd with devices over the TCE IOMMU: the cdev flow (iommufd-and-vfio-cdev.md §2), domains over TCE
// windows with an aperture list, BLOCKED, several devices and groups per domain, the experimental second
// window, GET_HW_INFO, lifetimes, and the group path with an iommufd as the container.
import { beforeEach, describe, expect, it } from 'vitest';
import {
  EADDRINUSE, EBADF, EBADFD, EBUSY, EINVAL, ENODEV, ENOENT, EOPNOTSUPP,
} from '../../src/errno.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import { HANDLE_FOREIGN } from '../../src/transport/frame.ts';
import { IOMMUFD, TCEFS_EXT, VFIO } from '../../src/uapi/constants.ts';
import { encode } from '../../src/uapi/layout.ts';
import { iommu_hwpt_spapr_tce } from '../../src/uapi/structs.ts';
import { Harness } from '../helpers/direct.ts';

const { IOMMU_IOAS_MAP_FIXED_IOVA: FIXED, IOMMU_IOAS_MAP_READABLE: R, IOMMU_IOAS_MAP_WRITEABLE: W } = IOMMUFD;
const GiB = 1n << 30n;
const W64 = 1n << 59n;
const VA = 0x7f00_0000_0000n;

let h: Harness;
let i: OpenFile;
beforeEach(() => {
  h = new Harness();
  i = h.open('/dev/iommu');
});

const pe = (group: number) => h.daemon.inventory.groups.get(group)!.pe;
const bind = (dev: OpenFile, iommufd = i.handle, extra = {}) => h.call(dev, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd, ...extra });
const attach = (dev: OpenFile, pt_id: number) => h.call(dev, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { pt_id });
const detach = (dev: OpenFile) => h.call(dev, 'VFIO_DEVICE_DETACH_IOMMUFD_PT').result;
const ioasAlloc = () => h.call(i, 'IOMMU_IOAS_ALLOC').out.out_ioas_id as number;
const map = (ioas_id: number, iova: bigint, length: bigint, user_va = VA, flags = FIXED | R | W) =>
  h.call(i, 'IOMMU_IOAS_MAP', { ioas_id, flags, user_va, length, iova }).result;
const ranges = (ioas_id: number) => {
  const r = h.call(i, 'IOMMU_IOAS_IOVA_RANGES', { ioas_id, num_iovas: 4, allowed_iovas: 0x1000n });
  const d = r.blobs[0]?.data ?? Buffer.alloc(0);
  return { align: r.out.out_iova_alignment, list: Array.from({ length: d.length / 16 }, (_, k) => [d.readBigUInt64LE(k * 16), d.readBigUInt64LE(k * 16 + 8)]) };
};
const spapr = (w0: [number, number, bigint] | null, w1: [number, number, bigint] | null) =>
  encode(iommu_hwpt_spapr_tce, {
    'window0.page_shift': w0?.[0] ?? 0, 'window0.levels': w0?.[1] ?? 0, 'window0.window_size': w0?.[2] ?? 0n,
    'window1.page_shift': w1?.[0] ?? 0, 'window1.levels': w1?.[1] ?? 0, 'window1.window_size': w1?.[2] ?? 0n,
  });
const hwptAlloc = (dev_id: number, pt_id: number, data?: Buffer, extra = {}) =>
  h.call(i, 'IOMMU_HWPT_ALLOC', {
    dev_id, pt_id, data_type: data ? TCEFS_EXT.IOMMU_HWPT_DATA_SPAPR_TCE : 0, data_len: data?.length ?? 0, data_uptr: data ? 0x1000n : 0n, ...extra,
  }, { blobs: data ? [{ fieldOffset: 32, data }] : [] });

describe('the VFIO cdev (vfio_iommufd_setup_test and §2.3-2.6)', () => {
  it('refuses everything before BIND, then binds once and gives the device an ID', () => {
    const d = h.open('/dev/vfio/devices/vfio2');
    expect(h.call(d, 'VFIO_DEVICE_GET_INFO').result).toBe(-EINVAL);
    expect(attach(d, 1).result).toBe(-EINVAL);
    expect(h.call(d, 'VFIO_DEVICE_BIND_IOMMUFD', { argsz: 15, iommufd: i.handle }).result).toBe(-EINVAL);
    expect(bind(d, -2).result).toBe(-EINVAL);
    expect(bind(d, i.handle, { flags: 2 }).result).toBe(-EINVAL);
    expect(bind(d, 0x123456).result).toBe(-EBADF);
    expect(bind(d, HANDLE_FOREIGN).result).toBe(-EBADFD);
    expect(bind(d, h.open('/dev/vfio/vfio').handle).result).toBe(-EBADFD);
    const ok = bind(d);
    expect(ok.result).toBe(0);
    expect(ok.out.out_devid).toBe(1);
    expect(ok.outBytes.length).toBe(16); // only out_devid is written back
    expect(bind(d).result).toBe(-EINVAL); // repeated_bind_fails
    expect(h.call(d, 'VFIO_DEVICE_GET_INFO').out).toMatchObject({ num_regions: 9, num_irqs: 5 });
    expect(h.call(i, 'IOMMU_DESTROY', { id: 1 }).result).toBe(-EBUSY); // a bound device cannot be destroyed
  });

  it('puts the PE in BLOCKED at bind, programs it at ATTACH, blocks it again at DETACH', () => {
    const d = h.open('/dev/vfio/devices/vfio2');
    expect(pe(1).ownership).toBe('platform');
    bind(d);
    expect(pe(1).blocked).toBe(true);
    const ioas = ioasAlloc();
    const a = attach(d, ioas);
    expect(a.result).toBe(0);
    expect(a.out.pt_id).toBe(3); // device 1, IOAS 2, auto HWPT 3
    expect(pe(1).blocked).toBe(false);
    expect(ranges(ioas)).toEqual({ align: 4096n, list: [[0n, 0x7fff_ffffn]] });
    expect(map(ioas, 0x10_0000n, 0x1_0000n)).toBe(0);
    expect(pe(1).translate(0x10_0123n, 'write')).toBe(h.daemon.host.memory.hpaOf('pid:100', VA + 0x123n));
    expect(map(ioas, 3n * GiB, 0x1000n)).toBe(-EINVAL); // outside the aperture: reserved
    expect(detach(d)).toBe(0);
    expect(pe(1).blocked).toBe(true);
    expect(() => pe(1).translate(0x10_0000n, 'read')).toThrow(/no window/);
    expect(h.call(i, 'IOMMU_DESTROY', { id: 3 }).result).toBe(-ENOENT); // the auto HWPT went with its device
    expect(ranges(ioas)).toEqual({ align: 1n, list: [[0n, (1n << 64n) - 1n]] }); // the ranges widen again
    expect(detach(d)).toBe(0); // detaching again is fine
  });

  it('enforces one binding per device and group/cdev exclusion', () => {
    const d = h.open('/dev/vfio/devices/vfio2');
    const d2 = h.open('/dev/vfio/devices/vfio2');
    expect(bind(d).result).toBe(0);
    expect(bind(d2).result).toBe(-EINVAL);
    expect(() => h.open('/dev/vfio/1')).toThrow(/bound through its cdev/);
    const g0 = h.open('/dev/vfio/0');
    const d0 = h.open('/dev/vfio/devices/vfio0');
    expect(bind(d0).result).toBe(-EBUSY); // its group is open through /dev/vfio/0
    h.close(g0);
    expect(bind(d0).result).toBe(0);
    // Another iommufd cannot take a group whose DMA this one owns.
    const i2 = h.open('/dev/iommu');
    const d1 = h.open('/dev/vfio/devices/vfio1');
    expect(bind(d1, i2.handle).result).toBe(-EBUSY);
  });

  it('attaches by ID with the kernel errnos and replaces an attachment atomically', () => {
    const d = h.open('/dev/vfio/devices/vfio2');
    bind(d);
    expect(attach(d, 0xffffffff).result).toBe(-ENOENT);
    expect(attach(d, 1).result).toBe(-EINVAL); // the device's own ID: wrong kind
    // vfio-pci takes a PASID, but no TCE domain is PASID-compatible (and an IOAS's automatic one never is).
    expect(h.call(d, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { flags: 1, pt_id: 1, pasid: 3 }).result).toBe(-EINVAL);
    expect(h.call(d, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { flags: 1, pt_id: 77, pasid: 3 }).result).toBe(-ENOENT);
    expect(h.call(d, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { argsz: 12, flags: 1, pt_id: 77, pasid: 3 }).result).toBe(-EINVAL);
    expect(h.call(d, 'VFIO_DEVICE_DETACH_IOMMUFD_PT', { flags: 1, pasid: 3 }).result).toBe(0);
    expect(h.call(d, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { flags: 2, pt_id: 1 }).result).toBe(-EINVAL);
    const a = ioasAlloc();
    const auto = attach(d, a).out.pt_id as number;
    const manual = hwptAlloc(1, a).out.out_hwpt_id as number;
    expect(attach(d, manual).out.pt_id).toBe(manual);
    expect(h.call(i, 'IOMMU_DESTROY', { id: auto }).result).toBe(-ENOENT); // replaced away, so destroyed
    expect(h.call(i, 'IOMMU_DESTROY', { id: manual }).result).toBe(-EBUSY);
    expect(h.call(i, 'IOMMU_DESTROY', { id: a }).result).toBe(-EBUSY); // the HWPT holds the IOAS
    detach(d);
    expect(h.call(i, 'IOMMU_DESTROY', { id: manual }).result).toBe(0); // manual HWPTs live until destroyed
    expect(h.call(i, 'IOMMU_DESTROY', { id: a }).result).toBe(0);
  });
});

describe('several devices and groups in one domain', () => {
  it('shares one automatic domain between two functions of a group and a device of another group', () => {
    const [d0, d1, d2] = [0, 1, 2].map((n) => h.open(`/dev/vfio/devices/vfio${n}`));
    for (const d of [d0, d1, d2]) expect(bind(d).result).toBe(0);
    const ioas = ioasAlloc();
    const pts = [d0, d1, d2].map((d) => attach(d, ioas).out.pt_id);
    expect(new Set(pts).size).toBe(1);
    expect(pe(0).tables[0]).toBe(pe(1).tables[0]);
    expect(map(ioas, 0x20_0000n, 0x1_0000n)).toBe(0);
    expect(pe(0).translate(0x20_0000n, 'read')).toBe(pe(1).translate(0x20_0000n, 'read'));
    // One function of group 0 detaching leaves the group's PE programmed for its sibling.
    detach(d0);
    expect(pe(0).translate(0x20_0000n, 'read')).toBeTypeOf('bigint');
    detach(d1);
    expect(pe(0).blocked).toBe(true);
    expect(pe(1).translate(0x20_0000n, 'read')).toBeTypeOf('bigint');
  });

  it('refuses to attach a group to two domains through two of its devices', () => {
    const [d0, d1] = [0, 1].map((n) => h.open(`/dev/vfio/devices/vfio${n}`));
    bind(d0);
    bind(d1);
    const a = ioasAlloc();
    const b = ioasAlloc();
    attach(d0, a);
    expect(attach(d1, b).result).toBe(-EINVAL);
  });

  it('refuses a domain whose apertures would cut existing mappings (EADDRINUSE)', () => {
    const d = h.open('/dev/vfio/devices/vfio2');
    bind(d);
    const ioas = ioasAlloc();
    expect(map(ioas, 3n * GiB, 0x1_0000n)).toBe(0); // fine while no domain exists
    expect(attach(d, ioas).result).toBe(-EADDRINUSE);
    expect(pe(1).blocked).toBe(true);
    expect(h.daemon.host.stats().tables).toBe(0);
  });
});

describe('the second DMA window (experimental IOMMU_HWPT_DATA_SPAPR_TCE) and GET_HW_INFO', () => {
  it('creates a domain with both windows, reports both apertures, and maps into each with its page size', () => {
    const d = h.open('/dev/vfio/devices/vfio2');
    bind(d);
    const ioas = ioasAlloc();
    const hw = hwptAlloc(1, ioas, spapr([12, 1, GiB], [16, 2, 1n << 40n]));
    expect(hw.result).toBe(0);
    expect(ranges(ioas)).toEqual({ align: 4096n, list: [[0n, GiB - 1n], [W64, W64 + (1n << 40n) - 1n]] });
    expect(attach(d, hw.out.out_hwpt_id as number).result).toBe(0);
    expect(map(ioas, W64 + 0x1_0000n, 0x2_0000n, VA, FIXED | R)).toBe(0);
    expect(map(ioas, W64 + 0x4_1000n, 0x1000n)).toBe(-EINVAL); // 4K in the 64K-page window
    expect(map(ioas, 0x1000n, 0x1000n, VA, FIXED | W)).toBe(0);
    expect(() => pe(1).translate(W64 + 0x1_0000n, 'write')).toThrow(/forbids write/); // read-only is R, not RW
    expect(() => pe(1).translate(0x1000n, 'read')).not.toThrow(); // PowerNV stores W-only as RW
    const live = [...pe(1).tables[1]!.entries()];
    expect(live.map((e) => e.iova)).toEqual([W64 + 0x1_0000n, W64 + 0x2_0000n]);
    // The windows' locked memory is charged to the process and returned with the domain.
    expect(h.daemon.host.account('pid:100').locked).toBeGreaterThan(0n);
    detach(d);
    h.call(i, 'IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova: 0n, length: (1n << 64n) - 1n });
    expect(h.call(i, 'IOMMU_DESTROY', { id: hw.out.out_hwpt_id as number }).result).toBe(0);
    expect(h.daemon.host.stats()).toMatchObject({ tables: 0, liveTces: 0 });
    expect(h.daemon.host.account('pid:100').locked).toBe(0n);
  });

  it('checks HWPT_ALLOC with the kernel errnos', () => {
    const d = h.open('/dev/vfio/devices/vfio2');
    bind(d);
    const ioas = ioasAlloc();
    expect(hwptAlloc(9, ioas).result).toBe(-ENOENT);
    expect(hwptAlloc(1, 1).result).toBe(-EINVAL); // pt_id is the device
    expect(hwptAlloc(1, 77).result).toBe(-EINVAL); // missing pt_id is EINVAL here
    expect(hwptAlloc(1, ioas, undefined, { flags: IOMMUFD.IOMMU_HWPT_ALLOC_NEST_PARENT }).result).toBe(-EOPNOTSUPP);
    expect(hwptAlloc(1, ioas, undefined, { data_len: 4 }).result).toBe(-EINVAL);
    expect(hwptAlloc(1, ioas, undefined, { __reserved: 1 }).result).toBe(-EOPNOTSUPP);
    expect(h.call(i, 'IOMMU_HWPT_ALLOC', { dev_id: 1, pt_id: ioas, data_type: 1, data_len: 24, data_uptr: 0x1000n }).result).toBe(-EOPNOTSUPP);
    expect(hwptAlloc(1, ioas, spapr([13, 1, GiB], null)).result).toBe(-EINVAL); // 8K pages: not on PHB4
    expect(hwptAlloc(1, ioas, spapr(null, null)).result).toBe(-EINVAL);
    expect(hwptAlloc(1, ioas, spapr(null, [16, 1, 1n << 32n])).result).toBe(0); // the 64-bit window alone
  });

  it('reports the TCE capabilities, zero-filling the rest of the buffer and giving the true length', () => {
    const d = h.open('/dev/vfio/devices/vfio2');
    bind(d);
    const info = (data_len: number, extra = {}) => h.call(i, 'IOMMU_GET_HW_INFO', { dev_id: 1, data_len, data_uptr: 0x1000n, ...extra });
    const full = info(64);
    expect(full.out).toMatchObject({ data_len: 40, out_data_type: TCEFS_EXT.IOMMU_HW_INFO_TYPE_SPAPR_TCE, out_capabilities: 0n });
    const data = full.blobs[0].data;
    expect(data.length).toBe(64);
    expect([data.readUInt32LE(0), data.readUInt32LE(4), data.readUInt32LE(8), data.readUInt32LE(16)]).toEqual([1, 2, 5, 0x8000_0000]);
    expect([data.readBigUInt64LE(24), data.readBigUInt64LE(32)]).toEqual([0x4021_1000n, W64]);
    expect(data.subarray(40).every((b) => b === 0)).toBe(true);
    expect(info(8).blobs[0].data.length).toBe(8);
    expect(info(0).blobs).toEqual([]);
    expect(h.call(i, 'IOMMU_GET_HW_INFO', { dev_id: 7, data_len: 0 }).result).toBe(-ENOENT);
    expect(info(8, { flags: 2 }).result).toBe(-EOPNOTSUPP);
    expect(info(8, { flags: 1, in_data_type: 1 }).result).toBe(-EOPNOTSUPP);
  });
});

describe('lifetimes', () => {
  it('a bound device keeps its iommufd alive after the iommufd is closed; closing the device releases all', () => {
    const d = h.open('/dev/vfio/devices/vfio2');
    bind(d);
    const ioas = ioasAlloc();
    attach(d, ioas);
    map(ioas, 0x10000n, 0x10000n);
    h.close(i);
    expect(pe(1).translate(0x10000n, 'read')).toBeTypeOf('bigint'); // the context lives on
    h.close(d);
    expect(h.daemon.host.stats()).toMatchObject({ tables: 0, liveTces: 0, pinnedBytes: 0n, lockedBytes: 0n, lockUnderflows: 0 });
    expect(pe(1).ownership).toBe('platform');
  });
});

describe('the group path with an iommufd as the container (iommufd_compat modes)', () => {
  it('creates a compat IOAS, binds and attaches devices at GET_DEVICE_FD, and serves VFIO compat calls', () => {
    const g = h.open('/dev/vfio/1');
    expect(h.setContainer(g, i)).toBe(0);
    expect(h.call(g, 'VFIO_GROUP_GET_STATUS').out.flags).toBe(3);
    expect(h.call(i, 'IOMMU_VFIO_IOAS', { op: 0 }).out.ioas_id).toBe(1);
    expect(h.call(i, 'VFIO_SET_IOMMU', {}, { arg: VFIO.VFIO_TYPE1v2_IOMMU }).result).toBe(0);
    expect(h.getDeviceFd(g, '0000:99:00.0').result).toBe(-ENODEV);
    const dev = h.getDeviceFd(g, '0000:02:00.0');
    expect(dev.result).toBe(0);
    expect(h.call(dev.file!, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: i.handle }).result).toBe(-EINVAL);
    expect(h.call(dev.file!, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { pt_id: 1 }).result).toBe(-25); // ENOTTY on a group fd
    expect(h.call(i, 'VFIO_IOMMU_MAP_DMA', { flags: 3, vaddr: VA, iova: 0x10000n, size: 0x10000n }).result).toBe(0);
    expect(pe(1).translate(0x10000n, 'write')).toBe(h.daemon.host.memory.hpaOf('pid:100', VA));
    const info = Buffer.alloc(72); // fixed 24 + DMA_AVAIL 16 + IOVA_RANGE 16 + one range 16
    info.writeUInt32LE(72, 0);
    const r = h.call(i, 'VFIO_IOMMU_GET_INFO', {}, { raw: info });
    expect(r.outBytes.readUInt32LE(48)).toBe(1); // nr_iovas
    expect([r.outBytes.readBigUInt64LE(56), r.outBytes.readBigUInt64LE(64)]).toEqual([0n, 0x7fff_ffffn]); // the default window
    expect(h.call(g, 'VFIO_GROUP_UNSET_CONTAINER').result).toBe(-EBUSY);
    h.close(dev.file!);
    expect(h.call(g, 'VFIO_GROUP_UNSET_CONTAINER').result).toBe(0);
    h.close(g);
    h.close(i);
    expect(h.daemon.host.stats()).toMatchObject({ tables: 0, liveTces: 0, pinnedBytes: 0n });
    expect(pe(1).ownership).toBe('platform');
  });
});

describe('/dev/vfio/vfio as an iommufd (host.vfioContainer: "iommufd", CONFIG_IOMMUFD_VFIO_CONTAINER)', () => {
  it('answers as an iommufd in compat mode, accounting per process, and serves the group path', async () => {
    const { DEFAULT_TOPOLOGY_JSON } = await import('../../src/topology/topology.ts');
    h = new Harness({ ...DEFAULT_TOPOLOGY_JSON, host: { ...DEFAULT_TOPOLOGY_JSON.host, vfioContainer: 'iommufd' } });
    const c = h.open('/dev/vfio/vfio');
    expect(c.kind).toBe('iommufd');
    expect(h.call(c, 'VFIO_CHECK_EXTENSION', {}, { arg: VFIO.VFIO_TYPE1v2_IOMMU }).result).toBe(1);
    expect(h.call(c, 'VFIO_CHECK_EXTENSION', {}, { arg: VFIO.VFIO_SPAPR_TCE_v2_IOMMU }).result).toBe(0);
    expect(h.call(c, 'IOMMU_OPTION', { option_id: 0, op: 1 }).out.val64).toBe(1n);
    const g = h.open('/dev/vfio/1');
    expect(h.setContainer(g, c)).toBe(0);
    expect(h.call(c, 'VFIO_SET_IOMMU', {}, { arg: VFIO.VFIO_TYPE1v2_IOMMU }).result).toBe(0);
    expect(h.getDeviceFd(g, '0000:02:00.0').result).toBe(0);
    expect(h.call(c, 'VFIO_IOMMU_MAP_DMA', { flags: 3, vaddr: VA, iova: 0n, size: 0x1000n }).result).toBe(0);
  });
});

describe('extension: the SPAPR v2 container calls on an iommufd (host.iommufdSpaprCompat)', () => {
  it('hosts the SPAPR driver for the groups set to it, owning their DMA as a legacy container does', async () => {
    const { DEFAULT_TOPOLOGY_JSON } = await import('../../src/topology/topology.ts');
    h = new Harness({ ...DEFAULT_TOPOLOGY_JSON, host: { ...DEFAULT_TOPOLOGY_JSON.host, iommufdSpaprCompat: true } });
    i = h.open('/dev/iommu');
    expect(h.call(i, 'VFIO_CHECK_EXTENSION', {}, { arg: VFIO.VFIO_SPAPR_TCE_v2_IOMMU }).result).toBe(1);
    expect(h.call(i, 'VFIO_CHECK_EXTENSION', {}, { arg: VFIO.VFIO_SPAPR_TCE_IOMMU }).result).toBe(0); // v2 only
    expect(h.call(i, 'VFIO_SET_IOMMU', {}, { arg: VFIO.VFIO_SPAPR_TCE_v2_IOMMU }).result).toBe(-ENODEV); // no group yet
    const g = h.open('/dev/vfio/1');
    expect(h.setContainer(g, i)).toBe(0);
    expect(pe(1).ownership).toBe('platform');
    expect(h.call(i, 'VFIO_SET_IOMMU', {}, { arg: VFIO.VFIO_SPAPR_TCE_v2_IOMMU }).result).toBe(0);
    expect(pe(1).ownership).toBe('user');
    expect(h.call(i, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', { vaddr: VA, size: GiB }).result).toBe(0);
    expect(h.call(i, 'VFIO_IOMMU_SPAPR_TCE_GET_INFO').out).toMatchObject({ flags: 1, 'ddw.max_dynamic_windows_supported': 2 });
    expect(h.call(i, 'VFIO_IOMMU_SPAPR_TCE_CREATE', { page_shift: 16, window_size: 1n << 32n, levels: 1 }).out.start_addr).toBe(W64);
    expect(h.call(i, 'VFIO_IOMMU_MAP_DMA', { flags: 3, vaddr: VA, iova: W64, size: 0x10000n }).result).toBe(0);
    expect(pe(1).translate(W64, 'write')).toBe(h.daemon.host.memory.hpaOf('pid:100', VA));
    // The device comes from the group path without an iommufd binding; iommufd objects still work.
    const dev = h.getDeviceFd(g, '0000:02:00.0');
    expect(dev.result).toBe(0);
    expect(h.call(i, 'IOMMU_IOAS_ALLOC').result).toBe(0);
    // The group keeps the iommufd alive after it is closed; closing the group releases everything.
    h.close(i);
    expect(pe(1).translate(W64, 'read')).toBeTypeOf('bigint');
    h.close(dev.file!);
    h.close(g);
    expect(h.daemon.host.stats()).toMatchObject({ tables: 0, liveTces: 0, pinnedBytes: 0n, lockedBytes: 0n });
    expect(pe(1).ownership).toBe('platform');
  });
});
