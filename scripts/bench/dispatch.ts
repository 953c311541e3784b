// tcefs's own work per frame, without FUSE: whole request frames pushed through a FrameChannel exactly
// as the FUSE adapter delivers them (parse, dispatch, handler, reply encoding, reply read). This is the
// part of a round trip tcefs can do something about; the rest is the transport (scripts/bench/fuse.ts).
// Run directly with `node --import tsx scripts/bench/dispatch.ts`.
import { pathToFileURL } from 'node:url';
import { VFIO } from '../../src/uapi/constants.ts';
import type { BenchResult } from './tce.ts';
import { newDaemon, open, request, Wire } from './inproc.ts';
import { BENCH_TOPOLOGY, FIXED_RW, iommufdSetup, PAGE, spaprSetup, VA } from './setup.ts';

export const BATCH = 1000;
const RW = VFIO.VFIO_DMA_MAP_FLAG_READ | VFIO.VFIO_DMA_MAP_FLAG_WRITE;

/**
 * One in-process measurement. `median` is the median of the individual operations' wall times, which a
 * neighbour's burst on a shared machine cannot move much; `cpu` is this process's CPU time over whole
 * loops divided by the operations, which includes garbage collection (what allocation really costs)
 * and not the time other processes held the CPU. Both in ns per operation.
 */
export interface Timing {
  median: number;
  cpu: number;
}

export interface DispatchNumbers {
  check: Timing;
  spaprMap: Timing;
  spaprUnmap: Timing;
  /** The same single frames while another entry keeps the TCE table's storage chunk alive. */
  spaprMapChunkKept: Timing;
  spaprUnmapChunkKept: Timing;
  spaprBatchMap: Timing;
  spaprBatchUnmap: Timing;
  iommufdMap: Timing;
  iommufdUnmap: Timing;
  iommufdBatchMap: Timing;
  iommufdBatchUnmap: Timing;
}

const cpuNs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
};

/**
 * `k` rounds of `n` iterations of a then b (b undoes a, so every iteration starts from the same state).
 * Each round times every call alone for the medians, then runs the same loop untimed for the CPU time
 * (reading the clock per call costs allocations of its own). The CPU time covers a and b together, so it
 * is split between them in the ratio of their medians. `per` operations happen in one call (a batch).
 */
function alternate(k: number, n: number, per: number, a: () => void, b: () => void): [Timing, Timing] {
  const ta: number[] = [];
  const tb: number[] = [];
  let cpu = 0;
  for (let r = 0; r < k; r++) {
    for (let i = 0; i < Math.min(n, 2000); i++) a(), b();
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      a();
      const t1 = process.hrtime.bigint();
      b();
      const t2 = process.hrtime.bigint();
      ta.push(Number(t1 - t0));
      tb.push(Number(t2 - t1));
    }
    const c0 = cpuNs();
    for (let i = 0; i < n; i++) a(), b();
    cpu += cpuNs() - c0;
  }
  const med = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)] / per;
  const ma = med(ta);
  const mb = med(tb);
  const pair = cpu / (k * n * per);
  return [
    { median: ma, cpu: (pair * ma) / (ma + mb) },
    { median: mb, cpu: (pair * mb) / (ma + mb) },
  ];
}

/** ns per frame (single) or per request (batch). */
export function measureDispatch(k = 5, scale = 1): DispatchNumbers {
  const d = newDaemon(BENCH_TOPOLOGY);
  const n = Math.round(20_000 * scale);
  const nb = Math.max(5, Math.round(40 * scale));

  const container = new Wire(open(d, '/dev/vfio/vfio'));
  const checkFrame = container.frame([request('VFIO_CHECK_EXTENSION', {}, { arg: VFIO.VFIO_SPAPR_TCE_v2_IOMMU })]);
  const ex = () => container.exchange(checkFrame);
  const [c1, c2] = alternate(k, n, 1, ex, ex);
  const check = { median: (c1.median + c2.median) / 2, cpu: (c1.cpu + c2.cpu) / 2 };

  const sp = spaprSetup(d, 0, (BigInt(BATCH) * PAGE + 0xffffn) & ~0xffffn);
  const sw = new Wire(sp.container);
  const map1 = sw.frame([request('VFIO_IOMMU_MAP_DMA', { flags: RW, vaddr: VA, iova: sp.window, size: PAGE })]);
  const unmap1 = sw.frame([request('VFIO_IOMMU_UNMAP_DMA', { iova: sp.window, size: PAGE })]);
  const [spaprMap, spaprUnmap] = alternate(k, n, 1, () => sw.exchange(map1), () => sw.exchange(unmap1));
  // The TCE table frees a storage chunk when its last entry goes and allocates it again on the next map;
  // with another entry in the same chunk (512 entries) the pair shows what that costs.
  const keeper = { flags: RW, vaddr: VA + 511n * PAGE, iova: sp.window + 511n * PAGE, size: PAGE };
  sw.exchange(sw.frame([request('VFIO_IOMMU_MAP_DMA', keeper)]));
  const [spaprMapChunkKept, spaprUnmapChunkKept] = alternate(k, n, 1, () => sw.exchange(map1), () => sw.exchange(unmap1));
  sw.exchange(sw.frame([request('VFIO_IOMMU_UNMAP_DMA', { iova: keeper.iova, size: PAGE })]));
  const range = Array.from({ length: BATCH }, (_, i) => BigInt(i));
  const spaprMaps = sw.frame(range.map((i) => request('VFIO_IOMMU_MAP_DMA', { flags: RW, vaddr: VA + i * PAGE, iova: sp.window + i * PAGE, size: PAGE })));
  const spaprUnmaps = sw.frame(range.map((i) => request('VFIO_IOMMU_UNMAP_DMA', { iova: sp.window + i * PAGE, size: PAGE })));
  const [spaprBatchMap, spaprBatchUnmap] = alternate(k, nb, BATCH, () => sw.exchange(spaprMaps), () => sw.exchange(spaprUnmaps));

  const io = iommufdSetup(d, 1, true);
  const iw = new Wire(io.iommufd);
  const IOVA = 0x10_0000n;
  const imap1 = iw.frame([request('IOMMU_IOAS_MAP', { flags: FIXED_RW, ioas_id: io.ioas, user_va: VA, length: PAGE, iova: IOVA })]);
  const iunmap1 = iw.frame([request('IOMMU_IOAS_UNMAP', { ioas_id: io.ioas, iova: IOVA, length: PAGE })]);
  const [iommufdMap, iommufdUnmap] = alternate(k, n, 1, () => iw.exchange(imap1), () => iw.exchange(iunmap1));
  const imaps = iw.frame(range.map((i) => request('IOMMU_IOAS_MAP', { flags: FIXED_RW, ioas_id: io.ioas, user_va: VA + i * PAGE, length: PAGE, iova: IOVA + i * PAGE })));
  const iunmaps = iw.frame(range.map((i) => request('IOMMU_IOAS_UNMAP', { ioas_id: io.ioas, iova: IOVA + i * PAGE, length: PAGE })));
  const [iommufdBatchMap, iommufdBatchUnmap] = alternate(k, nb, BATCH, () => iw.exchange(imaps), () => iw.exchange(iunmaps));
  d.shutdown();

  return { check, spaprMap, spaprUnmap, spaprMapChunkKept, spaprUnmapChunkKept, spaprBatchMap, spaprBatchUnmap, iommufdMap, iommufdUnmap, iommufdBatchMap, iommufdBatchUnmap };
}

export function dispatchRows(x: DispatchNumbers): BenchResult[] {
  const rows: [string, Timing, string][] = [
    ['check_extension', x.check, 'frame'],
    ['spapr.map_dma', x.spaprMap, 'frame'],
    ['spapr.unmap_dma', x.spaprUnmap, 'frame'],
    ['spapr.map_dma_chunk_kept', x.spaprMapChunkKept, 'frame'],
    ['spapr.unmap_dma_chunk_kept', x.spaprUnmapChunkKept, 'frame'],
    ['spapr.batch_map', x.spaprBatchMap, 'map'],
    ['spapr.batch_unmap', x.spaprBatchUnmap, 'unmap'],
    ['iommufd.ioas_map', x.iommufdMap, 'frame'],
    ['iommufd.ioas_unmap', x.iommufdUnmap, 'frame'],
    ['iommufd.batch_map', x.iommufdBatchMap, 'map'],
    ['iommufd.batch_unmap', x.iommufdBatchUnmap, 'unmap'],
  ];
  return rows.flatMap(([name, t, per]) => [
    { name: `inproc.${name}.median`, value: t.median / 1000, unit: `us/${per}` },
    { name: `inproc.${name}.cpu`, value: t.cpu / 1000, unit: `us/${per}` },
  ]);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const r of dispatchRows(measureDispatch())) console.log(`${r.name.padEnd(44)} ${r.value.toFixed(2).padStart(8)} ${r.unit}`);
}
