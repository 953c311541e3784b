// Benchmark of the emulated TCE table: map then read back 262,144 4 KiB TCEs of a 1 GiB window, and
// measure what the storage costs. Run directly with `node --import tsx scripts/bench/tce.ts`.

import { pathToFileURL } from 'node:url';
import { DmaDirection, TceHost } from '../../src/tce/index.ts';

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
}

const GIB = 1n << 30n;
const TCES = 262_144;
const HPA_BASE = 0x40_0000_0000n;
const UA_BASE = 0x7000_0000_0000n;

function ms(from: bigint, to: bigint): number {
  return Number(to - from) / 1e6;
}

export async function benchTce(): Promise<BenchResult[]> {
  const host = new TceHost({ flavour: 'powernv', phbs: [{ domain: 0, pes: [{ number: 1, groupId: 1 }] }] });
  const pe = host.peByGroup(1)!;
  pe.takeOwnership();
  const account = host.account('bench');

  const empty = pe.createTable(1, 16, 1n << 40n, 1, account);
  const emptyBytes = empty.allocatedBytes();
  pe.freeTable(empty, account);

  const table = pe.createTable(0, 12, GIB, 1, account);
  pe.setWindow(0, table);
  const tces: bigint[] = [];
  for (let i = 0; i < TCES; i++) tces.push(table.makeTce(HPA_BASE + (BigInt(i) << 12n), DmaDirection.BIDIRECTIONAL));

  const abBefore = process.memoryUsage().arrayBuffers;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < TCES; i++) table.xchg(BigInt(i), tces[i]);
  const t1 = process.hrtime.bigint();
  for (let i = 0; i < TCES; i++) {
    if (table.get(BigInt(i)) !== tces[i]) throw new Error(`entry ${i} read back wrong`);
  }
  const t2 = process.hrtime.bigint();
  const abAfter = process.memoryUsage().arrayBuffers;
  const bytesPerTce = table.allocatedBytes() / table.liveCount;

  const t3 = process.hrtime.bigint();
  for (let i = 0; i < TCES; i++) table.xchg(BigInt(i), tces[i], UA_BASE + (BigInt(i) << 12n));
  const t4 = process.hrtime.bigint();
  const bytesPerTceShadow = table.allocatedBytes() / table.liveCount;

  const t5 = process.hrtime.bigint();
  const cleared = table.clearRange(0n, table.size).length;
  const t6 = process.hrtime.bigint();
  if (cleared !== TCES) throw new Error(`cleared ${cleared} TCEs, expected ${TCES}`);
  pe.unsetWindow(0);
  pe.freeTable(table, account);

  return [
    { name: 'tce.map_read.total', value: ms(t0, t2), unit: 'ms' },
    { name: 'tce.map.per_tce', value: (ms(t0, t1) * 1e6) / TCES, unit: 'ns' },
    { name: 'tce.read.per_tce', value: (ms(t1, t2) * 1e6) / TCES, unit: 'ns' },
    { name: 'tce.map_with_ua.per_tce', value: (ms(t3, t4) * 1e6) / TCES, unit: 'ns' },
    { name: 'tce.clear.per_tce', value: (ms(t5, t6) * 1e6) / TCES, unit: 'ns' },
    { name: 'tce.bytes_per_live_tce', value: bytesPerTce, unit: 'B' },
    { name: 'tce.bytes_per_live_tce_with_ua', value: bytesPerTceShadow, unit: 'B' },
    { name: 'tce.measured_arraybuffer_per_live_tce', value: (abAfter - abBefore) / TCES, unit: 'B' },
    { name: 'tce.empty_1tib_64k_window', value: emptyBytes, unit: 'B' },
  ];
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = await benchTce();
  const width = Math.max(...results.map((r) => r.name.length));
  for (const r of results) {
    const v = Number.isInteger(r.value) ? String(r.value) : r.value.toFixed(2);
    console.log(`${r.name.padEnd(width)}  ${v.padStart(10)} ${r.unit}`);
  }
}
