// One owner's pinned pages as an ordered list of runs. Within a run the pages are virtually and
// physically contiguous and share one pin count, so pinning 4 GiB at once is a single run no matter
// how many pages it covers.

import { EINVAL, fail } from '../errno.ts';

export interface PinRun {
  /** First user address (page aligned). */
  start: bigint;
  /** Exclusive end (page aligned). */
  end: bigint;
  /** Host-physical address of `start`. */
  hpa: bigint;
  count: number;
}

export class PinRuns {
  private readonly list: PinRun[] = [];

  get runs(): readonly PinRun[] {
    return this.list;
  }

  get bytes(): bigint {
    let sum = 0n;
    for (const r of this.list) sum += r.end - r.start;
    return sum;
  }

  /** The run holding `addr`, if any. */
  find(addr: bigint): PinRun | undefined {
    const i = this.firstEndingAfter(addr);
    const r = this.list[i];
    return r && r.start <= addr ? r : undefined;
  }

  /** Whether every page of [start, end) is pinned. */
  covers(start: bigint, end: bigint): boolean {
    let cursor = start;
    for (let i = this.firstEndingAfter(start); cursor < end; i++) {
      const r = this.list[i];
      if (!r || r.start > cursor) return false;
      cursor = r.end;
    }
    return true;
  }

  /**
   * Adds one pin to every page of [start, end). Pages not pinned yet get the frames `frameBase` plus
   * their address (HostMemory's slot for the owner).
   */
  pin(start: bigint, end: bigint, frameBase: bigint): void {
    const at = this.firstEndingAfter(start);
    if (this.pinGap(at, start, end, frameBase) || this.recount(at, start, end, 1)) return;
    this.splitAt(start);
    this.splitAt(end);
    let i = this.firstEndingAfter(start);
    const first = i;
    let cursor = start;
    while (cursor < end) {
      const r = this.list[i];
      if (r && r.start === cursor) {
        r.count++;
        cursor = r.end;
      } else {
        const gapEnd = r && r.start < end ? r.start : end;
        this.list.splice(i, 0, { start: cursor, end: gapEnd, hpa: frameBase + cursor, count: 1 });
        cursor = gapEnd;
      }
      i++;
    }
    this.mergeAround(first, i);
  }

  /** Drops one pin from every page of [start, end); all of them must be pinned. */
  unpin(start: bigint, end: bigint): void {
    const at = this.firstEndingAfter(start);
    if (this.unpinInside(at, start, end) || this.recount(at, start, end, -1)) return;
    if (!this.covers(start, end)) fail(EINVAL, 'unpinning pages that are not pinned');
    this.splitAt(start);
    this.splitAt(end);
    let i = this.firstEndingAfter(start);
    const first = i;
    while (i < this.list.length && this.list[i].start < end) {
      if (--this.list[i].count === 0) this.list.splice(i, 1);
      else i++;
    }
    this.mergeAround(first, i);
  }

  // The common cases of pin and unpin, done without splitting and merging: pinning pages nothing holds
  // yet (often right after the last pinned page), unpinning pages from a run only they hold, and pinning
  // or unpinning exactly one run again (small maps sharing a large host page). Each leaves the list
  // exactly as the general path would: runs that could merge never end up side by side.

  // Each takes i, the index of the first run ending after start.

  /** Adds `by` to the count of the run that is exactly [start, end), if there is one and it stays pinned. */
  private recount(i: number, start: bigint, end: bigint, by: 1 | -1): boolean {
    const r = this.list[i];
    if (!r || r.start !== start || r.end !== end || r.count + by === 0) return false;
    r.count += by;
    // A neighbour with the same count and contiguous frames now belongs to the same run.
    const next = this.list[i + 1];
    if (next && this.joins(r, next)) {
      r.end = next.end;
      this.list.splice(i + 1, 1);
    }
    const prev = this.list[i - 1];
    if (prev && this.joins(prev, r)) {
      prev.end = r.end;
      this.list.splice(i, 1);
    }
    return true;
  }

  private joins(a: PinRun, b: PinRun): boolean {
    return a.end === b.start && a.count === b.count && a.hpa + (a.end - a.start) === b.hpa;
  }

  /** Pins [start, end) if no run overlaps it; false (nothing done) otherwise. */
  private pinGap(i: number, start: bigint, end: bigint, frameBase: bigint): boolean {
    const next = this.list[i];
    if (next && next.start < end) return false;
    const hpa = frameBase + start;
    const prev = this.list[i - 1];
    const joinsPrev = prev && prev.end === start && prev.count === 1 && prev.hpa + (start - prev.start) === hpa;
    const joinsNext = next && next.start === end && next.count === 1 && hpa + (end - start) === next.hpa;
    if (joinsPrev && joinsNext) {
      prev.end = next.end;
      this.list.splice(i, 1);
    } else if (joinsPrev) prev.end = end;
    else if (joinsNext) {
      next.start = start;
      next.hpa = hpa;
    } else this.list.splice(i, 0, { start, end, hpa, count: 1 });
    return true;
  }

  /** Unpins [start, end) if it lies inside one run with a single pin; false (nothing done) otherwise. */
  private unpinInside(i: number, start: bigint, end: bigint): boolean {
    const r = this.list[i];
    if (!r || r.start > start || r.end < end || r.count !== 1) return false;
    if (r.start === start && r.end === end) this.list.splice(i, 1);
    else if (r.start === start) {
      r.hpa += end - start;
      r.start = end;
    } else if (r.end === end) r.end = start;
    else {
      this.list.splice(i + 1, 0, { start: end, end: r.end, hpa: r.hpa + (end - r.start), count: 1 });
      r.end = start;
    }
    return true;
  }

  /** Index of the first run whose end lies after `addr`. */
  private firstEndingAfter(addr: bigint): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.list[mid].end <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private splitAt(addr: bigint): void {
    const i = this.firstEndingAfter(addr);
    const r = this.list[i];
    if (!r || r.start >= addr) return;
    this.list.splice(i + 1, 0, { start: addr, end: r.end, hpa: r.hpa + (addr - r.start), count: r.count });
    r.end = addr;
  }

  /** Joins neighbours between runs[from - 1] and runs[to] that became indistinguishable. */
  private mergeAround(from: number, to: number): void {
    for (let i = Math.min(to, this.list.length - 1); i >= Math.max(from, 1); i--) {
      const a = this.list[i - 1];
      const b = this.list[i];
      if (a.end === b.start && a.hpa + (a.end - a.start) === b.hpa && a.count === b.count) {
        a.end = b.end;
        this.list.splice(i, 1);
      }
    }
  }
}
