import { describe, expect, it } from 'vitest';
import { EINVAL } from '../../../src/errno.ts';
import {
  powernvTableGeometry, powernvTableSize, PSERIES_MULTILEVEL_SIZE, pseriesTableSize,
} from '../../../src/tce/index.ts';
import { expectErrno, GiB, KiB, MiB, TiB } from './helpers.ts';

describe('PowerNV get_table_size, worked values with 64K host pages (reference 1.4)', () => {
  const rows: [string, number, bigint, number, bigint, number, number][] = [
    // label, page shift, window, levels, table bytes, level_shift, 55-bit check value
    ['4K, 1 GiB, L=1', 12, GiB, 1, 0x40_0000n, 21, 30],
    ['4K, 2 GiB, L=1', 12, 2n * GiB, 1, 8n * MiB, 22, 31],
    ['64K, 64 GiB, L=1', 16, 64n * GiB, 1, 16n * MiB, 23, 36],
    ['64K, 64 GiB, L=2', 16, 64n * GiB, 2, 0x102_0000n, 16, 42],
    ['64K, 1 TiB, L=1', 16, TiB, 1, 256n * MiB, 27, 40],
    ['16M, 1 TiB, L=1', 24, TiB, 1, MiB, 19, 40],
    ['4K, 1 MiB, L=1', 12, MiB, 1, 128n * KiB, 16, 25],
  ];
  for (const [label, p, w, l, bytes, levelShift, check] of rows) {
    it(label, () => {
      expect(powernvTableSize(p, w, l, 16)).toBe(bytes);
      const g = powernvTableGeometry(p, w, l, 16);
      expect(g.levelShift).toBe(levelShift);
      expect(g.entryBits + p).toBe(check);
      expect(g.levelSize).toBe(1n << BigInt(levelShift - 3));
    });
  }

  it('three levels: one full leaf level plus one node per upper level, doubled', () => {
    // 64K pages, 1 TiB: 2^24 TCEs, 64 KiB nodes -> 2^27 leaf bytes + 2 x 64 KiB, then x2 for the shadow.
    expect(powernvTableSize(16, TiB, 3, 16)).toBe(2n * ((1n << 27n) + 2n * (64n * KiB)));
  });

  it('on a 4K-page host the floor is one 4 KiB page of TCEs', () => {
    expect(powernvTableSize(12, MiB, 1, 12)).toBe(8n * KiB);
    expect(powernvTableSize(12, GiB, 1, 12)).toBe(4n * MiB);
  });

  it('returns 0 for every request the platform refuses', () => {
    expect(powernvTableSize(12, GiB, 0, 16)).toBe(0n);
    expect(powernvTableSize(12, GiB, 6, 16)).toBe(0n);
    expect(powernvTableSize(12, 3n * GiB, 1, 16)).toBe(0n);
    expect(powernvTableSize(12, 0n, 1, 16)).toBe(0n);
    expect(powernvTableSize(16, 32n * KiB, 1, 16)).toBe(0n);
  });
});

describe('PowerNV table geometry (reference 1.3)', () => {
  it('rounds it_size up to a host page worth of TCEs', () => {
    // A 1 MiB request with 4K pages on a 64K host holds 8192 TCEs: a 32 MiB window.
    expect(powernvTableGeometry(12, MiB, 1, 16).itSize).toBe(8192n);
    expect(powernvTableGeometry(12, MiB, 1, 12).itSize).toBe(512n);
    expect(powernvTableGeometry(12, GiB, 1, 16).itSize).toBe(1n << 18n);
  });

  it('splits the index bits evenly over the levels, never below one host page per node', () => {
    const g = powernvTableGeometry(16, 64n * GiB, 2, 16);
    expect(g.entriesShift).toBe(20);
    expect(g.levelShift).toBe(16); // ceil(20/2)+3 = 13, raised to the 64K page
    expect(g.levelSize).toBe(8192n);
    expect(g.itSize).toBe(1n << 20n);
  });

  it('refuses levels 0 and above 5', () => {
    expectErrno(() => powernvTableGeometry(12, GiB, 0, 16), EINVAL, /levels/);
    expectErrno(() => powernvTableGeometry(12, GiB, 6, 16), EINVAL, /levels/);
    // 5 passes the level rule, but no 5-level walk fits below bit 55 with nodes of at least 4 KiB.
    expectErrno(() => powernvTableGeometry(12, GiB, 5, 12), EINVAL, /57 address bits/);
    expect(powernvTableGeometry(12, GiB, 4, 12).entryBits).toBe(36);
  });

  it('refuses windows that are not a power of two, including 0', () => {
    expectErrno(() => powernvTableGeometry(12, 3n * GiB, 1, 16), EINVAL, /power of two/);
    expectErrno(() => powernvTableGeometry(12, 0n, 1, 16), EINVAL, /power of two/);
  });

  it('refuses a window smaller than one IOMMU page', () => {
    expectErrno(() => powernvTableGeometry(24, MiB, 1, 16), EINVAL, /smaller/);
    expect(powernvTableGeometry(24, 16n * MiB, 1, 16).itSize).toBe(8192n);
  });

  it('refuses walks reaching bus address bit 55', () => {
    // 4K pages, 5 levels on a 64K host: 13 * 5 + 12 = 77.
    expectErrno(() => powernvTableGeometry(12, GiB, 5, 16), EINVAL, /77/);
    // The boundary: 42 + 12 = 54 passes, 43 + 12 = 55 does not.
    expect(powernvTableGeometry(12, 1n << 54n, 1, 16).entryBits).toBe(42);
    expectErrno(() => powernvTableGeometry(12, 1n << 55n, 1, 16), EINVAL, /55/);
  });
});

describe('pSeries get_table_size', () => {
  it('is 8 bytes per TCE for one level or none, without doubling', () => {
    expect(pseriesTableSize(12, GiB, 1)).toBe(2n * MiB);
    expect(pseriesTableSize(16, 64n * GiB, 0)).toBe(8n * MiB);
  });

  it('has no power-of-two check', () => {
    expect(pseriesTableSize(12, 3n * GiB, 1)).toBe(6n * MiB);
  });

  it('answers ~0U for any multi-level request', () => {
    expect(PSERIES_MULTILEVEL_SIZE).toBe(0xffff_ffffn);
    expect(pseriesTableSize(12, GiB, 2)).toBe(0xffff_ffffn);
    expect(pseriesTableSize(16, TiB, 5)).toBe(0xffff_ffffn);
  });
});
