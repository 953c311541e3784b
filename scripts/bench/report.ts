// Turn one run's numbers into the ratios against the issue's targets, docs/benchmarks.md and its chart.
// Everything written into the page is computed from the run, so regenerating it cannot leave stale prose.
import { readFile } from 'node:fs/promises';
import { availableParallelism, loadavg, release, totalmem } from 'node:os';
import type { DispatchNumbers, Timing } from './dispatch.ts';
import type { FuseNumbers, Measured, Throughput } from './fuse.ts';
import type { ScaleNumbers, ScalePoint } from './scale.ts';
import type { BenchResult } from './tce.ts';

export interface Machine {
  nproc: number;
  cpu: string;
  kernel: string;
  node: string;
  memGiB: number;
  /** 1-minute load average when the run started: the machine may be shared. */
  load: string;
}

export interface Results {
  machine: Machine;
  date: string;
  tce?: BenchResult[];
  dispatch?: DispatchNumbers;
  scale?: ScaleNumbers;
  fuse?: FuseNumbers;
}

export async function machine(): Promise<Machine> {
  const info = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const cpu = /^(model name|cpu)\s*:\s*(.+)$/m.exec(info)?.[2]?.trim() ?? 'unknown';
  return {
    nproc: availableParallelism(),
    cpu,
    kernel: release(),
    node: process.version,
    memGiB: Math.round(totalmem() / 2 ** 30),
    load: loadavg().map((x) => x.toFixed(2)).join(' '),
  };
}

export interface Ratio {
  name: string;
  value: number;
  target: string;
  met: boolean;
}

/** The issue's targets, from whatever sections the run measured. */
export function ratios(r: Results): Ratio[] {
  const out: Ratio[] = [];
  const f = r.fuse;
  if (f) {
    const cheap = f.check.median / f.bare.median;
    out.push({ name: 'cheap ioctl via shim / bare round trip', value: cheap, target: '<= 1.15', met: cheap <= 1.15 });
    const sp = f.spaprMap.median / f.spaprBatchMap.median;
    out.push({ name: 'SPAPR MAP_DMA: single frame / in a batch', value: sp, target: '>= 20', met: sp >= 20 });
    const io = f.iommufdMap.median / f.iommufdBatchMap.median;
    out.push({ name: 'IOAS_MAP: single frame / in a batch', value: io, target: '>= 20', met: io >= 20 });
  }
  const s = r.scale;
  if (s) {
    for (const [label, ps] of [['no domain', s.noDomain], ['with device', s.withDevice]] as const) {
      for (const k of ['map', 'unmap'] as const) {
        const g = ps[ps.length - 1][k] / ps[0][k];
        out.push({ name: `IOAS ${k.toUpperCase()} ${label}: 100k areas / 1k areas`, value: g, target: '<= 2', met: g <= 2 });
      }
    }
  }
  return out;
}

// ---- the chart ----

/** Time per op against the number of areas: log x, linear y from 0, one line per series. */
export function renderScaleSvg(s: ScaleNumbers): string {
  const W = 640;
  const H = 400;
  const L = 64;
  const R = 190;
  const T = 40;
  const B = 56;
  const series: { label: string; color: string; dash: string; points: ScalePoint[]; k: 'map' | 'unmap' }[] = [
    { label: 'MAP, no domain', color: '#1f77b4', dash: '', points: s.noDomain, k: 'map' },
    { label: 'UNMAP, no domain', color: '#1f77b4', dash: '6 4', points: s.noDomain, k: 'unmap' },
    { label: 'MAP, device attached', color: '#d62728', dash: '', points: s.withDevice, k: 'map' },
    { label: 'UNMAP, device attached', color: '#d62728', dash: '6 4', points: s.withDevice, k: 'unmap' },
  ];
  const xs = s.noDomain.map((p) => p.areas);
  const lx0 = Math.log10(xs[0]);
  const lx1 = Math.log10(xs[xs.length - 1]);
  const ymaxRaw = Math.max(...series.flatMap((x) => x.points.map((p) => p[x.k] / 1000)));
  const step = niceStep(ymaxRaw / 5);
  const ymax = Math.ceil(ymaxRaw / step) * step;
  const px = (n: number) => L + ((Math.log10(n) - lx0) / (lx1 - lx0)) * (W - L - R);
  const py = (us: number) => T + (1 - us / ymax) * (H - T - B);
  const e: string[] = [];
  e.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  e.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  e.push(`<text x="${L}" y="22" font-size="14" font-weight="bold">IOMMU_IOAS_MAP / UNMAP of one 4K page, in-process</text>`);
  for (let y = 0; y <= ymax + 1e-9; y += step) {
    e.push(`<line x1="${L}" x2="${W - R}" y1="${py(y).toFixed(1)}" y2="${py(y).toFixed(1)}" stroke="#ddd"/>`);
    e.push(`<text x="${L - 6}" y="${(py(y) + 4).toFixed(1)}" text-anchor="end">${fmt(y)}</text>`);
  }
  for (const x of xs) {
    e.push(`<line x1="${px(x).toFixed(1)}" x2="${px(x).toFixed(1)}" y1="${T}" y2="${H - B}" stroke="#ddd"/>`);
    e.push(`<text x="${px(x).toFixed(1)}" y="${H - B + 18}" text-anchor="middle">${x.toLocaleString('en-US')}</text>`);
  }
  e.push(`<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="black"/>`);
  e.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="black"/>`);
  e.push(`<text x="${(L + W - R) / 2}" y="${H - 14}" text-anchor="middle">areas already in the IOAS (log scale)</text>`);
  e.push(`<text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">time per op (µs)</text>`);
  series.forEach((x, i) => {
    const pts = x.points.map((p) => `${px(p.areas).toFixed(1)},${py(p[x.k] / 1000).toFixed(1)}`).join(' ');
    e.push(`<polyline points="${pts}" fill="none" stroke="${x.color}" stroke-width="2" stroke-dasharray="${x.dash}"/>`);
    for (const p of x.points) e.push(`<circle cx="${px(p.areas).toFixed(1)}" cy="${py(p[x.k] / 1000).toFixed(1)}" r="3.5" fill="${x.color}"/>`);
    const ly = T + 10 + i * 22;
    e.push(`<line x1="${W - R + 16}" x2="${W - R + 46}" y1="${ly}" y2="${ly}" stroke="${x.color}" stroke-width="2" stroke-dasharray="${x.dash}"/>`);
    e.push(`<text x="${W - R + 52}" y="${ly + 4}">${x.label}</text>`);
  });
  e.push('</svg>');
  return e.join('\n') + '\n';
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1));

// ---- the page ----

const us = (ns: number, digits = 1) => (ns / 1000).toFixed(digits);
const lat = (m: Measured, digits = 1) => `${us(m.median, digits)} | ${us(m.p10, digits)}–${us(m.p90, digits)} | ${us(m.lo, digits)}–${us(m.hi, digits)}`;
const int = (x: number) => Math.round(x).toLocaleString('en-US');
const tm = (t: Timing) => `${us(t.median, 2)} | ${us(t.cpu, 2)}`;
const pct = (x: number | undefined) => (x === undefined ? 'n/a' : `${Math.round(100 * x)} %`);

function throughputTable(ts: Throughput[], nulls: Throughput[]): string {
  const rows = ts.map((t, i) => {
    const n = nulls[i];
    const per = t.perClient.map((x) => int(x)).join(', ');
    return `| ${t.clients} | ${int(t.total)} | ${per} | ${pct(t.jsBusy)} | ${pct(t.processBusy)} | ${n ? int(n.total) : ''} |`;
  });
  return [
    '| clients | tcefs ops/s, total | tcefs ops/s, each client | daemon JS thread busy | daemon, all threads | null node round trips/s, total |',
    '|---:|---:|---|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

export function renderMarkdown(r: Results): string {
  const f = r.fuse!;
  const s = r.scale!;
  const d = r.dispatch!;
  const m = r.machine;
  const rs = ratios(r);
  const ratioRows = rs.map((x) => `| ${x.name} | ${x.value.toFixed(2)}x | ${x.target} | ${x.met ? 'met' : '**missed**'} |`).join('\n');
  const daemonShare = f.rawTcefs.median - f.bare.median;
  const shimShare = f.check.median - f.rawTcefs.median;
  const one = f.throughput.find((t) => t.clients === 1);
  const two = f.throughput.find((t) => t.clients === 2);
  const eight = f.throughput.find((t) => t.clients === 8);
  const null1 = f.nullThroughput.find((t) => t.clients === 1);
  const null2 = f.nullThroughput.find((t) => t.clients === 2);
  const scaleRow = (label: string, ps: ScalePoint[]) =>
    ps.map((p) => `| ${label} | ${int(p.areas)} | ${us(p.map, 2)} | ${us(p.unmap, 2)} |`).join('\n');
  const tce = (r.tce ?? []).map((x) => `| \`${x.name}\` | ${Number.isInteger(x.value) ? int(x.value) : x.value.toFixed(2)} ${x.unit} |`).join('\n');

  return `# Benchmarks

Generated by \`npm run bench -- --write-docs\` (\`scripts/bench.ts\`) on ${r.date.slice(0, 10)}; every number
below is from that one run. \`npm run bench\` prints the same numbers as a table without touching this page.
Speed is measured, never asserted in tests.

## Machine

| | |
|---|---|
| CPU | ${m.cpu} |
| \`nproc\` | ${m.nproc} |
| memory | ${m.memGiB} GiB |
| kernel | ${m.kernel} |
| node | ${m.node} |
| load average at start (1, 5, 15 min) | ${m.load} |

The machine is shared with other work, so every latency through FUSE is measured in ${f.bare.rounds}
interleaved rounds and reported as the median of the round medians, with the p10–p90 of the median round
and the range of the round medians. A round a neighbour's burst hits shows in the range, not in the median.

## Through FUSE

A C client (\`scripts/bench/fuse_bench.c\`) times each call with \`clock_gettime\`. The **bare round trip**
is a \`pwrite\` of a 40-byte frame and a \`pread\` of the 48-byte reply on the one node of a separate
fuse-native mount (\`scripts/bench/null-fs.ts\`) mounted exactly as tcefs mounts (direct_io, big_writes, the
same max_read/max_write), whose handlers do nothing but answer. **Raw to tcefs** is the same frame written
the same way to tcefs's \`/dev/vfio/vfio\`. The rest are plain \`ioctl()\` calls of a program run under
\`tcefs run --mount\`, so the preload shim marshals them as it would for any program. Batches are frames of
1000 requests built by hand from \`<tcefs/protocol.h>\` (libtcefs has no batch call) on the same fd.

| what | median µs | p10–p90 µs | round medians µs |
|---|---:|---:|---:|
| bare fuse-native round trip (null node) | ${lat(f.bare)} |
| the same frame, raw, to tcefs \`/dev/vfio/vfio\` | ${lat(f.rawTcefs)} |
| \`VFIO_CHECK_EXTENSION\` via the shim | ${lat(f.check)} |
| SPAPR v2 \`VFIO_IOMMU_MAP_DMA\`, one 4K page | ${lat(f.spaprMap)} |
| SPAPR v2 \`VFIO_IOMMU_UNMAP_DMA\`, one 4K page | ${lat(f.spaprUnmap)} |
| SPAPR v2 \`MAP_DMA\` in a frame of 1000, per map | ${lat(f.spaprBatchMap, 2)} |
| SPAPR v2 \`UNMAP_DMA\` in a frame of 1000, per unmap | ${lat(f.spaprBatchUnmap, 2)} |
| \`IOMMU_IOAS_MAP\` (device attached), one 4K page | ${lat(f.iommufdMap)} |
| \`IOMMU_IOAS_UNMAP\` (device attached), one 4K page | ${lat(f.iommufdUnmap)} |
| \`IOMMU_IOAS_MAP\` in a frame of 1000, per map | ${lat(f.iommufdBatchMap, 2)} |
| \`IOMMU_IOAS_UNMAP\` in a frame of 1000, per unmap | ${lat(f.iommufdBatchUnmap, 2)} |

The SPAPR runs use a v2 container on a group with registered memory and a 1 GiB window of 4K pages; the
iommufd runs bind a device's cdev and attach it to the IOAS, so every map also writes a TCE.

Where the cheap ioctl's time goes: the FUSE floor ${us(f.bare.median)} µs, tcefs's daemon work
${us(daemonShare)} µs (raw frame minus floor), the shim's client-side work ${us(shimShare)} µs (shim
minus raw frame: locating the fd's kind, blocking signals around the exchange, \`getpid()\` for the frame).
In-process, without FUSE, tcefs spends ${us(d.check.median, 2)} µs (median; ${us(d.check.cpu, 2)} µs of CPU on
average, garbage collection included) per \`VFIO_CHECK_EXTENSION\` frame.

### Against the targets

| ratio | measured | target | |
|---|---:|---:|---|
${ratioRows}

### tcefs's own work per frame, without FUSE

Whole frames pushed through a \`FrameChannel\` in-process (\`scripts/bench/dispatch.ts\`): parsing,
dispatch, the handler, encoding and reading the reply; the same requests as above.

| frame | median µs | CPU µs |
|---|---:|---:|
| \`VFIO_CHECK_EXTENSION\` | ${tm(d.check)} |
| SPAPR \`MAP_DMA\`, one page | ${tm(d.spaprMap)} |
| SPAPR \`UNMAP_DMA\`, one page | ${tm(d.spaprUnmap)} |
| SPAPR \`MAP_DMA\` in a frame of 1000, per request | ${tm(d.spaprBatchMap)} |
| SPAPR \`UNMAP_DMA\` in a frame of 1000, per request | ${tm(d.spaprBatchUnmap)} |
| \`IOMMU_IOAS_MAP\`, one page, device attached | ${tm(d.iommufdMap)} |
| \`IOMMU_IOAS_UNMAP\`, one page, device attached | ${tm(d.iommufdUnmap)} |
| \`IOMMU_IOAS_MAP\` in a frame of 1000, per request | ${tm(d.iommufdBatchMap)} |
| \`IOMMU_IOAS_UNMAP\` in a frame of 1000, per request | ${tm(d.iommufdBatchUnmap)} |

"Median" is the median single operation's wall time; "CPU" is this process's CPU time over the whole
loops per operation, which counts garbage collection and not the time other processes held the CPU.

## Throughput with several clients

Each client is its own process under \`tcefs run --mount\` with its own iommufd, IOAS and device (the bench
topology has eight groups of one device), doing \`IOMMU_IOAS_MAP\`/\`UNMAP\` pairs of one page for
${f.throughput[0]?.seconds ?? '?'} s; all are released at once after they have set up. An op is one ioctl. The null node
column is the same number of clients doing bare round trips on the null mount. "Busy" is CPU time over wall
time from \`/proc\`: the daemon's main thread (where all JS runs) and all its threads (libfuse's workers too).

${throughputTable(f.throughput, f.nullThroughput)}

What this shows:

- All JS work is on one thread, so the daemon serves one request at a time; the work per request is
  small beside the transport${one ? ` (with one client the JS thread is ${pct(one.jsBusy)} busy)` : ''}, so clients mostly wait on FUSE and
  the kernel, not on each other's handlers.
- ${two && one ? `Two clients reach ${(two.total / one.total).toFixed(2)}x the throughput of one` : 'Two clients: not measured'}${null2 && null1 ? ` (the null node: ${(null2.total / null1.total).toFixed(2)}x)` : ''}.
  Each request's write and read are separate FUSE requests, and libfuse's worker threads take them in
  parallel, so one client's FUSE round trip overlaps another's JS work.
- ${eight ? `Eight clients on ${m.nproc} CPUs: ${int(eight.total)} ops/s in all, ${int(eight.total / 8)} each` : 'Eight clients: not measured'}. With more clients than CPUs
  the clients, libfuse's threads and the JS thread compete for CPUs; what the total does past ${m.nproc}
  clients is the scheduler's and the machine's, as the null node's column shows.
- Writes of frames to the same node are serialized by the kernel, not by tcefs: a FUSE \`direct_io\`
  write holds the inode's lock for the whole round trip to the daemon (the parallel-direct-writes flag
  needs libfuse 3, fuse-native is built on libfuse 2). The clients here write to \`/dev/iommu\`, one
  inode, so their writes queue in the kernel while their reads and the daemon's work proceed.

## Scale of the IOVA and TCE structures

In-process against the daemon's objects (\`scripts/bench/scale.ts\`, through the dispatcher, no FUSE): one
page mapped at a fixed IOVA into a free slot between existing one-page areas, then unmapped, with
1,000, 10,000 and 100,000 areas already in the IOAS. The three sizes live side by side and are measured in
alternating rounds, so noise and garbage collection fall on all of them alike.

![time per op against the number of areas](benchmarks-scale.svg)

| IOAS | areas | MAP µs | UNMAP µs |
|---|---:|---:|---:|
${scaleRow('no domain', s.noDomain)}
${scaleRow('device attached', s.withDevice)}

- A 1 GiB \`IOMMU_IOAS_MAP\` in one request into a domain with a 2 GiB window of 4K pages (IOMMU_HWPT_ALLOC
  with \`IOMMU_HWPT_DATA_SPAPR_TCE\`, device attached): **${s.bigMapMs.toFixed(0)} ms** for ${int(s.bigTces)} TCEs
  (${((s.bigMapMs * 1e6) / s.bigTces).toFixed(0)} ns per TCE); its UNMAP ${s.bigUnmapMs.toFixed(0)} ms.
- Memory per IOAS area: ${int(s.bytesPerArea)} bytes without a domain, ${int(s.bytesPerAreaWithDevice)} bytes with
  a device attached (the pin and the TCE included); JS heap and array buffers after a forced GC, over
  100,000 areas.
- Memory per live TCE: ${s.tableBytesPerTce.toFixed(1)} bytes by the table's own count (the TCE and the
  user-address shadow the kernel keeps too), ${s.heapBytesPerTce.toFixed(1)} bytes of heap growth for the 1 GiB map.

## The TCE table alone

\`scripts/bench/tce.ts\`: map then read back 262,144 4K TCEs of a 1 GiB window directly on a table.

| | |
|---|---:|
${tce}
`;
}
