import { describe, expect, it } from 'vitest';
import { EFAULT, EINVAL, ENOMEM, Errno } from '../../../src/errno.ts';
import { DmaDirection, FaultInjector, powernvTableSize, type TceHost, type TceTable } from '../../../src/tce/index.ts';
import { expectErrno, powernvHost, TiB, userPe } from './helpers.ts';

describe('FaultInjector', () => {
  it('fails exactly the nth check of the armed kind, once', () => {
    const f = new FaultInjector();
    f.arm('alloc', 3);
    expect([f.fails('pin'), f.fails('alloc'), f.fails('alloc'), f.fails('pin'), f.fails('alloc'), f.fails('alloc')])
      .toEqual([false, false, false, false, true, false]);
    expect(f.armed).toBe(false);
    expect(f.fired).toBe(1);
    expect(f.checks).toBe(6);
    expect(f.checksByKind).toEqual({ alloc: 4, pin: 2, iommufd: 0 });
  });

  it('counts any kind when armed with any', () => {
    const f = new FaultInjector();
    f.arm('any', 2);
    f.check('alloc');
    expectErrno(() => f.check('pin'), EFAULT, /injected pin/);
    f.arm('any', 1);
    expectErrno(() => f.check('alloc'), ENOMEM, /injected alloc/);
  });

  it('can be disarmed, and refuses nonsense', () => {
    const f = new FaultInjector();
    f.arm('pin', 1);
    f.disarm();
    f.check('pin');
    expectErrno(() => f.arm('pin', 0), EINVAL);
    expectErrno(() => f.arm('pin', 1.5), EINVAL);
    f.resetCounters();
    expect(f.checks).toBe(0);
  });
});

describe('fault sweep over create and map (fail_nth style)', () => {
  const SPREAD = [0n, 1n, 8192n * 8192n]; // the third entry needs fresh nodes on both lower levels
  const CHARGE = powernvTableSize(12, TiB, 3, 16);

  /** Create a 3-level window and map three TCEs with shadows; record how far it got. */
  function run(host: TceHost, progress: { table?: TceTable; mapped: number }): void {
    const { pe, account } = userPe(host, 7);
    const t = pe.createTable(1, 12, TiB, 3, account);
    progress.table = t;
    pe.setWindow(1, t);
    for (const i of SPREAD) {
      t.xchg(t.offset + i, t.makeTce(0x10_0000_0000n + (i << 12n), DmaDirection.BIDIRECTIONAL), 0x7000_0000_0000n + (i << 12n));
      progress.mapped++;
    }
  }

  it('every allocation point fails cleanly, and the op succeeds once n passes the last one', () => {
    const clean = powernvHost();
    clean.faults.resetCounters();
    run(clean, { mapped: 0 });
    // iommu_table + two top nodes, then shadow and hardware nodes on levels 2 and 3 for two leaves.
    const checks = clean.faults.checksByKind.alloc;
    expect(checks).toBe(3 + 4 + 4);

    for (let n = 1; n <= checks + 1; n++) {
      const host = powernvHost();
      const progress: { table?: TceTable; mapped: number } = { mapped: 0 };
      host.faults.arm('alloc', n);
      let failure: Errno | undefined;
      try {
        run(host, progress);
      } catch (e) {
        if (!(e instanceof Errno)) throw e;
        failure = e;
      }
      const account = host.account('pid:100');
      if (n > checks) {
        expect(failure).toBeUndefined();
        expect(progress.table!.liveCount).toBe(SPREAD.length);
        continue;
      }
      expect(failure?.errno).toBe(ENOMEM);
      // The charge is taken before the platform allocates, and kept when it fails.
      expect(account.locked).toBe(CHARGE);
      if (n <= 3) {
        expect(progress.table).toBeUndefined();
        expect(host.stats().tables).toBe(0);
        continue;
      }
      const t = progress.table!;
      expect(t.liveCount).toBe(progress.mapped);
      const failedEntry = t.offset + SPREAD[progress.mapped];
      expect([t.get(failedEntry), t.ua(failedEntry)]).toEqual([0n, 0n]);
      expect([...t.entries()].map((e) => e.entry - t.offset)).toEqual(SPREAD.slice(0, progress.mapped));
    }
  });

  it('sweeps pins and allocations together with any', () => {
    let n = 1;
    const errnos: number[] = [];
    for (;; n++) {
      const host = powernvHost();
      host.faults.arm('any', n);
      try {
        host.memory.pin('pid:100', 0x7000_0000_0000n, 1n << 20n);
        run(host, { mapped: 0 });
        break;
      } catch (e) {
        if (!(e instanceof Errno)) throw e;
        errnos.push(e.errno);
        expect(host.memory.pinnedBytes()).toBe(n === 1 ? 0n : 1n << 20n);
      }
    }
    expect(errnos).toEqual([EFAULT, ...Array(11).fill(ENOMEM)]);
  });
});
