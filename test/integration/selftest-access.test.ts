// The selftest driver's access and dma-buf files under `tcefs run --selftest` (test/c/selftest_access.c):
// what the kernel's own tests, which selftest.test.ts runs, take for granted about the files themselves.
import { describe, expect, it } from 'vitest';
import { kv } from '../helpers/c.ts';
import { runUnderShim } from '../helpers/shim.ts';

describe('access and dma-buf files under tcefs run --selftest', () => {
  it('are new fds the ops name by number, hold the IOAS and the context, and drop their pins on close', async () => {
    const r = await runUnderShim('selftest_access', [], { runArgs: ['--selftest'] });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toEqual({
      ioas_alloc: '0', map: '0', create_bad_flags: '-EOPNOTSUPP', create_no_ioas: '-ENOENT', create: '0',
      access_fd_new: '1', cloexec: '1',
      pages_on_iommufd_fd: '-EBADFD', pages_on_stdin: '-EBADFD', pages_on_closed_fd: '-EBADFD',
      pages_wrong_uptr: '-EBADE', refs_after_wrong_uptr: '0', pages: '0', refs_pinned: '0', refs_rest: '0', destroy_ioas_held: '-EBUSY',
      ioctl_on_access_fd: '-ENOTTY',
      rw_on_pin_access: '0', rw_write: '0', rw_wrote: '1', rw_past_area: '-ENOENT', rw_bad_flags: '-EOPNOTSUPP',
      close_iommufd: '0', refs_still_pinned: '0', rw_through_other_ctx: '0', rw_read: '1',
      close_access: '0', refs_after_close: '0', pages_after_close: '-EBADFD',
      ioas2_alloc: '0', dmabuf_zero: '-EINVAL', dmabuf_too_big: '-EINVAL', dmabuf_fd: '1', map_rounded_up: '0',
      revoke_not_dmabuf: '-EINVAL', revoke_closed_fd: '-EBADF', revoke: '0', map_revoked: '-ENODEV', close_dmabuf: '0',
      unmap_all: '0', unmapped: '0x2000', close_last: '0',
    });
  });
});
