// Run the kernel's own iommufd selftests, unmodified, under `tcefs run --selftest`.
//
//   npm run kselftest [-- [--only iommufd|iommufd_fail_nth] [--json FILE] [--known FILE] [--hugepages N]
//                         [-- ARGS...]]
//
// scripts/kselftest/build.sh fetches Debian's linux-source-7.3 (cached) and builds iommufd and
// iommufd_fail_nth with the selftests' own flags. Each binary runs once under its own private tcefs mount;
// ARGS go to the binary (kselftest harness options such as `-f FIXTURE` or `-r FIXTURE.VARIANT.TEST`).
// The report says passed/failed/skipped per binary and, for each failure, its name and the first failed
// assertion. Exit status: 1 when a test fails that the known-failures file (default
// test/fixtures/kselftest-known-failures.txt: one test name per line, `#` comments giving the reason)
// does not list, or when a binary does not finish; a listed test that passes is reported, not an error.
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseKselftest, type KselftestResult } from './kselftest/tap.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const dashes = args.indexOf('--');
const own = dashes >= 0 ? args.slice(0, dashes) : args;
const passThrough = dashes >= 0 ? args.slice(dashes + 1) : [];
const opt = (name: string) => {
  const i = own.indexOf(name);
  return i >= 0 ? own[i + 1] : undefined;
};

const built = Object.fromEntries(
  execFileSync('bash', [join(ROOT, 'scripts/kselftest/build.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    .trim()
    .split('\n')
    .map((l) => l.split('=', 2) as [string, string]),
);
const binaries = [
  { name: 'iommufd', path: built.IOMMUFD },
  { name: 'iommufd_fail_nth', path: built.FAIL_NTH },
].filter((b) => !opt('--only') || b.name === opt('--only'));

const knownFile = opt('--known') ?? join(ROOT, 'test/fixtures/kselftest-known-failures.txt');
const known = new Set(
  existsSync(knownFile)
    ? readFileSync(knownFile, 'utf8')
        .split('\n')
        .map((l) => l.replace(/#.*/, '').trim())
        .filter(Boolean)
    : [],
);

/** A whole binary's run; the harness bounds each test (30 s by default), this bounds the binary. */
function runUnderTcefs(path: string, extra: string[]): Promise<{ output: string; code: number | null; ms: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    // One pipe for both streams: the harness prints results on stdout and assertions on stderr, and
    // only their order ties an assertion to its test.
    const cmd = [process.execPath, join(ROOT, 'bin/tcefs'), 'run', '--selftest', '--', path, ...extra];
    const child = spawn('sh', ['-c', 'exec "$0" "$@" 2>&1', ...cmd], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (b) => (output += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20 * 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ output, code, ms: performance.now() - t0 });
    });
  });
}

/**
 * The *_huge and *_hugepage variants map MAP_HUGETLB buffers (up to 128 MiB at once) and fail, not skip,
 * when the machine has no huge pages reserved. As the kernel's own selftest runners do, reserve some for
 * the run when we may (root) and put the old value back afterwards; `--hugepages 0` leaves it alone.
 */
const NR_HUGEPAGES = '/proc/sys/vm/nr_hugepages';
const wantHuge = Number(opt('--hugepages') ?? 128);
let restoreHuge: string | undefined;
function reserveHugepages(): void {
  if (!wantHuge || !existsSync(NR_HUGEPAGES)) return;
  const before = readFileSync(NR_HUGEPAGES, 'utf8').trim();
  if (Number(before) >= wantHuge) return;
  try {
    writeFileSync(NR_HUGEPAGES, String(wantHuge));
  } catch (e) {
    console.log(`huge pages: cannot reserve ${wantHuge} (${(e as Error).message}); the huge-page variants will fail`);
    return;
  }
  restoreHuge = before;
  const got = readFileSync(NR_HUGEPAGES, 'utf8').trim();
  console.log(`huge pages: vm.nr_hugepages ${before} -> ${got} for the run, put back afterwards`);
}
function restoreHugepages(): void {
  if (restoreHuge === undefined) return;
  writeFileSync(NR_HUGEPAGES, restoreHuge);
  restoreHuge = undefined;
}
process.on('exit', restoreHugepages);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    restoreHugepages();
    process.exit(130);
  });
}
reserveHugepages();

const report: Record<string, KselftestResult & { ms: number; code: number | null }> = {};
let unexpected = 0;
for (const b of binaries) {
  const run = await runUnderTcefs(b.path, passThrough);
  const r = parseKselftest(run.output);
  report[b.name] = { ...r, ms: Math.round(run.ms), code: run.code };
  const counts = (s: string) => r.tests.filter((t) => t.status === s).length;
  const finished = r.planned !== undefined && r.tests.length === r.planned;
  console.log(
    `${b.name}: ${counts('pass')} passed, ${counts('fail')} failed, ${counts('skip')} skipped` +
      ` (of ${r.planned ?? '?'}; ${(run.ms / 1000).toFixed(1)} s)`,
  );
  for (const t of r.tests) {
    if (t.status === 'fail') {
      const isKnown = known.has(t.name);
      if (isKnown) t.known = true;
      else unexpected++;
      console.log(`  FAIL ${t.name}${isKnown ? ' (known)' : ''}: ${t.assertion ?? t.reason ?? 'no assertion printed'}`);
    } else if (t.status === 'skip') {
      console.log(`  SKIP ${t.name}: ${t.reason ?? ''}`);
    } else if (known.has(t.name)) {
      console.log(`  PASS ${t.name} (listed as known to fail: take it off ${knownFile})`);
    }
  }
  if (!finished) {
    unexpected++;
    console.log(`  ${b.name} did not finish: ${r.tests.length} results of ${r.planned ?? '?'} planned, exit ${run.code}`);
    console.log(run.output.split('\n').slice(-15).map((l) => `  | ${l}`).join('\n'));
  }
}
restoreHugepages();
const jsonFile = opt('--json');
if (jsonFile) writeFileSync(jsonFile, JSON.stringify(report, null, 2));
process.exitCode = unexpected ? 1 : 0;
