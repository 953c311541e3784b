// Event-queue files under `tcefs run`: the fault queue's fd is claimed like a device fd, and its read()
// and write() cross the shim as the kernel's queue file answers them (test/c/fault_queue.c).
import { describe, expect, it } from 'vitest';
import { kv } from '../helpers/c.ts';
import { runUnderShim } from '../helpers/shim.ts';

describe('fault queue files under tcefs run', () => {
  it('hands out an fd with the kernel read/write rules, the object lifetime and the TCE refusals', async () => {
    const r = await runUnderShim('fault_queue', ['0000:02:00.0']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toEqual({
      alloc_bad_flags: '-EOPNOTSUPP', alloc: '0', fd_is_new: '1', cloexec: '1', fault_id: '1',
      fd_name: 'anon_inode:[iommufd-pgfault]',
      // Never blocking: an empty queue reads 0 bytes, O_NONBLOCK or not; only whole records, at offset 0.
      read_empty: '0', read_zero: '0', read_not_whole: '-ESPIPE', pread_offset: '-ESPIPE', pread_zero: '0', read_nonblock: '0',
      poll_writable: '1', poll_writable_revents: '0x4,0x0', poll_empty_times_out: '0', poll_other_fd: '1', poll_other_fd_revents: '0x0,0x1',
      write_unknown_cookie: '-EINVAL', write_bad_code: '-EINVAL', write_not_whole: '-ESPIPE', pwrite_offset: '-ESPIPE', write_zero: '0',
      ioctl_on_queue: '-ENOTTY',
      bind: '0', ioas_alloc: '0', hwpt_with_fault: '-EOPNOTSUPP', hwpt_with_bad_fault: '-EOPNOTSUPP',
      pasid_attach_ioas: '-EINVAL', pasid_attach_missing: '-ENOENT', pasid_attach_short: '-EINVAL', rid_attach: '0',
      pasid_attach_hwpt: '-EINVAL', pasid_detach_unattached: '0', detach_bad_flags: '-EINVAL',
      veventq_no_viommu: '-ENOENT', veventq_depth_zero: '-EINVAL',
      destroy_open: '-EBUSY', close: '0', destroy_dup_open: '-EBUSY', read_dup: '0', close_dup: '0', read_closed: '-EBADF',
      destroy_closed: '0', destroy_again: '-ENOENT',
      alloc_second: '0', close_iommufd: '0', read_after_ctx_close: '0', write_after_ctx_close: '-EINVAL', close_last: '0',
    });
  });
});

describe('page requests on the mock IOMMU under tcefs run --selftest', () => {
  it('TRIGGER_IOPF reaches poll() and read(), write() answers, a replace answers the rest, PASIDs route', async () => {
    const r = await runUnderShim('fault_iopf', [], { runArgs: ['--selftest'] });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toEqual({
      ioas_alloc: '0', mock_domain: '0', fault_alloc: '0', iopf_hwpt: '1', replace_to_iopf: '0',
      poll_before: '0', trigger: '0', poll_after: '1', poll_revents: '0x1',
      read_short: '-ESPIPE', read: '40', fault: 'flags:2 dev:1 pasid:0 grpid:2 perm:3 addr:0xdeadbeaf cookie:1',
      answer: '8', answer_twice: '-EINVAL',
      read_two: '80', answer_first_of_two: '8', replace_away: '0', answer_after_replace: '-EINVAL', destroy_queue_held: '-EBUSY',
      pasid_attach_rid_not_compat: '-EINVAL', replace_rid_compat: '0', pasid_attach_plain: '-EINVAL', pasid_attach: '0',
      pasid_attach_again: '-EBUSY', pasid_check: '0', pasid_check_other: '-EINVAL', trigger_pasid: '0', read_pasid: '40',
      pasid_fault: 'flags:3 pasid:100', pasid_replace: '0', answer_after_pasid_replace: '-EINVAL', pasid_replace_unattached: '-EINVAL',
      pasid_detach: '0', pasid_check_detached: '0', close_queue: '0', close_iommufd: '0',
    });
  });
});
