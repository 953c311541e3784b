// The daemon's perf counters (src/perf.ts): what perf.json reports, and that the recent-DMA list stays short.
import { describe, expect, it } from 'vitest';
import { Meter, PerfCounters, now } from '../../src/perf.ts';

describe('perf counters', () => {
  it('a meter adds events, their bytes and the time since each start', () => {
    const m = new Meter();
    const t0 = now() - 2e6; // started 2 ms ago
    m.add(t0, 4096);
    m.add(now(), 16);
    const d = m.describe();
    expect(d.count).toBe(2);
    expect(d.bytes).toBe(4112);
    expect(d.ms).toBeGreaterThanOrEqual(2);
  });

  it('keeps the last 16 DMA transfers of each PE and totals every byte by direction', () => {
    const p = new PerfCounters();
    for (let i = 0; i < 40; i++) p.dma('pe2', { at: i, device: '0000:02:00.0', direction: i % 2 ? 'write' : 'read', iova: 0x0800000000000000n + BigInt(i << 12), bytes: 4096, hpa: BigInt(i << 12) });
    p.dma('pe1', { at: 0, device: '0000:01:00.0', direction: 'read', iova: 0x1000n, bytes: 64 });
    const d = p.describe();
    expect(d.pes.pe2.dmaBytes).toEqual({ read: 20 * 4096, write: 20 * 4096 });
    expect(d.pes.pe2.recentDma).toHaveLength(16);
    expect(d.pes.pe2.recentDma[15]).toEqual({ at: 39, device: '0000:02:00.0', direction: 'write', iova: '0x0800000000027000', bytes: 4096, hpa: '0x0000000000027000' });
    expect(d.pes.pe1.recentDma).toEqual([{ at: 0, device: '0000:01:00.0', direction: 'read', iova: '0x0000000000001000', bytes: 64, hpa: null }]);
    expect(d.mmioRead).toEqual({ count: 0, ms: 0, bytes: 0 });
  });
});
