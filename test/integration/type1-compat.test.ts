// A driver written for a type1 (x86) host, and the kernel selftest's HUGE_PAGES alignment case, run
// unmodified under `tcefs run` on the 64K-page and the 4K-page POWER host (--page-size), with
// /dev/vfio/vfio backed by iommufd (--vfio-container iommufd) and with /dev/iommu as the container.
// The answers are those of a POWER kernel of that page size (docs/page-size.md).
import { describe, expect, it } from 'vitest';
import { kv } from '../helpers/c.ts';
import { runUnderShim, tcefsRun } from '../helpers/shim.ts';

type PageSize = '4K' | '64K';
const bytes = (p: PageSize) => (p === '4K' ? 0x1000 : 0x10000);
const hex = (n: number) => `0x${n.toString(16)}`;

describe('IOMMU_OPTION HUGE_PAGES on an IOAS without a domain (the ioas_align_change case)', () => {
  it('on the 4K host, follows a 4K kernel: aligned areas allow it, a half-page offset does not', async () => {
    const r = await runUnderShim('ioas_align', [], { runArgs: ['--page-size', '4K'] });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toEqual({
      ioas_alloc: '0', map_page: '0', huge_off: '0', alignment_off: '0x1000', map_half_offset: '-EINVAL',
      huge_off_again: '0', huge_on: '0', alignment_on: '0x1', map_half: '0', huge_off_misaligned: '-EADDRINUSE',
      unmap_half: '0', unmap_page: '0',
    });
  });

  it('on the 64K host, a 4K area already breaks the host page: EADDRINUSE, as on a 64K kernel', async () => {
    const r = await runUnderShim('ioas_align', [], { runArgs: ['--page-size', '64K'] });
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toMatchObject({ map_page: '0', huge_off: '-EADDRINUSE', alignment_off: '0x1', map_half_offset: '0' });
  });
});

/** What type1_client prints on a POWER host of page size `page` with IOMMU type 1 (TYPE1) or 3 (TYPE1v2). */
function expected(page: PageSize, type: 1 | 3): Record<string, string> {
  const g = bytes(page); // GET_INFO's granule: the host page (the 4K TCE window's page is below it or equal)
  const v1 = type === 1;
  // TYPE1 maps in host pages only: one 4K CPU page is refused on the 64K host.
  const cpuPage: Record<string, string> = v1 && page === '64K' ? { map_cpu_page: '-EINVAL' } : { map_cpu_page: '0', unmap_cpu_page: '0', unmap_cpu_page_size: '0x1000' };
  return {
    api_version: '0', ext_type1: '1', ext_type1v2: '1', ext_unmap_all: '1', ext_update_vaddr: '0', ext_spapr: '0',
    group_status: '0', group_viable: '1', info_before_container: '-ENODEV', set_container: '0',
    set_iommu_spapr: '-EINVAL', set_iommu: '0', ext_cc_no_domain: '1',
    info_no_device_probe: '0', info_no_device: '0', device_fd_positive: '0', device_info: '0', device_pci: '1',
    ext_cc: '0', // TCE domains do not enforce cache coherency
    info_probe: '0', info: '0', info_pgsizes: hex(g), info_dma_avail: '4294967295',
    info_nr_iovas: '1', info_range_0: '0x0-0x7fffffff', granule: hex(g),
    map: '0', map_again: '-EEXIST', map_size_0: '-EINVAL', map_vaddr_flag: '-EINVAL', map_outside: '-EINVAL', map_read_only: '0',
    ...cpuPage,
    // Refused flags return before the struct is written back: size is what was passed.
    unmap_dirty_flag: '-EINVAL', unmap_dirty_flag_size: hex(g), unmap_vaddr_flag: '-EINVAL', unmap_vaddr_flag_size: hex(g),
    unmap_size_0: '-EINVAL', unmap_size_0_size: '0x0', unmap_all_bad: '-EINVAL', unmap_all_bad_size: '0x0',
    unmap_nothing: '0', unmap_nothing_size: '0x0',
    // TYPE1 cuts the mapping around the range; TYPE1v2 will not split it.
    unmap_middle: v1 ? '0' : '-ENOENT', unmap_middle_size: v1 ? hex(g) : '0x0',
    // A refused cut leaves the struct as it was; an unmap that ran writes back what it removed.
    unmap_unaligned: v1 ? '-EINVAL' : '-ENOENT', unmap_unaligned_size: v1 ? hex(g) : '0x0',
    dirty_pages: '-ENOTTY',
    unmap_all: '0', unmap_all_size: hex((v1 ? 4 : 5) * g),
  };
}

describe('a type1 driver on an iommufd-backed container', () => {
  for (const page of ['64K', '4K'] as const) {
    for (const type of [3, 1] as const) {
      it(`/dev/vfio/vfio, ${page} host, ${type === 1 ? 'TYPE1' : 'TYPE1v2'}`, async () => {
        const r = await runUnderShim('type1_client', ['/dev/vfio/vfio', '1', '0000:02:00.0', String(type)], { runArgs: ['--page-size', page, '--vfio-container', 'iommufd'] });
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(kv(r.stdout)).toEqual(expected(page, type));
      });
    }
    it(`/dev/iommu as the container, ${page} host, TYPE1`, async () => {
      const r = await runUnderShim('type1_client', ['/dev/iommu', '0', '0000:01:00.1', '1'], { runArgs: ['--page-size', page] });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(kv(r.stdout)).toEqual(expected(page, 1));
    });
  }

  it('the legacy container refuses type1 as a POWER kernel does', async () => {
    const r = await runUnderShim('type1_client', ['/dev/vfio/vfio', '1', '0000:02:00.0', '3'], { runArgs: ['--page-size', '4K'] });
    expect(r.code).toBe(1); // no IOVA range to map into
    expect(kv(r.stdout)).toMatchObject({ ext_type1: '0', ext_type1v2: '0', ext_spapr: '1', set_iommu_spapr: '0', set_iommu: '-EINVAL' });
  });
});

describe('tcefs run --page-size', () => {
  it('shapes the private mount only: with --mount it is refused, not ignored', async () => {
    const r = await tcefsRun(['true'], { mnt: '/', runArgs: ['--page-size', '4K'] });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot go with --mount/);
    const bad = await tcefsRun(['true'], { runArgs: ['--page-size', '8K'] });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/Allowed choices are 4K, 64K/);
  });
});
