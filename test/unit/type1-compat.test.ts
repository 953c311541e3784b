// VFIO type1/type1v2 served by iommufd (the kernel's vfio_compat.c) over TCE domains, on the 64K-page and
// the 4K-page POWER host: SET_IOMMU and large pages, GET_INFO's page sizes and IOVA ranges, maps inside
// and outside the windows, TYPE1's cut-and-unmap against TYPE1v2's whole areas, the size rules, the
// refused flags and calls, CHECK_EXTENSION, locked memory. /dev/vfio/vfio is an iommufd here.
import { describe, expect, it } from 'vitest';
import { EADDRINUSE, EEXIST, EINVAL, ENOENT, ENOMEM, ENOTTY, EOVERFLOW } from '../../src/errno.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import { ownerName } from '../../src/dispatch/call.ts';
import { DEFAULT_TOPOLOGY_JSON } from '../../src/topology/topology.ts';
import { IOMMUFD, TCEFS_EXT, VFIO } from '../../src/uapi/constants.ts';
import { encode } from '../../src/uapi/layout.ts';
import { iommu_hwpt_spapr_tce } from '../../src/uapi/structs.ts';
import { Harness } from '../helpers/direct.ts';
import { seededRandom } from '../helpers/random.ts';

const U64_MAX = (1n << 64n) - 1n;
const VA = 0x7f00_0000_0000n;
const K4 = 0x1000n;
const K64 = 0x10000n;

type Host = { pageShift: 12 | 16 };
const HOSTS: (Host & { page: bigint; name: string })[] = [
  { pageShift: 16, page: K64, name: '64K host' },
  { pageShift: 12, page: K4, name: '4K host' },
];

/** A harness whose /dev/vfio/vfio is an iommufd, with group 1 (the NVMe drive) set to it. */
function setup(host: Host, extra: object = {}) {
  const h = new Harness({ ...DEFAULT_TOPOLOGY_JSON, host: { ...DEFAULT_TOPOLOGY_JSON.host, vfioContainer: 'iommufd', pageShift: host.pageShift, ...extra } });
  const c = h.open('/dev/vfio/vfio');
  const g = h.open('/dev/vfio/1');
  expect(h.setContainer(g, c)).toBe(0);
  const setIommu = (type: number) => h.call(c, 'VFIO_SET_IOMMU', {}, { arg: type }).result;
  const ext = (e: number) => h.call(c, 'VFIO_CHECK_EXTENSION', {}, { arg: e }).result;
  const map = (iova: bigint, size: bigint, vaddr = VA + iova, flags = 3) => h.call(c, 'VFIO_IOMMU_MAP_DMA', { flags, vaddr, iova, size }).result;
  const unmap = (iova: bigint, size: bigint, flags = 0) => {
    const r = h.call(c, 'VFIO_IOMMU_UNMAP_DMA', { flags, iova, size });
    return { result: r.result, size: r.out.size as bigint };
  };
  let device: OpenFile | undefined;
  const openDevice = () => {
    const d = h.getDeviceFd(g, '0000:02:00.0');
    device = d.file;
    return d.result;
  };
  const pe = () => h.daemon.inventory.groups.get(1)!.pe;
  const mapped = (iova: bigint) => {
    try {
      pe().translate(iova, 'read');
      return true;
    } catch {
      return false;
    }
  };
  const info = () => {
    const b = Buffer.alloc(72);
    b.writeUInt32LE(72);
    const out = h.call(c, 'VFIO_IOMMU_GET_INFO', {}, { raw: b }).outBytes;
    return { pgsizes: out.readBigUInt64LE(8), nr: out.readUInt32LE(48), range: [out.readBigUInt64LE(56), out.readBigUInt64LE(64)] };
  };
  const close = () => {
    if (device) h.close(device);
    h.close(g);
    h.close(c);
  };
  return { h, c, g, setIommu, ext, map, unmap, openDevice, pe, mapped, info, close };
}

for (const host of HOSTS) {
  const P = host.page;
  describe(`type1 compat on the ${host.name}`, () => {
    it('TYPE1 maps in host pages only; TYPE1v2 in the domain\'s 4K TCE pages', () => {
      const v1 = setup(host);
      expect(v1.setIommu(VFIO.VFIO_TYPE1_IOMMU)).toBe(0);
      expect(v1.map(0x100000n, K4)).toBe(P === K4 ? 0 : -EINVAL);
      expect(v1.map(0x200000n, K64)).toBe(0);
      expect(v1.map(0x300000n, K64, VA + 0x300000n + K4)).toBe(P === K4 ? 0 : -EINVAL); // user address off the host page
      expect(v1.openDevice()).toBe(0);
      expect(v1.mapped(0x200000n)).toBe(true);
      const v2 = setup(host);
      expect(v2.setIommu(VFIO.VFIO_TYPE1v2_IOMMU)).toBe(0);
      expect(v2.openDevice()).toBe(0);
      expect(v2.map(0x100000n, K4, VA + 0x100000n + K4)).toBe(0);
      expect(v2.mapped(0x100000n)).toBe(true);
    });

    it('SET_IOMMU(TYPE1) is refused once a domain holds mappings; TYPE1v2 after TYPE1 keeps large pages off', () => {
      const s = setup(host);
      expect(s.setIommu(VFIO.VFIO_TYPE1v2_IOMMU)).toBe(0);
      expect(s.openDevice()).toBe(0);
      expect(s.map(0n, P)).toBe(0);
      expect(s.setIommu(VFIO.VFIO_TYPE1_IOMMU)).toBe(-EINVAL);
      expect(s.unmap(0n, P).result).toBe(0);
      expect(s.setIommu(VFIO.VFIO_TYPE1_IOMMU)).toBe(0); // a domain but no area
      expect(s.setIommu(VFIO.VFIO_TYPE1v2_IOMMU)).toBe(0);
      expect(s.map(0n, 4n * P)).toBe(0);
      expect(s.unmap(P, P)).toEqual({ result: 0, size: P }); // still cuts: v2 does not turn large pages back on
    });

    it('GET_INFO: all pages above the host page with no domain; the host page and the TCE window with one', () => {
      const s = setup(host);
      expect(s.setIommu(VFIO.VFIO_TYPE1v2_IOMMU)).toBe(0);
      expect(s.info()).toEqual({ pgsizes: U64_MAX & ~(P - 1n), nr: 1, range: [0n, U64_MAX] });
      expect(s.openDevice()).toBe(0);
      // The 4K TCE window's page is never below the host page's bit: the kernel raises it to PAGE_SIZE.
      expect(s.info()).toEqual({ pgsizes: P, nr: 1, range: [0n, 0x7fff_ffffn] });
      expect(s.map(0x8000_0000n, P)).toBe(-EINVAL); // just past the window: reserved
      expect(s.map(0x7fff_0000n, 2n * K64)).toBe(-EINVAL); // straddles the window's end
      expect(s.map(0x7fff_0000n, K64)).toBe(0); // the window's last 64K
      expect(s.map(0x7fff_0000n, K64)).toBe(-EEXIST);
    });

    it('maps made before the device must fit the window it brings: the device open fails with EADDRINUSE', () => {
      const s = setup(host);
      expect(s.setIommu(VFIO.VFIO_TYPE1v2_IOMMU)).toBe(0);
      expect(s.map(0x1_0000_0000n, P)).toBe(0); // no domain yet: any IOVA
      expect(s.openDevice()).toBe(-EADDRINUSE);
      expect(s.unmap(0x1_0000_0000n, P).result).toBe(0);
      expect(s.openDevice()).toBe(0);
    });

    it('TYPE1 unmaps part of a mapping: the TCEs and pins of the rest stay; a misaligned cut is EINVAL and changes nothing', () => {
      const s = setup(host);
      expect(s.setIommu(VFIO.VFIO_TYPE1_IOMMU)).toBe(0);
      expect(s.openDevice()).toBe(0);
      const base = 0x400000n;
      expect(s.map(base, 4n * P)).toBe(0);
      const pinned = s.h.daemon.host.memory.pinnedBytes();
      expect(pinned).toBe(4n * P);
      expect(s.unmap(base + P, P)).toEqual({ result: 0, size: P });
      expect([0n, 1n, 2n, 3n].map((k) => s.mapped(base + k * P))).toEqual([true, false, true, true]);
      expect(s.h.daemon.host.memory.pinnedBytes()).toBe(3n * P);
      expect(s.unmap(base + 2n * P + 1n, P)).toEqual({ result: -EINVAL, size: P }); // refused by the cut: not written back
      expect(s.mapped(base + 2n * P)).toBe(true);
      // The last page alone, then a range covering the two pieces left and the hole between them.
      expect(s.unmap(base + 3n * P, P)).toEqual({ result: 0, size: P });
      expect(s.unmap(base, 3n * P)).toEqual({ result: 0, size: 2n * P });
      expect(s.h.daemon.host.memory.pinnedBytes()).toBe(0n);
      // A cut at the start of the address space needs no second cut.
      expect(s.map(0n, 2n * P)).toBe(0);
      expect(s.unmap(0n, P)).toEqual({ result: 0, size: P });
      expect(s.unmap(0n, 2n * P)).toEqual({ result: 0, size: P });
      s.close();
      expect(s.h.daemon.host.stats()).toMatchObject({ tables: 0, liveTces: 0, pinnedBytes: 0n, lockedBytes: 0n });
    });

    it('one large mapping unmapped as 16 pieces in shuffled order: TYPE1 cuts each, TYPE1v2 refuses each', () => {
      for (const type of [VFIO.VFIO_TYPE1_IOMMU, VFIO.VFIO_TYPE1v2_IOMMU]) {
        const s = setup(host);
        expect(s.setIommu(type)).toBe(0);
        expect(s.openDevice()).toBe(0);
        const base = 16n << 20n;
        const piece = 16n * P;
        expect(s.map(base, 16n * piece)).toBe(0);
        const rand = seededRandom(type * 7919);
        const order = Array.from({ length: 16 }, (_, k) => BigInt(k));
        for (let k = order.length - 1; k > 0; k--) {
          const j = rand(k + 1);
          [order[k], order[j]] = [order[j], order[k]];
        }
        for (const k of order) {
          const r = s.unmap(base + k * piece, piece);
          expect(r).toEqual(type === VFIO.VFIO_TYPE1_IOMMU ? { result: 0, size: piece } : { result: -ENOENT, size: 0n });
          if (type === VFIO.VFIO_TYPE1_IOMMU) expect(s.mapped(base + k * piece)).toBe(false);
        }
        const left = type === VFIO.VFIO_TYPE1_IOMMU ? 0n : 16n * piece;
        expect(s.h.daemon.host.memory.pinnedBytes()).toBe(left);
        expect(s.unmap(0n, 0n, VFIO.VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ result: 0, size: left });
        s.close();
        expect(s.h.daemon.host.stats()).toMatchObject({ liveTces: 0, pinnedBytes: 0n, lockedBytes: 0n });
      }
    });

    it('TYPE1v2 unmaps whole mappings only, and reports the bytes it removed before the partial one', () => {
      const s = setup(host);
      expect(s.setIommu(VFIO.VFIO_TYPE1v2_IOMMU)).toBe(0);
      expect(s.openDevice()).toBe(0);
      expect(s.map(0n, P)).toBe(0);
      expect(s.map(P, 2n * P)).toBe(0);
      expect(s.unmap(0n, 2n * P)).toEqual({ result: -ENOENT, size: P });
      expect(s.mapped(0n)).toBe(false);
      expect(s.mapped(P)).toBe(true);
      expect(s.unmap(P, 2n * P)).toEqual({ result: 0, size: 2n * P });
    });

    it('size and range rules: size 0, wrap-around, ranges reaching the top, unmap-all', () => {
      const s = setup(host);
      expect(s.setIommu(VFIO.VFIO_TYPE1_IOMMU)).toBe(0);
      expect(s.map(P, 0n)).toBe(-EINVAL);
      expect(s.map(U64_MAX - P + 1n, 2n * P)).toBe(-EOVERFLOW);
      expect(s.map(P, 2n * P)).toBe(0);
      expect(s.unmap(P, 0n)).toEqual({ result: -EINVAL, size: 0n });
      expect(s.unmap(U64_MAX - P + 1n, 2n * P)).toEqual({ result: -EOVERFLOW, size: 0n });
      expect(s.unmap(U64_MAX, 1n)).toEqual({ result: 0, size: 0n }); // the last byte: a range, and nothing there
      expect(s.unmap(0n, U64_MAX)).toEqual({ result: 0, size: 2n * P }); // not IOAS_UNMAP's "all" encoding, just a range
      expect(s.map(P, P)).toBe(0);
      expect(s.map(4n * P, P)).toBe(0);
      expect(s.unmap(0n, 0n, VFIO.VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ result: 0, size: 2n * P });
      expect(s.unmap(0n, 0n, VFIO.VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ result: 0, size: 0n });
    });
  });
}

describe('type1 compat: what the compat layer refuses and answers', () => {
  it('refuses the VADDR and dirty-bitmap flags and the dirty-pages call; CHECK_EXTENSION says so', () => {
    const s = setup(HOSTS[0]);
    expect(s.ext(VFIO.VFIO_UPDATE_VADDR)).toBe(0);
    expect(s.ext(6)).toBe(0); // the retired VFIO_TYPE1_NESTING_IOMMU
    expect(s.ext(VFIO.VFIO_SPAPR_TCE_IOMMU)).toBe(0);
    expect(s.ext(VFIO.VFIO_EEH)).toBe(0);
    expect(s.ext(VFIO.VFIO_UNMAP_ALL)).toBe(1);
    expect(s.setIommu(VFIO.VFIO_TYPE1v2_IOMMU)).toBe(0);
    expect(s.map(0n, K64, VA, 3 | VFIO.VFIO_DMA_MAP_FLAG_VADDR)).toBe(-EINVAL);
    expect(s.map(0n, K64)).toBe(0);
    // Refused before anything is written back: size stays as given.
    expect(s.unmap(0n, K64, VFIO.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP)).toEqual({ result: -EINVAL, size: K64 });
    expect(s.unmap(0n, K64, VFIO.VFIO_DMA_UNMAP_FLAG_VADDR)).toEqual({ result: -EINVAL, size: K64 });
    expect(s.unmap(0n, K64, VFIO.VFIO_DMA_UNMAP_FLAG_ALL | VFIO.VFIO_DMA_UNMAP_FLAG_VADDR)).toEqual({ result: -EINVAL, size: K64 });
    expect(s.unmap(0n, K64, VFIO.VFIO_DMA_UNMAP_FLAG_ALL)).toEqual({ result: -EINVAL, size: K64 }); // ALL needs size 0
    expect(s.h.call(s.c, 'VFIO_IOMMU_DIRTY_PAGES', { flags: 1 }).result).toBe(-ENOTTY);
    expect(s.unmap(0n, K64)).toEqual({ result: 0, size: K64 });
  });

  it('DMA_CC_IOMMU: 1 with no domain, 0 once a TCE domain exists (POWER does not enforce coherency); also on a legacy type1 container', () => {
    const s = setup(HOSTS[0]);
    expect(s.ext(VFIO.VFIO_DMA_CC_IOMMU)).toBe(1);
    expect(s.openDevice()).toBe(0);
    expect(s.ext(VFIO.VFIO_DMA_CC_IOMMU)).toBe(0);
    const h = new Harness({ ...DEFAULT_TOPOLOGY_JSON, host: { ...DEFAULT_TOPOLOGY_JSON.host, type1Compat: true } });
    const c = h.open('/dev/vfio/vfio');
    h.setContainer(h.open('/dev/vfio/1'), c);
    h.call(c, 'VFIO_SET_IOMMU', {}, { arg: VFIO.VFIO_TYPE1v2_IOMMU });
    expect(h.call(c, 'VFIO_CHECK_EXTENSION', {}, { arg: VFIO.VFIO_DMA_CC_IOMMU }).result).toBe(0);
  });

  it('charges mapped host pages to the process (per-process accounting on /dev/vfio/vfio) and refuses past RLIMIT_MEMLOCK', () => {
    for (const host of HOSTS) {
      const s = setup(host);
      expect(s.h.call(s.c, 'IOMMU_OPTION', { option_id: IOMMUFD.IOMMU_OPTION_RLIMIT_MODE, op: IOMMUFD.IOMMU_OPTION_OP_GET }).out.val64).toBe(1n);
      expect(s.setIommu(VFIO.VFIO_TYPE1v2_IOMMU)).toBe(0);
      expect(s.openDevice()).toBe(0);
      const account = s.h.daemon.host.account(ownerName(100));
      const tables = account.locked; // the TCE table is charged too
      account.limit = tables + 4n * host.page;
      // A 4K map locks a whole host page.
      expect(s.map(0n, K4)).toBe(0);
      expect(account.locked - tables).toBe(host.page);
      expect(s.map(host.page, 4n * host.page)).toBe(-ENOMEM);
      expect(account.locked - tables).toBe(host.page);
      expect(s.map(host.page, 3n * host.page)).toBe(0);
      expect(s.unmap(0n, 0n, VFIO.VFIO_DMA_UNMAP_FLAG_ALL).result).toBe(0);
      expect(account.locked).toBe(tables);
    }
  });
});

describe('type1 compat over a domain with two TCE windows', () => {
  it('lists both windows as IOVA ranges and maps into each in its own page size', () => {
    const h = new Harness();
    const i = h.open('/dev/iommu');
    const d = h.open('/dev/vfio/devices/vfio2');
    expect(h.call(d, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: i.handle }).result).toBe(0);
    const ioas = h.call(i, 'IOMMU_IOAS_ALLOC').out.out_ioas_id as number;
    const W64 = 1n << 59n;
    const data = encode(iommu_hwpt_spapr_tce, {
      'window0.page_shift': 12, 'window0.levels': 1, 'window0.window_size': 1n << 30n,
      'window1.page_shift': 16, 'window1.levels': 2, 'window1.window_size': 1n << 40n,
    });
    const hw = h.call(i, 'IOMMU_HWPT_ALLOC', { dev_id: 1, pt_id: ioas, data_type: TCEFS_EXT.IOMMU_HWPT_DATA_SPAPR_TCE, data_len: data.length, data_uptr: 0x1000n }, { blobs: [{ fieldOffset: 32, data }] });
    expect(hw.result).toBe(0);
    expect(h.call(d, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { pt_id: hw.out.out_hwpt_id as number }).result).toBe(0);
    expect(h.call(i, 'IOMMU_VFIO_IOAS', { op: IOMMUFD.IOMMU_VFIO_IOAS_SET, ioas_id: ioas }).result).toBe(0);
    expect(h.call(i, 'VFIO_SET_IOMMU', {}, { arg: VFIO.VFIO_TYPE1v2_IOMMU }).result).toBe(0);
    const b = Buffer.alloc(88);
    b.writeUInt32LE(88);
    const r = h.call(i, 'VFIO_IOMMU_GET_INFO', {}, { raw: b });
    expect(r.out).toMatchObject({ argsz: 88, cap_offset: 24, iova_pgsizes: K64 }); // 4K|64K, raised to the 64K host page
    const img = r.outBytes;
    expect(img.readUInt32LE(48)).toBe(2);
    expect([0, 1, 2, 3].map((k) => img.readBigUInt64LE(56 + 8 * k))).toEqual([0n, (1n << 30n) - 1n, W64, W64 + (1n << 40n) - 1n]);
    const map = (iova: bigint, size: bigint) => h.call(i, 'VFIO_IOMMU_MAP_DMA', { flags: 3, vaddr: VA, iova, size }).result;
    expect(map(W64 + K4, K4)).toBe(-EINVAL); // 4K inside the 64K-page window
    expect(map(W64, K64)).toBe(0);
    expect(map(K4, K4)).toBe(0);
    expect(map(1n << 30n, K64)).toBe(-EINVAL); // between the windows
  });
});
