import { describe, expect, it } from 'vitest';
import { parseKselftest } from '../../scripts/kselftest/tap.ts';

// The shape the harness prints (kselftest_harness.h's TAP): RUN line, assertions, OK/FAIL line, result.
const OUTPUT = `TAP version 13
1..4
# Starting 4 tests from 2 test cases.
#  RUN           iommufd.simple_close ...
#            OK  iommufd.simple_close
ok 1 iommufd.simple_close
#  RUN           iommufd_ioas.mock_domain.ioas_destroy ...
# iommufd.c:364:ioas_destroy:Expected 0 (0) == _test_ioctl_set_temp_memory_limit(self->fd, 65536) (-1)
# iommufd.c:370:ioas_destroy:Expected 0 (0) == other (-1)
# ioas_destroy: Test terminated by assertion
#          FAIL  iommufd_ioas.mock_domain.ioas_destroy
not ok 2 iommufd_ioas.mock_domain.ioas_destroy
#  RUN           iommufd_dirty_tracking.domain_dirty128M_huge.get_dirty_bitmap ...
#      SKIP      hugepages unavailable
#            OK  iommufd_dirty_tracking.domain_dirty128M_huge.get_dirty_bitmap
ok 3 iommufd_dirty_tracking.domain_dirty128M_huge.get_dirty_bitmap # SKIP hugepages unavailable
#  RUN           iommufd.cmd_fail ...
# cmd_fail: Test failed
#          FAIL  iommufd.cmd_fail
not ok 4 iommufd.cmd_fail
# FAILED: 2 / 4 tests passed.
# Totals: pass:1 fail:2 xfail:0 xpass:0 skip:1 error:0
`;

describe('kselftest TAP reader', () => {
  const r = parseKselftest(OUTPUT);
  it('reads the plan, every result and the totals line', () => {
    expect(r.planned).toBe(4);
    expect(r.tests.map((t) => [t.name, t.status])).toEqual([
      ['iommufd.simple_close', 'pass'],
      ['iommufd_ioas.mock_domain.ioas_destroy', 'fail'],
      ['iommufd_dirty_tracking.domain_dirty128M_huge.get_dirty_bitmap', 'skip'],
      ['iommufd.cmd_fail', 'fail'],
    ]);
    expect(r.totals).toBe('Totals: pass:1 fail:2 xfail:0 xpass:0 skip:1 error:0');
  });
  it("keeps a failure's first assertion, and the harness's last word when it printed none", () => {
    expect(r.tests[1].assertion).toBe('iommufd.c:364:ioas_destroy:Expected 0 (0) == _test_ioctl_set_temp_memory_limit(self->fd, 65536) (-1)');
    expect(r.tests[3].assertion).toBeUndefined();
    expect(r.tests[3].reason).toBe('cmd_fail: Test failed');
    expect(r.tests[2].reason).toBe('hugepages unavailable');
  });
  it('leaves the plan undefined when the binary died first', () => {
    expect(parseKselftest('TAP version 13\n').planned).toBeUndefined();
  });
});
