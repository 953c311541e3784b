// The foundation end to end: a real mount, a C program written against the kernel headers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kv, runC } from '../helpers/c.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';

let d: RunningDaemon;
beforeAll(async () => {
  d = await startDaemon();
});
afterAll(async () => {
  await d?.stop();
});

describe('foundation handlers through the mount', () => {
  it('answer as a POWER host kernel would', async () => {
    const r = await runC('foundation', [d.mnt]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toEqual({
      container_open: '0',
      api_version: '0',
      ext_spapr_v1: '1',
      ext_spapr_v2: '1',
      ext_eeh: '1',
      ext_type1v2: '0',
      container_get_info_unset: '-EINVAL',
      api_version_ppc: '0',
      api_version_iowr: '-EINVAL',
      group_status: '0',
      group_flags: '1',
      group_status_argsz4: '-EINVAL',
      group_flags_untouched: 'dead',
      group_status_null: '-EFAULT',
      group_second_open: '-EBUSY',
      other_group_open: '0',
      group_reopen_after_close: '0',
      destroy_0: '-ENOENT',
      destroy_5: '-ENOENT',
      destroy_size7: '-EINVAL',
      destroy_size16_zero_tail: '-ENOENT',
      destroy_size16_nonzero_tail: '-E2BIG',
      destroy_null: '-EFAULT',
      iommufd_nr_7f: '-ENOTTY',
      iommufd_api_version: '0',
      iommufd_ext_type1v2: '1',
      iommufd_ext_spapr: '0',
      cdev_get_info_unbound: '-EINVAL',
      not_a_tcefs_fd: '-ENOTTY',
    });
  });

  it('traces each decoded request with DEBUG=tcefs:*', async () => {
    const t = await startDaemon({ env: { DEBUG: 'tcefs:*' } });
    let stopped = false;
    try {
      await runC('foundation', [t.mnt]);
      // Stopping waits for the daemon to exit, so every trace line has reached us.
      await t.stop();
      stopped = true;
      const log = t.stderr();
      expect(log).toMatch(/dev\/vfio\/vfio#[0-9a-f]+ VFIO_CHECK_EXTENSION arg=7 -> 1/);
      expect(log).toMatch(/dev\/iommu#[0-9a-f]+ IOMMU_DESTROY \{size=8 id=5\} -> ENOENT/);
      expect(log).toMatch(/dev\/vfio\/0#[0-9a-f]+ VFIO_GROUP_GET_STATUS \{argsz=8 flags=1\} -> 0/);
      // libfuse's own debug mode stays off: fuse-native would enable it for any '*' in DEBUG.
      expect(log).not.toMatch(/unique: \d+, opcode:/);
    } finally {
      if (!stopped) await t.stop();
    }
  });
});
