// IOVA allocation (a MAP without FIXED_IOVA) against the allocator's definition: the lowest fit in the
// holes of reserved ranges and areas, allowed span by allowed span. The IOAS walks its tree instead of
// listing every hole; here random states are checked against the list of holes computed the slow way.
import { describe, expect, it } from 'vitest';
import { Daemon } from '../../src/daemon.ts';
import { Errno } from '../../src/errno.ts';
import { Ioas, type IoasDomain } from '../../src/objects/iommufd/ioas.ts';
import { complement, U64_MAX, type Range } from '../../src/objects/iommufd/ranges.ts';
import { defaultTopology } from '../../src/topology/topology.ts';
import { seededRandom } from '../helpers/random.ts';

const PAGE = 0x10000n;

/** The allocator as defined: every hole of reserved ∪ areas, in each allowed span, lowest first. */
function expected(ioas: Ioas, length: bigint, srcAddr: bigint): bigint | undefined {
  let align = 1n;
  while (align < length) align <<= 1n;
  if (srcAddr !== 0n && (srcAddr & -srcAddr) < align) align = srcAddr & -srcAddr;
  if (align > 2n << 20n) align = 2n << 20n;
  const subPage = srcAddr & (ioas.pageSize - 1n);
  const space = ioas.allowed.length ? ioas.allowed : [{ start: ioas.pageSize, last: U64_MAX - ioas.pageSize }];
  const holes = complement([...ioas.reservedRanges(), ...ioas.areas.valuesArray()]);
  for (const s of space) {
    for (const h of holes) {
      const lo = h.start > s.start ? h.start : s.start;
      const hi = h.last < s.last ? h.last : s.last;
      if (lo > hi || lo + align - 1n > U64_MAX) continue;
      const iova = ((lo + align - 1n) & ~(align - 1n)) | subPage;
      if (iova >= hi || hi - iova < length - 1n) continue;
      return iova;
    }
  }
  return undefined;
}

/** A domain that only reserves what lies outside its apertures. */
const domain = (apertures: Range[]): IoasDomain => ({ minPageSize: 1n, apertures: () => apertures, map: () => undefined, unmap: () => undefined });

describe('IOVA allocation', () => {
  it.each([
    [5, false, false],
    [77, true, false],
    [901, false, true],
    [1234, true, true],
  ])('picks the lowest fitting hole, as listing every hole would (seed %i, reserved hole %s, allowed list %s)', (seed, reservedHole, allowedList) => {
      const next = seededRandom(seed);
      const ioas = new Ioas(new Daemon(defaultTopology()).host);
      const span = 400n;
      if (reservedHole) ioas.addDomain(domain([{ start: 0n, last: 90n * PAGE - 1n }, { start: 120n * PAGE, last: U64_MAX }]));
      if (allowedList) ioas.allow([{ start: 30n * PAGE, last: 80n * PAGE - 1n }, { start: 130n * PAGE, last: 200n * PAGE - 1n }, { start: 250n * PAGE, last: span * PAGE - 1n }]);
      let checked = 0;
      for (let step = 0; step < 1500; step++) {
        const length = BigInt(1 + next(8)) * PAGE;
        if (next(3)) {
          // A fixed map somewhere, where it fits.
          const iova = BigInt(next(Number(span))) * PAGE;
          try {
            ioas.map(0x4000_0000n, length, iova, 3, 'pid:1');
          } catch (e) {
            if (!(e instanceof Errno)) throw e;
          }
        } else if (next(2)) {
          const src = 0x4000_0000n + BigInt(next(4)) * PAGE;
          const want = expected(ioas, length, src);
          let got: bigint | undefined;
          try {
            got = ioas.map(src, length, undefined, 3, 'pid:1');
          } catch (e) {
            if (!(e instanceof Errno)) throw e;
          }
          expect(got, `step ${step}`).toBe(want);
          checked++;
        } else {
          const areas = ioas.areas.valuesArray();
          if (areas.length) {
            const a = areas[next(areas.length)];
            ioas.unmap(a.start, a.last - a.start + 1n);
          }
        }
      }
      expect(checked).toBeGreaterThan(100);
  });
});
