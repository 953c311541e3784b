// The host page size where it matters outside type1 compat (test/unit/type1-compat.test.ts): the
// topology field, the host's own DMA window, the SPAPR calls (preregistration alignment, which TCE
// sizes ordinary memory can back, what GET_INFO offers) and locked-memory accounting, on the 64K and
// the 4K host.
import { describe, expect, it } from 'vitest';
import { EINVAL } from '../../src/errno.ts';
import { DEFAULT_TOPOLOGY_JSON, parseTopology, TopologyError } from '../../src/topology/topology.ts';
import { VFIO } from '../../src/uapi/constants.ts';
import { Harness } from '../helpers/direct.ts';

const V = 0x7f00_0000_0000n;
const RW = VFIO.VFIO_DMA_MAP_FLAG_READ | VFIO.VFIO_DMA_MAP_FLAG_WRITE;
const topology = (pageShift: number, extra = {}) => ({ ...DEFAULT_TOPOLOGY_JSON, host: { ...DEFAULT_TOPOLOGY_JSON.host, pageShift, ...extra } });

/** Container + group 1 with the SPAPR type given, on a host of 2^pageShift-byte pages. */
function spapr(pageShift: number, type: number) {
  const h = new Harness(topology(pageShift));
  const c = h.open('/dev/vfio/vfio');
  const g = h.open('/dev/vfio/1');
  const pe = h.daemon.inventory.groups.get(1)!.pe;
  const hostWindowShift = pe.tables[0]?.pageShift;
  expect(h.setContainer(g, c)).toBe(0);
  expect(h.call(c, 'VFIO_SET_IOMMU', {}, { arg: type }).result).toBe(0);
  const reg = (vaddr: bigint, size: bigint) => h.call(c, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', { vaddr, size }).result;
  const map = (vaddr: bigint, iova: bigint, size: bigint) => h.call(c, 'VFIO_IOMMU_MAP_DMA', { flags: RW, vaddr, iova, size }).result;
  const create = (page_shift: number, window_size: bigint, levels = 1) => h.call(c, 'VFIO_IOMMU_SPAPR_TCE_CREATE', { page_shift, window_size, levels });
  return { h, c, g, pe, hostWindowShift, reg, map, create };
}

describe('host.pageShift', () => {
  it('takes 12 (4K) or 16 (64K), nothing else', () => {
    expect(parseTopology(topology(12)).hostPageShift).toBe(12);
    expect(parseTopology(DEFAULT_TOPOLOGY_JSON).hostPageShift).toBe(16);
    expect(() => parseTopology(topology(14))).toThrow(TopologyError);
  });

  it("the host's own window, while the group is the host's, uses IOMMU pages of the host page size", () => {
    expect(spapr(12, VFIO.VFIO_SPAPR_TCE_v2_IOMMU).hostWindowShift).toBe(12);
    expect(spapr(16, VFIO.VFIO_SPAPR_TCE_v2_IOMMU).hostWindowShift).toBe(16);
  });
});

describe('SPAPR TCE on the 4K and the 64K host', () => {
  it('GET_INFO offers the PHB\'s TCE sizes whatever the host page', () => {
    for (const shift of [12, 16]) {
      const s = spapr(shift, VFIO.VFIO_SPAPR_TCE_v2_IOMMU);
      expect(s.h.call(s.c, 'VFIO_IOMMU_SPAPR_TCE_GET_INFO', { argsz: 32 }).out['ddw.pgsizes']).toBe(0x4021_1000n);
    }
  });

  it('v2: preregistration is in host pages; a 4K-aligned buffer registers on the 4K host only', () => {
    const four = spapr(12, VFIO.VFIO_SPAPR_TCE_v2_IOMMU);
    expect(four.reg(V + 0x1000n, 0x3000n)).toBe(0);
    expect(four.h.daemon.host.account('pid:100').locked).toBe(0x3000n);
    const sixtyFour = spapr(16, VFIO.VFIO_SPAPR_TCE_v2_IOMMU);
    expect(sixtyFour.reg(V + 0x1000n, 0x3000n)).toBe(-EINVAL);
    expect(sixtyFour.reg(V, 0x10000n)).toBe(0);
    expect(sixtyFour.h.daemon.host.account('pid:100').locked).toBe(0x10000n);
  });

  it('v2: 4K TCEs map 4K host pages; a 64K-page window cannot use memory backed by 4K pages (EINVAL)', () => {
    const s = spapr(12, VFIO.VFIO_SPAPR_TCE_v2_IOMMU);
    expect(s.reg(V, 0x100000n)).toBe(0);
    // The pending default window: 4K pages over the 32-bit space.
    expect(s.map(V + 0x1000n, 0x1000n, 0x1000n)).toBe(0);
    expect(s.pe.translate(0x1000n, 'write')).toBeGreaterThan(0n);
    const w1 = s.create(16, 1n << 32n);
    expect(w1.result).toBe(0);
    const start = w1.out.start_addr as bigint;
    expect(s.map(V + 0x10000n, start, 0x10000n)).toBe(-EINVAL);
    // On the 64K host the same region backs 64K TCEs.
    const t = spapr(16, VFIO.VFIO_SPAPR_TCE_v2_IOMMU);
    expect(t.reg(V, 0x100000n)).toBe(0);
    const w = t.create(16, 1n << 32n);
    expect(t.map(V + 0x10000n, w.out.start_addr as bigint, 0x10000n)).toBe(0);
  });

  it('v1: 4K TCEs of the default window pin 4K on the 4K host and a whole 64K page on the 64K host', () => {
    for (const [shift, pinned] of [[12, 0x1000n], [16, 0x10000n]] as const) {
      const s = spapr(shift, VFIO.VFIO_SPAPR_TCE_IOMMU);
      expect(s.h.call(s.c, 'VFIO_IOMMU_ENABLE').result).toBe(0);
      expect(s.map(V + 0x1000n, 0x2000n, 0x1000n)).toBe(0);
      expect(s.h.daemon.host.memory.pinnedBytes()).toBe(pinned);
    }
  });
});
