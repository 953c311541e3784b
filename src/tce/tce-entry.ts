// One TCE: a big-endian 64-bit word holding a real page number and two permission bits.

import { EINVAL, fail } from '../errno.ts';

export type Flavour = 'powernv' | 'pseries';

/** The device may read host memory. */
export const TCE_PCI_READ = 0x1n;
/** The device may write host memory. */
export const TCE_PCI_WRITE = 0x2n;
export const TCE_PERM_MASK = TCE_PCI_READ | TCE_PCI_WRITE;
export const TCE_ENTRY_SIZE = 8;
export const U64_MAX = (1n << 64n) - 1n;

/** Values match the kernel's enum dma_data_direction, so traces and logs line up with it. */
export enum DmaDirection {
  BIDIRECTIONAL = 0,
  TO_DEVICE = 1,
  FROM_DEVICE = 2,
  NONE = 3,
}

export function directionToPerm(dir: DmaDirection): bigint {
  switch (dir) {
    case DmaDirection.BIDIRECTIONAL: return TCE_PCI_READ | TCE_PCI_WRITE;
    case DmaDirection.TO_DEVICE: return TCE_PCI_READ;
    case DmaDirection.FROM_DEVICE: return TCE_PCI_WRITE;
    default: return 0n;
  }
}

/** Direction read back from a TCE; an entry with neither bit counts as empty. */
export function tceDirection(tce: bigint): DmaDirection {
  const r = (tce & TCE_PCI_READ) !== 0n;
  const w = (tce & TCE_PCI_WRITE) !== 0n;
  if (r && w) return DmaDirection.BIDIRECTIONAL;
  if (r) return DmaDirection.TO_DEVICE;
  if (w) return DmaDirection.FROM_DEVICE;
  return DmaDirection.NONE;
}

/**
 * PowerNV hardware cannot express write-only, so its build and exchange paths add R whenever W is set.
 * pSeries passes the bits to the hypervisor untouched.
 */
export function platformPerm(perm: bigint, flavour: Flavour): bigint {
  return flavour === 'powernv' && (perm & TCE_PCI_WRITE) !== 0n ? perm | TCE_PCI_READ : perm;
}

/**
 * The TCE for `hpa` with `dir`. `hpa` must be IOMMU-page aligned when `pageShift` is given (the kernel
 * BUGs otherwise) and must never carry the permission bits. NONE only builds the empty entry, because
 * an address without permissions would be neither a mapping nor empty.
 */
export function buildTce(hpa: bigint, dir: DmaDirection, flavour: Flavour, pageShift?: number): bigint {
  if (hpa < 0n || hpa > U64_MAX) fail(EINVAL, 'hpa outside 64 bits');
  if (dir === DmaDirection.NONE) {
    if (hpa !== 0n) fail(EINVAL, 'a NONE direction TCE must be empty');
    return 0n;
  }
  if (!(dir in DmaDirection)) fail(EINVAL, `bad DMA direction ${dir}`);
  const alignMask = pageShift === undefined ? TCE_PERM_MASK : (1n << BigInt(pageShift)) - 1n;
  if ((hpa & alignMask) !== 0n) fail(EINVAL, `hpa 0x${hpa.toString(16)} not aligned for a TCE`);
  return hpa | platformPerm(directionToPerm(dir), flavour);
}

/** The real address a TCE points at: the rpn bits [63:pageShift]. */
export function tceAddress(tce: bigint, pageShift: number): bigint {
  return tce & ~((1n << BigInt(pageShift)) - 1n) & U64_MAX;
}

/** Two-letter permission view used in dumps: RW, R-, -W or --. */
export function tcePermString(tce: bigint): string {
  return ((tce & TCE_PCI_READ) !== 0n ? 'R' : '-') + ((tce & TCE_PCI_WRITE) !== 0n ? 'W' : '-');
}
