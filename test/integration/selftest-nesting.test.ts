// The kernel's own selftests for dirty tracking, nested HWPTs and vIOMMUs (iommufd.c of Linux 7.3,
// fetched and built at test time by scripts/kselftest/build.sh), unmodified under tcefs run --selftest.
// Every test of these fixtures passes except those listed with what they need.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseKselftest } from '../../scripts/kselftest/tap.ts';
import { ROOT, TCEFS } from '../helpers/daemon.ts';
import { buildShim } from '../helpers/shim.ts';

const exec = promisify(execFile);

async function runSelftest(args: string[]): Promise<ReturnType<typeof parseKselftest> & { out: string }> {
  const { stdout } = await exec('bash', [`${ROOT}/scripts/kselftest/build.sh`], { maxBuffer: 1 << 20 });
  const bin = /^IOMMUFD=(.*)$/m.exec(stdout)![1];
  await buildShim();
  const out = await new Promise<string>((resolve) => {
    const p = spawn('sh', ['-c', 'exec "$0" "$@" 2>&1', process.execPath, TCEFS, 'run', '--selftest', '--', bin, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let o = '';
    p.stdout.on('data', (d) => (o += d));
    // The harness bounds each test; this bounds the run, so a hang fails instead of stalling.
    const timer = setTimeout(() => p.kill('SIGKILL'), 170_000);
    p.on('close', () => {
      clearTimeout(timer);
      resolve(o);
    });
  });
  return { ...parseKselftest(out), out };
}

const hugePages = Number(readFileSync('/proc/sys/vm/nr_hugepages', 'utf8')) > 0;

/** Failing tests of a run that no reason excuses, with their first failed assertion. */
function unexpected(r: Awaited<ReturnType<typeof runSelftest>>, excused: [RegExp, string][]): string[] {
  return r.tests.filter((t) => t.status === 'fail' && !excused.some(([re]) => re.test(t.name))).map((t) => `${t.name}: ${t.assertion ?? t.reason}`);
}

describe('kernel selftests of dirty tracking, nesting and vIOMMUs under tcefs run --selftest', () => {
  it('iommufd_dirty_tracking: every variant with ordinary pages passes (8K to 128M bitmaps, NO_CLEAR, unaligned bitmaps)', async () => {
    const r = await runSelftest(['-f', 'iommufd_dirty_tracking']);
    expect(r.planned, r.out.slice(-2000)).toBe(r.tests.length);
    // The *_huge variants map MAP_HUGETLB buffers in setup and assert() on failure: with no huge pages
    // reserved they die there, before tcefs is asked anything.
    expect(unexpected(r, hugePages ? [] : [[/_huge\./, 'MAP_HUGETLB pages']])).toEqual([]);
    expect(r.tests.filter((t) => t.status === 'pass').length).toBeGreaterThanOrEqual(hugePages ? 54 : 42);
  }, 200_000);

  it('iommufd_viommu and the nested-HWPT tests: vIOMMU, vDEVICE, vEVENTQ, HW_QUEUE, invalidation, refcounts', async () => {
    const r = await runSelftest([
      '-f', 'iommufd_viommu',
      '-r', 'iommufd_ioas.mock_domain.alloc_hwpt_nested',
      '-r', 'iommufd_ioas.two_mock_domain.alloc_hwpt_nested',
      '-r', 'iommufd_ioas.no_domain.alloc_hwpt_nested',
      '-r', 'iommufd_device_pasid.no_pasid.pasid_attach',
      '-r', 'iommufd_device_pasid.has_pasid.pasid_attach',
    ]);
    expect(r.planned, r.out.slice(-2000)).toBe(r.tests.length);
    expect(unexpected(r, [
      [/\.viommu_alloc_with_data$/, 'mmap of the iommufd at the vIOMMU page (a FUSE file cannot be mapped)'],
    ])).toEqual([]);
    expect(r.tests.filter((t) => t.status === 'pass').length).toBeGreaterThanOrEqual(15);
  }, 200_000);
});
