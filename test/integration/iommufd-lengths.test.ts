// The iommufd commands a TCE host lacks, from a C program under `tcefs run`: the size rules of the
// kernel selftest's cmd_length cross the shim intact, each command gives a TCE host's answer, and a
// memfd maps through IOAS_MAP_FILE (its fd read through /proc) and moves to a child with CHANGE_PROCESS.
import { describe, expect, it } from 'vitest';
import { kv } from '../helpers/c.ts';
import { runUnderShim } from '../helpers/shim.ts';

describe('iommufd commands without a TCE feature under tcefs run', () => {
  it('check sizes first, then answer as a host without the feature', async () => {
    const r = await runUnderShim('iommufd_lengths', []);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toEqual({
      len_set_dirty: 'EINVAL/E2BIG/ENOENT/ENOENT',
      len_get_dirty: 'EINVAL/E2BIG/ENOENT/ENOENT',
      len_invalidate: 'EINVAL/E2BIG/ENOENT/ENOENT',
      // A fault queue is a core feature: made on any host, whatever size the caller's struct claims.
      len_fault_queue: 'EINVAL/E2BIG/0/0',
      len_map_file: 'EINVAL/E2BIG/EINVAL/EINVAL',
      len_viommu: 'EINVAL/E2BIG/EOPNOTSUPP/EOPNOTSUPP',
      len_vdevice: 'EINVAL/E2BIG/ENOENT/ENOENT',
      len_change_process: 'EINVAL/E2BIG/0/0',
      len_veventq: 'EINVAL/E2BIG/EOPNOTSUPP/EOPNOTSUPP',
      len_hw_queue: 'EINVAL/E2BIG/EOPNOTSUPP/EOPNOTSUPP',
      len_noiommu_pa: 'EINVAL/E2BIG/EOPNOTSUPP/EOPNOTSUPP',
      ioas_alloc: '0',
      map_file_iommufd: '-EINVAL',
      map_file_closed: '-EBADF',
      map_file_no_ioas: '-ENOENT',
      map_file_memfd: '0',
      map_file_again: '-EEXIST',
      copy_file_area: '0',
      change_process_file: '0',
      map: '0',
      change_process_mapped: '-EINVAL',
      unmap: '0',
      change_process_child: '0',
      viommu_no_device: '-ENOENT',
      vdevice_no_viommu: '-ENOENT',
      invalidate_no_array: '-EINVAL',
      invalidate_entry_num: '0',
      dirty_on_ioas: '-ENOENT',
    });
  });
});
