// Turn one run's numbers into the ratios against the issue's targets, docs/benchmarks.md and its chart.
// Everything written into the page is computed from the run, so regenerating it cannot leave stale prose.
import { readFile } from 'node:fs/promises';
import { availableParallelism, loadavg, release, totalmem } from 'node:os';
import type { DispatchNumbers, Timing } from './dispatch.ts';
import { blockDiff, blockRatio, roundRatio, type FuseNumbers, type Measured, type Placement, type Throughput } from './fuse.ts';
import type { ScaleNumbers, ScalePoint } from './scale.ts';
import type { DmaNumbers } from './dma.ts';
import type { BenchResult } from './tce.ts';
import { irqMedian, irqRatio, type IrqNumbers } from './irq.ts';
import { median as leaseMedian, WINDOW_PAGES, type LeaseNumbers } from './lease.ts';
import { randIops, renderGuest, seqMBps, type GuestNumbers } from './guest.ts';

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
  dma?: DmaNumbers;
  irq?: IrqNumbers;
  lease?: LeaseNumbers;
  guest?: GuestNumbers;
  /** The kernel's iommufd selftests: each binary's wall time and counts under tcefs run --selftest. */
  kselftest?: Record<string, { ms: number; pass: number; fail: number; skip: number }>;
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
/** Leased over asked lone unmaps, each round's pair measured together, median over rounds. */
function leaseRatio(l: LeaseNumbers): number {
  return leaseMedian(l.leased.map((x, i) => x / l.asked[i]));
}

function leaseSection(l: LeaseNumbers): string {
  const clear = leaseMedian(l.clear);
  return `## A guest clearing its default window

Linux clears its whole 1 GiB default DMA window at boot, and QEMU passes that on as ${int(WINDOW_PAGES)}
\`VFIO_IOMMU_UNMAP_DMA\` calls of one empty 4K page each. \`test/c/unmap_lease.c\` does the same under
\`tcefs run\` (${l.rounds} rounds, medians): the daemon answers the first with an unmap lease on the empty run
after it, and the shim answers the rest itself (docs/protocol.md, "Unmap leases").

| what | µs |
|---|---:|
| one unmap of the clearing loop | ${clear.toFixed(2)} |
| the whole window (${int(WINDOW_PAGES)} unmaps), s | ${((clear * WINDOW_PAGES) / 1e6).toFixed(2)} |
| a lone unmap of an empty page right after another call: the daemon answers | ${leaseMedian(l.asked).toFixed(1)} |
| the same unmap once more: the lease answers | ${leaseMedian(l.leased).toFixed(2)} |

A leased answer costs the shim's check that the fd is still the container (one \`statx\`) and a read
of the daemon's lease word, mapped; the daemon's liveness (a pidfd) is polled once a millisecond at
most. Asking the daemon is a FUSE round trip (below).

`;
}

export function ratios(r: Results): Ratio[] {
  const out: Ratio[] = [];
  if (r.irq) {
    const raise = irqRatio(r.irq, 'pacedRaise', 'pacedRt');
    out.push({ name: 'interrupt: device raise until eventfd readable / ioctl round trip', value: raise, target: '<= 1.5', met: raise <= 1.5 });
    const trig = irqRatio(r.irq, 'pacedIrq', 'pacedRt');
    out.push({ name: 'interrupt: SET_IRQS trigger until eventfd readable / ioctl round trip', value: trig, target: '<= 1.5', met: trig <= 1.5 });
  }
  const f = r.fuse;
  for (const p of f?.placements ?? []) {
    const at = (name: string) => `${name} [${p.name}]`;
    const cheap = blockRatio(p.blocks.check, p.blocks.bare);
    out.push({ name: at('cheap ioctl via shim / bare round trip'), value: cheap, target: '<= 1.15', met: cheap <= 1.15 });
    const tuned = blockRatio(p.blocks.check, p.blocks.tuned);
    out.push({ name: at("cheap ioctl via shim / null node with tcefs's options"), value: tuned, target: '<= 1.15', met: tuned <= 1.15 });
    const sp = roundRatio(p.spaprMap, p.spaprBatchMap).median;
    out.push({ name: at('SPAPR MAP_DMA: single frame / in a batch'), value: sp, target: '>= 20', met: sp >= 20 });
    const io = roundRatio(p.iommufdMap, p.iommufdBatchMap).median;
    out.push({ name: at('IOAS_MAP: single frame / in a batch'), value: io, target: '>= 20', met: io >= 20 });
  }
  for (const e of r.dma?.engine ?? []) {
    const x = e.mbps / r.dma!.raw;
    out.push({ name: `DMA through ${e.pageShift === 12 ? '4K' : '64K'} TCEs / raw /proc/pid/mem copy`, value: x, target: '>= 0.5', met: x >= 0.5 });
  }
  if (r.lease) {
    const x = leaseRatio(r.lease);
    out.push({ name: 'lone UNMAP_DMA of an empty page: from the lease / asking the daemon', value: x, target: '<= 0.1', met: x <= 0.1 });
  }
  const g = r.guest;
  if (g) {
    const boot = g.tcefs.firstRead / g.builtin.firstRead;
    out.push({ name: 'guest: boot to first completed read, tcefs / built-in nvme', value: boot, target: '<= 1.3', met: boot <= 1.3 });
    const seq = seqMBps(g.tcefs) / seqMBps(g.builtin);
    out.push({ name: 'guest: 64 MiB sequential 128k direct read, tcefs / built-in nvme', value: seq, target: '>= 0.5', met: seq >= 0.5 });
    const rnd = randIops(g.tcefs) / randIops(g.builtin);
    out.push({ name: 'guest: 4k random-read IOPS, tcefs / built-in nvme', value: rnd, target: 'reported', met: true });
  }
  const s = r.scale;
  if (s) {
    for (const [label, ps] of [['no domain', s.noDomain], ['with device', s.withDevice]] as const) {
      for (const [k, name] of [['map', 'MAP'], ['unmap', 'UNMAP'], ['autoMap', 'MAP, IOVA allocated']] as const) {
        const g = ps[ps.length - 1][k] / ps[0][k];
        out.push({ name: `IOAS ${name} ${label}: 100k areas / 1k areas`, value: g, target: '<= 2', met: g <= 2 });
      }
    }
  }
  return out;
}

// ---- the chart ----

/** Time per op against the number of areas: log x, linear y from 0, one line per series. */
export function renderScaleSvg(s: ScaleNumbers): string {
  const W = 680;
  const H = 400;
  const L = 64;
  const R = 210;
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
const lat = (m: Measured, digits = 1) => `${us(m.median, digits)} | ${us(m.p10, digits)}–${us(m.p90, digits)} | ${m.each.map((x) => us(x, digits)).join(', ')}`;
const int = (x: number) => Math.round(x).toLocaleString('en-US');
const tm = (t: Timing) => `${us(t.median, 2)} | ${us(t.cpu, 2)}`;
const pct = (x: number | undefined) => (x === undefined ? 'n/a' : `${Math.round(100 * x)} %`);
const x2 = (v: number) => `${v.toFixed(2)}x`;
const more = (a: number, b: number) => `${a >= b ? '+' : ''}${Math.round((100 * (a - b)) / b)} %`;

function latencyTable(p: Placement): string {
  return `| what | median µs | p10–p90 µs (median round) | each round's median µs |
|---|---:|---:|---|
| bare fuse-native round trip (null node) | ${lat(p.bare)} |
| the same, null node mounted with tcefs's options | ${lat(p.bareTuned)} |
| the same frame, raw, to tcefs \`/dev/vfio/vfio\` | ${lat(p.rawTcefs)} |
| \`VFIO_CHECK_EXTENSION\` via the shim | ${lat(p.check)} |
| interleaved call by call: bare | ${lat(p.interleaved.bare)} |
| interleaved call by call: raw to tcefs | ${lat(p.interleaved.raw)} |
| interleaved call by call: \`VFIO_CHECK_EXTENSION\` via the shim | ${lat(p.interleaved.check)} |
| SPAPR v2 \`VFIO_IOMMU_MAP_DMA\`, one 4K page | ${lat(p.spaprMap)} |
| SPAPR v2 \`VFIO_IOMMU_UNMAP_DMA\`, one 4K page | ${lat(p.spaprUnmap)} |
| SPAPR v2 \`MAP_DMA\` in a frame of 1000, per map | ${lat(p.spaprBatchMap, 2)} |
| SPAPR v2 \`UNMAP_DMA\` in a frame of 1000, per unmap | ${lat(p.spaprBatchUnmap, 2)} |
| \`IOMMU_IOAS_MAP\` (device attached), one 4K page | ${lat(p.iommufdMap)} |
| \`IOMMU_IOAS_UNMAP\` (device attached), one 4K page | ${lat(p.iommufdUnmap)} |
| \`IOMMU_IOAS_MAP\` in a frame of 1000, per map | ${lat(p.iommufdBatchMap, 2)} |
| \`IOMMU_IOAS_UNMAP\` in a frame of 1000, per unmap | ${lat(p.iommufdBatchUnmap, 2)} |`;
}

function throughputTable(ts: Throughput[], nulls: Throughput[]): string {
  const rows = ts.map((t, i) => {
    const n = nulls[i];
    const per = t.perClient.map((x) => int(x)).join(', ');
    return `| ${t.label} | ${int(t.total)} | ${per} | ${pct(t.jsBusy)} | ${pct(t.processBusy)} | ${n ? int(n.total) : ''} |`;
  });
  return [
    '| clients | tcefs ops/s, total | tcefs ops/s, each client | daemon JS thread busy | daemon, all threads | null node round trips/s, total |',
    '|---|---:|---|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

/** Device DMA: the copy engine against a raw /proc/<pid>/mem copy. */
export function dmaSection(d: DmaNumbers): string {
  const rows = d.engine.map((e) => `| copy engine, ${e.pageShift === 12 ? '4K' : '64K'} TCEs | ${e.mbps.toFixed(0)} | ${(e.mbps / d.raw).toFixed(2)}x |`).join('\n');
  return `## Device DMA

\`scripts/bench/dma.ts\`: the copy engine (docs/devices.md) moves ${d.bytes >> 20} MiB inside a live process
(\`test/c/dma_target.c\`) behind a SPAPR v2 container, in-process without FUSE; every IOMMU page of source
and destination is translated through the TCE table and its frame mapped back to the process, and the
bytes move through \`/proc/<pid>/mem\` in 256 KiB chunks, one per turn of the event loop. Against it, one
\`/proc/<pid>/mem\` read and one write of the same bytes. Median of ${d.rounds} rounds (target: at least 0.5x).

| | MB/s | / raw |
|---|---:|---:|
${rows}
| raw \`/proc/<pid>/mem\` read + write | ${d.raw.toFixed(0)} | 1.00x |

`;
}

/** What a close costs now that the last one waits for the daemon's release (docs/c-programs.md, Closing). */
export function closeSection(c: { last: number; raw: number; dup: number }): string {
  const us = (ns: number) => (ns / 1000).toFixed(1);
  return `## Closing a file

\`fuse_bench close\`, under the shim on the mount of the FUSE section: an open of /dev/vfio/vfio followed by its
close. The last close of a file waits until the daemon has released it (one lookup the daemon answers once
RELEASE has arrived); a raw close syscall does not wait, and closing one of two dups is not the last close.
Median of 2000 each.

| | us |
|---|---:|
| open + last close via the shim (waits for the release) | ${us(c.last)} |
| open + raw close syscall (no wait) | ${us(c.raw)} |
| dup + close via the shim (not the last: no wait) | ${us(c.dup)} |

`;
}

export function renderMarkdown(r: Results): string {
  const f = r.fuse!;
  const s = r.scale!;
  const d = r.dispatch!;
  const m = r.machine;
  const rs = ratios(r);
  const ratioRows = rs.map((x) => `| ${x.name} | ${x.value.toFixed(2)}x | ${x.target} | ${x.met ? 'met' : '**missed**'} |`).join('\n');
  const same = f.placements[0];
  const across = f.placements.find((p) => p.clientCpu !== same.clientCpu);
  const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const daemonShare = blockDiff(same.blocks.raw, same.blocks.tuned);
  const timerShare = blockDiff(same.blocks.bare, same.blocks.tuned);
  const shimShare = blockDiff(same.blocks.check, same.blocks.raw);
  const floor = mid(same.blocks.bare);
  const tunedFloor = mid(same.blocks.tuned);
  const sc = f.syscalls;
  const shimSys = sc.sigmaskPair + sc.statx;
  const cheap = blockRatio(same.blocks.check, same.blocks.bare);
  const cheapTuned = blockRatio(same.blocks.check, same.blocks.tuned);
  const cheapRounds = roundRatio(same.check, same.bare);
  const spBatch = roundRatio(same.spaprMap, same.spaprBatchMap).median;
  const ioBatch = roundRatio(same.iommufdMap, same.iommufdBatchMap).median;
  const find = (ts: Throughput[], label: string) => ts.find((t) => t.label === label);
  const one = find(f.throughput, '1 client');
  const twoOne = find(f.throughput, '2 clients, one node');
  const twoTwo = find(f.throughput, '2 clients, two nodes');
  const eight = find(f.throughput, '8 clients, one node');
  const null1 = find(f.nullThroughput, '1 client');
  const null2one = find(f.nullThroughput, '2 clients, one node');
  const null2two = find(f.nullThroughput, '2 clients, two nodes');
  const jsLimit = f.throughput.some((t) => (t.jsBusy ?? 0) > 0.8);
  const misses: string[] = [];
  if (cheap > 1.15 || cheapTuned > 1.15) {
    misses.push(
      `The cheap ioctl with client and daemon on one CPU (${x2(cheap)} of the bare round trip, ${x2(cheapTuned)} of one with tcefs's options): ` +
        `tcefs's daemon work adds ${us(daemonShare, 2)} µs and the preload shim's client work ${us(shimShare, 2)} µs to the ${us(tunedFloor)} µs floor.`,
    );
  }
  if (spBatch < 20) misses.push(`SPAPR batching with client and daemon on one CPU (${x2(spBatch)}).`);
  if (ioBatch < 20) {
    misses.push(
      `IOAS_MAP batching with client and daemon on one CPU (${x2(ioBatch)}): a map inside a batch still costs ` +
        `${us(same.iommufdBatchMap.median, 2)} µs, the IOAS and domain work itself (${us(d.iommufdBatchMap.median, 2)} µs in-process), against a ` +
        `${us(same.iommufdMap.median)} µs single frame.`,
    );
  }
  for (const x of rs.filter((x) => x.name.startsWith('guest:') && !x.met)) {
    misses.push(`${x.name.slice(7)} (${x.value.toFixed(2)}x): see "A POWER guest" for where the time goes.`);
  }
  const lockBound = !!(null2one && null2two && null2two.total > 1.3 * null2one.total);
  const scaleRow = (label: string, ps: ScalePoint[]) => ps.map((p) => `| ${label} | ${int(p.areas)} | ${us(p.map, 2)} | ${us(p.unmap, 2)} | ${us(p.autoMap, 2)} |`).join('\n');
  const growth = (ps: ScalePoint[], k: 'map' | 'unmap' | 'autoMap') => x2(ps[ps.length - 1][k] / ps[0][k]);
  const tce = (r.tce ?? []).map((x) => `| \`${x.name}\` | ${Number.isInteger(x.value) ? int(x.value) : x.value.toFixed(2)} ${x.unit} |`).join('\n');

  return `# Benchmarks

Generated by \`npm run bench -- --write-docs\` (\`scripts/bench.ts\`) on ${r.date.slice(0, 10)}; every number
below comes from that one run. \`npm run bench\` prints the same numbers as a plain table and leaves this
page alone. Speed is measured, never asserted in tests.

## Machine

| | |
|---|---|
| CPU | ${m.cpu} |
| \`nproc\` | ${m.nproc} |
| memory | ${m.memGiB} GiB |
| kernel | ${m.kernel} |
| node | ${m.node} |
| load average when the run started (1, 5, 15 min) | ${m.load} |

The machine is a VM shared with other work.

## Against the targets

| ratio | measured | target | |
|---|---:|---:|---|
${ratioRows}

Each ratio compares measurements taken close together (the cheap ioctl within sets of blocks of calls
milliseconds apart, the others within a round) and shows the median over sets or rounds: measured
minutes apart, the two sides could have seen a differently loaded machine. What the rows mean, and why
some are missed, follows; in short:
${misses.length ? misses.map((x) => `\n- ${x}`).join('') : '\n- every target is met in this run.'}

${r.lease ? leaseSection(r.lease) : ''}## Through FUSE

A C client (\`scripts/bench/fuse_bench.c\`) times each call with \`clock_gettime\`. The **bare round trip**
is a \`pwrite\` of the 40-byte frame of \`VFIO_CHECK_EXTENSION\` and a \`pread\` of a 48-byte reply on a node
of a separate fuse-native mount (\`scripts/bench/null-fs.ts\`) whose handlers only answer. It is mounted
through tcefs's own subclass (\`src/transport/fuse-mount.ts\`: direct_io, big_writes, the same
max_read/max_write) but keeps fuse-native's default per-request timeout; a second null node takes
tcefs's options whole, which also turn that timeout off (fuse-native arms and clears a timer around every
request; tcefs's handlers always answer, so it buys nothing). The first is the floor the targets name,
the second the one that shows tcefs's own work.
**Raw to tcefs** is the same frame written the same way to tcefs's \`/dev/vfio/vfio\`. The rest are plain
\`ioctl()\` calls in a program run under \`tcefs run --mount\`, so the preload shim marshals them as it
would for any program. Batches are frames of 1000 requests built from \`<tcefs/protocol.h>\` (libtcefs has
no batch call) and written on the same fd. The SPAPR runs use a v2 container with registered memory and
a 1 GiB window of 4K pages; the iommufd runs bind a device's cdev and attach it to the IOAS, so every map
also writes a TCE.

**Where the processes run decides the floor.** On this VM a FUSE round trip costs
${us(same.bare.median)} µs when the client and the daemon share a CPU${across ? ` and ${us(across.bare.median)} µs when they do not` : ''}: a
round trip is two FUSE requests (the write and the read), each four wake-ups (libfuse's thread by the
kernel, the JS thread by libfuse, libfuse's thread again by the JS callback, the client by the kernel),
and a wake-up on another vCPU is expensive here. Left to itself the scheduler flips between the two for seconds at a
time, which made unpinned measurements bimodal. So the servers are pinned to CPU 0 and the client to
CPU ${same.clientCpu} ("${same.name}")${across ? ` or CPU ${across.clientCpu} ("${across.name}")` : ''}; each placement runs ${same.bare.rounds}${across ? ` and ${across.bare.rounds}` : ''} rounds, every
round running every measurement once.

### ${same.name}

${latencyTable(same)}
${across ? `\n### ${across.name}\n\n${latencyTable(across)}\n` : ''}
### The cheap ioctl against the floor

The ratios held against the target come from ${same.blocks.bare.length} sets of four blocks of calls run in one process, one
after the other: round trips on the bare null node and on the one with tcefs's options, the raw frame to
tcefs, \`VFIO_CHECK_EXTENSION\` through the shim (${same.name}, the first fifth of each block left out while
the daemon warms up again). A set takes milliseconds, so the machine's changing load cannot creep into
the comparison as it can between runs seconds apart. Over the blocks the cheap ioctl costs **${x2(cheap)}**
the bare round trip (from the separate runs above, the median of the per-round ratios is
${x2(cheapRounds.median)}) and **${x2(cheapTuned)}** the round trip of a null node mounted as tcefs is. Per block:

- **fuse-native's per-request timer**, which tcefs turns off: ${us(timerShare, 2)} µs (bare minus the null node with
  tcefs's options, whose ${us(tunedFloor)} µs is the floor below).
- **tcefs's daemon work**: ${us(daemonShare, 2)} µs (${((100 * daemonShare) / tunedFloor).toFixed(1)} % of that floor; raw frame minus that null node):
  parsing the frame, dispatch, the handler, encoding and returning the reply, and the FUSE adapter. In a
  hot loop in-process the same frame costs ${us(d.check.median, 2)} µs (below); the rest is most likely the
  same work on cold caches, the kernel and the client having run in between.
- **the preload shim's client work**: ${us(shimShare, 2)} µs (shim minus raw frame). Of that, syscalls timed
  alone: the \`pthread_sigmask\` pair around the exchange ${us(sc.sigmaskPair, 2)} µs and the \`statx\` that checks
  the fd is still the file the shim tracked ${us(sc.statx, 2)} µs; ${us(shimSys, 2)} µs in all. The \`statx\`
  (\`AT_STATX_DONT_SYNC\`, answered from the inode without asking the daemon) replaced a \`readlink\` of
  \`/proc/self/fd/N\`, ${us(sc.readlinkProcFd, 2)} µs timed the same way.

${cheap <= 1.15 && cheapTuned <= 1.15 ? 'The target is met against both floors.' : cheap <= 1.15 ? 'The target is met against the bare floor, not against the null node with tcefs\'s options.' : 'The target is missed.'}
${across ? `Across CPUs the hand-offs dominate everything: the ratio there is ${x2(blockRatio(across.blocks.check, across.blocks.bare))}.` : ''}

### Batching

A single \`MAP_DMA\` through the shim costs ${us(same.spaprMap.median)} µs; inside a frame of 1000 a map costs
${us(same.spaprBatchMap.median, 2)} µs, ${x2(spBatch)} less. For \`IOMMU_IOAS_MAP\` with a device the ratio is ${x2(ioBatch)}:
a batched map costs ${us(same.iommufdBatchMap.median, 2)} µs, of which ${us(d.iommufdBatchMap.median, 2)} µs is tcefs's own work measured in-process
(below): taking its request out of the frame, dispatch, the IOAS and domain work (checking the reserved
ranges, the B+ tree insert, pinning, the locked-memory charge, writing the TCE, in \`src/objects\` and
\`src/tce\`) and encoding its answer. Batching takes the transport out; what is left is that work. The
single frame got cheaper too (the shim's \`statx\`, fuse-native's timer, the reused TCE chunk), so the
ratio is a race between the two; over the rounds above it ranged ${x2(Math.min(...roundRatio(same.iommufdMap, same.iommufdBatchMap).each))}–${x2(Math.max(...roundRatio(same.iommufdMap, same.iommufdBatchMap).each))}.

### tcefs's own work per frame, without FUSE

Whole frames pushed through a \`FrameChannel\` in-process (\`scripts/bench/dispatch.ts\`): parsing,
dispatch, the handler, encoding and reading the reply; the same requests as above.

| frame | median µs | CPU µs |
|---|---:|---:|
| \`VFIO_CHECK_EXTENSION\` | ${tm(d.check)} |
| SPAPR \`MAP_DMA\`, one page | ${tm(d.spaprMap)} |
| SPAPR \`UNMAP_DMA\`, one page | ${tm(d.spaprUnmap)} |
| SPAPR \`MAP_DMA\`, one page, another entry in its table chunk | ${tm(d.spaprMapChunkKept)} |
| SPAPR \`UNMAP_DMA\`, one page, another entry in its table chunk | ${tm(d.spaprUnmapChunkKept)} |
| SPAPR \`MAP_DMA\` in a frame of 1000, per request | ${tm(d.spaprBatchMap)} |
| SPAPR \`UNMAP_DMA\` in a frame of 1000, per request | ${tm(d.spaprBatchUnmap)} |
| \`IOMMU_IOAS_MAP\`, one page, device attached | ${tm(d.iommufdMap)} |
| \`IOMMU_IOAS_UNMAP\`, one page, device attached | ${tm(d.iommufdUnmap)} |
| \`IOMMU_IOAS_MAP\` in a frame of 1000, per request | ${tm(d.iommufdBatchMap)} |
| \`IOMMU_IOAS_UNMAP\` in a frame of 1000, per request | ${tm(d.iommufdBatchUnmap)} |

"Median" is the median single operation's wall time; "CPU" is this process's CPU time over untimed
loops per operation, which counts garbage collection and not the time other processes held the CPU.

A lone one-page \`MAP_DMA\` costs ${us(d.spaprMap.median, 2)} µs and ${us(d.spaprMapChunkKept.median, 2)} µs when another entry shares its
storage chunk: the TCE table (\`src/tce/sparse-u64.ts\`) keeps the last 512-entry chunk to empty, for the
TCEs and for the user-address shadow, so a map/unmap loop on one page does not free and allocate a chunk
each time (before it did, the lone map cost about 3.4 µs).

## Throughput with several clients

Each tcefs client is its own process under \`tcefs run --mount\` with its own iommufd, IOAS and device (the
bench topology has eight groups of one device each), doing \`IOMMU_IOAS_MAP\`/\`UNMAP\` pairs of one page
for ${f.throughput[0]?.seconds ?? '?'} s; all start together after they have set up. An op is one ioctl. In the two-node run one
client uses an iommufd and the other a SPAPR v2 container (\`/dev/vfio/vfio\`). The null node column runs
the same number of clients doing bare round trips (two null nodes in the two-node run). Nothing is
pinned here. "Busy" is CPU time over wall time from \`/proc\`: the daemon's main thread, where all JS runs,
and all its threads (libfuse's workers too).

${throughputTable(f.throughput, f.nullThroughput)}

What this shows:

- ${jsLimit ? 'The JS thread is close to saturated' : 'The JS thread is not what limits throughput'}: ${one ? `with one client it is busy ${pct(one.jsBusy)} of the time` : ''}${eight ? `, with eight ${pct(eight.jsBusy)}` : ''}. All JS runs on that one
  thread, so the daemon handles one request at a time; a request's JS work is a small part of its round
  trip, the rest being the kernel, libfuse's threads and the hand-offs between CPUs.
- **Writes to one node are serialized by the kernel, not by tcefs.** The kernel's FUSE \`direct_io\` write
  (\`fuse_direct_write_iter\`) holds the inode's lock exclusively for the whole round trip to the daemon
  unless the file was opened with FOPEN_PARALLEL_DIRECT_WRITES, which libfuse 2 (fuse-native's) cannot
  set, and even then only for writes inside the file's size, which is 0 for every tcefs node. Every
  client here opens \`/dev/iommu\`, one inode, so their frames enter the daemon one at a time; their
  reads, and everything around the round trip, still overlap.${null2one && null2two ? ` On the null mount, without
  tcefs, two clients make ${int(null2two.total)} round trips/s on two nodes against ${int(null2one.total)} on one (${more(null2two.total, null2one.total)})` : ''}${twoOne && twoTwo ? `;
  on tcefs an iommufd and a container make ${int(twoTwo.total)} ops/s against ${int(twoOne.total)} for two iommufds (${more(twoTwo.total, twoOne.total)})` : ''}.
  ${lockBound ? 'Separate nodes help: on one node the lock, and not only the CPUs, held the clients back.' : `With ${m.nproc} CPUs, and cross-CPU hand-offs as slow as they are here, the CPUs limit before the lock does.`}
- ${one ? `One client alone makes ${int(one.total)} ops/s, ${us(1e9 / one.total, 0)} µs per op: unpinned, the client and the daemon mostly
  run on different CPUs (compare the latencies across CPUs above)` : 'One client: not measured'}.${eight ? ` Eight clients on ${m.nproc} CPUs make
  ${int(eight.total)} ops/s in all, ${int(eight.total / 8)} each, ${Math.max(...eight.perClient) < 1.25 * Math.min(...eight.perClient) ? 'spread evenly' : 'spread unevenly'} (${int(Math.min(...eight.perClient))} to ${int(Math.max(...eight.perClient))}): nobody starves, and the
  total is set by the kernel's queue on the one node and by the CPUs, as the null column shows.` : ''}

## Scale of the IOVA and TCE structures

In-process against the daemon's objects (\`scripts/bench/scale.ts\`, through the dispatcher, no FUSE): one
page mapped at a fixed IOVA into a free slot between existing one-page areas, then unmapped, with
1,000, 10,000 and 100,000 areas already in the IOAS; without a domain and with a device attached (so
every map also pins and writes a TCE). The three sizes live side by side and are measured in alternating
rounds, so noise and garbage collection fall on all of them alike; median of the rounds. The last column
is a MAP without \`IOMMU_IOAS_MAP_FIXED_IOVA\`, the IOAS choosing the IOVA (the lowest hole that fits,
below the areas here), unmapped again after each.

![time per op against the number of areas](benchmarks-scale.svg)

| IOAS | areas | MAP µs | UNMAP µs | MAP, IOVA allocated, µs |
|---|---:|---:|---:|---:|
${scaleRow('no domain', s.noDomain)}
${scaleRow('device attached', s.withDevice)}

From 1,000 to 100,000 areas MAP grows ${growth(s.noDomain, 'map')} and UNMAP ${growth(s.noDomain, 'unmap')} without a domain,
${growth(s.withDevice, 'map')} and ${growth(s.withDevice, 'unmap')} with a device (target: at most 2x); a MAP whose IOVA is allocated
grows ${growth(s.noDomain, 'autoMap')} and ${growth(s.withDevice, 'autoMap')} (the allocator walks the tree from the bottom and stops at the
first fit; it used to list every hole, 46 ms a map at 100,000 areas). The areas are in a B+ tree
(\`src/objects/iommufd/iova-tree.ts\`), so a lookup or insert is O(log n); what growth there is comes from the tree's extra
levels and, likely, from cache misses in a larger heap (with a device, a map also reaches the TCE table's
chunks and the pinned pages of 100,000 areas).

- A 1 GiB \`IOMMU_IOAS_MAP\` in one request into a domain with a 2 GiB window of 4K pages (\`IOMMU_HWPT_ALLOC\`
  with \`IOMMU_HWPT_DATA_SPAPR_TCE\`, device attached): **${s.bigMapMs.toFixed(0)} ms** for ${int(s.bigTces)} TCEs
  (${((s.bigMapMs * 1e6) / s.bigTces).toFixed(0)} ns per TCE); its UNMAP ${s.bigUnmapMs.toFixed(0)} ms.
- Memory per IOAS area: ${int(s.bytesPerArea)} bytes without a domain, ${int(s.bytesPerAreaWithDevice)} bytes with a device
  attached (its pin and TCE included): JS heap and array buffers after a forced GC, over 100,000 areas.
- Memory per live TCE: ${s.tableBytesPerTce.toFixed(1)} bytes by the table's own count (the TCE and the
  user-address shadow the kernel keeps too); the heap grew ${s.heapBytesPerTce.toFixed(1)} bytes per TCE for the 1 GiB map.

${r.fuse?.close ? closeSection(r.fuse.close) : ''}${r.dma ? dmaSection(r.dma) : ''}## The TCE table alone

\`scripts/bench/tce.ts\`: map then read back 262,144 4K TCEs of a 1 GiB window directly on a table.

| | |
|---|---:|
${tce}
${r.irq ? renderIrq(r.irq) : ''}${r.guest ? renderGuest(r.guest) : ''}`;
}

/** The interrupt section (scripts/bench/irq.ts). */
export function renderIrq(n: IrqNumbers): string {
  const us = (k: Parameters<typeof irqMedian>[1]) => (irqMedian(n, k) / 1000).toFixed(1);
  return `
## Interrupts

\`scripts/bench/irq_bench.c\` under \`tcefs run\`, unpinned: an MSI-X vector armed with an eventfd, and
${n.blocks.length} blocks of ${n.perBlock} calls of each kind alternating call by call, each after a 300 µs pause (so the
library's delivery thread has its next read waiting in the daemon, as it has between interrupts). The
median of the block medians:

| what | µs | / round trip |
|---|---:|---:|
| ioctl round trip (\`VFIO_DEVICE_GET_IRQ_INFO\`: one write and one read of the device file) | ${us('pacedRt')} | 1 |
| the device raises the vector (a write of \`irq BDF 2 0\` to the control node) until the eventfd is readable | ${us('pacedRaise')} | ${irqRatio(n, 'pacedRaise', 'pacedRt').toFixed(2)} |
| \`SET_IRQS\` \`DATA_NONE\\|ACTION_TRIGGER\` until the eventfd is readable | ${us('pacedIrq')} | ${irqRatio(n, 'pacedIrq', 'pacedRt').toFixed(2)} |
| back to back: round trip / trigger until readable | ${us('rt')} / ${us('irq')} | ${irqRatio(n, 'irq', 'rt').toFixed(2)} |

The raise is answered by the daemon completing the delivery thread's waiting read while it handles the
write that raised it; the thread writes the eventfd. Both rows include their stimulus, a FUSE write (the
raise) or a whole ioctl (the trigger), which a device model inside the daemon would not pay. Back to
back, each interrupt also costs the thread's next read, a third FUSE request besides the ioctl's two,
on a machine whose two CPUs are shared with the client, libfuse's threads and the daemon.
`;
}
