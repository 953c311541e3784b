// GET_PCI_HOT_RESET_INFO and PCI_HOT_RESET: a bus reset of every function on the device's bus, allowed
// only when the caller owns them all (group fds on the group path, its iommufd on a cdev).
import { describe, expect, it } from 'vitest';
import { EBADF, EINVAL, ENOSPC } from '../../src/errno.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import type { DeviceFile } from '../../src/objects/vfio/device.ts';
import { HANDLE_FOREIGN, HANDLE_NONE } from '../../src/transport/frame.ts';
import { defaultTopology } from '../../src/topology/topology.ts';
import { Harness } from '../helpers/direct.ts';

/** The dependent devices an INFO answer wrote after its header. */
function devices(blob: Buffer, count: number) {
  return Array.from({ length: count }, (_, k) => {
    const at = 12 + 8 * k;
    return { id: blob.readInt32LE(at), segment: blob.readUInt16LE(at + 4), bus: blob[at + 6], devfn: blob[at + 7] };
  });
}

function info(h: Harness, dev: OpenFile, argsz: number) {
  const raw = Buffer.alloc(argsz);
  raw.writeUInt32LE(argsz, 0);
  const r = h.call(dev, 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', {}, { raw });
  const image = Buffer.concat([r.outBytes, raw.subarray(r.outBytes.length)]);
  return { result: r.result, flags: image.readUInt32LE(4), count: image.readUInt32LE(8), image };
}

function reset(h: Harness, dev: OpenFile, handles: number[], extra: { flags?: number; count?: number; sent?: number } = {}) {
  const n = extra.sent ?? handles.length;
  const raw = Buffer.alloc(12 + 4 * n);
  raw.writeUInt32LE(raw.length, 0);
  raw.writeUInt32LE(extra.flags ?? 0, 4);
  raw.writeUInt32LE(extra.count ?? handles.length, 8);
  handles.slice(0, n).forEach((v, k) => raw.writeInt32LE(v, 12 + 4 * k));
  return -h.call(dev, 'VFIO_DEVICE_PCI_HOT_RESET', {}, { raw }).result || 0;
}

/** Write a function's BAR 0 register, so that a reset shows (it reads back its flags only after one). */
const dirty = (dev: OpenFile) => (dev as DeviceFile).fn.config.write(0x10, Buffer.from([0, 0, 0, 0xf0]));
const bar0 = (dev: OpenFile) => (dev as DeviceFile).fn.config.read(0x10, 4).readUInt32LE(0);

describe('the group path', () => {
  const setup = () => {
    const h = new Harness();
    const c = h.open('/dev/vfio/vfio');
    const g = h.open('/dev/vfio/0');
    h.setContainer(g, c);
    h.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 });
    return { h, c, g, dev: h.getDeviceFd(g, '0000:01:00.1').file!, other: h.getDeviceFd(g, '0000:01:00.0').file! };
  };

  it('INFO: ENOSPC with the count first, then both functions of bus 1 with their group', () => {
    const { h, dev } = setup();
    expect(h.call(dev, 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', { argsz: 11 }).result).toBe(-EINVAL);
    const short = info(h, dev, 12 + 8);
    expect([-short.result, short.count]).toEqual([ENOSPC, 2]);
    const r = info(h, dev, 12 + 16);
    expect([r.result, r.flags, r.count]).toEqual([0, 0, 2]);
    expect(devices(r.image, 2)).toEqual([{ id: 0, segment: 0, bus: 1, devfn: 0 }, { id: 0, segment: 0, bus: 1, devfn: 1 }]);
  });

  it('RESET takes the group fds, checks each, and resets every function of the bus', () => {
    const { h, c, g, dev, other } = setup();
    const fresh = [bar0(dev), bar0(other)];
    dirty(dev);
    dirty(other);
    expect(reset(h, dev, [], {})).toBe(EINVAL); // the group path must pass fds
    expect(reset(h, dev, [g.handle], { flags: 1 })).toBe(EINVAL);
    expect(reset(h, dev, [g.handle, g.handle, g.handle])).toBe(EINVAL); // more fds than devices
    expect(reset(h, dev, [HANDLE_NONE])).toBe(EBADF);
    expect(reset(h, dev, [0x1234567])).toBe(EBADF);
    expect(reset(h, dev, [HANDLE_FOREIGN])).toBe(EINVAL);
    expect(reset(h, dev, [c.handle])).toBe(EINVAL);
    expect(reset(h, dev, [g.handle], { count: 2, sent: 1 })).toBe(14 /* EFAULT */);
    expect([bar0(dev), bar0(other)]).not.toEqual(fresh);
    expect(reset(h, dev, [g.handle])).toBe(0);
    expect([bar0(dev), bar0(other)]).toEqual(fresh);
  });
});

describe('the cdev path', () => {
  it('INFO reports device IDs in the caller\'s iommufd; RESET takes no fds and resets the bus', () => {
    const h = new Harness();
    const i = h.open('/dev/iommu');
    const dev = h.open('/dev/vfio/devices/vfio2');
    const devid = h.call(dev, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: i.handle }).out.out_devid as number;
    const r = info(h, dev, 12 + 8);
    expect([r.result, r.flags, r.count]).toEqual([0, 3, 1]);
    expect(devices(r.image, 1)).toEqual([{ id: devid, segment: 0, bus: 2, devfn: 0 }]);
    const fresh = bar0(dev);
    dirty(dev);
    expect(reset(h, dev, [i.handle])).toBe(EINVAL); // a cdev passes no group fds
    expect(bar0(dev)).not.toBe(fresh);
    expect(reset(h, dev, [])).toBe(0);
    expect(bar0(dev)).toBe(fresh);
  });

  it('a bus shared with another group\'s function: NOT_OWNED until that one is bound to the same iommufd', () => {
    // Two groups behind one bus: 01:00.0 in group 0, 01:00.1 in group 1.
    const t = structuredClone(defaultTopology()) as ReturnType<typeof defaultTopology>;
    const pes = t.phbs[0].pes;
    pes[1].devices = [pes[0].devices.pop()!];
    const h = new Harness(t);
    const i = h.open('/dev/iommu');
    const a = h.open('/dev/vfio/devices/vfio0');
    const idA = h.call(a, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: i.handle }).out.out_devid as number;
    let r = info(h, a, 12 + 16);
    expect([r.result, r.flags, r.count]).toEqual([0, 1, 2]);
    expect(devices(r.image, 2).map((d) => d.id)).toEqual([idA, -1]);
    expect(reset(h, a, [])).toBe(EINVAL);
    const b = h.open('/dev/vfio/devices/vfio1');
    const idB = h.call(b, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: i.handle }).out.out_devid as number;
    r = info(h, a, 12 + 16);
    expect([r.flags, devices(r.image, 2).map((d) => d.id)]).toEqual([3, [idA, idB]]);
    expect(reset(h, a, [])).toBe(0);
  });
});
