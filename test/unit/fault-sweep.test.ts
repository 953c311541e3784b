// fail_nth for tcefs: the nth allocation or pin fails, for every n until a whole sequence succeeds. Each
// failure must be a clean errno (the dispatcher turns internal errors into EIO, so EIO is a bug here), and
// once the files are closed the host must be back to its boot state: no tables, TCEs, pins or charges.
import { describe, expect, it } from 'vitest';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import { EIO } from '../../src/errno.ts';
import { TCEFS_EXT } from '../../src/uapi/constants.ts';
import { encode } from '../../src/uapi/layout.ts';
import { iommu_hwpt_spapr_tce } from '../../src/uapi/structs.ts';
import { Harness } from '../helpers/direct.ts';

const GiB = 1n << 30n;
const VA = 0x7f00_0000_0000n;

type Step = (h: Harness, files: Map<string, OpenFile>) => number;

/** QEMU's SPAPR v2 sequence plus a device, MAPs in both windows, and the teardown calls. */
const spapr: Step[] = [
  (h, f) => (f.set('c', h.open('/dev/vfio/vfio')), 0),
  (h, f) => (f.set('g', h.open('/dev/vfio/1')), 0),
  (h, f) => h.setContainer(f.get('g')!, f.get('c')!),
  (h, f) => h.call(f.get('c')!, 'VFIO_SET_IOMMU', {}, { arg: 7 }).result,
  (h, f) => h.call(f.get('c')!, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', { vaddr: VA, size: GiB }).result,
  (h, f) => h.call(f.get('c')!, 'VFIO_IOMMU_SPAPR_TCE_REMOVE', { start_addr: 0n }).result,
  (h, f) => h.call(f.get('c')!, 'VFIO_IOMMU_SPAPR_TCE_CREATE', { page_shift: 12, window_size: GiB, levels: 1 }).result,
  (h, f) => h.call(f.get('c')!, 'VFIO_IOMMU_MAP_DMA', { flags: 3, vaddr: VA, iova: 0x1000n, size: 0x4000n }).result,
  (h, f) => h.call(f.get('c')!, 'VFIO_IOMMU_SPAPR_TCE_CREATE', { page_shift: 16, window_size: 1n << 40n, levels: 2 }).result,
  (h, f) => h.call(f.get('c')!, 'VFIO_IOMMU_MAP_DMA', { flags: 1, vaddr: VA, iova: 1n << 59n, size: 0x40000n }).result,
  (h, f) => {
    const d = h.getDeviceFd(f.get('g')!, '0000:02:00.0');
    if (d.file) f.set('d', d.file);
    return d.result;
  },
  (h, f) => h.call(f.get('c')!, 'VFIO_IOMMU_UNMAP_DMA', { iova: 0x1000n, size: 0x1000n }).result,
  (h, f) => h.call(f.get('c')!, 'VFIO_IOMMU_SPAPR_TCE_REMOVE', { start_addr: 1n << 59n }).result,
];

/** The cdev flow: bind, an automatic domain, maps, then a two-window HWPT, replace, maps, detach. */
const iommufd: Step[] = [
  (h, f) => (f.set('i', h.open('/dev/iommu')), 0),
  (h, f) => (f.set('d', h.open('/dev/vfio/devices/vfio2')), 0),
  (h, f) => h.call(f.get('d')!, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: f.get('i')!.handle }).result,
  (h, f) => h.call(f.get('i')!, 'IOMMU_IOAS_ALLOC').result,
  (h, f) => h.call(f.get('i')!, 'IOMMU_IOAS_MAP', { ioas_id: 2, flags: 7, user_va: VA, length: 0x20000n, iova: 0x10000n }).result,
  (h, f) => h.call(f.get('d')!, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { pt_id: 2 }).result,
  (h, f) => h.call(f.get('i')!, 'IOMMU_IOAS_MAP', { ioas_id: 2, flags: 6, user_va: VA + GiB, length: 0x30000n }).result,
  (h, f) => {
    const data = encode(iommu_hwpt_spapr_tce, { 'window0.page_shift': 12, 'window0.levels': 1, 'window0.window_size': GiB, 'window1.page_shift': 16, 'window1.levels': 2, 'window1.window_size': 1n << 40n });
    return h.call(f.get('i')!, 'IOMMU_HWPT_ALLOC', { dev_id: 1, pt_id: 2, data_type: TCEFS_EXT.IOMMU_HWPT_DATA_SPAPR_TCE, data_len: data.length, data_uptr: 0x1000n }, { blobs: [{ fieldOffset: 32, data }] }).result;
  },
  (h, f) => h.call(f.get('d')!, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { pt_id: 4 }).result,
  (h, f) => h.call(f.get('i')!, 'IOMMU_IOAS_MAP', { ioas_id: 2, flags: 7, user_va: VA, length: 0x20000n, iova: (1n << 59n) + 0x20000n }).result,
  (h, f) => h.call(f.get('i')!, 'IOMMU_IOAS_UNMAP', { ioas_id: 2, iova: 0x10000n, length: 0x20000n }).result,
  (h, f) => h.call(f.get('d')!, 'VFIO_DEVICE_DETACH_IOMMUFD_PT').result,
];

function sweep(steps: Step[]) {
  const outcomes = new Map<string, number>();
  for (let n = 1; n < 500; n++) {
    const h = new Harness();
    const boot = h.daemon.host.stats();
    const files = new Map<string, OpenFile>();
    h.daemon.host.faults.arm('any', n);
    let failedAt = -1;
    let errno = 0;
    for (let s = 0; s < steps.length; s++) {
      let r: number;
      try {
        r = steps[s](h, files);
      } catch (e) {
        throw new Error(`n=${n}: step ${s} threw instead of failing cleanly: ${(e as Error).stack}`);
      }
      if (r < 0) {
        failedAt = s;
        errno = -r;
        break;
      }
    }
    const fired = h.daemon.host.faults.fired > 0;
    h.daemon.host.faults.disarm();
    expect(errno, `n=${n}: step ${failedAt} failed with EIO, an internal error`).not.toBe(EIO);
    if (fired) expect(failedAt, `n=${n}: an injected failure went unreported`).toBeGreaterThanOrEqual(0);
    for (const f of [...files.values()].reverse()) h.close(f);
    expect(h.daemon.host.stats(), `n=${n}: leak after failure at step ${failedAt}`).toEqual(boot);
    expect(h.daemon.files.size, `n=${n}: files left open`).toBe(0);
    for (const g of h.daemon.inventory.groups.values()) expect(g.pe.ownership, `n=${n}`).toBe('platform');
    if (!fired) {
      if (process.env.TCEFS_SWEEP_LOG) console.log(`${n - 1} failure points:`, Object.fromEntries(outcomes));
      return { runs: n, outcomes };
    }
    outcomes.set(`step ${failedAt}: errno ${errno}`, (outcomes.get(`step ${failedAt}: errno ${errno}`) ?? 0) + 1);
  }
  throw new Error('the sequence never completed');
}

describe('fault injection sweeps (fail_nth)', () => {
  it('every allocation and pin of the SPAPR v2 sequence fails cleanly and leaks nothing', () => {
    const { runs, outcomes } = sweep(spapr);
    expect(runs).toBeGreaterThan(5); // the sequence has many failure points, and each was tried
    expect([...outcomes.keys()].every((k) => /errno (12|14)$/.test(k))).toBe(true); // ENOMEM or EFAULT
  });

  it('every allocation and pin of the iommufd cdev sequence fails cleanly and leaks nothing', () => {
    const { runs, outcomes } = sweep(iommufd);
    expect(runs).toBeGreaterThan(5);
    // iommufd's own points too: a lookup fails ENOENT, reserved regions EINVAL, the pin count ENOMEM.
    expect([...outcomes.keys()].every((k) => /errno (2|12|14|22)$/.test(k))).toBe(true);
    expect([...outcomes.keys()].some((k) => /errno 2$/.test(k))).toBe(true);
  });
});
