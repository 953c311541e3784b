// The kernel's fail-nth under `tcefs run`: the shim's per-thread counter files, and a sweep of iommufd
// calls on the TCE host through every failure point the counter can reach (test/c/fail_nth.c).
import { describe, expect, it } from 'vitest';
import { kv } from '../helpers/c.ts';
import { runUnderShim } from '../helpers/shim.ts';

describe('fail-nth through the preload shim', () => {
  it('serves each thread its counter and fails the nth point of its calls, cleanly', async () => {
    const r = await runUnderShim('fail_nth', []);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const v = kv(r.stdout);
    expect(v).toMatchObject({
      // the files read and parse as /proc's
      open: '0', read_initial: '2', initial: '0',
      write_word: '-EINVAL', write_empty: '-EINVAL', write_big: '-ERANGE', write_hex: '5',
      pread_at_1: '2', at_1: '6', read_1: '3', read_2: '0',
      by_pid_read: '3', by_pid: '16', by_pid_write: '-EBADF', thread_self_write_only_read: '-EBADF',
      no_such_thread: '-ENOENT', reopened: '200',
      // one thread's counter is set through its own task directory, and only its own
      other_write: '1', thread_self_read: '2', thread_self_value: '7', own_after_other: '16',
      // opening /dev/iommu is a point; what is left is counted down by the points passed
      open_iommufd_nth1: '-ENOMEM', left_after_open_nth1: '0', open_iommufd_nth3: '0', left_after_open_nth3: '2',
      // the kernel test's setup writes, and the probability mode of fail_iommufd: twice, then no more
      gfp_wait_set: '1', gfp_wait: '2', gfp_wait_value: 'N', verbose_set: '1', verbose_bad: '-EINVAL',
      require_end: '19', require_end_value: '0xffffffffffffffff',
      probability_set: '3', times_set: '1', ranges_forced_1: '-ENOENT', ranges_forced_2: '-ENOENT', ranges_after: '0',
      times: '2', times_value: '0', probability_off: '1', times_reset: '1',
      // every failure was clean, and the run that passed them all left some of its counter
      clean: '1', left_after_success: '1',
    });
    expect(Number(v.points)).toBeGreaterThan(20);
    expect(Object.keys(v).filter((k) => /^(unclean|changed|leak)_/.test(k))).toEqual([]);
    // where each call can fail, with the errno the kernel's point there gives
    expect(v).toMatchObject({
      fails_open_iommufd: 'ENOMEM',
      fails_ioas_alloc: 'ENOMEM',
      fails_ioas_map: 'ENOENT,ENOMEM',
      fails_attach_ioas: 'ENOMEM,EFAULT,EINVAL',
      fails_ioas_map_domain: 'ENOENT,ENOMEM,EFAULT',
      fails_ioas_copy: 'ENOENT,ENOMEM,EFAULT',
      fails_hwpt_alloc: 'ENOENT,ENOMEM',
      fails_attach_hwpt: 'EINVAL',
      fails_ioas_unmap: 'ENOENT',
    });
  });
});
