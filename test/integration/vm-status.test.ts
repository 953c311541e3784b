// VmPin/VmLck of iommufd's pinned pages in /proc/<pid>/status under `tcefs run` (test/c/vm_status.c).
import { describe, expect, it } from 'vitest';
import { kv } from '../helpers/c.ts';
import { runUnderShim } from '../helpers/shim.ts';

describe('/proc/<pid>/status through the preload shim', () => {
  it('counts pinned pages where the kernel does, through unmap and CHANGE_PROCESS', async () => {
    const r = await runUnderShim('vm_status', []);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toEqual({
      rlimit_mode: '0', ioas_alloc: '0', start_pin: '0', start_lck: '0',
      map: '0', no_domain_pin: '0', no_domain_lck: '0',
      // the domain pins the 1 MiB map, 17 host pages of 64 KiB as it starts 4 KiB into one: pinned_vm,
      // and locked_vm as the iommufd accounts per process; the line is laid out as the kernel's
      bind: '0', attach: '0', attached_pin: '1088', attached_lck: '1088', attached_line: '[VmPin:\t    1088 kB]',
      unmap: '0', unmapped_pin: '0', unmapped_lck: '0', unmapped_line: '[VmPin:\t       0 kB]',
      map_file: '0', file_pin: '64', file_lck: '64',
      // the child reads its parent's file, then takes the charge
      child_sees_parent_pin: '64', child_sees_parent_lck: '64', child_before_pin: '0', child_before_lck: '0',
      change_process: '0',
      child_sees_parent_after_pin: '0', child_sees_parent_after_lck: '0', child_after_pin: '64', child_after_lck: '64',
      parent_after_child_pin: '0', parent_after_child_lck: '0',
    });
  });
});
