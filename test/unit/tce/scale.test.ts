// Memory bounds at scale. Speed is measured by scripts/bench/tce.ts, never asserted here.

import { describe, expect, it } from 'vitest';
import { CHUNK_BYTES, DmaDirection, HostMemory } from '../../../src/tce/index.ts';
import { GiB, MiB, powernvHost, TiB, userPe } from './helpers.ts';

describe('scale', () => {
  it('a 1 TiB window of 64K pages in one level costs under 1 MiB until used', () => {
    const { pe, account } = userPe(powernvHost(), 7);
    const t = pe.createTable(1, 16, TiB, 1, account);
    expect(t.size).toBe(1n << 24n);
    expect(t.accountedBytes).toBe(256n * MiB); // what the kernel charges for it
    expect(t.allocatedBytes()).toBeLessThan(1024 * 1024);
    t.xchg(t.offset, t.makeTce(0x1_0000_0000n, DmaDirection.TO_DEVICE));
    t.xchg(t.offset + t.size - 1n, t.makeTce(0x1_0001_0000n, DmaDirection.TO_DEVICE));
    expect(t.allocatedBytes()).toBe(2 * CHUNK_BYTES);
    expect(t.clearRange(t.offset, t.size)).toHaveLength(2);
    expect(t.allocatedBytes()).toBe(CHUNK_BYTES); // one emptied chunk kept for reuse
  });

  it('262,144 mapped 4K TCEs cost 8 bytes each, 16 with the user-address shadow', () => {
    const { pe, account } = userPe(powernvHost(), 7);
    const t = pe.createTable(0, 12, GiB, 1, account);
    const n = 262_144n;
    for (let i = 0n; i < n; i++) t.xchg(i, t.makeTce(0x40_0000_0000n + (i << 12n), DmaDirection.BIDIRECTIONAL));
    expect(t.liveCount).toBe(Number(n));
    expect(t.allocatedBytes() / t.liveCount).toBe(8);
    for (let i = 0n; i < n; i++) t.xchg(i, t.get(i), 0x7000_0000_0000n + (i << 12n));
    expect(t.allocatedBytes() / t.liveCount).toBe(16);
  });

  it('pinning 4 GiB of 64K pages is one extent', () => {
    const m = new HostMemory(16);
    m.pin('vm', 0x7f00_0000_0000n, 4n * GiB);
    expect(m.extentCount()).toBe(1);
  });
});
