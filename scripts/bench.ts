// `npm run bench`: every benchmark, one run, one table. Speed is measured here, never asserted in tests.
//
//   npm run bench                      measure and print
//   npm run bench -- --write-docs      also regenerate docs/benchmarks.md and docs/benchmarks-scale.svg
//   npm run bench -- --quick           fewer iterations (a smoke run while working on the benchmarks)
//   npm run bench -- --only=fuse,scale run some sections: tce, dispatch, scale, dma, fuse, irq, lease, guest,
//                                      kselftest
//
// The raw numbers of the last run go to build/bench/last.json.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dispatchRows, measureDispatch, type DispatchNumbers } from './bench/dispatch.ts';
import { measureDma } from './bench/dma.ts';
import { blockDiff, fuseOptions, measureFuse, type FuseNumbers } from './bench/fuse.ts';
import { machine, ratios, renderMarkdown, renderScaleSvg, type Results } from './bench/report.ts';
import { measureScale, scaleRows, type ScaleNumbers } from './bench/scale.ts';
import { benchTce, type BenchResult } from './bench/tce.ts';
import { irqMedian, measureIrq } from './bench/irq.ts';
import { measureLease, median, WINDOW_PAGES } from './bench/lease.ts';
import { measureGuest, randIops, seqMBps } from './bench/guest.ts';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const writeDocs = args.includes('--write-docs');
const quick = args.includes('--quick');
const only = args.find((a) => a.startsWith('--only='))?.slice(7).split(',');
const want = (s: string) => !only || only.includes(s);
if (writeDocs && only) {
  console.error('bench: --write-docs needs every section; drop --only');
  process.exit(2);
}

const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
const results: Results = { machine: await machine(), date: new Date().toISOString() };
const rows: (BenchResult & { group: string })[] = [];
const add = (group: string, rs: BenchResult[]) => rows.push(...rs.map((r) => ({ group, ...r })));

if (want('tce')) {
  log('TCE table');
  results.tce = await benchTce();
  add('TCE table (in-process)', results.tce);
}
if (want('dispatch')) {
  log('per-frame work, in-process');
  results.dispatch = measureDispatch(quick ? 3 : 5, quick ? 0.2 : 1) as DispatchNumbers;
  add("tcefs's own work per frame (in-process, no FUSE)", dispatchRows(results.dispatch));
}
if (want('scale')) {
  log('IOAS scale, in-process');
  results.scale = (quick ? measureScale(100, 5, 1) : measureScale()) as ScaleNumbers;
  add('IOAS scale (in-process)', scaleRows(results.scale));
}
if (want('dma')) {
  log('device DMA through the TCE tables, in-process');
  results.dma = await measureDma(16 << 20, quick ? 3 : 9);
  add('device DMA (copy engine, in-process, 16 MiB copies)', [
    ...results.dma.engine.map((e) => ({ name: `copy engine through ${e.pageShift === 12 ? '4K' : '64K'} TCEs`, value: e.mbps, unit: 'MB/s' })),
    { name: 'raw /proc/<pid>/mem read + write of the same bytes', value: results.dma.raw, unit: 'MB/s' },
  ]);
}
if (want('fuse')) {
  log('through FUSE');
  results.fuse = (await measureFuse({ ...fuseOptions(quick), log })) as FuseNumbers;
  add('through FUSE (C client, median of round medians)', fuseRows(results.fuse));
}

if (want('irq')) {
  log('interrupt delivery through FUSE');
  const n = (results.irq = await measureIrq(quick));
  const us = (k: Parameters<typeof irqMedian>[1]) => irqMedian(n, k) / 1000;
  add('interrupts (C client under the shim, unpinned, median of block medians)', [
    { name: 'ioctl round trip (GET_IRQ_INFO), paced', value: us('pacedRt'), unit: 'us' },
    { name: 'device raise (control write) until the eventfd is readable, paced', value: us('pacedRaise'), unit: 'us' },
    { name: 'SET_IRQS DATA_NONE trigger until the eventfd is readable, paced', value: us('pacedIrq'), unit: 'us' },
    { name: 'ioctl round trip, back to back', value: us('rt'), unit: 'us' },
    { name: 'trigger until readable, back to back', value: us('irq'), unit: 'us' },
  ]);
}

if (want('lease')) {
  log('a guest clearing its default window: lone unmaps under tcefs run');
  const l = (results.lease = await measureLease(quick ? 1 : 3, quick ? 200 : 1000));
  add('lone unmaps (C client under the shim, private daemon, median of rounds)', [
    { name: `clearing a 1 GiB window, ${WINDOW_PAGES} unmaps of 4K, per unmap`, value: median(l.clear), unit: 'us' },
    { name: 'lone UNMAP_DMA of an empty page, the daemon answers', value: median(l.asked), unit: 'us' },
    { name: 'lone UNMAP_DMA of an empty page, the lease answers', value: median(l.leased), unit: 'us' },
  ]);
}
if (want('kselftest')) {
  log("the kernel's iommufd selftests under tcefs run --selftest (npm run kselftest)");
  const dir = await mkdtemp(join(tmpdir(), 'tcefs-bench-ks-'));
  try {
    const json = join(dir, 'ks.json');
    // Its exit status says whether unlisted tests failed: the bench only wants the times.
    await new Promise((done) => execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/kselftest.ts'), '--json', json], { cwd: ROOT }, done));
    const r = JSON.parse(await readFile(json, 'utf8')) as Record<string, { ms: number; tests: { status: string }[] }>;
    results.kselftest = Object.fromEntries(
      Object.entries(r).map(([name, b]) => [name, { ms: b.ms, pass: b.tests.filter((t) => t.status === 'pass').length, fail: b.tests.filter((t) => t.status === 'fail').length, skip: b.tests.filter((t) => t.status === 'skip').length }]),
    );
    add("kernel selftests (one run each, private mount)", Object.entries(results.kselftest).map(([name, k]) => ({ name: `${name}: ${k.pass} passed, ${k.fail} failed, ${k.skip} skipped; whole run`, value: k.ms / 1000, unit: 's' })));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
if (want('guest')) {
  log('the POWER guest: QEMU built-in NVMe against tcefs through vfio-pci');
  const g = (results.guest = await measureGuest(quick, log));
  const rows: BenchResult[] = [
    { name: 'boot to first completed read, built-in nvme', value: g.builtin.firstRead / 1000, unit: 's' },
    { name: 'boot to first completed read, tcefs', value: g.tcefs.firstRead / 1000, unit: 's' },
    ...(['builtin', 'tcefs'] as const).map((k) => ({ name: `  of which QEMU's setup / kernel boot / init to first read, ${k}`, value: g[k].kernelStart / 1000, unit: `/ ${((g[k].initStart - g[k].kernelStart) / 1000).toFixed(2)} / ${((g[k].firstRead - g[k].initStart) / 1000).toFixed(2)} s` })),
    { name: `sequential read ${g.builtin.seqMiB} MiB 128k direct, built-in nvme`, value: seqMBps(g.builtin), unit: 'MB/s' },
    { name: `sequential read ${g.tcefs.seqMiB} MiB 128k direct, tcefs`, value: seqMBps(g.tcefs), unit: 'MB/s' },
    { name: '4k random reads (one dd each), built-in nvme', value: randIops(g.builtin), unit: 'IOPS' },
    { name: '4k random reads (one dd each), tcefs', value: randIops(g.tcefs), unit: 'IOPS' },
    { name: 'the same loop over a RAM file, per read', value: (1000 * g.tcefs.loopS) / g.tcefs.randN, unit: 'ms' },
  ];
  for (const [phase, p] of Object.entries(g.perf)) {
    rows.push(
      { name: `tcefs ${phase}: MMIO region reads`, value: p.mmioRead.count, unit: `in ${p.mmioRead.ms.toFixed(1)} ms` },
      { name: `tcefs ${phase}: MMIO region writes`, value: p.mmioWrite.count, unit: `in ${p.mmioWrite.ms.toFixed(1)} ms` },
      { name: `tcefs ${phase}: DMA from guest memory`, value: p.dmaRead.bytes / 2 ** 20, unit: `MiB in ${p.dmaRead.count} /proc/pid/mem reads, ${p.dmaRead.ms.toFixed(1)} ms` },
      { name: `tcefs ${phase}: DMA to guest memory`, value: p.dmaWrite.bytes / 2 ** 20, unit: `MiB in ${p.dmaWrite.count} /proc/pid/mem writes, ${p.dmaWrite.ms.toFixed(1)} ms` },
      { name: `tcefs ${phase}: interrupts delivered`, value: p.irqs.count, unit: `(${p.irqsQueued.count} found no waiting read)` },
      { name: `tcefs ${phase}: FUSE requests on device files (frames, region accesses)`, value: p.fuse.count, unit: `in ${p.fuse.ms.toFixed(1)} ms of handlers` },
      { name: `tcefs ${phase}: daemon CPU time`, value: p.daemonCpuMs, unit: 'ms' },
    );
  }
  add('POWER guest under TCG (one boot each)', rows);
}

function fuseRows(f: FuseNumbers): BenchResult[] {
  const us = (m: { median: number }) => m.median / 1000;
  const out: BenchResult[] = [];
  for (const p of f.placements) {
    const at = (name: string) => `${name} [${p.name}]`;
    out.push(
      { name: at('bare fuse-native round trip (null node)'), value: us(p.bare), unit: 'us' },
      { name: at("the same, null node with tcefs's mount options"), value: us(p.bareTuned), unit: 'us' },
      { name: at('same frame, raw, to tcefs /dev/vfio/vfio'), value: us(p.rawTcefs), unit: 'us' },
      { name: at('VFIO_CHECK_EXTENSION via the shim'), value: us(p.check), unit: 'us' },
      { name: at('interleaved: bare / raw / CHECK_EXTENSION'), value: us(p.interleaved.bare), unit: `/ ${us(p.interleaved.raw).toFixed(1)} / ${us(p.interleaved.check).toFixed(1)} us` },
      { name: at('in blocks: raw frame minus bare'), value: blockDiff(p.blocks.raw, p.blocks.bare) / 1000, unit: 'us' },
      { name: at("in blocks: raw frame minus null node with tcefs's options"), value: blockDiff(p.blocks.raw, p.blocks.tuned) / 1000, unit: 'us' },
      { name: at('in blocks: CHECK_EXTENSION minus raw frame'), value: blockDiff(p.blocks.check, p.blocks.raw) / 1000, unit: 'us' },
      { name: at('SPAPR v2 MAP_DMA 4K via the shim'), value: us(p.spaprMap), unit: 'us' },
      { name: at('SPAPR v2 UNMAP_DMA 4K via the shim'), value: us(p.spaprUnmap), unit: 'us' },
      { name: at('SPAPR v2 MAP_DMA in a frame of 1000'), value: us(p.spaprBatchMap), unit: 'us/map' },
      { name: at('SPAPR v2 UNMAP_DMA in a frame of 1000'), value: us(p.spaprBatchUnmap), unit: 'us/unmap' },
      { name: at('IOMMU_IOAS_MAP 4K via the shim (device)'), value: us(p.iommufdMap), unit: 'us' },
      { name: at('IOMMU_IOAS_UNMAP 4K via the shim (device)'), value: us(p.iommufdUnmap), unit: 'us' },
      { name: at('IOMMU_IOAS_MAP in a frame of 1000'), value: us(p.iommufdBatchMap), unit: 'us/map' },
      { name: at('IOMMU_IOAS_UNMAP in a frame of 1000'), value: us(p.iommufdBatchUnmap), unit: 'us/unmap' },
    );
  }
  out.push(
    { name: "shim's syscalls: sigprocmask pair", value: f.syscalls.sigmaskPair / 1000, unit: 'us' },
    { name: "shim's syscalls: statx of the fd", value: f.syscalls.statx / 1000, unit: 'us' },
    { name: "shim's syscalls: (replaced) readlink /proc/self/fd/N", value: f.syscalls.readlinkProcFd / 1000, unit: 'us' },
  );
  if (f.close)
    out.push(
      { name: 'open + last close via the shim (waits for the release)', value: f.close.last / 1000, unit: 'us' },
      { name: 'open + raw close syscall (no wait)', value: f.close.raw / 1000, unit: 'us' },
      { name: 'dup + close via the shim (not the last: no wait)', value: f.close.dup / 1000, unit: 'us' },
    );
  for (const t of f.throughput) {
    out.push({ name: `throughput, ${t.label}, total`, value: t.total, unit: 'ops/s' });
    out.push({ name: `throughput, ${t.label}, per client`, value: t.total / t.clients, unit: 'ops/s' });
    if (t.jsBusy !== undefined) out.push({ name: `throughput, ${t.label}, daemon JS thread busy`, value: 100 * t.jsBusy, unit: '%' });
  }
  for (const t of f.nullThroughput) out.push({ name: `null node, ${t.label}, total`, value: t.total, unit: 'round trips/s' });
  return out;
}

console.log(`tcefs benchmarks (${results.machine.cpu}, ${results.machine.nproc} CPUs, ${process.version}, load ${results.machine.load})\n`);
const w = Math.max(...rows.map((r) => r.name.length));
let group = '';
for (const r of rows) {
  if (r.group !== group) console.log(`${(group = r.group)}`);
  console.log(`  ${r.name.padEnd(w)}  ${r.value.toFixed(r.value < 10 ? 2 : r.value < 1000 ? 1 : 0).padStart(12)} ${r.unit}`);
}
const rs = ratios(results);
if (rs.length) {
  console.log('ratios');
  for (const r of rs) console.log(`  ${r.name.padEnd(w)}  ${r.value.toFixed(2).padStart(12)} x   target ${r.target}: ${r.met ? 'met' : 'MISSED'}`);
}

await mkdir(join(ROOT, 'build', 'bench'), { recursive: true });
await writeFile(join(ROOT, 'build', 'bench', 'last.json'), JSON.stringify(results, null, 2) + '\n');
if (writeDocs) {
  await writeFile(join(ROOT, 'docs', 'benchmarks.md'), renderMarkdown(results));
  await writeFile(join(ROOT, 'docs', 'benchmarks-scale.svg'), renderScaleSvg(results.scale!));
  log('wrote docs/benchmarks.md and docs/benchmarks-scale.svg');
}
