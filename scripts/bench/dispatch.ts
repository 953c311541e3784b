// tcefs's own work per frame, without FUSE: whole request frames pushed through a FrameChannel exactly
// as the FUSE adapter delivers them (parse, dispatch, handler, reply encoding, reply read). This is the
// part of a round trip tcefs can do something about; the rest is the transport (scripts/bench/fuse.ts).
// Run directly with `node --import tsx scripts/bench/dispatch.ts`.
import { pathToFileURL } from 'node:url';
import { VFIO } from '../../src/uapi/constants.ts';
import type { BenchResult } from './tce.ts';
import { newDaemon, open, request, rounds, timeLoop, Wire } from './inproc.ts';
import { BENCH_TOPOLOGY, FIXED_RW, iommufdSetup, PAGE, spaprSetup, VA } from './setup.ts';

export const BATCH = 1000;
const RW = VFIO.VFIO_DMA_MAP_FLAG_READ | VFIO.VFIO_DMA_MAP_FLAG_WRITE;

export interface DispatchNumbers {
  check: number;
  spaprMap: number;
  spaprUnmap: number;
  spaprBatchMap: number;
  spaprBatchUnmap: number;
  iommufdMap: number;
  iommufdUnmap: number;
  iommufdBatchMap: number;
  iommufdBatchUnmap: number;
}

/** ns per frame (single) or per request (batch), median of `k` rounds. */
export function measureDispatch(k = 5, scale = 1): DispatchNumbers {
  const d = newDaemon(BENCH_TOPOLOGY);
  const n = Math.round(50_000 * scale);
  const nb = Math.max(5, Math.round(60 * scale));

  const container = new Wire(open(d, '/dev/vfio/vfio'));
  const checkFrame = container.frame([request('VFIO_CHECK_EXTENSION', {}, { arg: VFIO.VFIO_SPAPR_TCE_v2_IOMMU })]);
  const check = rounds(k, () => timeLoop(n, () => container.exchange(checkFrame))).median;

  const sp = spaprSetup(d, 0, (BigInt(BATCH) * PAGE + 0xffffn) & ~0xffffn);
  const sw = new Wire(sp.container);
  const map1 = sw.frame([request('VFIO_IOMMU_MAP_DMA', { flags: RW, vaddr: VA, iova: sp.window, size: PAGE })]);
  const unmap1 = sw.frame([request('VFIO_IOMMU_UNMAP_DMA', { iova: sp.window, size: PAGE })]);
  // Map and unmap alternate so the table stays as it was; each is timed on its own.
  const pair = (w: Wire, m: Buffer, u: Buffer) => twoMedians(k, () => {
    for (let i = 0; i < 2000; i++) w.exchange(m), w.exchange(u);
    let tm = 0n;
    let tu = 0n;
    for (let i = 0; i < n / 2; i++) {
      const t0 = process.hrtime.bigint();
      w.exchange(m);
      const t1 = process.hrtime.bigint();
      w.exchange(u);
      tm += t1 - t0;
      tu += process.hrtime.bigint() - t1;
    }
    return [Number(tm) / (n / 2), Number(tu) / (n / 2)];
  });
  const spapr = pair(sw, map1, unmap1);
  const range = Array.from({ length: BATCH }, (_, i) => BigInt(i));
  const spaprMaps = sw.frame(range.map((i) => request('VFIO_IOMMU_MAP_DMA', { flags: RW, vaddr: VA + i * PAGE, iova: sp.window + i * PAGE, size: PAGE })));
  const spaprUnmaps = sw.frame(range.map((i) => request('VFIO_IOMMU_UNMAP_DMA', { iova: sp.window + i * PAGE, size: PAGE })));
  // Per request inside a frame of BATCH: a frame of maps, then the frame of the same unmaps.
  const batch = (w: Wire, m: Buffer, u: Buffer) => twoMedians(k, () => {
    for (let i = 0; i < 3; i++) w.exchange(m), w.exchange(u);
    let tm = 0n;
    let tu = 0n;
    for (let i = 0; i < nb; i++) {
      const t0 = process.hrtime.bigint();
      w.exchange(m);
      const t1 = process.hrtime.bigint();
      w.exchange(u);
      tm += t1 - t0;
      tu += process.hrtime.bigint() - t1;
    }
    return [Number(tm) / nb / BATCH, Number(tu) / nb / BATCH];
  });
  const spaprBatch = batch(sw, spaprMaps, spaprUnmaps);

  const io = iommufdSetup(d, 1, true);
  const iw = new Wire(io.iommufd);
  const IOVA = 0x10_0000n;
  const imap1 = iw.frame([request('IOMMU_IOAS_MAP', { flags: FIXED_RW, ioas_id: io.ioas, user_va: VA, length: PAGE, iova: IOVA })]);
  const iunmap1 = iw.frame([request('IOMMU_IOAS_UNMAP', { ioas_id: io.ioas, iova: IOVA, length: PAGE })]);
  const iommufd = pair(iw, imap1, iunmap1);
  const imaps = iw.frame(range.map((i) => request('IOMMU_IOAS_MAP', { flags: FIXED_RW, ioas_id: io.ioas, user_va: VA + i * PAGE, length: PAGE, iova: IOVA + i * PAGE })));
  const iunmaps = iw.frame(range.map((i) => request('IOMMU_IOAS_UNMAP', { ioas_id: io.ioas, iova: IOVA + i * PAGE, length: PAGE })));
  const iommufdBatch = batch(iw, imaps, iunmaps);
  d.shutdown();

  return {
    check,
    spaprMap: spapr.map,
    spaprUnmap: spapr.unmap,
    spaprBatchMap: spaprBatch.map,
    spaprBatchUnmap: spaprBatch.unmap,
    iommufdMap: iommufd.map,
    iommufdUnmap: iommufd.unmap,
    iommufdBatchMap: iommufdBatch.map,
    iommufdBatchUnmap: iommufdBatch.unmap,
  };
}

/** Medians, separately, of the two numbers each of `k` rounds gives. */
function twoMedians(k: number, measure: () => [number, number]): { map: number; unmap: number } {
  const all = Array.from({ length: k }, measure);
  const med = (i: 0 | 1) => all.map((x) => x[i]).sort((a, b) => a - b)[Math.floor(k / 2)];
  return { map: med(0), unmap: med(1) };
}

export function dispatchRows(x: DispatchNumbers): BenchResult[] {
  const us = (ns: number) => ns / 1000;
  return [
    { name: 'inproc.check_extension', value: us(x.check), unit: 'us/frame' },
    { name: 'inproc.spapr.map_dma', value: us(x.spaprMap), unit: 'us/frame' },
    { name: 'inproc.spapr.unmap_dma', value: us(x.spaprUnmap), unit: 'us/frame' },
    { name: 'inproc.spapr.batch_map', value: us(x.spaprBatchMap), unit: 'us/map' },
    { name: 'inproc.spapr.batch_unmap', value: us(x.spaprBatchUnmap), unit: 'us/unmap' },
    { name: 'inproc.iommufd.ioas_map', value: us(x.iommufdMap), unit: 'us/frame' },
    { name: 'inproc.iommufd.ioas_unmap', value: us(x.iommufdUnmap), unit: 'us/frame' },
    { name: 'inproc.iommufd.batch_map', value: us(x.iommufdBatchMap), unit: 'us/map' },
    { name: 'inproc.iommufd.batch_unmap', value: us(x.iommufdBatchUnmap), unit: 'us/unmap' },
  ];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const r of dispatchRows(measureDispatch())) console.log(`${r.name.padEnd(28)} ${r.value.toFixed(2).padStart(8)} ${r.unit}`);
}
