// Pure arithmetic for TCE table shapes and the locked-memory cost of creating them.
// Numbers follow the reference (spapr-tce.md 1.3 and 1.4); nothing here allocates or keeps state.

import { EINVAL, fail } from '../errno.ts';

/** IODA2 supports at most this many table levels (POWERNV_IOMMU_MAX_LEVELS). */
export const POWERNV_MAX_LEVELS = 5;

/** Bus address bits 55 and up are reserved, so the walk may never cover them. */
export const POWERNV_BUS_ADDR_BITS = 55;

/** What pSeries get_table_size answers for any multi-level request: a 32-bit all-ones. */
export const PSERIES_MULTILEVEL_SIZE = 0xffff_ffffn;

export interface TableGeometry {
  /** TCE count of the window as the kernel sees it (it_size), rounded up to a whole host page of TCEs. */
  itSize: bigint;
  /** log2 of the bytes in one level node. */
  levelShift: number;
  /** Entries per level node (it_level_size). */
  levelSize: bigint;
  /** Index bits the level walk can resolve: (levelShift - 3) * levels. Plus pageShift, this is the 55-bit check. */
  entryBits: number;
  /** log2 of the requested TCE count (window_shift - page_shift). */
  entriesShift: number;
}

export function isPowerOfTwo(v: bigint): boolean {
  return v > 0n && (v & (v - 1n)) === 0n;
}

/** floor(log2(v)) for v > 0. */
export function log2(v: bigint): number {
  if (v <= 0n) fail(EINVAL, 'log2 of a non-positive value');
  return v.toString(2).length - 1;
}

/** Smallest power of two >= v (v > 0). */
export function roundUpPow2(v: bigint): bigint {
  const l = log2(v);
  return (1n << BigInt(l)) === v ? v : 1n << BigInt(l + 1);
}

/** Largest power of two <= v (v > 0). */
export function roundDownPow2(v: bigint): bigint {
  return 1n << BigInt(log2(v));
}

function checkShift(name: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v >= max) fail(EINVAL, `${name} ${v} out of range`);
}

/**
 * The table the PowerNV create path would build, or EINVAL for each request it refuses:
 * levels 0 or above 5, a window that is not a power of two, a window smaller than one IOMMU page
 * (the kernel computes garbage there; we refuse), and walks reaching bus bit 55.
 */
export function powernvTableGeometry(
  pageShift: number,
  windowSize: bigint,
  levels: number,
  hostPageShift: number,
): TableGeometry {
  checkShift('page shift', pageShift, 64);
  checkShift('host page shift', hostPageShift, 64);
  if (!Number.isInteger(levels) || levels === 0 || levels > POWERNV_MAX_LEVELS) {
    fail(EINVAL, `levels ${levels} not in 1..${POWERNV_MAX_LEVELS}`);
  }
  if (!isPowerOfTwo(windowSize)) fail(EINVAL, `window size 0x${windowSize.toString(16)} is not a power of two`);
  const windowShift = log2(windowSize);
  if (windowShift < pageShift) fail(EINVAL, `window 0x${windowSize.toString(16)} smaller than one 2^${pageShift} page`);

  const entriesShift = windowShift - pageShift;
  // A table never occupies less than one host page, so small windows get more TCEs than asked for.
  const itSize = 1n << BigInt(Math.max(entriesShift, hostPageShift - 3));
  const levelShift = Math.max(Math.ceil(entriesShift / levels) + 3, hostPageShift);
  const entryBits = (levelShift - 3) * levels;
  if (entryBits + pageShift >= POWERNV_BUS_ADDR_BITS) {
    fail(EINVAL, `walk covers ${entryBits + pageShift} address bits, must stay below ${POWERNV_BUS_ADDR_BITS}`);
  }
  return { itSize, levelShift, levelSize: 1n << BigInt(levelShift - 3), entryBits, entriesShift };
}

/**
 * PowerNV get_table_size: worst-case bytes with every level populated, doubled for the user-address
 * shadow. 0 means "refused", which the caller turns into EINVAL.
 */
export function powernvTableSize(pageShift: number, windowSize: bigint, levels: number, hostPageShift: number): bigint {
  if (!Number.isInteger(levels) || levels === 0 || levels > POWERNV_MAX_LEVELS) return 0n;
  if (!isPowerOfTwo(windowSize)) return 0n;
  const windowShift = log2(windowSize);
  // Unsigned underflow in the kernel; an emulator refuses the request instead of charging garbage.
  if (!Number.isInteger(pageShift) || pageShift < 0 || windowShift < pageShift) return 0n;

  const entriesShift = windowShift - pageShift;
  const nodeBytes = 1n << BigInt(Math.max(Math.ceil(entriesShift / levels) + 3, hostPageShift));
  let levelBytes = 1n << BigInt(entriesShift + 3);
  if (levelBytes < 0x1000n) levelBytes = 0x1000n;
  let bytes = 0n;
  for (let l = 0; l < levels; l++) {
    bytes += roundUpTo(levelBytes, nodeBytes);
    // Each level above needs one 8-byte pointer per node below it.
    levelBytes = (levelBytes / nodeBytes) * 8n;
    if (levelBytes < nodeBytes) levelBytes = nodeBytes;
  }
  return 2n * bytes;
}

/** pSeries get_table_size: one 8-byte shadow entry per TCE, no power-of-two check, no doubling. */
export function pseriesTableSize(pageShift: number, windowSize: bigint, levels: number): bigint {
  if (levels > 1) return PSERIES_MULTILEVEL_SIZE;
  return windowSize >> BigInt(pageShift - 3);
}

function roundUpTo(v: bigint, align: bigint): bigint {
  return ((v + align - 1n) / align) * align;
}
