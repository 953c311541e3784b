import { describe, expect, it } from 'vitest';
import { EFAULT, EPERM } from '../../../src/errno.ts';
import { DmaDirection, POWERNV_WINDOW64_START, TceHost } from '../../../src/tce/index.ts';
import { expectErrno, GiB, powernvHost, pseriesHost, userPe, userPeWithWindows } from './helpers.ts';

describe('PowerNV host default DMA setup (reference 3.11)', () => {
  it('boots with the host table in slot 0 and the 64-bit bypass on', () => {
    const host = powernvHost();
    const pe = host.peByGroup(8)!;
    const t = pe.tables[0]!;
    expect(pe.ownership).toBe('platform');
    expect(t.kernelOwned).toBe(true);
    // 64K host pages, MAX_PAGE_ORDER 8: min(2^43, 256 GiB) over 2 levels of 64K IOMMU pages.
    expect([t.startAddr, t.endAddr, t.pageShift, t.levels]).toEqual([0n, 256n * GiB, 16, 2]);
    expect(t.index).toBe(2n);
    expect(t.reserved).toEqual({ start: 0x8000_0000n, end: 1n << 32n });
    expect(t.accountedBytes).toBe(0n);
    expect(t.userView).toBe(false);
    expect(pe.bypass).toBe(true);
    expect(pe.translate(POWERNV_WINDOW64_START + 0x1234_5678n, 'write')).toBe(0x1234_5678n);
    expectErrno(() => pe.translate(POWERNV_WINDOW64_START + 256n * GiB, 'read'), EFAULT);
    expect(host.stats().kernelTables).toBe(2);
  });

  it('sizes the host window from memory and page size', () => {
    const small = new TceHost({ flavour: 'powernv', hostMemory: 3n * GiB, phbs: [{ domain: 0, pes: [{ number: 0, groupId: 1 }] }] });
    expect(small.peByGroup(1)!.tables[0]!.endAddr).toBe(2n * GiB);
    const four = new TceHost({ flavour: 'powernv', hostPageShift: 12, hostMemory: 1n << 44n, phbs: [{ domain: 0, pes: [{ number: 5, groupId: 1 }] }] });
    const t = four.peByGroup(1)!.tables[0]!;
    // 4K pages, MAX_PAGE_ORDER 12: 16 MiB blocks, 2^39 bytes of window, 27 index bits over 21 per level.
    expect([t.pageShift, t.endAddr, t.levels]).toEqual([12, 1n << 39n, 2]);
  });

  it('take removes the host table and the bypass; release rebuilds both', () => {
    const host = powernvHost();
    const pe = host.peByGroup(7)!;
    const hostTable = pe.tables[0]!;
    pe.takeOwnership();
    expect(pe.ownership).toBe('user');
    expect(pe.tables).toEqual([null, null]);
    expect(pe.bypass).toBe(false);
    expect(hostTable.isFreed).toBe(true);
    expect(host.stats().kernelTables).toBe(1);
    expectErrno(() => pe.translate(POWERNV_WINDOW64_START, 'read'), EFAULT);
    pe.takeOwnership(); // idempotent
    pe.releaseOwnership();
    expect(pe.ownership).toBe('platform');
    expect(pe.tables[0]?.kernelOwned).toBe(true);
    expect(pe.bypass).toBe(true);
    expect(host.stats().kernelTables).toBe(2);
  });

  it('release leaves an occupied slot 0 alone', () => {
    const host = powernvHost();
    const { pe, account } = userPe(host, 7);
    const t = pe.createTable(0, 12, GiB, 1, account);
    pe.setWindow(0, t);
    pe.releaseOwnership();
    expect(pe.tables[0]).toBe(t);
    expect(pe.bypass).toBe(false);
    expect(host.stats().kernelTables).toBe(1);
  });

  it('a host table that failed to build leaves take with nothing to do, bypass still on', () => {
    const host = powernvHost();
    const pe = host.peByGroup(7)!;
    pe.takeOwnership();
    host.faults.arm('alloc', 1);
    pe.releaseOwnership();
    expect(pe.tables[0]).toBeNull();
    expect(pe.bypass).toBe(true);
    pe.takeOwnership();
    expect(pe.bypass).toBe(true); // the kernel only drops the bypass when it finds its table
  });
});

describe('pSeries host default DMA setup', () => {
  it('boots on the firmware default window, take removes it, release resets the firmware', () => {
    const host = pseriesHost({ dmaWindowSize: 0x8000_0000 });
    const pe = host.peByGroup(3)!;
    expect(pe.tables[0]!.kernelOwned).toBe(true);
    expect([pe.tables[0]!.endAddr, pe.tables[0]!.pageShift]).toEqual([2n * GiB, 12]);
    pe.takeOwnership();
    expect(pe.tables).toEqual([null, null]);
    expect(pe.firmware!.defaultPresent).toBe(false);
    const t = pe.createTable(1, 16, 4n * GiB, 1, host.account('p'));
    pe.unsetWindow(1);
    pe.freeTable(t, host.account('p'));
    pe.releaseOwnership();
    expect(pe.firmware!.defaultPresent).toBe(true);
    expect(pe.firmware!.ddw).toBeNull();
    expect(pe.tables[0]!.endAddr).toBe(2n * GiB);
  });

  it('take removes a DDW as well when only one window fits', () => {
    const host = pseriesHost({ windowsAvailable: 0 });
    const { pe, account } = userPe(host, 3);
    // Stand-in for a host driver that replaced its default window with a DDW: build one through the
    // user path, then hand the PE back (slot 0 busy, so the host rebuilds nothing) and take it again.
    const ddw = pe.createTable(0, 16, 4n * GiB, 1, account);
    pe.releaseOwnership();
    expect([pe.ownership, pe.tables[0]]).toEqual(['platform', ddw]);
    pe.takeOwnership();
    expect(pe.tables[0]).toBeNull();
    expect(pe.firmware!.ddw).toBeNull();
  });
});

describe('BLOCKED', () => {
  it('unprograms every window without freeing the user tables, and can be left again', () => {
    const { pe, account, w0, w1 } = userPeWithWindows(powernvHost(), 7);
    w1.xchg(w1.offset, w1.makeTce(0x77_0000_0000n, DmaDirection.BIDIRECTIONAL));
    const locked = account.locked;
    expect(pe.blocked).toBe(false);
    pe.block();
    expect(pe.blocked).toBe(true);
    expect(pe.apertures()).toEqual([]);
    expectErrno(() => pe.translate(POWERNV_WINDOW64_START, 'read'), EFAULT);
    expect([w0.isFreed, w1.isFreed, w1.liveCount, account.locked]).toEqual([false, false, 1, locked]);
    pe.setWindow(1, w1);
    expect(pe.translate(POWERNV_WINDOW64_START + 8n, 'read')).toBe(0x77_0000_0008n);
  });

  it('blocks a host-owned PE: host window and bypass go', () => {
    const host = powernvHost();
    const pe = host.peByGroup(7)!;
    pe.block();
    expect([pe.ownership, pe.blocked, pe.bypass]).toEqual(['user', true, false]);
    expectErrno(() => pe.translate(POWERNV_WINDOW64_START, 'read'), EFAULT);
    expectErrno(() => pe.translate(0n, 'read'), EFAULT);
  });

  it('also turns off a bypass that take_ownership left on', () => {
    const host = powernvHost();
    const pe = host.peByGroup(7)!;
    pe.takeOwnership();
    host.faults.arm('alloc', 1); // the host table fails to build on release, so the next take keeps the bypass
    pe.releaseOwnership();
    pe.block();
    expect([pe.blocked, pe.bypass]).toEqual([true, false]);
    expectErrno(() => pe.translate(POWERNV_WINDOW64_START, 'read'), EFAULT);
  });

  it('on pSeries closes the firmware windows, which then cannot be re-set', () => {
    const host = pseriesHost();
    const { pe, account } = userPe(host, 3);
    const t = pe.createTable(1, 16, 4n * GiB, 1, account);
    pe.block();
    expect(pe.blocked).toBe(true);
    expect(pe.firmware!.ddw).toBeNull();
    expect(t.isFreed).toBe(false);
    expect(account.locked).toBe(4n * GiB >> 13n);
    expectErrno(() => pe.setWindow(1, t), EPERM);
  });
});
