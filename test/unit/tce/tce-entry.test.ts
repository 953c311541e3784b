import { describe, expect, it } from 'vitest';
import { EINVAL } from '../../../src/errno.ts';
import {
  buildTce, directionToPerm, DmaDirection, tceAddress, tceDirection, tcePermString,
} from '../../../src/tce/index.ts';
import { expectErrno } from './helpers.ts';

describe('TCE format', () => {
  it('uses the kernel values of enum dma_data_direction', () => {
    expect([DmaDirection.BIDIRECTIONAL, DmaDirection.TO_DEVICE, DmaDirection.FROM_DEVICE, DmaDirection.NONE]).toEqual([0, 1, 2, 3]);
  });

  it('maps directions to R=1 and W=2', () => {
    expect(directionToPerm(DmaDirection.TO_DEVICE)).toBe(1n);
    expect(directionToPerm(DmaDirection.FROM_DEVICE)).toBe(2n);
    expect(directionToPerm(DmaDirection.BIDIRECTIONAL)).toBe(3n);
    expect(directionToPerm(DmaDirection.NONE)).toBe(0n);
  });

  it('PowerNV turns write-only into read-write; pSeries stores it exactly', () => {
    const hpa = 0x1_0000_a000n;
    expect(buildTce(hpa, DmaDirection.FROM_DEVICE, 'powernv')).toBe(0x1_0000_a003n);
    expect(buildTce(hpa, DmaDirection.FROM_DEVICE, 'pseries')).toBe(0x1_0000_a002n);
    expect(buildTce(hpa, DmaDirection.TO_DEVICE, 'powernv')).toBe(0x1_0000_a001n);
    expect(buildTce(hpa, DmaDirection.TO_DEVICE, 'pseries')).toBe(0x1_0000_a001n);
    expect(buildTce(hpa, DmaDirection.BIDIRECTIONAL, 'pseries')).toBe(0x1_0000_a003n);
  });

  it('reads the direction back from bits 0-1', () => {
    expect(tceDirection(0x1000n)).toBe(DmaDirection.NONE);
    expect(tceDirection(0x1001n)).toBe(DmaDirection.TO_DEVICE);
    expect(tceDirection(0x1002n)).toBe(DmaDirection.FROM_DEVICE);
    expect(tceDirection(0x1003n)).toBe(DmaDirection.BIDIRECTIONAL);
  });

  it('keeps the real page number in bits [63:shift]', () => {
    expect(tceAddress(0x0000_0010_0000_a003n, 12)).toBe(0x10_0000_a000n);
    expect(tceAddress(0x0000_0010_0000_a003n, 16)).toBe(0x10_0000_0000n);
    expect(tceAddress(0xffff_ffff_ffff_f003n, 12)).toBe(0xffff_ffff_ffff_f000n);
  });

  it('builds the empty entry for NONE and nothing else', () => {
    expect(buildTce(0n, DmaDirection.NONE, 'powernv')).toBe(0n);
    expectErrno(() => buildTce(0x1000n, DmaDirection.NONE, 'powernv'), EINVAL);
  });

  it('refuses addresses that would corrupt permission or sub-page bits', () => {
    expectErrno(() => buildTce(0x1001n, DmaDirection.TO_DEVICE, 'powernv'), EINVAL);
    expectErrno(() => buildTce(0x1000n, DmaDirection.TO_DEVICE, 'powernv', 16), EINVAL);
    expect(buildTce(0x1000n, DmaDirection.TO_DEVICE, 'powernv', 12)).toBe(0x1001n);
    expectErrno(() => buildTce(1n << 64n, DmaDirection.TO_DEVICE, 'pseries'), EINVAL);
  });

  it('shows permissions as two letters', () => {
    expect([0x3n, 0x1n, 0x2n, 0x0n].map(tcePermString)).toEqual(['RW', 'R-', '-W', '--']);
  });
});
