// The kernel's own iommufd selftests that use access objects and dma-bufs, unmodified under
// `tcefs run --selftest`: pins through an IOAS with and without domains, the unmap callback, RW through
// unaligned areas, replacing an access's IOAS under a COPY, and a dma-buf mapped and revoked.
// scripts/kselftest/build.sh fetches (cached) and builds the binary; `npm run kselftest` runs them all.
// test/c/selftest_access.c checks what those tests take for granted about the access and dma-buf files.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseKselftest } from '../../scripts/kselftest/tap.ts';
import { ROOT } from '../helpers/daemon.ts';
import { kv } from '../helpers/c.ts';
import { runUnderShim, tcefsRun } from '../helpers/shim.ts';

/** One binary run per group, each well inside tcefsRun's bound on a run. */
const GROUPS: Record<string, string[]> = {
  'pins and the unmap callback, with and without domains': [
    'iommufd_ioas.mock_domain.access_pin',
    'iommufd_ioas.no_domain.access_pin_unmap',
    'iommufd_mock_domain.one_domain_file.user_copy',
    'iommufd_mock_domain.two_domains.user_copy',
  ],
  'RW through unaligned areas': ['iommufd_ioas.two_mock_domain.access_rw_unaligned'],
  'dma-bufs mapped and revoked': ['iommufd_ioas.no_domain.dmabuf_simple', 'iommufd_ioas.mock_domain.dmabuf_revoke'],
};

let bin: string | undefined;
function binary(): string {
  bin ??= /^IOMMUFD=(.*)$/m.exec(execFileSync('bash', [`${ROOT}/scripts/kselftest/build.sh`], { encoding: 'utf8' }))![1];
  return bin;
}

describe('kernel selftests with access objects and dma-bufs pass under tcefs run --selftest', () => {
  for (const [what, tests] of Object.entries(GROUPS)) {
    it(what, async () => {
      const r = await tcefsRun([binary(), ...tests.flatMap((t) => ['-r', t])], { runArgs: ['--selftest'] });
      // The harness runs them in its own order.
      const results = parseKselftest(r.stdout + r.stderr).tests.map((t) => [t.name, t.status, t.assertion ?? '']);
      expect(results.sort()).toEqual(tests.map((t) => [t, 'pass', '']).sort());
      expect(r.code).toBe(0);
    }, 600_000);
  }
});

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
      rw_on_pin_access: '0', rw_write: '0', rw_wrote: '1', rw_past_area: '-ENOENT', rw_bad_flags: '-EOPNOTSUPP',
      close_iommufd: '0', refs_still_pinned: '0', rw_through_other_ctx: '0', rw_read: '1',
      close_access: '0', refs_after_close: '0', pages_after_close: '-EBADFD',
      ioas2_alloc: '0', dmabuf_zero: '-EINVAL', dmabuf_too_big: '-EINVAL', dmabuf_fd: '1', map_rounded_up: '0',
      revoke_not_dmabuf: '-EINVAL', revoke_closed_fd: '-EBADF', revoke: '0', map_revoked: '-ENODEV', close_dmabuf: '0',
      unmap_all: '0', unmapped: '0x2000', close_last: '0',
    });
  });
});
