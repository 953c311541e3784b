// The user bitmap of IOMMU_HWPT_GET_DIRTY_BITMAP (and the one IOMMU_TEST_OP_DIRTY reads): bit i stands for
// the page_size bytes at iova + i * page_size, eight bits to a byte, least significant bit first, so a
// little-endian u64 array reads the same. The kernel only ever sets bits (it ORs into the user's pages),
// so what a report produces is a set of byte spans with the bits to OR, not a whole new bitmap. Pure.

/** The kernel takes page_size's lowest set bit as the shift (__ffs), whatever the other bits are. */
export function pageShift(pageSize: bigint): bigint {
  if (pageSize <= 0n) return 0n;
  let s = 0n;
  while (!((pageSize >> s) & 1n)) s++;
  return s;
}

/** Set bits [from, to] (inclusive, relative to `buf`'s first bit). */
export function setBits(buf: Buffer, from: number, to: number): void {
  let i = from;
  for (; i <= to && i & 7; i++) buf[i >> 3] |= 1 << (i & 7);
  const fullEnd = (to + 1) & ~7;
  if (i < fullEnd) {
    buf.fill(0xff, i >> 3, fullEnd >> 3);
    i = fullEnd;
  }
  for (; i <= to; i++) buf[i >> 3] |= 1 << (i & 7);
}

/** Whether bit `i` is set. */
export function testBit(buf: Buffer, i: number): boolean {
  return !!(buf[i >> 3] & (1 << (i & 7)));
}

/** The index of the first set bit at or after `from` among the first `nbits`, or -1. */
export function nextSetBit(buf: Buffer, from: number, nbits: number): number {
  for (let i = from; i < nbits; ) {
    const b = buf[i >> 3] >> (i & 7);
    if (b === 0) {
      i = (i | 7) + 1;
      continue;
    }
    const at = i + 31 - Math.clz32(b & -b);
    return at < nbits ? at : -1;
  }
  return -1;
}

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, v) => {
  let n = 0;
  for (let x = v; x; x &= x - 1) n++;
  return n;
});

/** Set bits among the first `nbits`. */
export function countBits(buf: Buffer, nbits: number): number {
  let n = 0;
  const whole = nbits >> 3;
  for (let i = 0; i < whole; i++) n += POPCOUNT[buf[i]];
  if (nbits & 7) n += POPCOUNT[buf[whole] & ((1 << (nbits & 7)) - 1)];
  return n;
}

/** The indices of the set bits among the first `nbits`, in order. */
export function setBitIndices(buf: Buffer, nbits: number): number[] {
  const out: number[] = [];
  for (let byte = 0; byte * 8 < nbits; byte++) {
    const b = buf[byte];
    if (!b) continue;
    for (let j = 0; j < 8 && byte * 8 + j < nbits; j++) if (b & (1 << j)) out.push(byte * 8 + j);
  }
  return out;
}

/** Bytes of a bitmap of `nbits` bits. */
export function bitmapBytes(nbits: bigint): bigint {
  return (nbits + 7n) >> 3n;
}

export interface BitmapSpan {
  /** Byte offset from the start of the user's bitmap. */
  offset: bigint;
  /** The bits to OR into the bytes there. */
  bits: Buffer;
}

/** Dirty IOVA ranges collected for one bitmap of [iova, iova + length) at page_size per bit. */
export class DirtyBitmap {
  private readonly shift: bigint;
  private readonly last: bigint;
  /** Bit index ranges, inclusive. */
  private readonly runs: [bigint, bigint][] = [];

  constructor(readonly iova: bigint, readonly length: bigint, pageSize: bigint) {
    this.shift = pageShift(pageSize);
    this.last = iova + length - 1n;
  }

  /** Mark [start, start + length) dirty, as far as it lies inside the bitmap's range. */
  record(start: bigint, length: bigint): void {
    const s = start > this.iova ? start : this.iova;
    const end = start + length - 1n;
    const l = end < this.last ? end : this.last;
    if (s > l) return;
    this.runs.push([(s - this.iova) >> this.shift, (l - this.iova) >> this.shift]);
  }

  /** The byte spans the recorded bits touch, runs in one byte or adjacent bytes joined. */
  spans(): BitmapSpan[] {
    const runs = [...this.runs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const groups: [bigint, bigint][][] = [];
    let lastByte = -2n;
    for (const r of runs) {
      const first = r[0] >> 3n;
      const end = r[1] >> 3n;
      if (groups.length && first <= lastByte + 1n) {
        groups[groups.length - 1].push(r);
        if (end > lastByte) lastByte = end;
      } else {
        groups.push([r]);
        lastByte = end;
      }
    }
    return groups.map((g) => {
      const offset = g[0][0] >> 3n;
      let end = offset;
      for (const r of g) if (r[1] >> 3n > end) end = r[1] >> 3n;
      const bits = Buffer.alloc(Number(end - offset + 1n));
      const base = offset << 3n;
      for (const r of g) setBits(bits, Number(r[0] - base), Number(r[1] - base));
      return { offset, bits };
    });
  }
}

/** OR `bits` into `into` (same length). */
export function orInto(into: Buffer, bits: Buffer): Buffer {
  for (let i = 0; i < bits.length; i++) into[i] |= bits[i];
  return into;
}
