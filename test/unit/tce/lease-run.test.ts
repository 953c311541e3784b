// The run an unmap lease covers: from an entry to the next live TCE (TceTable.nextLive), and the lease
// file's word, which changes once per revocation of an outstanding lease.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TceTable } from '../../../src/tce/index.ts';
import { LeaseBoard } from '../../../src/transport/leases.ts';
import { LEASE_FIELD, leaseRecord } from '../../../src/transport/frame.ts';
import { readField } from '../../../src/uapi/layout.ts';

const RW = 0x3n;
/** 1 GiB of 4K pages at 0, as QEMU's default window. */
const table = () => new TceTable({ flavour: 'pseries', pageShift: 12, offset: 0n, size: 1n << 18n, levels: 1, levelSize: 1n << 18n, userView: true });

describe('TceTable.nextLive', () => {
  it('finds the first live entry of a range across chunks, or the range end', () => {
    const t = table();
    expect(t.nextLive(0n, t.size)).toBe(t.size);
    t.xchg(100_000n, 0x10000n | RW, 0x7f0000000000n);
    t.xchg(600n, 0x20000n | RW, 0x7f0000001000n);
    expect(t.nextLive(0n, t.size)).toBe(600n);
    expect(t.nextLive(600n, t.size)).toBe(600n);
    expect(t.nextLive(601n, t.size)).toBe(100_000n);
    expect(t.nextLive(601n, 100_000n)).toBe(100_000n);
    expect(t.nextLive(100_001n, t.size)).toBe(t.size);
    t.clear(600n, 1);
    expect(t.nextLive(0n, t.size)).toBe(100_000n);
    expect(t.nextLive(5n, 5n)).toBe(5n);
  });
});

describe('LeaseBoard', () => {
  const word = (b: LeaseBoard) => readFileSync(b.target).readBigUInt64LE(0);

  it('grants a run up to the next live TCE and moves the epoch once per revocation of a granted lease', () => {
    const b = new LeaseBoard();
    const t = table();
    t.xchg(0x200n, 0x10000n | RW, 0x7f0000000000n);
    const blob = b.grant(t, 0x10n, t.size)!;
    expect(blob.fieldOffset).toBe(LEASE_FIELD);
    const f = (n: string) => readField(blob.data, leaseRecord, n);
    expect([f('start'), f('end'), f('page_shift'), f('daemon_pid')]).toEqual([0x10000n, 0x200000n, 12, process.pid]);
    const epoch = f('epoch') as bigint;
    expect(word(b)).toBe(epoch);
    b.revoke();
    expect(word(b)).toBe(epoch + 1n);
    b.revoke(); // nothing outstanding: the word stays
    expect(word(b)).toBe(epoch + 1n);
    expect(b.grant(t, 0x200n, t.size)).toBeUndefined(); // the run starts on a live TCE
    const path = b.target;
    b.close();
    expect(() => readFileSync(path)).toThrow();
  });
});
