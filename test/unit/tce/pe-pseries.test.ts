import { describe, expect, it } from 'vitest';
import { EBUSY, EEXIST, EINVAL, ENODEV, EPERM } from '../../../src/errno.ts';
import { DmaDirection, PSERIES_LIMITED_WINDOW64_START, queryPageSizeToMask } from '../../../src/tce/index.ts';
import { expectErrno, GiB, KiB, MiB, pseriesHost, userPe } from './helpers.ts';

const W59 = 1n << 59n;

describe('pSeries table group facts', () => {
  it('adds 4K to the hypervisor page sizes and reports 2 windows, 1 level', () => {
    const pe = pseriesHost().peByGroup(3)!;
    expect(pe.name).toBe('domain1-pe0');
    expect(pe.pgsizes).toBe(0x0121_1000n);
    expect(pe.maxDynamicWindowsSupported).toBe(2);
    expect(pe.maxLevels).toBe(1);
    expect(pe.tce32Start).toBe(0);
    expect(pe.tce32Size).toBe(0x4000_0000);
    expect(pe.window64Start).toBe(W59);
    const only64k = pseriesHost({ pgsizeMask: 64n * KiB, dmaWindowSize: 0x8000_0000 }).peByGroup(3)!;
    expect(only64k.pgsizes).toBe(0x1_1000n);
    expect(only64k.tce32Size).toBe(0x8000_0000);
  });

  it('reports 1 window when none is available beside the default one', () => {
    expect(pseriesHost({ windowsAvailable: 0 }).peByGroup(3)!.maxDynamicWindowsSupported).toBe(1);
  });

  it('reports 0xFFFFFFFF without ibm,ddw-applicable or when the query fails, and 0 in kdump', () => {
    const noDdw = pseriesHost({ ddwApplicable: false }).peByGroup(3)!;
    expect(noDdw.maxDynamicWindowsSupported).toBe(0xffff_ffff);
    expect(noDdw.pgsizes).toBe(0x1000n);
    expect(noDdw.maxLevels).toBe(0);
    expect(pseriesHost({ queryStatus: -3 }).peByGroup(3)!.maxDynamicWindowsSupported).toBe(0xffff_ffff);
    const kdump = pseriesHost({ kdump: true }).peByGroup(3)!;
    expect([kdump.maxDynamicWindowsSupported, kdump.tce32Size]).toEqual([0, 0]);
  });

  it('decodes the ibm,query-pe-dma-window page size bits', () => {
    expect(queryPageSizeToMask(0b1_0000_0011)).toBe((1n << 12n) | (1n << 16n) | (1n << 21n));
    expect(queryPageSizeToMask(1 << 7)).toBe(1n << 34n);
  });

  it('refuses a page size mask the query could not report', () => {
    expectErrno(() => pseriesHost({ pgsizeMask: 1n << 30n }), EINVAL);
  });
});

describe('pSeries CREATE (reference 2.1 and 2.3 row 15)', () => {
  it('restores the default window for a 4K request that fits, clipped to the request', () => {
    const host = pseriesHost();
    const { pe, account } = userPe(host, 3);
    expect(pe.firmware!.defaultPresent).toBe(false);
    const t = pe.createTable(0, 12, 256n * MiB, 1, account);
    expect([t.startAddr, t.endAddr, t.size]).toEqual([0n, 256n * MiB, 65536n]);
    expect(pe.tables[0]).toBe(t); // the firmware window is open already
    expect(pe.firmware!.defaultPresent).toBe(true);
    expect(t.accountedBytes).toBe(512n * KiB); // 8 bytes per TCE, not doubled
    pe.setWindow(0, t);
  });

  it('opens a DDW at 2^59 for anything else, in slot 0 too', () => {
    const { pe, account } = userPe(pseriesHost(), 3);
    const t = pe.createTable(0, 16, 64n * GiB, 1, account);
    expect(t.startAddr).toBe(W59);
    expect(pe.firmware!.ddw).toEqual({ start: W59, pageShift: 16, windowShift: 36 });
  });

  it('opens the DDW just above 4 GiB in limited addressing mode', () => {
    const { pe, account } = userPe(pseriesHost({ limitedAddressing: true }), 3);
    expect(pe.window64Start).toBe(PSERIES_LIMITED_WINDOW64_START);
    expect(pe.createTable(1, 16, 16n * GiB, 1, account).startAddr).toBe(1n << 32n);
  });

  it('accepts levels 0, and refuses levels 2 only after charging ~4 GiB', () => {
    const { pe, account } = userPe(pseriesHost(), 3);
    expect(pe.createTable(1, 16, 4n * GiB, 0, account).levels).toBe(1);
    account.lockedPages = 0n;
    expectErrno(() => pe.createTable(1, 16, 4n * GiB, 2, account), EINVAL);
    expect(account.lockedPages).toBe(0xffff_ffffn >> 16n);
  });

  it('charges a window that is not a power of two before refusing it', () => {
    const { pe, account } = userPe(pseriesHost(), 3);
    expectErrno(() => pe.createTable(1, 12, 3n * GiB, 1, account), EINVAL);
    expect(account.locked).toBe(6n * MiB);
  });

  it('refuses a window beyond the largest available block without blacklisting', () => {
    const { pe, account } = userPe(pseriesHost({ largestAvailableBlock: 1n << 20n }), 3);
    expectErrno(() => pe.createTable(1, 16, 128n * GiB, 1, account), EINVAL, /largest/);
    expect(pe.createTable(1, 16, 64n * GiB, 1, account).size).toBe(1n << 20n);
  });

  it('blacklists the device when ibm,ddw-applicable is missing: EINVAL once, then ENODEV for all', () => {
    const { pe, account } = userPe(pseriesHost({ ddwApplicable: false }), 3);
    // Only 4K is offered without DDW, so ask for a 4K window too large to be the default one.
    expectErrno(() => pe.createTable(1, 12, 4n * GiB, 1, account), EINVAL, /ddw-applicable/);
    expect(pe.firmware!.failedDdw).toBe(true);
    expectErrno(() => pe.createTable(1, 12, 4n * GiB, 1, account), ENODEV);
    expectErrno(() => pe.createTable(0, 12, 256n * MiB, 1, account), ENODEV); // even the default window
  });

  it('returns the raw RTAS status of a failed query, then ENODEV', () => {
    const { pe, account } = userPe(pseriesHost({ queryStatus: -3 }), 3);
    // RTAS status -3 comes back as it is, which user space reads as errno 3.
    expectErrno(() => pe.createTable(1, 12, 4n * GiB, 1, account), 3, /query/);
    expectErrno(() => pe.createTable(1, 12, 4n * GiB, 1, account), ENODEV);
  });

  it('with one window at a time, a DDW beside the default window fails in firmware: ENODEV for good', () => {
    const { pe, account } = userPe(pseriesHost({ windowsAvailable: 0 }), 3);
    pe.createTable(0, 12, GiB, 1, account);
    expectErrno(() => pe.createTable(1, 16, 4n * GiB, 1, account), ENODEV, /create-pe-dma-window/);
    expect(pe.firmware!.failedDdw).toBe(true);
  });

  it('with one window at a time, a DDW replaces the default window in slot 0', () => {
    const { pe, account } = userPe(pseriesHost({ windowsAvailable: 0 }), 3);
    const t = pe.createTable(0, 16, 4n * GiB, 1, account);
    expect(t.startAddr).toBe(W59);
    expect(pe.firmware!.windowsAvailable).toBe(0);
  });

  it('EPERM: a non-default slot 0 request while a DDW exists', () => {
    const { pe, account } = userPe(pseriesHost(), 3);
    pe.createTable(0, 12, GiB, 1, account);
    pe.createTable(1, 16, 4n * GiB, 1, account);
    pe.unsetWindow(0);
    expectErrno(() => pe.createTable(0, 16, GiB, 1, account), EPERM, /already/);
  });

  it('EPERM: a default request when the default window is gone but a DDW exists', () => {
    const { pe, account } = userPe(pseriesHost(), 3);
    pe.createTable(1, 16, 4n * GiB, 1, account);
    expectErrno(() => pe.createTable(0, 12, GiB, 1, account), EPERM, /64-bit window/);
    expect(pe.firmware!.failedDdw).toBe(false);
  });

  it('a second DDW collides with the first one\'s property: EEXIST and blacklisted', () => {
    const { pe, account } = userPe(pseriesHost(), 3);
    pe.createTable(0, 16, 4n * GiB, 1, account);
    expectErrno(() => pe.createTable(1, 16, 4n * GiB, 1, account), EEXIST);
    expect(pe.firmware!.ddw?.windowShift).toBe(32);
    expect(pe.firmware!.failedDdw).toBe(true);
  });

  it('maps iommu_table allocation failure to ENODEV without blacklisting', () => {
    const host = pseriesHost();
    const { pe, account } = userPe(host, 3);
    host.faults.arm('alloc', 1);
    expectErrno(() => pe.createTable(1, 16, 4n * GiB, 1, account), ENODEV, /allocate/);
    expect(pe.firmware!.failedDdw).toBe(false);
    expect(account.locked).toBe(4n * GiB >> 13n);
  });
});

describe('pSeries windows', () => {
  it('stores write-only TCEs as W only', () => {
    const { pe, account } = userPe(pseriesHost(), 3);
    const t = pe.createTable(1, 16, 4n * GiB, 1, account);
    t.xchg(t.offset, t.makeTce(0x80_0000_0000n, DmaDirection.FROM_DEVICE), 0x1_0000n);
    expect(t.get(t.offset)).toBe(0x80_0000_0002n);
    expect(pe.translate(W59 + 4n, 'write')).toBe(0x80_0000_0004n);
  });

  it('cannot share or re-set a window: set_window only accepts the PE\'s own table', () => {
    const host = pseriesHost();
    const { pe: a, account } = userPe(host, 3);
    const { pe: b } = userPe(host, 4);
    const t = a.createTable(1, 16, 4n * GiB, 1, account);
    a.setWindow(1, t);
    expectErrno(() => b.setWindow(1, t), EPERM);
    a.unsetWindow(1);
    expect(a.firmware!.ddw).toBeNull();
    expectErrno(() => a.setWindow(1, t), EPERM);
    a.freeTable(t, account);
    expect(account.lockedPages).toBe(0n);
  });

  it('refuses to open a window over a busy slot instead of orphaning the old one', () => {
    const { pe, account } = userPe(pseriesHost(), 3);
    const t = pe.createTable(1, 16, 4n * GiB, 1, account);
    expectErrno(() => pe.createTable(1, 16, 4n * GiB, 1, account), EBUSY);
    expect(pe.tables[1]).toBe(t);
  });

  it('removing the default window saves its property', () => {
    const { pe, account } = userPe(pseriesHost(), 3);
    const t = pe.createTable(0, 12, GiB, 1, account);
    pe.unsetWindow(0);
    expect(pe.firmware!.defaultPresent).toBe(false);
    expect(pe.firmware!.defaultSaved).toBe(true);
    pe.freeTable(t, account);
  });
});
