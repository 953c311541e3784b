import { describe, expect, it } from 'vitest';
import { EFAULT, EINVAL, ENOMEM } from '../../../src/errno.ts';
import { FaultInjector, HostMemory, HPA_COLOUR, LockedMemoryAccount } from '../../../src/tce/index.ts';
import { expectErrno, GiB, KiB, MiB } from './helpers.ts';

describe('LockedMemoryAccount', () => {
  it('charges whole host pages: bytes >> PAGE_SHIFT', () => {
    const a = new LockedMemoryAccount('p', 8n * GiB, 16);
    expect(a.charge(4n * MiB)).toBe(64n);
    expect(a.charge(64n * KiB - 1n)).toBe(0n); // a sub-page remainder is never charged
    expect(a.charge(96n * KiB)).toBe(1n);
    expect(a.lockedPages).toBe(65n);
    expect(a.locked).toBe(65n * 64n * KiB);
  });

  it('counts 4K pages on a 4K host', () => {
    const a = new LockedMemoryAccount('p', 8n * GiB, 12);
    expect(a.charge(64n * KiB)).toBe(16n);
  });

  it('fails with ENOMEM past RLIMIT_MEMLOCK, leaving the count unchanged', () => {
    const a = new LockedMemoryAccount('p', MiB, 16); // 16 pages
    a.charge(15n * 64n * KiB);
    a.charge(64n * KiB);
    expectErrno(() => a.charge(64n * KiB), ENOMEM);
    expect(a.lockedPages).toBe(16n);
    a.uncharge(64n * KiB);
    a.charge(64n * KiB);
    expect(a.lockedPages).toBe(16n);
  });

  it('lets CAP_IPC_LOCK through', () => {
    const a = new LockedMemoryAccount('p', 0n, 16, true);
    a.charge(GiB);
    expect(a.lockedPages).toBe(16384n);
  });

  it('records an uncharge beyond the charge instead of going negative', () => {
    const a = new LockedMemoryAccount('p', GiB, 16);
    a.charge(128n * KiB);
    a.uncharge(256n * KiB);
    expect(a.lockedPages).toBe(0n);
    expect(a.underflows).toBe(1);
  });
});

describe('HostMemory', () => {
  it('gives one owner the same frames for the same address while pinned, sub-page offset kept', () => {
    const m = new HostMemory(16);
    const hpa = m.pin('a', 0x7fff_0001_2345n, 0x100n);
    expect(hpa & 0xffffn).toBe(0x2345n);
    expect(m.pin('a', 0x7fff_0001_0000n, 64n * KiB)).toBe(hpa - 0x2345n);
    expect(m.hpaOf('a', 0x7fff_0001_ffffn)).toBe(hpa - 0x2345n + 0xffffn);
    expect(m.pinCount('a', 0x7fff_0001_0000n)).toBe(2);
  });

  it('never lets two owners share a frame', () => {
    const m = new HostMemory(16);
    const a = m.pin('a', 0x1000_0000n, MiB);
    const b = m.pin('b', 0x1000_0000n, MiB);
    expect(a).not.toBe(b);
    const [lo, hi] = a < b ? [a, b] : [b, a];
    expect(hi - lo >= MiB).toBe(true);
  });

  it('counts pins per page across overlapping ranges', () => {
    const m = new HostMemory(16);
    const page = 64n * KiB;
    m.pin('a', 0n, 4n * page);
    m.pin('a', 2n * page, 4n * page);
    expect([0n, 1n, 2n, 3n, 4n, 5n, 6n].map((i) => m.pinCount('a', i * page))).toEqual([1, 1, 2, 2, 1, 1, 0]);
    // Frames stay put for the pages pinned twice.
    expect(m.hpaOf('a', 2n * page)).toBe(m.hpaOf('a', 0n) + 2n * page);
    m.unpin('a', 0n, 4n * page);
    expect([0n, 2n, 4n].map((i) => m.pinCount('a', i * page))).toEqual([0, 1, 1]);
    expectErrno(() => m.hpaOf('a', 0n), EFAULT);
    expect(m.pinnedBytes('a')).toBe(4n * page);
  });

  it('refuses to unpin pages that are not pinned, changing nothing', () => {
    const m = new HostMemory(16);
    m.pin('a', 0n, 128n * KiB);
    expectErrno(() => m.unpin('a', 0n, 192n * KiB), EINVAL);
    expect(m.pinCount('a', 0n)).toBe(1);
    expectErrno(() => m.unpin('nobody', 0n, 1n), EINVAL);
  });

  it('pins a 4 GiB region as one extent, and page-by-page pins merge back into one', () => {
    const m = new HostMemory(16);
    m.pin('a', 0x1_0000_0000n, 4n * GiB);
    expect(m.extentCount('a')).toBe(1);
    expect(m.pinnedBytes('a')).toBe(4n * GiB);
    for (let i = 0n; i < 64n; i++) m.pin('b', 0x2000_0000n + i * 64n * KiB, 4n * KiB);
    expect(m.extentCount('b')).toBe(1);
    expect(m.pinnedBytes('b')).toBe(4n * MiB);
  });

  it('keeps physical alignment equal to user alignment up to 1 GiB', () => {
    const m = new HostMemory(16);
    m.pin('x', 0x5000n * 64n * KiB, 64n * KiB); // disturb the allocator first
    const ua = 0x7f00_0100_0000n; // 16 MiB aligned
    const hpa = m.pin('a', ua, 16n * MiB);
    expect(hpa % (16n * MiB)).toBe(0n);
    expect((hpa - ua) % HPA_COLOUR).toBe(0n);
  });

  it('rounds ranges out to host pages, 4K or 64K', () => {
    const m4 = new HostMemory(12);
    m4.pin('a', 0x1ffen, 4n);
    expect(m4.pinnedBytes('a')).toBe(8n * KiB);
    const m64 = new HostMemory(16);
    m64.pin('a', 0x1ffen, 4n);
    expect(m64.pinnedBytes('a')).toBe(64n * KiB);
    expect(m64.pin('a', 0x5_0000n, 0n)).toBe(0n);
    expect(m64.pinnedBytes('a')).toBe(64n * KiB);
  });

  it('fails an injected pin with EFAULT and pins nothing', () => {
    const faults = new FaultInjector();
    const m = new HostMemory(16, faults);
    faults.arm('pin', 1);
    expectErrno(() => m.pin('a', 0n, MiB), EFAULT);
    expect(m.pinnedBytes()).toBe(0n);
    expect(m.ownerNames()).toEqual([]);
    m.pin('a', 0n, MiB);
    expect(m.pinnedBytes()).toBe(MiB);
  });

  it('drops everything an owner pinned at exit', () => {
    const m = new HostMemory(16);
    m.pin('a', 0n, MiB);
    m.pin('a', 8n * MiB, MiB);
    m.pin('b', 0n, MiB);
    expect(m.unpinAll('a')).toBe(2n * MiB);
    expect(m.ownerNames()).toEqual(['b']);
    expect(m.pinnedBytes()).toBe(MiB);
  });

  it('only supports 4K and 64K host pages', () => {
    expectErrno(() => new HostMemory(14), EINVAL);
  });
});
