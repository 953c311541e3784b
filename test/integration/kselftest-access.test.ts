// The kernel's own iommufd selftests that use access objects and dma-bufs, unmodified under
// `tcefs run --selftest`: pins through an IOAS with and without domains, the unmap callback, RW through
// unaligned areas, replacing an access's IOAS under a COPY, and a dma-buf mapped and revoked.
// scripts/kselftest/build.sh fetches (cached) and builds the binary; `npm run kselftest` runs them all.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseKselftest } from '../../scripts/kselftest/tap.ts';
import { ROOT } from '../helpers/daemon.ts';
import { tcefsRun } from '../helpers/shim.ts';

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
