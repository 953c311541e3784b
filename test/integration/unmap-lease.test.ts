// Unmap leases: a guest clearing its default window makes QEMU unmap it one 4K page at a time, and the
// shim answers those from a lease the daemon gave instead of a FUSE round trip each. The answers must be
// the daemon's own, also when the window changes under the lease; the daemon's ioctl trace shows how
// many calls still reached it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kv } from '../helpers/c.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { runUnderShim } from '../helpers/shim.ts';

const PAGES = 16384;

describe('unmap leases under tcefs run', () => {
  let d: RunningDaemon;
  beforeAll(async () => {
    d = await startDaemon({ env: { DEBUG: 'tcefs:ioctl' } });
  });
  afterAll(async () => {
    await d?.stop();
  });

  it("clear a window page by page with the daemon's answers, asking it a few times only", async () => {
    const from = d.stderr().length;
    const r = await runUnderShim('unmap_lease', ['0000:02:00.0', String(PAGES)], { mnt: d.mnt });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const v = kv(r.stdout);
    expect(v).toMatchObject({
      set_container: '0', set_iommu: '0', register: '0', remove_default: '0', create: '0', map_last: '0',
      clear_failures: '0', unmap_last: '0', live_after_clear: '0',
      lease: '0',
      // the kernel's answers: a misaligned iova returns 1 with nothing done
      misaligned_iova: '1', misaligned_size: '-EINVAL', flags: '-EINVAL', short_argsz: '-EINVAL',
      lease_again: '0', null_arg: '-EFAULT', lease_again2: '0',
      past_window: '-EINVAL', outside_windows: '-ENXIO', zero_size: '0',
      lease_before_map: '0', map_inside: '0', live_mapped: '1', unmap_inside: '0', live_unmapped: '0',
      lease_dup: '0', unmap_dup: '0',
      lease_before_fork: '0', child_unset: '0',
    });
    // The group left the container: no window, and the lease the parent held did not answer for it.
    expect(v.unmap_after_unset).toMatch(/^-E/);
    const unmaps = d.stderr().slice(from).split('\n').filter((l) => l.includes('VFIO_IOMMU_UNMAP_DMA'));
    // The clearing loop reached the daemon once; each call after it here either is not the plain case
    // or follows another call, a dup or a fork, except unmap_dup (dup ends the lease too).
    expect(unmaps.length).toBeGreaterThan(10);
    expect(unmaps.length).toBeLessThan(30);
  }, 60_000);
});
