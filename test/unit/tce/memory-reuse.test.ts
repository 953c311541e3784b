// Synthetic frames are reused: a page gets the same frame every time its owner pins it, owners never
// share frames, and endless pin/unpin cycles never run out (a map/unmap loop once exhausted the space).
import { describe, expect, it } from 'vitest';
import { HostMemory } from '../../../src/tce/index.ts';

describe('synthetic host-physical frames', () => {
  it('are stable per (owner, page) across pin cycles and distinct between live owners', () => {
    const m = new HostMemory(16);
    const a = m.pin('pid:1', 0x7f00_0001_0000n, 0x10000n);
    m.unpin('pid:1', 0x7f00_0001_0000n, 0x10000n);
    expect(m.pin('pid:1', 0x7f00_0001_0000n, 0x10000n)).toBe(a);
    const b = m.pin('pid:2', 0x7f00_0001_0000n, 0x10000n);
    expect(b).not.toBe(a);
    expect(b % (1n << 30n)).toBe(0x7f00_0001_0000n % (1n << 30n)); // alignment follows the user address
  });

  it('survive a million pin/unpin cycles of changing addresses without exhaustion', () => {
    const m = new HostMemory(16);
    for (let i = 0n; i < 1_000_000n; i++) {
      const ua = 0x1000_0000n + ((i * 0x1_0000n) % (1n << 40n));
      m.pin('pid:7', ua, 0x10000n);
      m.unpin('pid:7', ua, 0x10000n);
    }
    expect(m.pinnedBytes()).toBe(0n);
    expect(m.pin('pid:8', 0x1000n, 0x1000n)).toBeTypeOf('bigint');
  });

  it('refuses user addresses beyond 48 bits with ENOMEM', () => {
    expect(() => new HostMemory(16).pin('pid:1', 1n << 50n, 0x1000n)).toThrow(/48-bit/);
  });
});
