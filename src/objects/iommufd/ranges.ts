// Inclusive IOVA ranges and the set arithmetic the IOAS needs (reserved holes, apertures, allowed lists).

export const U64_MAX = (1n << 64n) - 1n;

export interface Range {
  start: bigint;
  /** Inclusive. */
  last: bigint;
}

export const overlaps = (a: Range, b: Range) => a.start <= b.last && b.start <= a.last;

/** Sorted, merged union of ranges. */
export function union(ranges: Range[]): Range[] {
  const s = [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Range[] = [];
  for (const r of s) {
    const top = out[out.length - 1];
    if (top && r.start <= top.last + 1n) top.last = top.last > r.last ? top.last : r.last;
    else out.push({ ...r });
  }
  return out;
}

/** [0, U64_MAX] minus the ranges. */
export function complement(ranges: Range[]): Range[] {
  const out: Range[] = [];
  let next = 0n;
  for (const r of union(ranges)) {
    if (r.start > next) out.push({ start: next, last: r.start - 1n });
    if (r.last === U64_MAX) return out;
    next = r.last + 1n;
  }
  out.push({ start: next, last: U64_MAX });
  return out;
}

/** Parse an array of struct iommu_iova_range (16 bytes each, little-endian). */
export function readRanges(buf: Buffer, count: number): Range[] {
  return Array.from({ length: count }, (_, i) => ({ start: buf.readBigUInt64LE(i * 16), last: buf.readBigUInt64LE(i * 16 + 8) }));
}

export function writeRanges(ranges: Range[]): Buffer {
  const b = Buffer.alloc(ranges.length * 16);
  ranges.forEach((r, i) => {
    b.writeBigUInt64LE(r.start, i * 16);
    b.writeBigUInt64LE(r.last, i * 16 + 8);
  });
  return b;
}
