// Which pages of one area accesses hold pinned, and how many times: the kernel pins a page of an area
// once however many users need it, so the IOAS pins only what goes from no holder to one and unpins
// what goes back. Ranges are [start, end) in the area's page-aligned user addresses. Pure.
/** A half-open range [start, end). */
export interface Span {
  start: bigint;
  end: bigint;
}

interface Segment extends Span {
  count: number;
}

export class PinCover {
  /** Disjoint, sorted, every count >= 1. */
  private segs: Segment[] = [];

  get empty(): boolean {
    return this.segs.length === 0;
  }

  /** The parts of [start, end) nobody holds. */
  gaps(start: bigint, end: bigint): Span[] {
    const out: Span[] = [];
    let at = start;
    for (const s of this.segs) {
      if (s.end <= at) continue;
      if (s.start >= end) break;
      if (s.start > at) out.push({ start: at, end: s.start });
      at = s.end;
      if (at >= end) break;
    }
    if (at < end) out.push({ start: at, end });
    return out;
  }

  /** One more holder of [start, end); returns the parts that had none (now to be pinned). */
  add(start: bigint, end: bigint): Span[] {
    if (end <= start) return [];
    const fresh = this.gaps(start, end);
    this.segs = merge([...this.split(start, end, 1), ...fresh.map((g) => ({ ...g, count: 1 }))]);
    return fresh;
  }

  /** One holder of [start, end) less; returns the parts left with none (now to be unpinned). */
  remove(start: bigint, end: bigint): Span[] {
    if (end <= start) return [];
    if (this.gaps(start, end).length) throw new Error(`0x${start.toString(16)}-0x${end.toString(16)} is not held`);
    const next = this.split(start, end, -1);
    const freed = next.filter((s) => s.count === 0).map(({ start, end }) => ({ start, end }));
    this.segs = merge(next.filter((s) => s.count > 0));
    return merge(freed.map((f) => ({ ...f, count: 0 }))).map(({ start, end }) => ({ start, end }));
  }

  /** Every segment, cut at start and end, with `delta` added inside [start, end). */
  private split(start: bigint, end: bigint, delta: number): Segment[] {
    const out: Segment[] = [];
    for (const s of this.segs) {
      if (s.end <= start || s.start >= end) {
        out.push(s);
        continue;
      }
      if (s.start < start) out.push({ start: s.start, end: start, count: s.count });
      const lo = s.start > start ? s.start : start;
      const hi = s.end < end ? s.end : end;
      out.push({ start: lo, end: hi, count: s.count + delta });
      if (s.end > end) out.push({ start: end, end: s.end, count: s.count });
    }
    return out;
  }
}

/** Sorted, with touching segments of equal count joined. */
function merge(segs: Segment[]): Segment[] {
  segs.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Segment[] = [];
  for (const s of segs) {
    const last = out[out.length - 1];
    if (last && last.end === s.start && last.count === s.count) last.end = s.end;
    else out.push({ ...s });
  }
  return out;
}
