// What the benchmarks run against: a PowerNV host with eight groups of one device each, so that eight
// client processes can each own a device (and so a domain with its own TCE table), and the setup
// sequences shared by the in-process benchmarks.
import type { Daemon } from '../../src/daemon.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import { IOMMUFD, VFIO } from '../../src/uapi/constants.ts';
import { call, open } from './inproc.ts';

export const GROUPS = 8;
/** The device of group g (0-based). */
export const bdf = (g: number) => `0000:${(g + 1).toString(16).padStart(2, '0')}:00.0`;

export const BENCH_TOPOLOGY = {
  host: { flavour: 'powernv', pageShift: 16, memlockLimit: '1T', eeh: true },
  phbs: [
    {
      domain: 0,
      model: 'PHB4',
      m32PciBase: '0x80000000',
      pes: Array.from({ length: GROUPS }, (_, g) => ({
        pe: g + 1,
        group: g,
        devices: [{ bdf: bdf(g), vendor: '0x144d', device: '0xa808', class: '0x010802', bars: [{ index: 0, size: '16K', type: 'mem64', prefetchable: false }], msix: 33 }],
      })),
    },
  ],
};

/** User addresses the emulator never touches: it only needs them to be page-aligned numbers. */
export const VA = 0x7f00_0000_0000n;
export const PAGE = 0x1000n;
export const RW = IOMMUFD.IOMMU_IOAS_MAP_READABLE | IOMMUFD.IOMMU_IOAS_MAP_WRITEABLE;
export const FIXED_RW = IOMMUFD.IOMMU_IOAS_MAP_FIXED_IOVA | RW;

/** A SPAPR v2 container on group `g` with `bytes` of registered memory at VA and a 1 GiB 4K-page window. */
export function spaprSetup(d: Daemon, g: number, bytes: bigint): { container: OpenFile; window: bigint } {
  const group = open(d, `/dev/vfio/${g}`);
  const container = open(d, '/dev/vfio/vfio');
  const h = Buffer.alloc(4);
  h.writeInt32LE(container.handle);
  call(group, 'VFIO_GROUP_SET_CONTAINER', {}, { raw: h });
  call(container, 'VFIO_SET_IOMMU', {}, { arg: VFIO.VFIO_SPAPR_TCE_v2_IOMMU });
  call(container, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', { vaddr: VA, size: bytes });
  const info = call(container, 'VFIO_IOMMU_SPAPR_TCE_GET_INFO').out;
  call(container, 'VFIO_IOMMU_SPAPR_TCE_REMOVE', { start_addr: BigInt(info.dma32_window_start as number) });
  const cr = call(container, 'VFIO_IOMMU_SPAPR_TCE_CREATE', { page_shift: 12, window_size: 1n << 30n, levels: 1 });
  return { container, window: cr.out.start_addr as bigint };
}

/** An iommufd with one IOAS; with `device`, group `g`'s cdev is bound and attached (automatic domain). */
export function iommufdSetup(d: Daemon, g: number, device: boolean): { iommufd: OpenFile; ioas: number; dev?: OpenFile } {
  const iommufd = open(d, '/dev/iommu');
  const ioas = call(iommufd, 'IOMMU_IOAS_ALLOC').out.out_ioas_id as number;
  if (!device) return { iommufd, ioas };
  const dev = open(d, `/dev/vfio/devices/vfio${g}`);
  call(dev, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: iommufd.handle });
  call(dev, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { pt_id: ioas });
  return { iommufd, ioas, dev };
}
