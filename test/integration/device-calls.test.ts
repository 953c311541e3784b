// Hot reset, device features, ioeventfd and the graphics calls from a C program under `tcefs run`: the
// group fd array crosses the shim as handles, and a wakeup eventfd is checked through /proc.
import { describe, expect, it } from 'vitest';
import { kv } from '../helpers/c.ts';
import { runUnderShim } from '../helpers/shim.ts';

describe('vfio-pci device calls under tcefs run', () => {
  it('hot reset with the group fd, features, ioeventfd, and ENOTTY for the mediated-graphics calls', async () => {
    const r = await runUnderShim('device_calls', []);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toEqual({
      info_probe: '-ENOSPC', info_count: '2', info: '0',
      info_0: 'group 0 0000:01:00.0', info_1: 'group 0 0000:01:00.1',
      reset_container_fd: '-EINVAL', reset_closed_fd: '-EBADF', reset_no_fds: '-EINVAL', reset: '0',
      feature_migration: '-ENOTTY', feature_logging: '-ENOTTY',
      low_power_probe: '0', low_power_entry: '0', low_power_again: '-EINVAL', low_power_exit: '0',
      wakeup_not_eventfd: '-EINVAL', wakeup_closed: '-EBADF', wakeup_entry: '0', wakeup_exit: '0',
      ioeventfd: '-ENOSPC', ioeventfd_remove: '-ENODEV',
      gfx_plane: '-ENOTTY', gfx_dmabuf: '-ENOTTY',
    });
  });
});
