// The IOAS's B+ tree against a plain sorted array, through random inserts and removals big enough to
// split, borrow, merge and collapse nodes at several levels, and through the rising runs that take the
// append path; the tree's invariants are checked throughout.
import { describe, expect, it } from 'vitest';
import { IovaTree } from '../../src/objects/iommufd/iova-tree.ts';
import { seededRandom } from '../helpers/random.ts';

class Reference {
  keys: bigint[] = [];
  private index(k: bigint): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.keys[mid] < k) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  set(k: bigint) {
    const i = this.index(k);
    if (this.keys[i] !== k) this.keys.splice(i, 0, k);
  }
  delete(k: bigint): boolean {
    const i = this.index(k);
    if (this.keys[i] !== k) return false;
    this.keys.splice(i, 1);
    return true;
  }
  atOrBelow(k: bigint): bigint | undefined {
    const i = this.index(k);
    return this.keys[i] === k ? k : this.keys[i - 1];
  }
  above(k: bigint): bigint | undefined {
    const i = this.index(k);
    return this.keys[this.keys[i] === k ? i + 1 : i];
  }
}

function agree(t: IovaTree<bigint>, r: Reference, probe: bigint) {
  expect(t.atOrBelow(probe)).toBe(r.atOrBelow(probe));
  expect(t.above(probe)).toBe(r.above(probe));
  expect(t.get(probe)).toBe(r.keys.includes(probe) ? probe : undefined);
  expect(t.max()).toBe(r.keys[r.keys.length - 1]);
}

describe('IovaTree', () => {
  it('answers an empty tree', () => {
    const t = new IovaTree<string>();
    expect(t.size).toBe(0);
    expect(t.atOrBelow(5n)).toBeUndefined();
    expect(t.above(5n)).toBeUndefined();
    expect(t.max()).toBeUndefined();
    expect(t.delete(5n)).toBe(false);
    expect(t.valuesArray()).toEqual([]);
  });

  it('replaces the value of a key already present', () => {
    const t = new IovaTree<string>();
    t.set(10n, 'a');
    t.set(10n, 'b');
    expect(t.size).toBe(1);
    expect(t.get(10n)).toBe('b');
  });

  for (const seed of [1, 7, 42, 1234]) {
    it(`matches a sorted array through random inserts and removals (seed ${seed})`, () => {
      const next = seededRandom(seed);
      const t = new IovaTree<bigint>();
      const r = new Reference();
      // Keys from a space small enough that removals often hit, large enough for a tree of 3+ levels.
      const space = 20_000;
      let maxDepth = 0;
      let rising = 0n;
      for (let step = 0; step < 60_000; step++) {
        // A quarter of the inserts continue a rising run, as sequential maps do (the append path).
        const k = next(4) === 0 ? (rising += 4096n) : BigInt(next(space)) * 4096n;
        // Grow for the first half, then shrink: every node shape is passed through both ways.
        const insert = step < 30_000 ? next(4) !== 0 : next(4) === 0;
        if (insert) {
          t.set(k, k);
          r.set(k);
        } else expect(t.delete(k)).toBe(r.delete(k));
        if (step % 997 === 0) {
          maxDepth = Math.max(maxDepth, t.check());
          expect(t.size).toBe(r.keys.length);
          for (let p = 0; p < 20; p++) agree(t, r, BigInt(next(space + 10)) * 4096n + BigInt(next(3)) - 1n);
        }
      }
      expect(maxDepth).toBeGreaterThanOrEqual(3);
      t.check();
      expect(t.valuesArray()).toEqual(r.keys);
      for (const k of [...r.keys]) {
        expect(t.delete(k)).toBe(true);
        r.delete(k);
      }
      t.check();
      expect(t.size).toBe(0);
      expect(t.valuesArray()).toEqual([]);
    });
  }

  it('handles ascending and descending runs (the splits and merges of sequential maps)', () => {
    const t = new IovaTree<bigint>();
    for (let i = 0n; i < 10_000n; i++) t.set(i << 12n, i);
    expect(t.check()).toBeGreaterThanOrEqual(3);
    for (let i = 9_999n; i >= 5_000n; i--) expect(t.delete(i << 12n)).toBe(true);
    t.check();
    expect(t.max()).toBe(4_999n);
    for (let i = 0n; i < 5_000n; i++) expect(t.delete(i << 12n)).toBe(true);
    t.check();
    for (let i = 10_000n; i > 0n; i--) t.set(i << 12n, i);
    t.check();
    expect(t.atOrBelow(0n)).toBeUndefined();
    expect(t.atOrBelow((10_000n << 12n) + 5n)).toBe(10_000n);
    expect(t.above(10_000n << 12n)).toBeUndefined();
    // Rising again after the largest key: appended, and still found through the inner nodes.
    for (let i = 10_001n; i < 12_000n; i++) t.set(i << 12n, i);
    t.check();
    expect(t.get(11_500n << 12n)).toBe(11_500n);
    expect(t.above(10_000n << 12n)).toBe(10_001n);
  });
});
