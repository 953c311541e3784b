// The iommufd + VFIO cdev flow and its edge cases (iommufd-and-vfio-cdev.md §2, §5), run unmodified
// under `tcefs run`: fd fields, in- and out-pointed data and the aperture list all cross the shim.
import { describe, expect, it } from 'vitest';
import { kv } from '../helpers/c.ts';
import { runUnderShim } from '../helpers/shim.ts';

describe('iommufd and the VFIO cdev under tcefs run', () => {
  it('binds, attaches, maps, reports apertures, uses the second window, and tears down', async () => {
    const r = await runUnderShim('iommufd_cdev', ['0000:02:00.0']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toEqual({
      cdev: '/dev/vfio/devices/vfio2',
      iommufd_fd_positive: '0',
      info_before_bind: '-EINVAL',
      bind_bad_fd: '-EINVAL',
      bind_not_iommufd: '-EBADFD',
      bind_closed_fd: '-EBADF',
      bind: '0', devid: '1', bind_again: '-EINVAL', info_after_bind: '0',
      ioas_alloc: '0', ioas: '2',
      ranges_empty_probe: '-EMSGSIZE', ranges_empty: '0', ranges_empty_alignment: '0x1', ranges_empty_0: '0x0-0xffffffffffffffff',
      attach_invalid: '-ENOENT', attach: '0', hwpt: '3',
      ranges_attached_probe: '-EMSGSIZE', ranges_attached: '0', ranges_attached_alignment: '0x1000', ranges_attached_0: '0x0-0x7fffffff',
      map_fixed: '0', allocated_iova: '0x10000', map_auto: '0',
      map_overlap: '-EEXIST', map_reserved: '-EINVAL', map_unaligned: '-EINVAL', map_overflow: '-EOVERFLOW',
      unmap_partial: '-ENOENT', unmap_nothing: '-ENOENT',
      destroy_ioas_busy: '-EBUSY', destroy_hwpt_busy: '-EBUSY', destroy_device_busy: '-EBUSY',
      unmap_all: '131072',
      hw_info: '0', hw_type: '0x7ce00001', hw_pgsizes: '0x40211000', hw_windows: '2', hw_levels: '5', hw_window64: '0x800000000000000',
      hwpt_alloc: '0', attach_two_windows: '0',
      ranges_two_windows_probe: '-EMSGSIZE', ranges_two_windows: '0', ranges_two_windows_alignment: '0x1000',
      ranges_two_windows_0: '0x0-0x3fffffff', ranges_two_windows_1: '0x800000000000000-0x80000ffffffffff',
      map_window64: '0',
      detach: '0', detach_again: '0', unmap_all_2: '131072', destroy_hwpt: '0', destroy_ioas: '0',
    });
  });
});
