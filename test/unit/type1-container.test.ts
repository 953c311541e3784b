// The legacy container with VFIO_TYPE1v2_IOMMU, on a host profile that offers it (host.type1Compat):
// the type1 calls over an IOAS of the container's own, with one TCE domain shared by its groups.
import { describe, expect, it } from 'vitest';
import { EINVAL, ENOTTY } from '../../src/errno.ts';
import { DEFAULT_TOPOLOGY_JSON } from '../../src/topology/topology.ts';
import { VFIO } from '../../src/uapi/constants.ts';
import { Harness } from '../helpers/direct.ts';

const VA = 0x7f00_0000_0000n;

describe('type1v2 on the legacy container', () => {
  it('maps through a domain shared by every group and reports the window as the IOVA range', () => {
    const h = new Harness({ ...DEFAULT_TOPOLOGY_JSON, host: { ...DEFAULT_TOPOLOGY_JSON.host, type1Compat: true } });
    const c = h.open('/dev/vfio/vfio');
    const g1 = h.open('/dev/vfio/1');
    const g0 = h.open('/dev/vfio/0');
    expect(h.call(c, 'VFIO_CHECK_EXTENSION', {}, { arg: VFIO.VFIO_TYPE1v2_IOMMU }).result).toBe(1);
    expect(h.setContainer(g1, c)).toBe(0);
    expect(h.call(c, 'VFIO_SET_IOMMU', {}, { arg: VFIO.VFIO_TYPE1v2_IOMMU }).result).toBe(0);
    expect(h.call(c, 'VFIO_CHECK_EXTENSION', {}, { arg: VFIO.VFIO_SPAPR_TCE_v2_IOMMU }).result).toBe(0); // only the chosen driver answers
    expect(h.setContainer(g0, c)).toBe(0); // joins the existing domain
    const pe = (id: number) => h.daemon.inventory.groups.get(id)!.pe;
    expect(pe(0).tables[0]).toBe(pe(1).tables[0]);
    const map = (iova: bigint, size: bigint) => h.call(c, 'VFIO_IOMMU_MAP_DMA', { flags: 3, vaddr: VA, iova, size }).result;
    expect(map(0x10000n, 0x10000n)).toBe(0);
    expect(map(0x10000n, 0x10000n)).toBe(-17); // EEXIST: type1 does not replace
    expect(map(0x1_0000_0000n, 0x1000n)).toBe(-EINVAL); // outside the 2 GiB window: reserved
    expect(pe(0).translate(0x10000n, 'write')).toBe(pe(1).translate(0x10000n, 'write'));
    const info = Buffer.alloc(72);
    info.writeUInt32LE(72);
    const out = h.call(c, 'VFIO_IOMMU_GET_INFO', {}, { raw: info }).outBytes;
    expect([out.readBigUInt64LE(56), out.readBigUInt64LE(64)]).toEqual([0n, 0x7fff_ffffn]);
    expect(h.call(c, 'VFIO_IOMMU_ENABLE').result).toBe(-ENOTTY);
    expect(h.call(c, 'VFIO_IOMMU_UNMAP_DMA', { iova: 0x10000n, size: 0x10000n }).out.size).toBe(0x10000n);
    expect(h.call(g1, 'VFIO_GROUP_UNSET_CONTAINER').result).toBe(0);
    expect(pe(1).ownership).toBe('platform');
    h.close(g0);
    expect(h.daemon.host.stats()).toMatchObject({ tables: 0, liveTces: 0, pinnedBytes: 0n, lockedBytes: 0n });
  });
});
