import { describe, expect, it } from 'vitest';
import { EINVAL, ENOMEM } from '../../../src/errno.ts';
import {
  CHUNK_BYTES, DmaDirection, FaultInjector, powernvTableGeometry, TceTable, type TceTableSpec,
} from '../../../src/tce/index.ts';
import { expectErrno, GiB } from './helpers.ts';

/** A PowerNV-shaped table as CREATE would build it at `start` (64K host pages). */
function pnvTable(start: bigint, pageShift: number, window: bigint, levels: number, extra: Partial<TceTableSpec> = {}) {
  const g = powernvTableGeometry(pageShift, window, levels, 16);
  return new TceTable({
    flavour: 'powernv', pageShift, offset: start >> BigInt(pageShift), size: g.itSize, levels,
    levelSize: g.levelSize, userView: true, ...extra,
  });
}

const RW = 0x3n;

describe('TceTable window', () => {
  it('knows its bus range in absolute terms', () => {
    const t = pnvTable(1n << 59n, 16, 64n * GiB, 1);
    expect(t.offset).toBe(1n << 43n);
    expect(t.size).toBe(1n << 20n);
    expect(t.startAddr).toBe(1n << 59n);
    expect(t.endAddr).toBe((1n << 59n) + 64n * GiB);
    expect(t.contains((1n << 59n) - 1n)).toBe(false);
    expect(t.contains(1n << 59n)).toBe(true);
    expect(t.contains((1n << 59n) + 64n * GiB - 1n)).toBe(true);
    expect(t.contains((1n << 59n) + 64n * GiB)).toBe(false);
    expect(t.entryOf((1n << 59n) + 0x12345n)).toBe((1n << 43n) + 1n);
  });

  it('exchanges entries by absolute index and returns the old value', () => {
    const t = pnvTable(0n, 12, GiB, 1);
    expect(t.xchg(5n, 0x7000n | RW)).toEqual({ tce: 0n, ua: 0n });
    expect(t.get(5n)).toBe(0x7003n);
    expect(t.xchg(5n, 0x9001n, 0x4000_5000n)).toEqual({ tce: 0x7003n, ua: 0n });
    expect(t.xchg(5n, 0n, 0n)).toEqual({ tce: 0x9001n, ua: 0x4000_5000n });
    expect(t.get(5n)).toBe(0n);
    expect(t.liveCount).toBe(0);
  });

  it('leaves the shadow alone when no ua is passed', () => {
    const t = pnvTable(0n, 12, GiB, 1);
    t.xchg(9n, 0x1000n | RW, 0xabc000n);
    expect(t.xchg(9n, 0x2001n)).toEqual({ tce: 0x1003n, ua: 0xabc000n });
    expect(t.ua(9n)).toBe(0xabc000n);
  });

  it('stores each word big-endian, as a raw dump shows', () => {
    const t = pnvTable(0n, 12, GiB, 1);
    t.xchg(3n, 0x0102_0304_0506_0003n);
    const raw = t.rawChunk(3n);
    expect(raw).not.toBeNull();
    expect([...raw!.subarray(24, 32)]).toEqual([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x00, 0x03]);
    expect(t.rawChunk(1024n)).toBeNull();
  });

  it('adds R to write-only TCEs on PowerNV only', () => {
    const pnv = pnvTable(0n, 12, GiB, 1);
    pnv.xchg(1n, 0x5002n);
    expect(pnv.get(1n)).toBe(0x5003n);
    const ps = new TceTable({ flavour: 'pseries', pageShift: 12, offset: 0n, size: 1024n, levels: 1, levelSize: 1024n, userView: true });
    ps.xchg(1n, 0x5002n);
    expect(ps.get(1n)).toBe(0x5002n);
  });

  it('refuses malformed TCEs and shadows', () => {
    const t = pnvTable(0n, 16, 64n * GiB, 1);
    expectErrno(() => t.xchg(0n, 0x10000n), EINVAL, /R or W/);
    expectErrno(() => t.xchg(0n, 0x11003n), EINVAL, /below the page shift/);
    expectErrno(() => t.xchg(0n, 1n << 64n), EINVAL);
    const host = new TceTable({ flavour: 'powernv', pageShift: 12, offset: 0n, size: 8192n, levels: 1, levelSize: 8192n, userView: false });
    expectErrno(() => host.xchg(0n, 0x1003n, 0x5000n), EINVAL, /shadow/);
    expect(t.liveCount).toBe(0);
  });

  it('makes TCEs for its own platform and page size', () => {
    const t = pnvTable(0n, 16, 64n * GiB, 1);
    expect(t.makeTce(0x20000n, DmaDirection.FROM_DEVICE)).toBe(0x20003n);
    expectErrno(() => t.makeTce(0x21000n, DmaDirection.TO_DEVICE), EINVAL);
  });
});

describe('TceTable bounds', () => {
  it('refuses entries outside the window by default', () => {
    const t = pnvTable(1n << 59n, 12, GiB, 1);
    const first = t.offset;
    const end = t.offset + t.size;
    expectErrno(() => t.xchg(first - 1n, 0x1003n), EINVAL, /window/);
    expectErrno(() => t.xchg(end, 0x1003n), EINVAL, /window/);
    expectErrno(() => t.get(end), EINVAL);
    t.xchg(end - 1n, 0x1003n);
    expect(t.get(end - 1n)).toBe(0x1003n);
  });

  it('checks the whole range before clearing any of it', () => {
    const t = pnvTable(0n, 12, GiB, 1);
    t.xchg(t.size - 2n, 0x1003n);
    expectErrno(() => t.clearRange(t.size - 2n, 3n), EINVAL);
    expect(t.liveCount).toBe(1);
    expect(t.clearRange(t.size - 2n, 2n).map((e) => e.entry)).toEqual([t.size - 2n]);
  });

  it('in kernel mode accepts the hidden on-demand entries of a multi-level table, and nothing beyond', () => {
    const t = pnvTable(0n, 16, 64n * GiB, 2, { boundsMode: 'kernel' });
    // 2^20 TCEs in the window, 8192^2 = 2^26 reachable by the walk.
    expect(t.reach).toBe(1n << 26n);
    t.xchg(t.size, 0x1_0000n | RW);
    t.xchg(t.reach - 1n, 0x2_0000n | RW);
    expectErrno(() => t.xchg(t.reach, 0x3_0000n | RW), EINVAL, /reach/);
    expect([...t.entries()].map((e) => e.hidden)).toEqual([true, true]);
    t.boundsMode = 'window';
    expectErrno(() => t.get(t.size), EINVAL);
  });

  it('in kernel mode still refuses to run past a single-level table', () => {
    const t = pnvTable(0n, 12, GiB, 1, { boundsMode: 'kernel' });
    expect(t.reach).toBe(t.size);
    expectErrno(() => t.xchg(t.size, 0x1003n), EINVAL);
  });
});

describe('TceTable levels', () => {
  it('creates level nodes on the first TCE set below them, never on clears', () => {
    const t = pnvTable(0n, 16, 64n * GiB, 2);
    expect(t.levelNodes()).toEqual({ hw: [1, 0], shadow: [1, 0] });
    t.xchg(0n, 0n);
    expect(t.levelNodes().hw).toEqual([1, 0]);
    t.xchg(0n, 0x1_0000n | RW);
    t.xchg(8191n, 0x2_0000n | RW);
    expect(t.levelNodes().hw).toEqual([1, 1]);
    t.xchg(8192n, 0x3_0000n | RW, 0x7000_0000n);
    expect(t.levelNodes()).toEqual({ hw: [1, 2], shadow: [1, 1] });
    // Clearing never frees a node, as in the kernel.
    t.clearRange(0n, t.size);
    expect(t.levelNodes()).toEqual({ hw: [1, 2], shadow: [1, 1] });
    expect(t.kernelBytes()).toBe(5n * 64n * 1024n);
  });

  it('fails a node allocation with ENOMEM and leaves the entry untouched', () => {
    const faults = new FaultInjector();
    const t = pnvTable(0n, 12, 1n << 40n, 3, { faults });
    faults.arm('alloc', 2); // the first node below the top succeeds, the second fails
    expectErrno(() => t.xchg(77n, 0x5003n), ENOMEM);
    expect(t.get(77n)).toBe(0n);
    expect(t.liveCount).toBe(0);
    expect(t.levelNodes().hw).toEqual([1, 1, 0]);
    t.xchg(77n, 0x5003n);
    expect(t.levelNodes().hw).toEqual([1, 1, 1]);
    expect(faults.checksByKind.alloc).toBe(3);
  });

  it('allocates the shadow path before the hardware path', () => {
    const faults = new FaultInjector();
    const t = pnvTable(0n, 16, 64n * GiB, 2, { faults });
    faults.arm('alloc', 1);
    expectErrno(() => t.xchg(1n, 0x1_0003n, 0x9_0000n), ENOMEM);
    expect(t.levelNodes()).toEqual({ hw: [1, 0], shadow: [1, 0] });
    faults.arm('alloc', 2);
    expectErrno(() => t.xchg(1n, 0x1_0003n, 0x9_0000n), ENOMEM);
    expect(t.levelNodes()).toEqual({ hw: [1, 0], shadow: [1, 1] });
    expect(t.ua(1n)).toBe(0n);
  });
});

describe('TceTable storage', () => {
  it('holds nothing until written, one chunk per touched region, and one emptied chunk per array after', () => {
    const t = pnvTable(0n, 12, GiB, 1);
    expect(t.allocatedBytes()).toBe(0);
    t.xchg(0n, 0x1003n);
    t.xchg(511n, 0x2003n);
    expect(t.allocatedBytes()).toBe(CHUNK_BYTES);
    t.xchg(512n, 0x3003n, 0x1000n);
    expect(t.allocatedBytes()).toBe(3 * CHUNK_BYTES);
    // The TCEs' two chunks and the shadow's one empty; each array keeps one for its next chunk.
    t.clearRange(0n, t.size);
    expect(t.allocatedBytes()).toBe(2 * CHUNK_BYTES);
    t.xchg(5000n, 0x4003n, 0x2000n);
    expect(t.allocatedBytes()).toBe(2 * CHUNK_BYTES);
    expect(t.get(5000n)).toBe(0x4003n);
    expect([t.get(4999n), t.get(5001n), t.ua(5001n), t.get(0n)]).toEqual([0n, 0n, 0n, 0n]);
    expect(t.ua(512n)).toBe(0n);
  });

  it('lists live entries in order with their IOVA, TCE and shadow', () => {
    const t = pnvTable(1n << 59n, 16, 64n * GiB, 1);
    const e = (i: bigint) => t.offset + i;
    t.xchg(e(70000n), 0x30001n, 0x1_0000n);
    t.xchg(e(3n), 0x10003n);
    t.xchg(e(600n), 0x20003n, 0x2_0000n);
    expect([...t.entries()]).toEqual([
      { entry: e(3n), iova: (1n << 59n) + 3n * 0x10000n, tce: 0x10003n, ua: 0n, hidden: false },
      { entry: e(600n), iova: (1n << 59n) + 600n * 0x10000n, tce: 0x20003n, ua: 0x2_0000n, hidden: false },
      { entry: e(70000n), iova: (1n << 59n) + 70000n * 0x10000n, tce: 0x30001n, ua: 0x1_0000n, hidden: false },
    ]);
    const cleared = t.clearRange(e(0n), 1000n);
    expect(cleared.map((x) => [x.entry, x.tce, x.ua])).toEqual([[e(3n), 0x10003n, 0n], [e(600n), 0x20003n, 0x2_0000n]]);
    expect(t.ua(e(600n))).toBe(0n);
    expect(t.liveCount).toBe(1);
  });

  it('cannot be used once released', () => {
    const t = pnvTable(0n, 12, GiB, 1);
    t.xchg(0n, 0x1003n);
    t.release();
    expect(t.isFreed).toBe(true);
    expectErrno(() => t.get(0n), EINVAL, /freed/);
    expectErrno(() => t.xchg(0n, 0n), EINVAL, /freed/);
    expect(t.allocatedBytes()).toBe(0);
  });
});
