// Hot-unplug and plug, per-context object limits, and the control commands, in-process.
import { describe, expect, it } from 'vitest';
import { runControl } from '../../src/control.ts';
import { EEXIST, EINVAL, ENODEV, ENOSPC, Errno } from '../../src/errno.ts';
import { lookup } from '../../src/transport/tree.ts';
import { Harness } from '../helpers/direct.ts';

const errnoOf = (fn: () => unknown) => {
  try {
    fn();
    return 0;
  } catch (e) {
    return e instanceof Errno ? -e.errno : NaN;
  }
};

describe('hot-unplug and plug', () => {
  it('stops DMA of a removed device at once, answers ENODEV until close, updates the tree, leaks nothing', () => {
    const h = new Harness();
    const boot = h.daemon.host.stats();
    const i = h.open('/dev/iommu');
    const d = h.open('/dev/vfio/devices/vfio2');
    h.call(d, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: i.handle });
    h.call(i, 'IOMMU_IOAS_ALLOC');
    expect(h.call(d, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { pt_id: 2 }).result).toBe(0);
    h.call(i, 'IOMMU_IOAS_MAP', { ioas_id: 2, flags: 7, user_va: 0x7f0000000000n, length: 0x10000n, iova: 0x10000n });
    const pe = h.daemon.inventory.groups.get(1)!.pe;
    expect(pe.translate(0x10000n, 'read')).toBeTypeOf('bigint');

    runControl(h.daemon, 'device remove 0000:02:00.0');
    expect(() => pe.translate(0x10000n, 'read')).toThrow(); // DMA stopped
    expect(h.call(d, 'VFIO_DEVICE_GET_INFO').result).toBe(-ENODEV);
    expect(h.call(d, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { pt_id: 2 }).result).toBe(-ENODEV);
    expect(errnoOf(() => d.regionRead(7n << 40n, 4))).toBe(-ENODEV);
    expect(lookup(h.daemon.tree, '/dev/vfio/devices/vfio2')).toBeUndefined();
    expect(lookup(h.daemon.tree, '/sys/bus/pci/devices/0000:02:00.0')).toBeUndefined();
    expect(lookup(h.daemon.tree, '/dev/vfio/1')).toBeUndefined(); // its group had no other device
    expect(lookup(h.daemon.tree, '/dev/vfio/devices/vfio0')).toBeDefined();
    expect((h.daemon.describe() as { removedDevices: string[] }).removedDevices).toEqual(['0000:02:00.0']);

    h.close(d);
    h.close(i);
    expect(h.daemon.host.stats()).toEqual(boot);
    expect(pe.ownership).toBe('platform');

    runControl(h.daemon, 'device add 0000:02:00.0');
    const again = h.open('/dev/vfio/devices/vfio2');
    expect(h.call(again, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: h.open('/dev/iommu').handle }).result).toBe(0);
  });

  it('keeps the group of a removed function while a sibling remains, and hides it from GET_DEVICE_FD', () => {
    const h = new Harness();
    const c = h.open('/dev/vfio/vfio');
    const g = h.open('/dev/vfio/0');
    h.setContainer(g, c);
    h.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 });
    const d0 = h.getDeviceFd(g, '0000:01:00.0').file!;
    runControl(h.daemon, 'device remove 0000:01:00.0');
    expect(h.call(d0, 'VFIO_DEVICE_GET_INFO').result).toBe(-ENODEV);
    expect(h.getDeviceFd(g, '0000:01:00.0').result).toBe(-ENODEV);
    expect(h.getDeviceFd(g, '0000:01:00.1').result).toBe(0);
    expect(lookup(h.daemon.tree, '/dev/vfio/0')).toBeDefined();
    expect(lookup(h.daemon.tree, '/sys/kernel/iommu_groups/0/devices/0000:01:00.0')).toBeUndefined();
  });

  it('refuses unknown devices, double removal, adding what is present, and bad commands', () => {
    const h = new Harness();
    expect(errnoOf(() => runControl(h.daemon, 'device remove 0000:09:00.0'))).toBe(-ENODEV);
    runControl(h.daemon, 'device remove 0000:01:00.1');
    expect(errnoOf(() => runControl(h.daemon, 'device remove 0000:01:00.1'))).toBe(-ENODEV);
    expect(errnoOf(() => runControl(h.daemon, 'device add 0000:01:00.0'))).toBe(-EEXIST);
    for (const bad of ['reboot', 'fail alloc', 'fail alloc 0', 'fail disk 3', 'device unplug 0000:01:00.0', 'eeh thaw 1']) {
      expect(errnoOf(() => runControl(h.daemon, bad)), bad).toBe(-EINVAL);
    }
    expect(errnoOf(() => runControl(h.daemon, 'eeh freeze 7'))).toBe(-ENODEV);
    runControl(h.daemon, '# a comment');
  });
});

describe('fault injection and EEH from the control node', () => {
  it('arms the nth allocation, which the next CREATE meets as ENOMEM, then disarms', () => {
    const h = new Harness();
    const c = h.open('/dev/vfio/vfio');
    const g = h.open('/dev/vfio/1');
    h.setContainer(g, c);
    h.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 });
    h.call(c, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', { vaddr: 0x7f0000000000n, size: 1n << 30n });
    runControl(h.daemon, 'fail alloc 1');
    expect(h.call(c, 'VFIO_IOMMU_SPAPR_TCE_CREATE', { page_shift: 16, window_size: 1n << 32n, levels: 1 }).result).toBe(-12);
    expect(h.call(c, 'VFIO_IOMMU_SPAPR_TCE_CREATE', { page_shift: 16, window_size: 1n << 32n, levels: 1 }).result).toBe(0);
    runControl(h.daemon, 'fail any 5');
    runControl(h.daemon, 'fail off');
    expect(h.daemon.host.faults.armed).toBe(false);
  });

  it('freezes a PE: translations fail until an EEH reset', () => {
    const h = new Harness();
    const c = h.open('/dev/vfio/vfio');
    const g = h.open('/dev/vfio/1');
    h.setContainer(g, c);
    h.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 });
    runControl(h.daemon, 'eeh freeze 1');
    expect(h.call(c, 'VFIO_EEH_PE_OP', { op: 4 }).result).toBe(2); // STOPPED
    expect(() => h.daemon.inventory.groups.get(1)!.pe.translate(0n, 'read')).toThrow(/frozen/);
    h.call(c, 'VFIO_EEH_PE_OP', { op: 6 });
    h.call(c, 'VFIO_EEH_PE_OP', { op: 5 });
    expect(h.call(c, 'VFIO_EEH_PE_OP', { op: 4 }).result).toBe(0);
  });
});

describe('limits', () => {
  it('an iommufd context holds at most maxObjects objects (ENOSPC), and freed IDs are reused lowest first', () => {
    const h = new Harness(undefined, { maxObjects: 3 });
    const i = h.open('/dev/iommu');
    expect([1, 2, 3].map(() => h.call(i, 'IOMMU_IOAS_ALLOC').out.out_ioas_id)).toEqual([1, 2, 3]);
    expect(h.call(i, 'IOMMU_IOAS_ALLOC').result).toBe(-ENOSPC);
    h.call(i, 'IOMMU_DESTROY', { id: 2 });
    h.call(i, 'IOMMU_DESTROY', { id: 1 });
    expect(h.call(i, 'IOMMU_IOAS_ALLOC').out.out_ioas_id).toBe(1);
    expect(h.call(i, 'IOMMU_IOAS_ALLOC').out.out_ioas_id).toBe(2);
  });

  it('locked memory over the budget is ENOMEM', () => {
    const h = new Harness({ host: { flavour: 'powernv', memlockLimit: '1G' }, phbs: [{ pes: [{ pe: 1, group: 0, devices: [{ bdf: '0000:00:01.0', vendor: 1, device: 2 }] }] }] });
    const c = h.open('/dev/vfio/vfio');
    const g = h.open('/dev/vfio/0');
    h.setContainer(g, c);
    h.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 });
    expect(h.call(c, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', { vaddr: 0x7f0000000000n, size: 2n << 30n }).result).toBe(-12);
    expect(h.call(c, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', { vaddr: 0x7f0000000000n, size: 1n << 29n }).result).toBe(0);
  });
});

describe('what a client leaves behind (found by the reliability tests)', () => {
  it('a device file never claimed goes with the group file that made it', () => {
    const h = new Harness();
    const c = h.open('/dev/vfio/vfio');
    const g = h.open('/dev/vfio/1');
    h.setContainer(g, c);
    h.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 });
    const r = h.call(g, 'VFIO_GROUP_GET_DEVICE_FD', {}, { raw: Buffer.from('0000:02:00.0\0') });
    expect(r.newHandle).not.toBe(0);
    expect(h.daemon.files.pendingCount).toBe(1);
    h.close(g); // the client died before claiming
    expect(h.daemon.files.pendingCount).toBe(0);
    h.close(c);
    const c2 = h.open('/dev/vfio/vfio');
    expect(h.setContainer(h.open('/dev/vfio/1'), c2)).toBe(0); // the next client takes the group at once
  });

  it('an EEH freeze does not outlive the PE\'s user: the next owner finds it NORMAL', () => {
    const h = new Harness();
    const c = h.open('/dev/vfio/vfio');
    const g = h.open('/dev/vfio/1');
    h.setContainer(g, c);
    h.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 });
    h.call(c, 'VFIO_EEH_PE_OP', { op: 9, 'err.type': 0, 'err.func': 12 });
    expect(h.call(c, 'VFIO_EEH_PE_OP', { op: 4 }).result).toBe(2);
    h.close(g);
    h.close(c);
    const c2 = h.open('/dev/vfio/vfio');
    h.setContainer(h.open('/dev/vfio/1'), c2);
    h.call(c2, 'VFIO_SET_IOMMU', {}, { arg: 7 });
    expect(h.call(c2, 'VFIO_EEH_PE_OP', { op: 4 }).result).toBe(0);
  });

  it('GET_HW_INFO with a 4 GiB buffer zero-fills at most 64 KiB, and a frame\'s replies stay within budget', async () => {
    const { runFrame, MAX_REPLY } = await import('../../src/dispatch/dispatch.ts');
    const { ioctl, requestValue } = await import('../../src/uapi/ioctls.ts');
    const { encode } = await import('../../src/uapi/layout.ts');
    const { Op } = await import('../../src/transport/frame.ts');
    const h = new Harness();
    const i = h.open('/dev/iommu');
    h.call(h.open('/dev/vfio/devices/vfio2'), 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: i.handle });
    const big = h.call(i, 'IOMMU_GET_HW_INFO', { dev_id: 1, data_len: 0xfffffff0, data_uptr: 0x1000n });
    expect(big.result).toBe(0);
    expect(big.blobs[0].data.length).toBe(64 * 1024);
    const d = ioctl('IOMMU_GET_HW_INFO');
    const req = { op: Op.IOCTL, request: requestValue(d.nr), arg: 0n, argData: encode(d.struct!, { size: 40, dev_id: 1, data_len: 0xfffffff0, data_uptr: 0x1000n }), blobs: [] };
    const n = Math.ceil(MAX_REPLY / (64 * 1024)) + 8;
    const answers = runFrame(i, { pid: 1, requests: Array.from({ length: n }, () => req) });
    const total = answers.reduce((sum, a) => sum + a.out.length + a.blobs.reduce((x, b) => x + b.data.length, 0), 0);
    expect(total).toBeLessThanOrEqual(MAX_REPLY);
    expect(answers.at(-1)!.result).toBe(-12n); // ENOMEM past the budget
    expect(answers[0].result).toBe(0n);
  });
});

describe('eeh freeze of a PE the host drives', () => {
  it('is recovered by the host at once', () => {
    const h = new Harness();
    runControl(h.daemon, 'eeh freeze 1');
    expect(h.daemon.inventory.groups.get(1)!.pe.eeh.state()).toBe(0);
  });
});
