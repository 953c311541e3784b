import { describe, expect, it } from 'vitest';
import { EINVAL } from '../../../src/errno.ts';
import {
  describeHost, DmaDirection, EEH_OP, renderHostText, renderTceText, TceHost,
} from '../../../src/tce/index.ts';
import { expectErrno, GiB, MiB, powernvHost, pseriesHost, userPe } from './helpers.ts';

describe('TceHost config', () => {
  it('builds PHBs and PEs and finds PEs by group', () => {
    const host = new TceHost({
      flavour: 'powernv',
      phbs: [
        { domain: 0, pes: [{ number: 1, groupId: 7 }] },
        { domain: 1, model: 'PHB3', pes: [{ number: 1, groupId: 9 }, { number: 2, groupId: 10 }] },
      ],
    });
    expect(host.pes().map((p) => p.name)).toEqual(['domain0-pe1', 'domain1-pe1', 'domain1-pe2']);
    expect(host.peByGroup(9)!.phb.model).toBe('PHB3');
    expect(host.peByGroup(8)).toBeUndefined();
    expect(host.hostPageShift).toBe(16);
    expect(host.memory.hostPageShift).toBe(16);
  });

  it('refuses inconsistent configs', () => {
    const pes = [{ number: 1, groupId: 7 }];
    expectErrno(() => new TceHost({ flavour: 'powernv', phbs: [{ domain: 0, pes: [...pes, { number: 2, groupId: 7 }] }] }), EINVAL, /group id 7/);
    expectErrno(() => new TceHost({ flavour: 'powernv', phbs: [{ domain: 0, pes: [...pes, { number: 1, groupId: 8 }] }] }), EINVAL, /PE 1/);
    expectErrno(() => new TceHost({ flavour: 'powernv', phbs: [{ domain: 0, pes }, { domain: 0, pes: [] }] }), EINVAL, /domain/);
    expectErrno(() => new TceHost({ flavour: 'powernv', hostPageShift: 14, phbs: [] }), EINVAL);
    expectErrno(() => new TceHost({ flavour: 'x86' as 'powernv', phbs: [] }), EINVAL);
    expectErrno(() => new TceHost({ flavour: 'powernv', phbs: [{ domain: 0, m32PciBase: 2 ** 33, pes }] }), EINVAL);
  });

  it('keeps one locked-memory account per owner with the configured limit', () => {
    const host = powernvHost({ memlockLimit: 64n * MiB });
    expect(host.account('a')).toBe(host.account('a'));
    expect(host.account('b')).not.toBe(host.account('a'));
    expect(host.account('a').limit).toBe(64n * MiB);
  });

  it('gates EEH ENABLE on the host switch at run time', () => {
    const host = powernvHost({ eehEnabled: false });
    const pe = host.peByGroup(7)!;
    expect(() => pe.eeh.op(EEH_OP.ENABLE)).toThrow(/EIO/);
    host.eehEnabled = true;
    expect(pe.eeh.op(EEH_OP.ENABLE)).toBe(0);
  });
});

describe('TceHost stats for leak checks', () => {
  it('returns to the boot census after a full user lifecycle', () => {
    const host = powernvHost();
    const boot = host.stats();
    const { pe, account } = userPe(host, 7);
    const ua = 0x7fff_0000_0000n;
    const hpa = host.memory.pin('pid:100', ua, 4n * MiB);
    const t = pe.createTable(0, 12, GiB, 1, account);
    pe.setWindow(0, t);
    for (let i = 0n; i < 16n; i++) t.xchg(i, t.makeTce(hpa + (i << 12n), DmaDirection.BIDIRECTIONAL), ua + (i << 12n));
    const busy = host.stats();
    expect([busy.tables, busy.kernelTables, busy.liveTces, busy.pinnedBytes, busy.lockedBytes]).toEqual([1, 1, 16, 4n * MiB, 4n * MiB]);
    t.clearRange(0n, t.size);
    pe.unsetWindow(0);
    pe.freeTable(t, account);
    host.memory.unpin('pid:100', ua, 4n * MiB);
    pe.releaseOwnership();
    const end = host.stats();
    expect({ ...end, accounts: 0 }).toEqual({ ...boot, accounts: 0 });
    expect(end.lockUnderflows).toBe(0);
  });
});

describe('views', () => {
  function busyHost() {
    const host = powernvHost();
    const { pe, account } = userPe(host, 7);
    const w0 = pe.createTable(0, 12, GiB, 1, account);
    pe.setWindow(0, w0);
    w0.xchg(1n, 0x10_0000_a003n, 0x7fff_0000_1000n);
    w0.xchg(2n, 0x10_0001_0001n);
    return { host, pe, w0 };
  }

  it('renders live TCEs one per line', () => {
    const { pe } = busyHost();
    const text = renderTceText(pe);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toBe('# domain0-pe1 group 7');
    expect(lines[1]).toBe('# slot0 user  0x0000000000000000-0x000000003fffffff  4K pages  1 level  262144 TCEs  2 live  ' +
      'alloc 8192 B  charged 4194304 B');
    expect(lines.slice(2)).toEqual([
      '0x0000000000001000  tce=0x000000100000a003  RW  hpa=0x000000100000a000  ua=0x00007fff00001000',
      '0x0000000000002000  tce=0x0000001000010001  R-  hpa=0x0000001000010000  ua=-',
    ]);
    expect(renderTceText(pe, { limit: 1 }).trimEnd().split('\n').slice(2)).toEqual([
      '0x0000000000001000  tce=0x000000100000a003  RW  hpa=0x000000100000a000  ua=0x00007fff00001000',
      '# ... 1 more',
    ]);
  });

  it('says so when a PE has no window', () => {
    const host = powernvHost();
    const pe = host.peByGroup(8)!;
    pe.block();
    expect(renderTceText(pe)).toBe('# domain0-pe2 group 8\n# no windows\n');
  });

  it('describes the host as plain JSON', () => {
    const { host } = busyHost();
    host.memory.pin('pid:100', 0n, MiB);
    host.peByGroup(8)!.eeh.freeze();
    const view = describeHost(host);
    const json = JSON.parse(JSON.stringify(view));
    expect(json).toEqual(view);
    const [pe7, pe8] = view.phbs[0].pes;
    expect(pe7).toMatchObject({ name: 'domain0-pe1', ownership: 'user', pgsizes: '0x40211000', pageSizes: ['4K', '64K', '2M', '1G'] });
    expect(pe7.windows).toHaveLength(1);
    expect(pe7.windows[0]).toMatchObject({
      slot: 0, kernelOwned: false, start: '0x0000000000000000', last: '0x000000003fffffff', sizeBytes: 2 ** 30,
      pageShift: 12, levels: 1, entries: 2 ** 18, liveTces: 2, allocatedBytes: 8192, accountedBytes: 4 * 2 ** 20,
    });
    expect(pe8.eeh).toMatchObject({ state: 2, stateName: 'STOPPED' });
    expect(pe8.windows[0]).toMatchObject({ kernelOwned: true, levels: 2, index: '0x00000002' });
    expect(view.pinned).toEqual([{ owner: 'pid:100', pinnedBytes: 2 ** 20, extents: 1 }]);
    expect(view.locked[0]).toMatchObject({ owner: 'pid:100', lockedBytes: 4 * 2 ** 20, lockedPages: 64 });
    expect(view.memlockLimit).toBe(8 * 2 ** 30);
  });

  it('shows the pSeries firmware state', () => {
    const host = pseriesHost();
    const { pe, account } = userPe(host, 3);
    pe.createTable(1, 16, 4n * GiB, 1, account);
    expect(describeHost(host).phbs[0].pes[0].firmware).toEqual({
      defaultWindowPresent: false, ddw: '0x0800000000000000', windowsAvailable: 1, failedDdw: false,
    });
  });

  it('renders a status summary', () => {
    const { host } = busyHost();
    const text = renderHostText(host);
    expect(text).toContain('tce host: powernv, 64K host pages, EEH on, memlock limit 8G');
    expect(text).toContain('  domain0-pe1  group 7  user  eeh NORMAL  pgsizes 4K,64K,2M,1G  windows<=2  levels<=5');
    expect(text).toContain('    slot0 host  0x0000000000000000-0x0000003fffffffff  64K pages  2 levels  4194304 TCEs  0 live');
    expect(text).toContain('    bypass 0x0800000000000000-0x0800003fffffffff');
    expect(text).toContain('locked pid:100: 64 pages (4194304 B) of 8589934592 B');
  });
});
