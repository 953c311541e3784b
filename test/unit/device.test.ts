// The VFIO device file as vfio-pci presents a function: info, regions, interrupts, config space.
import { beforeEach, describe, expect, it } from 'vitest';
import { EINVAL } from '../../src/errno.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import { VFIO } from '../../src/uapi/constants.ts';
import { Harness } from '../helpers/direct.ts';

let h: Harness;
let dev: OpenFile;
const CFG = 7n << 40n;

beforeEach(() => {
  h = new Harness();
  const c = h.open('/dev/vfio/vfio');
  const g = h.open('/dev/vfio/0');
  h.setContainer(g, c);
  h.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 });
  dev = h.getDeviceFd(g, '0000:01:00.1').file!;
});

const read = (off: bigint, n: number) => dev.regionRead(off, n) as Buffer;

describe('device info, regions and interrupts', () => {
  it('GET_INFO follows the argsz rules and copies back what fits', () => {
    expect(h.call(dev, 'VFIO_DEVICE_GET_INFO', { argsz: 15 }).result).toBe(-EINVAL);
    const r = h.call(dev, 'VFIO_DEVICE_GET_INFO', { argsz: 16 });
    expect(r.outBytes.length).toBe(16);
    expect(r.out).toMatchObject({ flags: 3, num_regions: 9, num_irqs: 5 });
  });

  it('reports BAR0 from the topology, no ROM or VGA, config space at index 7 << 40, and rejects index 9', () => {
    const region = (index: number) => h.call(dev, 'VFIO_DEVICE_GET_REGION_INFO', { index });
    expect(region(0).out).toMatchObject({ flags: 3, size: 32n << 20n, offset: 0n });
    expect(region(1).out).toMatchObject({ flags: 0, size: 0n, offset: 1n << 40n }); // upper half of the 64-bit BAR
    expect(region(6).out).toMatchObject({ flags: 0, size: 0n });
    expect(region(7).out).toMatchObject({ flags: 3, size: 256n, offset: CFG });
    expect(region(8).out).toMatchObject({ flags: 0, size: 0n });
    expect(region(9).result).toBe(-EINVAL);
    expect(h.call(dev, 'VFIO_DEVICE_GET_REGION_INFO', { argsz: 31, index: 7 }).result).toBe(-EINVAL);
  });

  it('reports interrupt counts per vfio-pci index, from config space', () => {
    const irq = (index: number) => h.call(dev, 'VFIO_DEVICE_GET_IRQ_INFO', { index }).out;
    expect(irq(VFIO.VFIO_PCI_INTX_IRQ_INDEX)).toMatchObject({ count: 1, flags: 7 });
    expect(irq(VFIO.VFIO_PCI_MSI_IRQ_INDEX)).toMatchObject({ count: 0, flags: 9 });
    expect(irq(VFIO.VFIO_PCI_MSIX_IRQ_INDEX)).toMatchObject({ count: 64, flags: 1 }); // resizable: no NORESIZE
    expect(irq(VFIO.VFIO_PCI_REQ_IRQ_INDEX)).toMatchObject({ count: 1, flags: 9 });
    // ERR exists on PCI Express functions only; this one has no PCIe capability.
    expect(h.call(dev, 'VFIO_DEVICE_GET_IRQ_INFO', { index: VFIO.VFIO_PCI_ERR_IRQ_INDEX }).result).toBe(-EINVAL);
    expect(h.call(dev, 'VFIO_DEVICE_GET_IRQ_INFO', { index: 5 }).result).toBe(-EINVAL);
  });
});

describe('config space', () => {
  it('reads back identity, a multifunction header and the capability list', () => {
    const id = read(CFG, 4);
    expect([id.readUInt16LE(0), id.readUInt16LE(2)]).toEqual([0x15b3, 0x1017]);
    expect(read(CFG + 0x09n, 3)).toEqual(Buffer.from([0x00, 0x00, 0x02]));
    expect(read(CFG + 0x0en, 1)[0]).toBe(0x80); // two functions in slot 01:00
    expect(read(CFG + 0x06n, 2).readUInt16LE(0) & 0x10).toBe(0x10);
    const cap = read(CFG + 0x34n, 1)[0];
    expect(read(BigInt(cap) + CFG, 1)[0]).toBe(0x11); // MSI-X
    expect(read(BigInt(cap) + CFG + 2n, 2).readUInt16LE(0)).toBe(63); // table size N-1
  });

  it('answers BAR sizing for a 64-bit prefetchable BAR and keeps addresses written to it', () => {
    dev.regionWrite(CFG + 0x10n, Buffer.from([0xff, 0xff, 0xff, 0xff]));
    dev.regionWrite(CFG + 0x14n, Buffer.from([0xff, 0xff, 0xff, 0xff]));
    expect(read(CFG + 0x10n, 4).readUInt32LE(0)).toBe(0xfe00000c);
    expect(read(CFG + 0x14n, 4).readUInt32LE(0)).toBe(0xffffffff);
    dev.regionWrite(CFG + 0x10n, Buffer.from([0x00, 0x00, 0x00, 0x40]));
    expect(read(CFG + 0x10n, 4).readUInt32LE(0)).toBe(0x4000000c);
  });

  it('starts with bus mastering off, lets it be toggled, and clears it on reset', () => {
    expect(read(CFG + 4n, 2).readUInt16LE(0) & 4).toBe(0);
    dev.regionWrite(CFG + 4n, Buffer.from([0x06, 0x00]));
    expect(read(CFG + 4n, 2).readUInt16LE(0)).toBe(0x06);
    dev.regionWrite(CFG + 0n, Buffer.from([0, 0])); // vendor ID is read-only
    expect(read(CFG, 2).readUInt16LE(0)).toBe(0x15b3);
    expect(h.call(dev, 'VFIO_DEVICE_RESET').result).toBe(0);
    expect(read(CFG + 4n, 2).readUInt16LE(0)).toBe(0);
  });

  it('refuses accesses past a region and regions that do not exist', () => {
    expect(() => read(CFG + 250n, 8)).toThrow(/past region 7/);
    expect(() => read(6n << 40n, 4)).toThrow(/past region 6/);
    expect(() => read(9n << 40n, 4)).toThrow(/no region 9/);
  });

  it('keeps BAR contents written through region space', () => {
    dev.regionWrite(0x1ff8n, Buffer.from('12345678abcd'));
    expect(read(0x1ff8n, 12).toString()).toBe('12345678abcd'); // across a page boundary
    expect(read(0x4000n, 4)).toEqual(Buffer.alloc(4));
  });
});
