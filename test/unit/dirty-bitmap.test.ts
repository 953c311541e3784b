// The dirty bitmap codec (bit per page, LSB first, only ORed) and the mock domain's dirty leaves.
import { describe, expect, it } from 'vitest';
import { countBits, DirtyBitmap, nextSetBit, orInto, pageShift, setBitIndices, setBits, testBit } from '../../src/objects/iommufd/dirty-bitmap.ts';
import { MockDirty } from '../../src/mock/dirty.ts';

const K = 1024n;

describe('bitmap bits', () => {
  it('page_size gives the shift by its lowest set bit, as the kernel takes it', () => {
    expect(pageShift(4096n)).toBe(12n);
    expect(pageShift(2048n)).toBe(11n);
    expect(pageShift(3n * 4096n)).toBe(12n);
  });

  it('setBits fills partial and whole bytes, least significant bit first', () => {
    const b = Buffer.alloc(4);
    setBits(b, 3, 20);
    expect([...b]).toEqual([0xf8, 0xff, 0x1f, 0]);
    setBits(b, 31, 31);
    expect(b[3]).toBe(0x80);
    expect(testBit(b, 2)).toBe(false);
    expect(testBit(b, 3)).toBe(true);
    expect(setBitIndices(Buffer.from([0x11, 0x80]), 16)).toEqual([0, 4, 15]);
    expect(setBitIndices(Buffer.from([0xff]), 3)).toEqual([0, 1, 2]);
  });

  it('nextSetBit skips clear bytes and stops at nbits; countBits counts only the first nbits', () => {
    const b = Buffer.alloc(64);
    setBits(b, 3, 3);
    setBits(b, 300, 301);
    expect(nextSetBit(b, 0, 512)).toBe(3);
    expect(nextSetBit(b, 4, 512)).toBe(300);
    expect(nextSetBit(b, 301, 512)).toBe(301);
    expect(nextSetBit(b, 302, 512)).toBe(-1);
    expect(nextSetBit(b, 4, 300)).toBe(-1);
    expect(countBits(b, 512)).toBe(3);
    expect(countBits(b, 301)).toBe(2);
    expect(countBits(Buffer.from([0xff, 0xff]), 12)).toBe(12);
  });

  it('a little-endian u64 sees bit i at 1 << i', () => {
    const b = Buffer.alloc(16);
    setBits(b, 70, 70);
    expect(b.readBigUInt64LE(8)).toBe(1n << 6n);
  });
});

describe('DirtyBitmap', () => {
  it('records leaves as bit runs relative to the bitmap start, clipped to its range', () => {
    const bm = new DirtyBitmap(0x100000n, 64n * K, 2n * K);
    bm.record(0x100000n, 4n * K); // bits 0-1
    bm.record(0x100000n + 8n * K, 4n * K); // bits 4-5
    bm.record(0x0ff000n, 8n * K); // starts before the range: bits 0-1 only
    bm.record(0x100000n + 62n * K, 8n * K); // past the end: bit 31
    bm.record(0x200000n, 4n * K); // wholly outside
    const spans = bm.spans();
    expect(spans).toEqual([{ offset: 0n, bits: Buffer.from([0x33]) }, { offset: 3n, bits: Buffer.from([0x80]) }]);
  });

  it('joins runs in one byte or adjacent bytes into one span', () => {
    const bm = new DirtyBitmap(0n, 1024n * K, 4n * K);
    bm.record(8n * 4n * K, 4n * K); // bit 8 (byte 1)
    bm.record(0n, 4n * K); // bit 0 (byte 0)
    bm.record(200n * 4n * K, 4n * K); // bit 200 (byte 25)
    const spans = bm.spans();
    expect(spans.map((s) => [s.offset, [...s.bits]])).toEqual([[0n, [1, 1]], [25n, [1]]]);
  });

  it('ORs into what the user had', () => {
    expect([...orInto(Buffer.from([0x01, 0xf0]), Buffer.from([0x02, 0x0f]))]).toEqual([0x03, 0xff]);
  });
});

describe('mock dirty leaves', () => {
  // Leaves of 4K everywhere from 0x1000000, nothing mapped below.
  const leafAt = (iova: bigint) => (iova >= 0x1000000n ? { start: iova & ~0xfffn, last: (iova & ~0xfffn) + 0xfffn } : undefined);

  it('a mark dirties the whole leaf; a read reports and clears it unless NO_CLEAR', () => {
    const d = new MockDirty(leafAt);
    d.setTracking(true);
    d.mark(0x1000800n);
    d.mark(0x1003000n);
    d.mark(0x10n); // unmapped: nothing
    const seen: [bigint, bigint][] = [];
    d.readAndClear(0x1000000n, 0x1002fffn, true, (s, l) => seen.push([s, l]));
    expect(seen).toEqual([[0x1000000n, 0x1000n]]);
    d.readAndClear(0x1000000n, 0x1ffffffn, false, (s, l) => seen.push([s, l]));
    expect(seen.slice(1)).toEqual([[0x1000000n, 0x1000n], [0x1003000n, 0x1000n]]);
    expect(d.dirtyLeaves).toBe(0);
  });

  it('enabling again starts from a clean snapshot; unmapping forgets leaves', () => {
    const d = new MockDirty(leafAt);
    d.setTracking(true);
    d.mark(0x1000000n);
    d.mark(0x1005000n);
    d.forget(0x1005000n, 0x1005fffn);
    expect(d.dirtyLeaves).toBe(1);
    d.setTracking(false);
    expect(d.dirtyLeaves).toBe(1);
    d.setTracking(true);
    expect(d.dirtyLeaves).toBe(0);
  });
});
