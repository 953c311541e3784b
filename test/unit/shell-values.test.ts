// The value syntax of tcefs ioctl and the shell: numbers, sizes, sums, flags, words.
import { describe, expect, it } from 'vitest';
import { evaluate, formatNumber, formatSize, parseNumber, splitTop, splitWords } from '../../src/shell/values.ts';

describe('numbers', () => {
  it('reads decimal, hex, binary, separators and binary sizes', () => {
    expect(parseNumber('42')).toBe(42n);
    expect(parseNumber('0x1F')).toBe(31n);
    expect(parseNumber('0x0800_0000_0000_0000')).toBe(1n << 59n);
    expect(parseNumber('0b101')).toBe(5n);
    expect(parseNumber('64K')).toBe(65536n);
    expect(parseNumber('4G')).toBe(4n << 30n);
    expect(parseNumber('4gib')).toBe(4n << 30n);
    expect(parseNumber('1T')).toBe(1n << 40n);
    expect(parseNumber('-1')).toBe(-1n);
    expect(parseNumber('0x1e')).toBe(30n); // a hex digit, not the exa suffix
  });

  it('refuses what is not a number', () => {
    for (const t of ['', 'x', '0x', '4Q', '1_', 'READ', '$a', '0x1-0x2']) expect(parseNumber(t), t).toBeUndefined();
  });

  it('writes small numbers in decimal and large ones in hex', () => {
    expect(formatNumber(40)).toBe('40');
    expect(formatNumber(4096n)).toBe('0x1000');
    expect(formatNumber(-22n)).toBe('-22');
  });

  it('names round sizes only', () => {
    expect(formatSize(2n << 30n)).toBe('2G');
    expect(formatSize(65536)).toBe('64K');
    expect(formatSize(0x40211000)).toBeUndefined();
    expect(formatSize(100)).toBeUndefined();
  });
});

describe('expressions', () => {
  const names: Record<string, bigint> = { READ: 1n, WRITE: 2n, $w: 1n << 59n };
  const r = (t: string) => names[t];

  it('adds with + and ORs with |', () => {
    expect(evaluate('READ|WRITE', r)).toBe(3n);
    expect(evaluate('$w+0x20000', r)).toBe((1n << 59n) + 0x20000n);
    expect(evaluate('$w+64K|READ', r)).toBe(((1n << 59n) + 65536n) | 1n);
  });

  it('says which term it does not know', () => {
    expect(() => evaluate('READ|EXEC', r)).toThrow(/"EXEC" is not a number or a known name/);
    expect(() => evaluate('', r)).toThrow(/empty/);
  });
});

describe('words', () => {
  it('splits at blanks but keeps quotes, lists and structs whole, and stops at a comment', () => {
    expect(splitWords('i IOMMU_IOAS_ALLOW_IOVAS allowed_iovas=[0x1000-0x1fff, 0x4000-0x7fff] # two ranges')).toEqual([
      'i', 'IOMMU_IOAS_ALLOW_IOVAS', 'allowed_iovas=[0x1000-0x1fff, 0x4000-0x7fff]',
    ]);
    expect(splitWords('g VFIO_GROUP_GET_DEVICE_FD "0000:01:00.0 vf_token=x"')).toEqual(['g', 'VFIO_GROUP_GET_DEVICE_FD', '0000:01:00.0 vf_token=x']);
    expect(splitWords('  # only a comment')).toEqual([]);
    expect(splitWords('c X a=b#c')).toEqual(['c', 'X', 'a=b#c']); // # inside a word is not a comment
    expect(() => splitWords('a "b')).toThrow(/unterminated "/);
    expect(() => splitWords('a [b')).toThrow(/unterminated \[/);
  });

  it('splits lists at top-level separators only', () => {
    expect(splitTop('{start=1,last=2},3-4', ',')).toEqual(['{start=1,last=2}', '3-4']);
  });
});
