// The legacy VFIO container with the SPAPR TCE backend, in-process: the VMM sequence of spapr-tce.md §6.2
// with its exact values, then every errno and quirk of §2.3-2.4, §3 and §4.
import { beforeEach, describe, expect, it } from 'vitest';
import {
  EBADF, EBADFD, EBUSY, EINVAL, EIO, ENODEV, ENOENT, ENOSPC, ENOTTY, ENXIO, EPERM, Errno,
} from '../../src/errno.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import { HANDLE_FOREIGN } from '../../src/transport/frame.ts';
import { VFIO } from '../../src/uapi/constants.ts';
import { Harness } from '../helpers/direct.ts';

const GiB = 1n << 30n;
const V = 0x7f00_0000_0000n; // a 64K-aligned user address
const RW = VFIO.VFIO_DMA_MAP_FLAG_READ | VFIO.VFIO_DMA_MAP_FLAG_WRITE;
const W64 = 1n << 59n;

let h: Harness;
let c: OpenFile;
let g: OpenFile;

function errnoOf(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    if (e instanceof Errno) return -e.errno;
    throw e;
  }
  return 0;
}

/** Container + group 1 + SET_IOMMU(type), as QEMU sets up. */
function setup(type: number = VFIO.VFIO_SPAPR_TCE_v2_IOMMU, harness = new Harness()) {
  h = harness;
  c = h.open('/dev/vfio/vfio');
  g = h.open('/dev/vfio/1');
  expect(h.setContainer(g, c)).toBe(0);
  expect(h.call(c, 'VFIO_SET_IOMMU', {}, { arg: type }).result).toBe(0);
}

const reg = (vaddr: bigint, size: bigint, o = {}) => h.call(c, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', { vaddr, size }, o).result;
const unreg = (vaddr: bigint, size: bigint, o = {}) => h.call(c, 'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY', { vaddr, size }, o).result;
const create = (page_shift: number, window_size: bigint, levels: number, o = {}) => h.call(c, 'VFIO_IOMMU_SPAPR_TCE_CREATE', { page_shift, window_size, levels }, o);
const remove = (start_addr: bigint, o = {}) => h.call(c, 'VFIO_IOMMU_SPAPR_TCE_REMOVE', { start_addr }, o).result;
const map = (vaddr: bigint, iova: bigint, size: bigint, flags = RW, o = {}) => h.call(c, 'VFIO_IOMMU_MAP_DMA', { flags, vaddr, iova, size }, o).result;
const unmap = (iova: bigint, size: bigint, flags = 0, o = {}) => h.call(c, 'VFIO_IOMMU_UNMAP_DMA', { flags, iova, size }, o).result;
const pe = (id = 1) => h.daemon.inventory.groups.get(id)!.pe;
const stats = () => h.daemon.host.stats();

describe('the VMM sequence (spapr-tce.md §6.2), PowerNV PHB4 with 64K host pages', () => {
  it('runs end to end with the reference values and leaves nothing behind', () => {
    h = new Harness();
    c = h.open('/dev/vfio/vfio');
    expect(h.call(c, 'VFIO_GET_API_VERSION').result).toBe(0);
    expect([3, 1, 7].map((e) => h.call(c, 'VFIO_CHECK_EXTENSION', {}, { arg: e }).result)).toEqual([0, 0, 1]);
    g = h.open('/dev/vfio/1');
    expect(h.call(g, 'VFIO_GROUP_GET_STATUS').out.flags).toBe(VFIO.VFIO_GROUP_FLAGS_VIABLE);
    expect(pe().ownership).toBe('platform');
    expect(h.setContainer(g, c)).toBe(0);
    expect(pe().ownership).toBe('user'); // the host's own window and bypass are gone
    expect(pe().tables).toEqual([null, null]);
    expect(h.call(g, 'VFIO_GROUP_GET_STATUS').out.flags).toBe(VFIO.VFIO_GROUP_FLAGS_VIABLE | VFIO.VFIO_GROUP_FLAGS_CONTAINER_SET);
    expect(h.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 }).result).toBe(0);

    expect(reg(V, 4n * GiB)).toBe(0);
    expect(h.daemon.host.account('pid:100').lockedPages).toBe(65536n);
    const info = h.call(c, 'VFIO_IOMMU_SPAPR_TCE_GET_INFO', { argsz: 32 });
    expect(info.out).toMatchObject({
      dma32_window_start: 0, dma32_window_size: 0x8000_0000, flags: 1,
      'ddw.pgsizes': 0x4021_1000n, 'ddw.max_dynamic_windows_supported': 2, 'ddw.levels': 5,
    });
    expect(info.outBytes.length).toBe(32);
    expect(remove(0n)).toBe(0); // only drops the pending default window
    expect(pe().tables).toEqual([null, null]);

    const w0 = create(12, GiB, 1);
    expect(w0.result).toBe(0);
    expect(w0.out.start_addr).toBe(0n);
    expect(w0.outBytes.length).toBe(40);
    expect(map(V + 0x1_0000n, 0x1000n, 0x1000n)).toBe(0);
    const w1 = create(16, 1n << 32n, 1);
    expect(w1.out.start_addr).toBe(W64);
    expect(map(V + 0x2_0000n, W64 + 0x2_0000n, 0x1_0000n)).toBe(0);
    expect(stats().liveTces).toBe(2);
    // The device sees the mapped pages through the PE: the host-physical frame of the registered page.
    const hpa = h.daemon.host.memory.hpaOf('pid:100', V + 0x1_0000n);
    expect(pe().translate(0x1234n, 'write')).toBe(hpa + 0x234n);
    expect(pe().apertures().map((a) => [a.start, a.last])).toEqual([[0n, GiB - 1n], [W64, W64 + (1n << 32n) - 1n]]);

    expect(unmap(W64, 1n << 32n)).toBe(0);
    expect(remove(W64)).toBe(0);
    expect(unmap(0n, GiB)).toBe(0);
    expect(remove(0n)).toBe(0);
    expect(unreg(V, 4n * GiB)).toBe(0);
    expect(h.call(g, 'VFIO_GROUP_UNSET_CONTAINER').result).toBe(0);
    h.close(g);
    h.close(c);
    expect(stats()).toMatchObject({ tables: 0, liveTces: 0, pinnedBytes: 0n, lockedBytes: 0n, lockUnderflows: 0 });
    expect(pe().ownership).toBe('platform'); // the host rebuilt its default window
    expect(pe().tables[0]?.kernelOwned).toBe(true);
  });
});

describe('container and group core', () => {
  beforeEach(() => {
    h = new Harness();
    c = h.open('/dev/vfio/vfio');
    g = h.open('/dev/vfio/1');
  });

  it('SET_IOMMU needs a group, picks a driver that takes the type, and happens once', () => {
    expect(h.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 }).result).toBe(-EINVAL);
    expect(h.setContainer(g, c)).toBe(0);
    expect(h.call(c, 'VFIO_SET_IOMMU', {}, { arg: VFIO.VFIO_TYPE1v2_IOMMU }).result).toBe(-ENODEV);
    expect(h.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 }).result).toBe(0);
    expect(h.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 }).result).toBe(-EINVAL);
    // Only the chosen driver answers now; unknown numbers are ENOTTY instead of EINVAL.
    expect(h.call(c, 'VFIO_CHECK_EXTENSION', {}, { arg: VFIO.VFIO_EEH }).result).toBe(1);
    expect(h.call(c, 'VFIO_IOMMU_ENABLE').result).toBe(-ENOTTY); // v1 only
  });

  it('SET_CONTAINER takes a container handle and refuses anything else', () => {
    const raw = (v: number) => {
      const b = Buffer.alloc(4);
      b.writeInt32LE(v);
      return h.call(g, 'VFIO_GROUP_SET_CONTAINER', {}, { raw: b }).result;
    };
    expect(raw(-1)).toBe(-EBADF);
    expect(raw(0)).toBe(-EBADF);
    expect(raw(0x1234567)).toBe(-EBADF);
    expect(raw(HANDLE_FOREIGN)).toBe(-EBADFD);
    expect(raw(g.handle)).toBe(-EBADFD);
    expect(h.call(g, 'VFIO_GROUP_SET_CONTAINER', {}, { raw: Buffer.alloc(2) }).result).toBe(-14); // EFAULT
    expect(h.setContainer(g, c)).toBe(0);
    expect(h.setContainer(g, c)).toBe(-EINVAL);
    expect(h.call(g, 'VFIO_GROUP_UNSET_CONTAINER').result).toBe(0);
    expect(h.call(g, 'VFIO_GROUP_UNSET_CONTAINER').result).toBe(-EINVAL);
  });

  it('GET_DEVICE_FD needs a container with an IOMMU and a device of the group', () => {
    expect(h.getDeviceFd(g, '0000:02:00.0').result).toBe(-EINVAL);
    h.setContainer(g, c);
    expect(h.getDeviceFd(g, '0000:02:00.0').result).toBe(-EINVAL);
    h.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 });
    expect(h.getDeviceFd(g, '0000:01:00.0').result).toBe(-ENODEV); // in the other group
    const d = h.getDeviceFd(g, '0000:02:00.0 vf_token=12345678-1234-1234-1234-123456789abc');
    expect(d.result).toBe(0);
    const info = h.call(d.file!, 'VFIO_DEVICE_GET_INFO');
    expect(info.out).toMatchObject({ flags: VFIO.VFIO_DEVICE_FLAGS_PCI | VFIO.VFIO_DEVICE_FLAGS_RESET, num_regions: 9, num_irqs: 5 });
    // An open device keeps the group in its container.
    expect(h.call(g, 'VFIO_GROUP_UNSET_CONTAINER').result).toBe(-EBUSY);
    h.close(d.file!);
    expect(h.call(g, 'VFIO_GROUP_UNSET_CONTAINER').result).toBe(0);
  });

  it('a closed container lives on while a group holds it; closing the group releases everything', () => {
    h.setContainer(g, c);
    h.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 });
    expect(reg(V, GiB)).toBe(0);
    expect(create(16, GiB, 1).result).toBe(0);
    expect(map(V, 0n, 0x10000n)).toBe(0);
    h.close(c);
    expect(stats().liveTces).toBe(16); // 64K mapped in the 4K default window, still there: the group keeps the container
    h.close(g);
    expect(stats()).toMatchObject({ tables: 0, liveTces: 0, pinnedBytes: 0n, lockedBytes: 0n });
    expect(pe().ownership).toBe('platform');
  });
});

describe('SPAPR v2 errnos and quirks', () => {
  beforeEach(() => setup());

  it('only the process the container is bound to may use it (CHECK_EXTENSION excepted)', () => {
    expect(reg(V, GiB)).toBe(0); // binds to pid 100
    const other = { pid: 200 };
    expect(h.call(c, 'VFIO_IOMMU_SPAPR_TCE_GET_INFO', {}, other).result).toBe(-EPERM);
    expect(map(V, 0n, 0x1000n, RW, other)).toBe(-EPERM);
    expect(h.call(c, 'VFIO_CHECK_EXTENSION', {}, { arg: 7, pid: 200 }).result).toBe(1);
  });

  it('UNREGISTER before any binding is EPERM; MAP before any registration is EPERM', () => {
    expect(unreg(V, GiB)).toBe(-EPERM);
    expect(map(V, 0n, 0x1000n)).toBe(-EPERM);
    expect(unmap(0n, 0x1000n)).toBe(-EPERM);
  });

  it('REGISTER: argsz, flags, alignment, overlap, a second registration in the same container', () => {
    expect(h.call(c, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', { argsz: 16, vaddr: V, size: GiB }).result).toBe(-EINVAL);
    expect(h.call(c, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', { flags: 1, vaddr: V, size: GiB }).result).toBe(-EINVAL);
    expect(reg(V + 0x1000n, GiB)).toBe(-EINVAL); // not 64K aligned
    expect(reg(V, GiB + 0x1000n)).toBe(-EINVAL);
    expect(reg(V, GiB)).toBe(0);
    expect(reg(V, GiB)).toBe(-EBUSY);
    expect(reg(V + GiB / 2n, GiB)).toBe(-EINVAL); // partial overlap
    expect(reg(V + GiB, GiB)).toBe(0); // adjacent is fine
    expect(h.daemon.host.account('pid:100').locked).toBe(2n * GiB);
  });

  it('UNREGISTER needs the exact range; a still-mapped region is orphaned, pinned, and adopted again', () => {
    expect(reg(V, GiB)).toBe(0);
    expect(unreg(V, GiB / 2n)).toBe(-ENOENT);
    expect(unreg(V + 0x10000n, GiB)).toBe(-ENOENT);
    expect(create(16, GiB, 1).result).toBe(0);
    expect(map(V, 0n, 0x10000n)).toBe(0);
    expect(unreg(V, GiB)).toBe(0);
    expect(h.daemon.host.memory.pinnedBytes('pid:100')).toBe(GiB); // orphaned, not freed
    expect(pe().translate(0n, 'read')).toBe(h.daemon.host.memory.hpaOf('pid:100', V));
    expect(unreg(V, GiB)).toBe(-ENOENT); // no longer this container's
    expect(reg(V, GiB)).toBe(0); // adopts the orphan: no new charge
    const tableCharges = h.daemon.host.tables().reduce((n, t) => n + t.accountedBytes, 0n);
    expect(h.daemon.host.account('pid:100').locked).toBe(GiB + tableCharges);
  });

  it('CREATE: flags, page size, levels, size, and the first free slot', () => {
    reg(V, GiB);
    expect(h.call(c, 'VFIO_IOMMU_SPAPR_TCE_CREATE', { flags: 1, page_shift: 16, window_size: GiB, levels: 1 }).result).toBe(-EINVAL);
    expect(h.call(c, 'VFIO_IOMMU_SPAPR_TCE_CREATE', { argsz: 32, page_shift: 16, window_size: GiB, levels: 1 }).result).toBe(-EINVAL);
    expect(create(13, GiB, 1).result).toBe(-EINVAL); // 8K not in PHB4 pgsizes
    expect(create(16, GiB, 0).result).toBe(-EINVAL);
    expect(create(16, GiB, 6).result).toBe(-EINVAL);
    expect(create(16, GiB + 1n, 1).result).toBe(-EINVAL);
    expect(create(12, GiB, 5).result).toBe(-EINVAL); // the 55-bit rule: (16-3)*5 + 12 = 77 bits
    // The charge comes before the platform's own checks, so a huge table fails there first.
    expect(create(12, 1n << 50n, 5).result).toBe(-12); // ENOMEM against the 16G limit
    // The first CREATE built the pending default window (row 8) before its own checks failed; the
    // failed tables themselves gave their charge back (the safe default).
    expect(pe().tables[0]).toMatchObject({ pageShift: 12, startAddr: 0n, accountedBytes: 8n << 20n });
    expect(h.daemon.host.account('pid:100').locked).toBe(GiB + (8n << 20n));
    // CREATE makes the pending default window first, in slot 0; the new one lands in slot 1.
    expect(create(16, 1n << 40n, 2).out.start_addr).toBe(W64);
    expect(pe().tables[0]?.pageShift).toBe(12);
    expect(create(16, GiB, 1).result).toBe(-ENOSPC);
    // Removing slot 0 then creating puts the "64-bit" window at bus address 0.
    expect(remove(0x1234n)).toBe(0); // any address inside the window
    expect(create(21, 1n << 36n, 1).out.start_addr).toBe(0n);
    expect(remove(0x7000_0000_0000n)).toBe(-EINVAL);
  });

  it('MAP: flags, window, alignment, direction, the +1 quirk, size 0, and the unchecked end', () => {
    reg(V, GiB);
    create(16, GiB, 1); // default 4K window in slot 0 (2 GiB), this one at 2^59
    expect(map(V, 0n, 0x1000n, 4)).toBe(-EINVAL);
    expect(map(V, 0n, 0x1000n, 0)).toBe(-EINVAL);
    expect(map(V, 0x1_0000_0000n, 0x1000n)).toBe(-ENXIO); // between the windows
    expect(map(V, W64, 0x1000n)).toBe(-EINVAL); // size below the 64K page of that window
    expect(map(V + 0x1000n, W64, 0x10000n)).toBe(-EINVAL); // vaddr below the page
    expect(map(V, W64 + 0x1000n, 0x10000n)).toBe(1); // misaligned iova returns 1, maps nothing
    expect(stats().liveTces).toBe(0);
    expect(map(V, W64, 0n)).toBe(0);
    expect(map(V, W64 + GiB - 0x10000n, 0x20000n)).toBe(-EINVAL); // past the window end
    expect(map(V + 2n * GiB, 0n, 0x1000n)).toBe(-EINVAL); // not registered
    expect(map(V, 0x1000n, 0x3000n, VFIO.VFIO_DMA_MAP_FLAG_READ)).toBe(0);
    expect(() => pe().translate(0x1000n, 'write')).toThrow(/forbids write/);
    // Map replaces what is there without EBUSY; PowerNV stores W-only as RW.
    expect(map(V, 0x1000n, 0x1000n, VFIO.VFIO_DMA_MAP_FLAG_WRITE)).toBe(0);
    expect(pe().translate(0x1000n, 'read')).toBe(h.daemon.host.memory.hpaOf('pid:100', V));
    expect(stats().liveTces).toBe(3);
    expect(unmap(0x1000n, 0x1000n, 1)).toBe(-EINVAL);
    expect(unmap(0x1001n, 0x1000n)).toBe(1);
    expect(unmap(0x1000n, 0x3000n)).toBe(0);
    expect(unmap(0x1000n, 0x3000n)).toBe(0); // nothing there: still 0
    expect(stats().liveTces).toBe(0);
  });

  it('MAP refuses memory whose registration is too finely aligned for the window page size', () => {
    reg(V, GiB);
    expect(create(21, GiB, 1).out.start_addr).toBe(W64);
    expect(map(V, W64, 1n << 21n)).toBe(-EINVAL); // 64K host pages cannot back a 2M IOMMU page
  });

  it('a failed MAP clears what it wrote', () => {
    reg(V, 0x2_0000n);
    create(16, GiB, 1);
    expect(map(V, W64, 0x4_0000n)).toBe(-EINVAL); // third page is not registered
    expect(stats().liveTces).toBe(0);
  });
});

describe('--strict-kernel reproduces the kernel bugs', () => {
  it('the end of a MAP is unchecked and a failed CREATE keeps its charge', () => {
    setup(VFIO.VFIO_SPAPR_TCE_v2_IOMMU, new Harness(undefined, { strictKernel: true }));
    reg(V, GiB);
    const before = h.daemon.host.account('pid:100').locked;
    expect(create(12, GiB, 5).result).toBe(-EINVAL);
    expect(h.daemon.host.account('pid:100').locked).toBeGreaterThan(before);
    expect(create(16, 1n << 32n, 2).result).toBe(0);
    const t = pe().tables[1]!;
    // The last page of the window and one past it: the second lands in a hidden on-demand entry.
    expect(map(V, t.endAddr - 0x1_0000n, 0x2_0000n)).toBe(0);
    expect([...t.entries()].some((e) => e.hidden)).toBe(true);
  });
});

describe('SPAPR v1 (the fallback without DDW)', () => {
  beforeEach(() => setup(VFIO.VFIO_SPAPR_TCE_IOMMU));

  it('needs ENABLE, maps pinned pages into the lazily created default window, and refuses v2 calls', () => {
    const info = h.call(c, 'VFIO_IOMMU_SPAPR_TCE_GET_INFO');
    expect(info.out).toMatchObject({ flags: 0, dma32_window_size: 0x8000_0000, 'ddw.pgsizes': 0n, 'ddw.levels': 0 });
    expect(map(V, 0x1000n, 0x1000n)).toBe(-EPERM);
    expect(h.call(c, 'VFIO_IOMMU_ENABLE').result).toBe(0);
    expect(h.call(c, 'VFIO_IOMMU_ENABLE').result).toBe(-EBUSY);
    expect(reg(V, GiB)).toBe(-ENOTTY);
    expect(create(16, GiB, 1).result).toBe(-ENOTTY);
    expect(remove(0n)).toBe(-ENOTTY);
    expect(map(V + 0x3000n, 0x1000n, 0x1000n)).toBe(0);
    expect(pe().tables[0]).toMatchObject({ pageShift: 12, startAddr: 0n, endAddr: 0x8000_0000n });
    expect(h.daemon.host.memory.pinnedBytes('pid:100')).toBe(0x10000n); // one 64K host page
    expect(pe().translate(0x1010n, 'read')).toBe(h.daemon.host.memory.hpaOf('pid:100', V + 0x3010n));
    expect(h.call(c, 'VFIO_IOMMU_DISABLE').result).toBe(0);
    expect(map(V, 0x2000n, 0x1000n)).toBe(-EPERM); // mappings stay, MAP does not
    expect(stats().liveTces).toBe(1);
    h.close(g);
    expect(stats()).toMatchObject({ tables: 0, liveTces: 0, pinnedBytes: 0n, lockedBytes: 0n });
  });

  it('holds one group only', () => {
    const g0 = h.open('/dev/vfio/0');
    expect(h.setContainer(g0, c)).toBe(-EBUSY);
    expect(pe(0).ownership).toBe('platform'); // the claim was undone
  });
});

describe('v2 windows shared by several groups', () => {
  it('programs every window into every PE; detaching one group clears the mappings for all', () => {
    setup();
    const g0 = h.open('/dev/vfio/0');
    expect(h.setContainer(g0, c)).toBe(0);
    reg(V, GiB);
    expect(create(16, GiB, 1).out.start_addr).toBe(W64);
    expect(pe(0).tables[1]).toBe(pe(1).tables[1]);
    expect(map(V, W64, 0x10000n)).toBe(0);
    expect(pe(0).translate(W64, 'write')).toBe(pe(1).translate(W64, 'write'));
    expect(h.call(g0, 'VFIO_GROUP_UNSET_CONTAINER').result).toBe(0);
    expect(() => pe(1).translate(W64, 'read')).toThrow(/no TCE/);
    expect(pe(0).ownership).toBe('platform');
    expect(pe(1).tables[1]).not.toBeNull(); // the window itself stays for the remaining group
  });
});

describe('EEH through the container', () => {
  beforeEach(() => setup());
  const eeh = (op: number, extra = {}) => h.call(c, 'VFIO_EEH_PE_OP', { op, ...extra }).result;

  it('reports state, injects an error that freezes DMA, and recovers with a reset', () => {
    expect(eeh(VFIO.VFIO_EEH_PE_GET_STATE)).toBe(VFIO.VFIO_EEH_PE_STATE_NORMAL);
    expect(eeh(VFIO.VFIO_EEH_PE_ENABLE)).toBe(0);
    expect(h.call(c, 'VFIO_EEH_PE_OP', { argsz: 12, op: VFIO.VFIO_EEH_PE_INJECT_ERR }).result).toBe(-EINVAL);
    expect(eeh(VFIO.VFIO_EEH_PE_GET_STATE, { flags: 1 })).toBe(-EINVAL);
    expect(eeh(VFIO.VFIO_EEH_PE_INJECT_ERR, { 'err.type': 0, 'err.func': 20 })).toBe(-EINVAL);
    expect(eeh(VFIO.VFIO_EEH_PE_INJECT_ERR, { 'err.type': 0, 'err.func': 12 })).toBe(0);
    expect(eeh(VFIO.VFIO_EEH_PE_GET_STATE)).toBe(VFIO.VFIO_EEH_PE_STATE_STOPPED);
    expect(errnoOf(() => pe().translate(0n, 'read'))).toBe(-EIO);
    expect(eeh(VFIO.VFIO_EEH_PE_RESET_HOT)).toBe(0);
    expect(eeh(VFIO.VFIO_EEH_PE_GET_STATE)).toBe(VFIO.VFIO_EEH_PE_STATE_RESET);
    expect(eeh(VFIO.VFIO_EEH_PE_RESET_DEACTIVATE)).toBe(0);
    expect(eeh(VFIO.VFIO_EEH_PE_CONFIGURE)).toBe(0);
    expect(eeh(VFIO.VFIO_EEH_PE_GET_STATE)).toBe(VFIO.VFIO_EEH_PE_STATE_NORMAL);
    expect(eeh(42)).toBe(-EINVAL);
  });

  it('GET_INFO without a group is ENXIO', () => {
    h.close(g);
    // The driver went with the last group; the container is back to "no IOMMU set".
    expect(h.call(c, 'VFIO_IOMMU_SPAPR_TCE_GET_INFO').result).toBe(-EINVAL);
    expect(ENXIO).toBe(6);
  });
});
