import { describe, expect, it } from 'vitest';
import { EFAULT, EINVAL, EIO, ERANGE } from '../../../src/errno.ts';
import { DmaDirection, EEH_OP, EEH_STATE, EehPe } from '../../../src/tce/index.ts';
import { expectErrno, GiB, powernvHost, userPe } from './helpers.ts';

const err = (type: number, func: number) => ({ type, func, addr: 0n, mask: 0n });

describe('EehPe op table', () => {
  it('answers DISABLE, ENABLE and CONFIGURE with 0', () => {
    const e = new EehPe('powernv', () => true);
    expect(e.op(EEH_OP.DISABLE)).toBe(0);
    expect(e.op(EEH_OP.ENABLE)).toBe(0);
    expect(e.op(EEH_OP.CONFIGURE)).toBe(0);
    expect(e.op(EEH_OP.GET_STATE)).toBe(EEH_STATE.NORMAL);
  });

  it('refuses unknown ops', () => {
    const e = new EehPe('powernv', () => true);
    expectErrno(() => e.op(10), EINVAL);
    expectErrno(() => e.op(-1), EINVAL);
  });

  it('fails ENABLE with EIO while EEH is off on the host, other ops still work', () => {
    let on = false;
    const e = new EehPe('powernv', () => on);
    expectErrno(() => e.op(EEH_OP.ENABLE), EIO);
    expect(e.op(EEH_OP.GET_STATE)).toBe(0);
    on = true;
    expect(e.op(EEH_OP.ENABLE)).toBe(0);
  });

  it('walks the states: frozen 2, MMIO back 4, DMA only 5, both back 0', () => {
    const e = new EehPe('powernv', () => true);
    e.freeze();
    expect(e.op(EEH_OP.GET_STATE)).toBe(EEH_STATE.STOPPED);
    expect(e.op(EEH_OP.UNFREEZE_IO)).toBe(0);
    expect(e.op(EEH_OP.GET_STATE)).toBe(EEH_STATE.STOPPED_DMA);
    expect(e.op(EEH_OP.UNFREEZE_DMA)).toBe(0);
    expect(e.op(EEH_OP.GET_STATE)).toBe(EEH_STATE.NORMAL);
    e.freeze();
    e.op(EEH_OP.UNFREEZE_DMA);
    expect(e.op(EEH_OP.GET_STATE)).toBe(EEH_STATE.UNAVAIL);
  });

  it('hot and fundamental resets freeze, block config and assert reset until deactivated', () => {
    for (const op of [EEH_OP.RESET_HOT, EEH_OP.RESET_FUNDAMENTAL]) {
      const e = new EehPe('powernv', () => true);
      expect(e.op(op)).toBe(0);
      expect(e.op(EEH_OP.GET_STATE)).toBe(EEH_STATE.RESET);
      expect([e.cfgBlocked, e.dmaFrozen, e.mmioFrozen]).toEqual([true, true, true]);
      expect(e.op(EEH_OP.RESET_DEACTIVATE)).toBe(0);
      expect(e.op(EEH_OP.GET_STATE)).toBe(EEH_STATE.NORMAL);
      expect(e.cfgBlocked).toBe(false);
    }
  });

  it('ENABLE thaws a freeze nobody handled', () => {
    const e = new EehPe('pseries', () => true);
    e.freeze();
    e.op(EEH_OP.ENABLE);
    expect(e.frozen).toBe(false);
  });

  it('reports UNAVAIL while the host recovers the parent PE', () => {
    const e = new EehPe('powernv', () => true);
    e.parentRecovering = true;
    expect(e.op(EEH_OP.GET_STATE)).toBe(EEH_STATE.UNAVAIL);
  });
});

describe('EEH error injection', () => {
  it('needs the full argument and a function in 0..19', () => {
    const e = new EehPe('powernv', () => true);
    expectErrno(() => e.op(EEH_OP.INJECT_ERR), EINVAL);
    expectErrno(() => e.op(EEH_OP.INJECT_ERR, err(0, 20)), EINVAL);
    expectErrno(() => e.op(EEH_OP.INJECT_ERR, err(0, -1)), EINVAL);
    expect(e.frozen).toBe(false);
  });

  it('PowerNV takes types 0 and 1 only (ERANGE) and any function, then freezes', () => {
    const e = new EehPe('powernv', () => true);
    expectErrno(() => e.op(EEH_OP.INJECT_ERR, err(2, 0)), ERANGE);
    expect(e.frozen).toBe(false);
    expect(e.op(EEH_OP.INJECT_ERR, { type: 1, func: 16, addr: 0x1000n, mask: 0xfffn })).toBe(0);
    expect(e.op(EEH_OP.GET_STATE)).toBe(EEH_STATE.STOPPED);
    expect(e.lastInjection).toEqual({ type: 1, func: 16, addr: 0x1000n, mask: 0xfffn });
  });

  it('pSeries refuses other types with EINVAL and non-MMIO functions with ERANGE', () => {
    const e = new EehPe('pseries', () => true);
    expectErrno(() => e.op(EEH_OP.INJECT_ERR, err(2, 0)), EINVAL);
    expectErrno(() => e.op(EEH_OP.INJECT_ERR, err(0, 12)), ERANGE);
    expect(e.frozen).toBe(false);
    expect(e.op(EEH_OP.INJECT_ERR, err(0, 7))).toBe(0);
    expect(e.frozen).toBe(true);
  });
});

describe('EEH and DMA', () => {
  it('fails translation with EIO while frozen, and mappings survive resets', () => {
    const host = powernvHost();
    const { pe, account } = userPe(host, 7);
    const t = pe.createTable(0, 12, GiB, 1, account);
    pe.setWindow(0, t);
    t.xchg(t.entryOf(0x5000n), t.makeTce(0x40_0000_5000n, DmaDirection.BIDIRECTIONAL));
    expect(pe.translate(0x5010n, 'read')).toBe(0x40_0000_5010n);
    pe.eeh.op(EEH_OP.INJECT_ERR, err(0, 12));
    expectErrno(() => pe.translate(0x5010n, 'read'), EIO);
    pe.eeh.op(EEH_OP.UNFREEZE_IO);
    expectErrno(() => pe.translate(0x5010n, 'read'), EIO);
    pe.eeh.op(EEH_OP.RESET_HOT);
    pe.eeh.op(EEH_OP.RESET_DEACTIVATE);
    expect(pe.translate(0x5010n, 'write')).toBe(0x40_0000_5010n);
    expect(t.liveCount).toBe(1);
    expectErrno(() => pe.translate(0x6000n, 'read'), EFAULT);
  });
});
