// PinRuns against a page-by-page model: random pins and unpins (sequential ones, as an IOAS maps, and
// scattered overlapping ones) must leave every page's pin count and frame as the model says, in the one
// canonical form (no two neighbouring runs that could be one), whichever path, fast or general, ran.
import { describe, expect, it } from 'vitest';
import { PinRuns } from '../../../src/tce/pin-runs.ts';
import { seededRandom } from '../../helpers/random.ts';

const PAGE = 0x1000n;
/** Frames as HostMemory hands them out: a fixed base plus the address. */
const BASE = 1n << 40n;

function check(runs: PinRuns, model: Map<number, number>, pages: number) {
  for (let p = 0; p < pages; p++) {
    const r = runs.find(BigInt(p) * PAGE);
    const want = model.get(p) ?? 0;
    expect(r?.count ?? 0, `page ${p}`).toBe(want);
    if (r) expect(r.hpa + (BigInt(p) * PAGE - r.start)).toBe(BASE + BigInt(p) * PAGE);
  }
  const list = runs.runs;
  for (let i = 1; i < list.length; i++) {
    const a = list[i - 1];
    const b = list[i];
    expect(a.end <= b.start).toBe(true);
    const mergeable = a.end === b.start && a.count === b.count && a.hpa + (a.end - a.start) === b.hpa;
    expect(mergeable, `runs ${i - 1} and ${i} could be one`).toBe(false);
  }
}

describe('PinRuns', () => {
  for (const seed of [3, 99, 2024]) {
    it(`matches a page model through random pins and unpins (seed ${seed})`, () => {
      const next = seededRandom(seed);
      const pages = 96;
      const runs = new PinRuns();
      const model = new Map<number, number>();
      let cursor = 0;
      for (let step = 0; step < 4000; step++) {
        // Half the pins continue from the last one, as a run of single-page maps does.
        const first = next(2) ? cursor % pages : next(pages);
        const len = Math.min(1 + next(6), pages - first);
        const range: [bigint, bigint] = [BigInt(first) * PAGE, BigInt(first + len) * PAGE];
        const held = Array.from({ length: len }, (_, k) => model.get(first + k) ?? 0);
        if (next(3) === 0 || held.some((c) => c === 0) || held.every((c) => c > 3)) {
          if (held.every((c) => c > 3)) continue;
          runs.pin(...range, BASE);
          for (let k = 0; k < len; k++) model.set(first + k, held[k] + 1);
          cursor = first + len;
        } else {
          runs.unpin(...range);
          for (let k = 0; k < len; k++) model.set(first + k, held[k] - 1);
        }
        if (step % 50 === 0) check(runs, model, pages);
      }
      check(runs, model, pages);
    });
  }

  it('refuses to unpin what is not pinned, changing nothing', () => {
    const runs = new PinRuns();
    runs.pin(0n, 4n * PAGE, BASE);
    const before = runs.runs.map((r) => ({ ...r }));
    expect(() => runs.unpin(2n * PAGE, 6n * PAGE)).toThrow();
    expect(runs.runs.map((r) => ({ ...r }))).toEqual(before);
  });

  it('keeps one run for a sequence of single-page pins and empties it page by page', () => {
    const runs = new PinRuns();
    for (let p = 0n; p < 100n; p++) runs.pin(p * PAGE, (p + 1n) * PAGE, BASE);
    expect(runs.runs).toHaveLength(1);
    for (let p = 0n; p < 100n; p++) runs.unpin(p * PAGE, (p + 1n) * PAGE);
    expect(runs.runs).toHaveLength(0);
  });
});
