// The VFIO container calls an iommufd answers in compat mode (the kernel's vfio_compat.c): type1/type1v2
// semantics over the context's compat IOAS. Everything but API_VERSION and most CHECK_EXTENSION answers is
// ENODEV until a compat IOAS exists. The same type1 handlers serve a legacy container set to TYPE1v2
// (src/objects/vfio/type1.ts), over an IOAS of its own.
import { CommandTable } from '../../dispatch/table.ts';
import type { IoctlCall } from '../../dispatch/call.ts';
import { EINVAL, ENODEV, EOVERFLOW, Errno } from '../../errno.ts';
import { IOMMUFD, VFIO } from '../../uapi/constants.ts';
import { writeField } from '../../uapi/layout.ts';
import { vfio_info_cap_header, vfio_iommu_type1_info, vfio_iommu_type1_info_cap_iova_range } from '../../uapi/structs.ts';
import type { IommufdFile } from './context.ts';
import type { Ioas } from './ioas.ts';
import { U64_MAX } from './ranges.ts';

function compatIoas(f: IommufdFile): Ioas {
  if (!f.compatIoas) throw new Errno(ENODEV, 'no compat IOAS (set a group container or IOMMU_VFIO_IOAS first)');
  return f.compatIoas;
}

const align8 = (n: number) => (n + 7) & ~7;

/** iova_pgsizes: the AND of the domains' page sizes, nothing below PAGE_SIZE, at least the alignment. */
function pgsizes(ioas: Ioas): bigint {
  let mask = U64_MAX;
  for (const d of ioas.domains) mask &= (d as unknown as { pgsizeBitmap?: bigint }).pgsizeBitmap ?? U64_MAX;
  const page = ioas.pageSize;
  if (mask & (page - 1n)) mask = (mask & ~(page - 1n)) | page;
  return mask > ioas.iovaAlignment ? mask : ioas.iovaAlignment;
}

/**
 * VFIO_IOMMU_GET_INFO: the fixed struct, then a DMA_AVAIL and an IOVA_RANGE capability at 8-byte
 * aligned offsets. Nothing is written past argsz: a range only if it fits, a cap header only if the whole
 * cap fits, cap_offset only if everything fits; argsz comes back as the size needed.
 */
export function type1GetInfo(call: IoctlCall, ioasOf: () => Ioas): void {
  call.copyIn(16);
  const argsz = call.get('argsz');
  if (argsz < 16) throw new Errno(EINVAL, `argsz ${argsz}`);
  const ioas = ioasOf();
  const fixed = vfio_iommu_type1_info.size;
  let total = fixed;
  let lastCap = -1;
  const link = (at: number) => {
    if (lastCap >= 0 && argsz >= total) {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(at);
      call.writeUser(lastCap + 4, b);
    }
    lastCap = at;
  };
  // DMA_AVAIL: {header, u32 avail}; 12 bytes in a 16-byte slot.
  link(total);
  if (argsz - total >= 12) {
    const cap = Buffer.alloc(12);
    writeField(cap, vfio_info_cap_header, 'id', VFIO.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
    writeField(cap, vfio_info_cap_header, 'version', 1);
    cap.writeUInt32LE(0xffffffff, 8);
    call.writeUser(total, cap);
  }
  total += align8(12);
  // IOVA_RANGE: {header, nr_iovas, reserved, ranges[]}.
  link(total);
  const ranges = ioas.usableRanges();
  const head = vfio_iommu_type1_info_cap_iova_range.size;
  const avail = argsz - total;
  ranges.forEach((r, i) => {
    if (avail >= head + 16 * (i + 1)) {
      const b = Buffer.alloc(16);
      b.writeBigUInt64LE(r.start, 0);
      b.writeBigUInt64LE(r.last, 8);
      call.writeUser(total + head + 16 * i, b);
    }
  });
  const capSize = head + 16 * ranges.length;
  if (avail >= capSize) {
    const b = Buffer.alloc(head);
    writeField(b, vfio_iommu_type1_info_cap_iova_range, 'header.id', VFIO.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
    writeField(b, vfio_iommu_type1_info_cap_iova_range, 'header.version', 1);
    writeField(b, vfio_iommu_type1_info_cap_iova_range, 'nr_iovas', ranges.length);
    call.writeUser(total, b);
  }
  total += align8(capSize);
  call.set('flags', VFIO.VFIO_IOMMU_INFO_PGSIZES | VFIO.VFIO_IOMMU_INFO_CAPS);
  call.set('iova_pgsizes', pgsizes(ioas));
  call.set('cap_offset', argsz >= total ? fixed : 0);
  call.set('argsz', total);
  call.copyOut(Math.min(argsz, fixed));
}

/**
 * VFIO_DMA_CC_IOMMU: 1 while every domain enforces cache coherency. DMA on POWER is always coherent, but
 * its IOMMU driver reports CACHE_COHERENCY only, not ENFORCE_CACHE_COHERENCY, so no TCE domain enforces
 * it: 1 with no domain, 0 with one.
 */
export function enforcesCoherency(ioas: Ioas): number {
  return ioas.domains.length ? 0 : 1;
}

export function type1MapDma(call: IoctlCall, ioasOf: () => Ioas): void {
  call.copyIn(call.decl.minsz!);
  const flags = call.get('flags');
  if (call.get('argsz') < call.decl.minsz! || flags & ~(VFIO.VFIO_DMA_MAP_FLAG_READ | VFIO.VFIO_DMA_MAP_FLAG_WRITE)) throw new Errno(EINVAL, 'argsz or flags');
  const ioas = ioasOf();
  const prot = (flags & VFIO.VFIO_DMA_MAP_FLAG_READ ? IOMMUFD.IOMMU_IOAS_MAP_READABLE : 0) | (flags & VFIO.VFIO_DMA_MAP_FLAG_WRITE ? IOMMUFD.IOMMU_IOAS_MAP_WRITEABLE : 0);
  ioas.map(call.get64('vaddr'), call.get64('size'), call.get64('iova'), prot, call.owner);
}

export function type1UnmapDma(call: IoctlCall, ioasOf: () => Ioas): void {
  call.copyIn(call.decl.minsz!);
  const flags = call.get('flags');
  if (call.get('argsz') < call.decl.minsz! || flags & ~VFIO.VFIO_DMA_UNMAP_FLAG_ALL) throw new Errno(EINVAL, 'argsz or flags');
  const ioas = ioasOf();
  const iova = call.get64('iova');
  const size = call.get64('size');
  const progress = { bytes: 0n };
  // Once the unmap itself has run, the kernel writes the struct back with the bytes unmapped, failure
  // or not; the refusals before it leave the struct as it was.
  const writeBack = () => {
    call.set('size', progress.bytes);
    call.copyOut(call.decl.minsz!);
  };
  if (flags & VFIO.VFIO_DMA_UNMAP_FLAG_ALL) {
    if (iova !== 0n || size !== 0n) throw new Errno(EINVAL, 'UNMAP_ALL needs iova 0 and size 0');
    progress.bytes = ioas.unmapAll();
    return writeBack();
  }
  // TYPE1 (v1) lets an unmap take part of a mapping: the areas are cut at both ends first, before the
  // range is checked (the kernel computes the ends with wrap-around); a cut that breaks the alignment
  // fails the call.
  if (!ioas.hugePages) {
    ioas.cut(BigInt.asUintN(64, iova + size - 1n));
    if (iova !== 0n) ioas.cut(iova - 1n);
  }
  try {
    if (size === 0n) throw new Errno(EINVAL, 'size 0');
    if (iova + size - 1n > U64_MAX) throw new Errno(EOVERFLOW, 'range wraps');
    // Unmapping nothing succeeds here, unlike IOMMU_IOAS_UNMAP (late-2025 compat behaviour).
    ioas.unmap(iova, size, progress);
  } finally {
    writeBack();
  }
}

export const compatCommands = new CommandTable<IommufdFile>('iommufd', {
  VFIO_GET_API_VERSION: () => VFIO.VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION: (f, call) => {
    const ext = Number(BigInt.asUintN(32, call.arg));
    if (f.spapr) return f.spapr.checkExtension(ext) && ext !== VFIO.VFIO_SPAPR_TCE_IOMMU ? 1 : 0;
    if (ext === VFIO.VFIO_TYPE1_IOMMU || ext === VFIO.VFIO_TYPE1v2_IOMMU || ext === VFIO.VFIO_UNMAP_ALL) return 1;
    // Extension: with host.iommufdSpaprCompat an iommufd offers SPAPR v2 (not v1) and EEH.
    if (f.daemon.topology.iommufdSpaprCompat) {
      if (ext === VFIO.VFIO_SPAPR_TCE_v2_IOMMU) return 1;
      if (ext === VFIO.VFIO_EEH) return f.daemon.host.eehEnabled ? 1 : 0;
    }
    if (ext === VFIO.VFIO_DMA_CC_IOMMU) return enforcesCoherency(compatIoas(f));
    return 0;
  },
  VFIO_SET_IOMMU: (f, call) => {
    const type = Number(BigInt.asUintN(32, call.arg));
    if (type === VFIO.VFIO_SPAPR_TCE_v2_IOMMU && f.daemon.topology.iommufdSpaprCompat) {
      compatIoas(f);
      f.setSpapr();
      return;
    }
    if (f.spapr) throw new Errno(EINVAL, 'SPAPR already set');
    if (type !== VFIO.VFIO_TYPE1_IOMMU && type !== VFIO.VFIO_TYPE1v2_IOMMU) throw new Errno(EINVAL, `type ${type} is not served by iommufd`);
    const ioas = compatIoas(f);
    // TYPE1 (v1) asks for PAGE_SIZE mappings only; v2 changes nothing. It may be repeated.
    if (type === VFIO.VFIO_TYPE1_IOMMU) ioas.setHugePages(false);
  },
  VFIO_IOMMU_GET_INFO: (f, call) => type1GetInfo(call, () => compatIoas(f)),
  VFIO_IOMMU_MAP_DMA: (f, call) => type1MapDma(call, () => compatIoas(f)),
  VFIO_IOMMU_UNMAP_DMA: (f, call) => type1UnmapDma(call, () => compatIoas(f)),
});
