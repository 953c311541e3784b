// Scale of the IOVA and TCE structures, in-process against the daemon's objects (no FUSE: the transport
// would drown the differences being looked for):
//
//   - IOMMU_IOAS_MAP and IOMMU_IOAS_UNMAP of one 4K page at a fixed IOVA, timed with 1,000, 10,000 and
//     100,000 other areas in the IOAS; without a domain (the IOAS only records areas) and with a device
//     attached (every MAP also pins and writes a TCE). O(log n) means the time per op barely grows.
//     Also a MAP that lets the IOAS choose the IOVA (no FIXED_IOVA; the lowest hole fits), and its UNMAP.
//   - one IOMMU_IOAS_MAP of 1 GiB into a domain whose 4K-page window is 2 GiB (262,144 TCEs), and its UNMAP;
//   - memory per IOAS area and per live TCE.
//
// Run directly with `node --import tsx scripts/bench/scale.ts`.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pathToFileURL } from 'node:url';
import { TCEFS_EXT } from '../../src/uapi/constants.ts';
import { encode } from '../../src/uapi/layout.ts';
import { iommu_hwpt_spapr_tce } from '../../src/uapi/structs.ts';
import type { BenchResult } from './tce.ts';
import { call, newDaemon, open } from './inproc.ts';
import { BENCH_TOPOLOGY, FIXED_RW, iommufdSetup, PAGE, RW, VA } from './setup.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

export const AREA_COUNTS = [1_000, 10_000, 100_000];
const GIB = 1n << 30n;
/** Areas are one page every other page from here, so each has a free page on both sides to probe. */
const BASE = 0x10_0000n;
const STRIDE = 2n * PAGE;

export interface ScalePoint {
  areas: number;
  map: number;
  unmap: number;
  /** A MAP whose IOVA the IOAS allocates, ns. */
  autoMap: number;
}

export interface ScaleNumbers {
  noDomain: ScalePoint[];
  withDevice: ScalePoint[];
  /** Bytes of JS heap per area, no domain and with a device (pins and TCE included). */
  bytesPerArea: number;
  bytesPerAreaWithDevice: number;
  /** The 1 GiB MAP and its UNMAP, ms (median of runs). */
  bigMapMs: number;
  bigUnmapMs: number;
  bigTces: number;
  /** The TCE table's own count of bytes per live TCE, and what the heap grew by per TCE. */
  tableBytesPerTce: number;
  heapBytesPerTce: number;
}

function heap(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** A deterministic spread of probe slots (the free page after area j), the same pattern at every size. */
function probes(n: number, count: number): bigint[] {
  let x = 12345;
  return Array.from({ length: count }, () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return BASE + BigInt(x % n) * STRIDE + PAGE;
  });
}

/**
 * One IOAS per size, filled once; then rounds that visit every size in turn, so that a burst of noise from
 * a neighbour on a shared machine lands on all sizes alike instead of on one. Median of the round means.
 */
function curve(device: boolean, ops: number, rounds: number): { points: ScalePoint[]; bytesPerArea: number } {
  const d = newDaemon(BENCH_TOPOLOGY);
  let bytesPerArea = 0;
  const spaces = AREA_COUNTS.map((n, g) => {
    const { iommufd, ioas } = iommufdSetup(d, g, device);
    const map = (iova: bigint, ua: bigint) => call(iommufd, 'IOMMU_IOAS_MAP', { flags: FIXED_RW, ioas_id: ioas, user_va: ua, length: PAGE, iova });
    const unmap = (iova: bigint) => call(iommufd, 'IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova, length: PAGE });
    const autoMap = () => call(iommufd, 'IOMMU_IOAS_MAP', { flags: RW, ioas_id: ioas, user_va: VA, length: PAGE }).out.iova as bigint;
    const h0 = heap();
    for (let k = 0; k < n; k++) map(BASE + BigInt(k) * STRIDE, VA + BigInt(k) * STRIDE);
    if (g === AREA_COUNTS.length - 1) bytesPerArea = (heap() - h0) / n;
    const at = probes(n, ops);
    for (const iova of at) map(iova, VA + iova), unmap(iova); // warm up
    for (let k = 0; k < ops; k++) unmap(autoMap());
    return { n, map, unmap, autoMap, at, m: [] as number[], u: [] as number[], a: [] as number[] };
  });
  for (let r = 0; r < rounds; r++) {
    for (const s of spaces) {
      let tm = 0n;
      let tu = 0n;
      for (const iova of s.at) {
        const t0 = process.hrtime.bigint();
        s.map(iova, VA + iova);
        const t1 = process.hrtime.bigint();
        s.unmap(iova);
        tm += t1 - t0;
        tu += process.hrtime.bigint() - t1;
      }
      s.m.push(Number(tm) / ops);
      s.u.push(Number(tu) / ops);
      let ta = 0n;
      for (let k = 0; k < ops; k++) {
        const t0 = process.hrtime.bigint();
        const iova = s.autoMap();
        ta += process.hrtime.bigint() - t0;
        s.unmap(iova);
      }
      s.a.push(Number(ta) / ops);
    }
  }
  d.shutdown();
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { points: spaces.map((s) => ({ areas: s.n, map: med(s.m), unmap: med(s.u), autoMap: med(s.a) })), bytesPerArea };
}

function bigMap(runs: number) {
  const d = newDaemon(BENCH_TOPOLOGY);
  const { iommufd, ioas } = iommufdSetup(d, 2, false);
  const dev = open(d, '/dev/vfio/devices/vfio2');
  const devId = call(dev, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: iommufd.handle }).out.out_devid as number;
  const data = encode(iommu_hwpt_spapr_tce, { 'window0.page_shift': 12, 'window0.levels': 1, 'window0.window_size': 2n * GIB });
  const hw = call(iommufd, 'IOMMU_HWPT_ALLOC', {
    dev_id: devId, pt_id: ioas, data_type: TCEFS_EXT.IOMMU_HWPT_DATA_SPAPR_TCE, data_len: data.length, data_uptr: 0x1000n,
  }, { blobs: [{ fieldOffset: 32, data }] });
  call(dev, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { pt_id: hw.out.out_hwpt_id as number });
  const table = d.inventory.groups.get(2)!.pe.tables[0]!;
  const maps: number[] = [];
  const unmaps: number[] = [];
  let tableBytesPerTce = 0;
  let heapBytesPerTce = 0;
  let tces = 0;
  for (let r = 0; r < runs; r++) {
    const h0 = heap();
    const t0 = process.hrtime.bigint();
    call(iommufd, 'IOMMU_IOAS_MAP', { flags: FIXED_RW, ioas_id: ioas, user_va: VA, length: GIB, iova: 0n });
    const t1 = process.hrtime.bigint();
    tces = table.liveCount;
    if (tces !== Number(GIB / PAGE)) throw new Error(`${tces} TCEs live after a 1 GiB map`);
    tableBytesPerTce = table.allocatedBytes() / tces;
    heapBytesPerTce = (heap() - h0) / tces;
    const t2 = process.hrtime.bigint();
    call(iommufd, 'IOMMU_IOAS_UNMAP', { ioas_id: ioas, iova: 0n, length: GIB });
    const t3 = process.hrtime.bigint();
    maps.push(Number(t1 - t0) / 1e6);
    unmaps.push(Number(t3 - t2) / 1e6);
  }
  d.shutdown();
  const med = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { bigMapMs: med(maps), bigUnmapMs: med(unmaps), bigTces: tces, tableBytesPerTce, heapBytesPerTce };
}

export function measureScale(ops = 300, rounds = 21, bigRuns = 3): ScaleNumbers {
  const a = curve(false, ops, rounds);
  const b = curve(true, ops, rounds);
  return { noDomain: a.points, withDevice: b.points, bytesPerArea: a.bytesPerArea, bytesPerAreaWithDevice: b.bytesPerArea, ...bigMap(bigRuns) };
}

export function scaleRows(s: ScaleNumbers): BenchResult[] {
  const rows: BenchResult[] = [];
  const growth = (ps: ScalePoint[], k: 'map' | 'unmap' | 'autoMap') => ps[ps.length - 1][k] / ps[0][k];
  for (const [label, ps] of [['no_domain', s.noDomain], ['with_device', s.withDevice]] as const) {
    for (const p of ps) {
      rows.push({ name: `ioas.${label}.map@${p.areas}`, value: p.map / 1000, unit: 'us/op' });
      rows.push({ name: `ioas.${label}.unmap@${p.areas}`, value: p.unmap / 1000, unit: 'us/op' });
      rows.push({ name: `ioas.${label}.auto_iova_map@${p.areas}`, value: p.autoMap / 1000, unit: 'us/op' });
    }
    rows.push({ name: `ioas.${label}.map_growth_1k_to_100k`, value: growth(ps, 'map'), unit: 'x' });
    rows.push({ name: `ioas.${label}.unmap_growth_1k_to_100k`, value: growth(ps, 'unmap'), unit: 'x' });
    rows.push({ name: `ioas.${label}.auto_iova_map_growth_1k_to_100k`, value: growth(ps, 'autoMap'), unit: 'x' });
  }
  rows.push({ name: 'ioas.bytes_per_area', value: s.bytesPerArea, unit: 'B' });
  rows.push({ name: 'ioas.bytes_per_area_with_device', value: s.bytesPerAreaWithDevice, unit: 'B' });
  rows.push({ name: 'ioas.map_1gib_4k_pages', value: s.bigMapMs, unit: 'ms' });
  rows.push({ name: 'ioas.unmap_1gib_4k_pages', value: s.bigUnmapMs, unit: 'ms' });
  rows.push({ name: 'tce.table_bytes_per_live_tce', value: s.tableBytesPerTce, unit: 'B' });
  rows.push({ name: 'tce.heap_bytes_per_live_tce', value: s.heapBytesPerTce, unit: 'B' });
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const r of scaleRows(measureScale())) console.log(`${r.name.padEnd(40)} ${r.value.toFixed(2).padStart(10)} ${r.unit}`);
}
