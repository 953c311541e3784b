// --selftest end to end: IOMMU_TEST_CMD through the preload shim from a C program (absent without the
// option), and the kernel's own iommufd selftest binary (tools/testing/selftests/iommu/iommufd.c of
// Linux 7.3, fetched and built at test time by scripts/kselftest/build.sh) on the fixtures the mock
// IOMMU serves: every test passes but those that need what other parts provide (listed with why).
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseKselftest } from '../../scripts/kselftest/tap.ts';
import { buildC, kv } from '../helpers/c.ts';
import { ROOT, TCEFS } from '../helpers/daemon.ts';
import { buildShim, tcefsRun } from '../helpers/shim.ts';

const exec = promisify(execFile);

describe('IOMMU_TEST_CMD from a C program', () => {
  let exe: string;
  beforeAll(async () => {
    exe = await buildC('selftest_cmd');
  });

  it('does not exist without --selftest (ENOTTY), as on a kernel without CONFIG_IOMMUFD_TEST', async () => {
    const r = await tcefsRun([exe]);
    expect(r.code, r.stderr).toBe(0);
    expect(kv(r.stdout)).toMatchObject({ size: '72', op0: 'ENOTTY', limit: 'ENOTTY', mock_domain: 'ENOTTY' });
  });

  it('with --selftest: unknown ops are EOPNOTSUPP and MOCK_DOMAIN gives its three IDs', async () => {
    const r = await tcefsRun([exe], { runArgs: ['--selftest'] });
    expect(r.code, r.stderr).toBe(0);
    expect(kv(r.stdout)).toMatchObject({ op0: 'EOPNOTSUPP', limit: '0', mock_domain: '0', ioas: '1', stdev: '2', idev: '3', hwpt: '4' });
  });
});

/** `tcefs run --selftest -- BIN ARGS` with both streams in one pipe (only their order ties an assertion to its test). */
async function runSelftest(bin: string, args: string[]): Promise<string> {
  await buildShim();
  return new Promise((resolve) => {
    const p = spawn('sh', ['-c', 'exec "$0" "$@" 2>&1', process.execPath, TCEFS, 'run', '--selftest', '--', bin, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    // The harness bounds each test; this bounds the run, so a hang fails the test instead of stalling it.
    const timer = setTimeout(() => p.kill('SIGKILL'), 170_000);
    p.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/**
 * Tests of these fixtures that may fail here, by what they need. Anything else failing is a regression.
 * (Others turn these into passes; that is never an error.)
 */
const ELSEWHERE: [RegExp, string][] = [
  [/\.alloc_hwpt_nested$/, 'nested HWPTs (IOMMU_HWPT_DATA_SELFTEST on a nesting parent)'],
];
/** MAP_HUGETLB mappings fail where the machine reserves no huge pages (vm.nr_hugepages = 0). */
const HUGETLB = /(_hugepage\.\w+|\.huge_map|\.access_domain_destory)$/;

describe('the kernel\'s iommufd selftest under tcefs run --selftest', () => {
  it('passes every test of the iommufd, iommufd_ioas, iommufd_mock_domain, vfio_compat_mock_domain and change_process fixtures that the mock core serves', async () => {
    const { stdout } = await exec('bash', [`${ROOT}/scripts/kselftest/build.sh`], { maxBuffer: 1 << 20 });
    const bin = /^IOMMUFD=(.*)$/m.exec(stdout)![1];
    const fixtures = ['iommufd', 'iommufd_ioas', 'iommufd_mock_domain', 'vfio_compat_mock_domain', 'change_process'];
    const out = await runSelftest(bin, fixtures.flatMap((f) => ['-f', f]));
    const result = parseKselftest(out);
    expect(result.planned, out.slice(-2000)).toBe(result.tests.length);
    const hugePages = Number(readFileSync('/proc/sys/vm/nr_hugepages', 'utf8')) > 0;
    const unexpected = result.tests.filter((t) => t.status === 'fail' && !ELSEWHERE.some(([re]) => re.test(t.name)) && (hugePages || !HUGETLB.test(t.name)));
    expect(unexpected.map((t) => `${t.name}: ${t.assertion ?? t.reason}`)).toEqual([]);
    const passed = result.tests.filter((t) => t.status === 'pass').length;
    // What the mock core alone makes pass (of 174); more is others' work.
    expect(passed).toBeGreaterThanOrEqual(hugePages ? 124 : 118);
    expect(result.tests.filter((t) => /^iommufd\.|^vfio_compat_mock_domain\.\w+\.(?!huge_map)/.test(t.name)).every((t) => t.status === 'pass')).toBe(true);
  }, 200_000);
});
