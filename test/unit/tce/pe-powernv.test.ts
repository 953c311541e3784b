import { describe, expect, it } from 'vitest';
import { EACCES, EBUSY, EFAULT, EINVAL, ENOMEM } from '../../../src/errno.ts';
import { DmaDirection, POWERNV_WINDOW64_START, TceHost } from '../../../src/tce/index.ts';
import { expectErrno, GiB, KiB, MiB, powernvHost, TiB, userPe, userPeWithWindows } from './helpers.ts';

const pages = (bytes: bigint) => bytes >> 16n;

describe('PowerNV PE', () => {
  it('describes the IODA2 table group', () => {
    const host = new TceHost({
      flavour: 'powernv',
      phbs: [
        { domain: 2, model: 'PHB3', m32PciBase: 0x4000_0000, pes: [{ number: 0x1a, groupId: 11 }] },
        { domain: 3, pes: [{ number: 0, groupId: 12 }] },
      ],
    });
    const p3 = host.peByGroup(11)!;
    expect(p3.name).toBe('domain2-pe1a');
    expect(p3.pgsizes).toBe(0x1101_1000n);
    expect(p3.tce32Start).toBe(0);
    expect(p3.tce32Size).toBe(0x4000_0000);
    expect(p3.window64Start).toBe(1n << 59n);
    expect(p3.maxDynamicWindowsSupported).toBe(2);
    expect(p3.maxLevels).toBe(5);
    const p4 = host.peByGroup(12)!;
    expect(p4.pgsizes).toBe(0x4021_1000n);
    expect(p4.tce32Size).toBe(0x8000_0000);
    expect([p4.slotStart(0), p4.slotStart(1)]).toEqual([0n, 0x0800_0000_0000_0000n]);
  });
});

describe('PowerNV CREATE, platform rows 11-15 in order', () => {
  it('row 11: a page size outside pgsizes is EINVAL and charges nothing', () => {
    const { pe, account } = userPe(powernvHost(), 7);
    expectErrno(() => pe.createTable(0, 24, GiB, 1, account), EINVAL, /pgsizes/); // 16M is not a PHB4 size
    expectErrno(() => pe.createTable(0, 64, GiB, 1, account), EINVAL, /pgsizes/);
    // Checked before the level rule: both wrong still reports the page size.
    expectErrno(() => pe.createTable(0, 13, GiB, 0, account), EINVAL, /pgsizes/);
    expect(account.lockedPages).toBe(0n);
  });

  it('row 13: get_table_size refusing (levels 0 or >5, not a power of two) is EINVAL before charging', () => {
    const host = powernvHost({ memlockLimit: 0n });
    const { pe, account } = userPe(host, 7);
    expectErrno(() => pe.createTable(0, 12, GiB, 0, account), EINVAL, /refuses/);
    expectErrno(() => pe.createTable(0, 12, GiB, 6, account), EINVAL, /refuses/);
    expectErrno(() => pe.createTable(0, 12, 3n * GiB, 1, account), EINVAL, /refuses/);
    expectErrno(() => pe.createTable(0, 12, 0n, 1, account), EINVAL, /refuses/);
    expect(account.lockedPages).toBe(0n);
  });

  it('row 14: locked memory over the limit is ENOMEM, even for a request row 15 would refuse', () => {
    const host = powernvHost({ memlockLimit: 4n * MiB - 1n });
    const { pe, account } = userPe(host, 7);
    expectErrno(() => pe.createTable(0, 12, GiB, 1, account), ENOMEM);
    expectErrno(() => pe.createTable(0, 12, GiB, 5, account), ENOMEM); // the 55-bit rule would say EINVAL
    expect(account.lockedPages).toBe(0n);
    expect(host.stats().tables).toBe(0);
  });

  it('row 15: the 55-bit rule fails after charging, and the charge is kept', () => {
    const host = powernvHost();
    const { pe, account } = userPe(host, 7);
    // get_table_size(4K, 1 GiB, 5 levels): 2 MiB of leaves plus four 64 KiB upper nodes, doubled.
    const charged = 2n * (2n * MiB + 4n * 64n * KiB);
    expectErrno(() => pe.createTable(0, 12, GiB, 5, account), EINVAL, /address bits/);
    expect(account.locked).toBe(charged);
    expectErrno(() => pe.createTable(0, 12, GiB, 5, account), EINVAL);
    expect(account.locked).toBe(2n * charged);
  });

  it('row 15 with refundOnFailure returns the charge', () => {
    const { pe, account } = userPe(powernvHost(), 7);
    expectErrno(() => pe.createTable(0, 12, GiB, 5, account, { refundOnFailure: true }), EINVAL);
    expect(account.lockedPages).toBe(0n);
  });

  it('row 15: allocation failures are ENOMEM with the charge kept', () => {
    const host = powernvHost();
    const { pe, account } = userPe(host, 7);
    host.faults.arm('alloc', 1);
    expectErrno(() => pe.createTable(0, 12, GiB, 1, account), ENOMEM);
    expect(account.locked).toBe(4n * MiB);
    expect(host.stats().tables).toBe(0);
  });

  it('charges get_table_size and un-charges exactly that on free', () => {
    const host = powernvHost();
    const { pe, account } = userPe(host, 7);
    const t = pe.createTable(1, 16, 64n * GiB, 2, account);
    expect(t.accountedBytes).toBe(0x102_0000n);
    expect(account.lockedPages).toBe(pages(0x102_0000n));
    pe.freeTable(t, account);
    expect(account.lockedPages).toBe(0n);
    expect(t.isFreed).toBe(true);
    expectErrno(() => pe.freeTable(t, account), EINVAL, /freed/);
  });

  it('refuses to create on a PE the host still owns', () => {
    const host = powernvHost();
    expectErrno(() => host.peByGroup(7)!.createTable(0, 12, GiB, 1, host.account('p')), EBUSY);
  });

  it('refuses level nodes above the largest contiguous block when asked to', () => {
    const host = powernvHost({ enforceMaxPageOrder: true });
    const { pe, account } = userPe(host, 7);
    // 64K pages over 1 TiB in one level needs a 128 MiB node; blocks stop at 16 MiB.
    expectErrno(() => pe.createTable(1, 16, TiB, 1, account), ENOMEM, /contiguous/);
    expect(account.locked).toBe(256n * MiB);
    const t = pe.createTable(1, 16, TiB, 2, account);
    expect(t.levels).toBe(2);
  });
});

describe('PowerNV window placement (reference 2.1)', () => {
  it('puts slot 0 at 0 and slot 1 at 2^59, whatever was asked', () => {
    const { pe, account } = userPe(powernvHost(), 7);
    const w0 = pe.createTable(0, 12, GiB, 1, account);
    const w1 = pe.createTable(1, 16, 64n * GiB, 1, account);
    expect(w0.startAddr).toBe(0n);
    expect(w1.startAddr).toBe(POWERNV_WINDOW64_START);
    expect(w1.endAddr).toBe(POWERNV_WINDOW64_START + 64n * GiB);
  });

  it('after removing slot 0, a "64-bit" window created there starts at bus address 0', () => {
    const { pe, account, w0 } = userPeWithWindows(powernvHost(), 7);
    pe.unsetWindow(0);
    pe.freeTable(w0, account);
    const again = pe.createTable(0, 16, 64n * GiB, 1, account);
    pe.setWindow(0, again);
    expect(again.startAddr).toBe(0n);
    expect(pe.apertures().map((a) => [a.slot, a.start, a.last])).toEqual([
      [0, 0n, 64n * GiB - 1n],
      [1, POWERNV_WINDOW64_START, POWERNV_WINDOW64_START + 64n * GiB - 1n],
    ]);
  });

  it('rounds small windows up: 1 MiB of 4K pages is a 32 MiB window', () => {
    const { pe, account } = userPe(powernvHost(), 7);
    const t = pe.createTable(0, 12, MiB, 1, account);
    expect(t.size).toBe(8192n);
    expect(t.endAddr).toBe(32n * MiB);
    expect(t.accountedBytes).toBe(128n * KiB);
  });
});

describe('PowerNV set/unset window', () => {
  it('only programs a table into the slot its address belongs to, and never over another', () => {
    const { pe, account } = userPe(powernvHost(), 7);
    const w0 = pe.createTable(0, 12, GiB, 1, account);
    const w1 = pe.createTable(1, 12, GiB, 1, account);
    expectErrno(() => pe.setWindow(1, w0), EINVAL, /slot 1/);
    pe.setWindow(0, w0);
    pe.setWindow(0, w0);
    const other = pe.createTable(0, 12, GiB, 1, account);
    expectErrno(() => pe.setWindow(0, other), EBUSY);
    pe.setWindow(1, w1);
    expect(pe.tables).toEqual([w0, w1]);
  });

  it('shares one table between PEs, and refuses to free it while programmed', () => {
    const host = powernvHost();
    const { pe: a, account } = userPe(host, 7);
    const { pe: b } = userPe(host, 8);
    const t = a.createTable(1, 16, 64n * GiB, 1, account);
    a.setWindow(1, t);
    b.setWindow(1, t);
    t.xchg(t.entryOf(POWERNV_WINDOW64_START), t.makeTce(0x30_0000_0000n, DmaDirection.TO_DEVICE));
    expect(a.translate(POWERNV_WINDOW64_START + 0x10n, 'read')).toBe(0x30_0000_0010n);
    expect(b.translate(POWERNV_WINDOW64_START + 0x10n, 'read')).toBe(0x30_0000_0010n);
    expect([...t.groups]).toEqual([a, b]);
    expectErrno(() => a.freeTable(t, account), EBUSY);
    a.unsetWindow(1);
    expectErrno(() => a.freeTable(t, account), EBUSY);
    b.unsetWindow(1);
    a.freeTable(t, account);
    expect(account.lockedPages).toBe(0n);
    expect(host.stats().tables).toBe(0);
  });
});

describe('PowerNV translate', () => {
  function mapped() {
    const host = powernvHost();
    const { pe, w0, w1 } = userPeWithWindows(host, 7);
    w0.xchg(1n, w0.makeTce(0x12_3456_7000n, DmaDirection.TO_DEVICE));
    w0.xchg(2n, w0.makeTce(0x12_3456_8000n, DmaDirection.FROM_DEVICE));
    w1.xchg(w1.offset + 3n, w1.makeTce(0x55_0000_0000n, DmaDirection.BIDIRECTIONAL));
    return { host, pe };
  }

  it('keeps the offset inside the IOMMU page', () => {
    const { pe } = mapped();
    expect(pe.translate(0x1abcn, 'read')).toBe(0x12_3456_7abcn);
    expect(pe.translate(POWERNV_WINDOW64_START + 3n * 0x10000n + 0xfedcn, 'write')).toBe(0x55_0000_fedcn);
  });

  it('checks the permission for the direction of the access', () => {
    const { pe } = mapped();
    expectErrno(() => pe.translate(0x1000n, 'write'), EACCES);
    // Write-only was stored as RW on PowerNV, so reads pass as well.
    expect(pe.translate(0x2000n, 'read')).toBe(0x12_3456_8000n);
    expect(pe.translate(0x2000n, 'write')).toBe(0x12_3456_8000n);
  });

  it('fails empty entries and undecoded addresses with EFAULT', () => {
    const { pe } = mapped();
    expectErrno(() => pe.translate(0x3000n, 'read'), EFAULT);
    expectErrno(() => pe.translate(GiB, 'read'), EFAULT);
    expectErrno(() => pe.translate(POWERNV_WINDOW64_START + 64n * GiB, 'read'), EFAULT);
  });

  it('finds the window holding an IOVA the way MAP does', () => {
    const { pe } = mapped();
    expect(pe.findWindow(GiB - 1n)?.slot).toBe(0);
    expect(pe.findWindow(POWERNV_WINDOW64_START)?.slot).toBe(1);
    expect(pe.findWindow(GiB)).toBeNull();
  });
});
