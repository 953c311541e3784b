// The VFIO device file as vfio-pci presents a function: info, regions, interrupts, config space.
import { beforeEach, describe, expect, it } from 'vitest';
import { EFAULT, EINVAL, EIO } from '../../src/errno.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import { VFIO } from '../../src/uapi/constants.ts';
import { Harness } from '../helpers/direct.ts';
import { DEFAULT_TOPOLOGY_JSON } from '../../src/topology/topology.ts';

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

  it('reports BAR0 from the topology, a read-only ROM, PCIe config space at index 7 << 40, no VGA, and rejects index 9', () => {
    const region = (index: number) => h.call(dev, 'VFIO_DEVICE_GET_REGION_INFO', { index });
    expect(region(0).out).toMatchObject({ flags: 3, size: 32n << 20n, offset: 0n });
    expect(region(1).out).toMatchObject({ flags: 0, size: 0n, offset: 1n << 40n }); // upper half of the 64-bit BAR
    expect(region(6).out).toMatchObject({ flags: 1, size: 1n << 20n, offset: 6n << 40n });
    expect(region(7).out).toMatchObject({ flags: 3, size: 4096n, offset: CFG, cap_offset: 0 });
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
    // ERR exists on PCI Express functions only (a conventional function answers EINVAL: pci-config tests).
    expect(irq(VFIO.VFIO_PCI_ERR_IRQ_INDEX)).toMatchObject({ count: 1, flags: 9 });
    expect(h.call(dev, 'VFIO_DEVICE_GET_IRQ_INFO', { index: 5 }).result).toBe(-EINVAL);
  });

  it('takes interrupt counts from config space: no pin, no INTx; no PCIe, no ERR index and 256 bytes of config', () => {
    const nvme = DEFAULT_TOPOLOGY_JSON.phbs[0].pes[1].devices[0];
    const conventional = new Harness({ ...DEFAULT_TOPOLOGY_JSON, phbs: [{ ...DEFAULT_TOPOLOGY_JSON.phbs[0], pes: [{ pe: 2, group: 1, devices: [{ ...nvme, pcie: false, extCaps: [], interruptPin: 0 }] }] }] });
    const c = conventional.open('/dev/vfio/vfio');
    const g = conventional.open('/dev/vfio/1');
    conventional.setContainer(g, c);
    conventional.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 });
    const d = conventional.getDeviceFd(g, '0000:02:00.0').file!;
    const irq = (index: number) => conventional.call(d, 'VFIO_DEVICE_GET_IRQ_INFO', { index });
    expect(irq(VFIO.VFIO_PCI_INTX_IRQ_INDEX).out).toMatchObject({ count: 0, flags: 7 });
    expect(irq(VFIO.VFIO_PCI_MSI_IRQ_INDEX).out).toMatchObject({ count: 32, flags: 9 });
    expect(irq(VFIO.VFIO_PCI_MSIX_IRQ_INDEX).out).toMatchObject({ count: 33 });
    expect(irq(VFIO.VFIO_PCI_ERR_IRQ_INDEX).result).toBe(-EINVAL);
    expect(irq(VFIO.VFIO_PCI_REQ_IRQ_INDEX).out).toMatchObject({ count: 1 });
    expect(conventional.call(d, 'VFIO_DEVICE_GET_REGION_INFO', { index: 7 }).out).toMatchObject({ size: 256n });
  });
});

describe('config space', () => {
  it('reads back identity, a multifunction header and the capability list', () => {
    const id = read(CFG, 4);
    expect([id.readUInt16LE(0), id.readUInt16LE(2)]).toEqual([0x15b3, 0x1017]);
    expect(read(CFG + 0x09n, 3)).toEqual(Buffer.from([0x00, 0x00, 0x02]));
    expect(read(CFG + 0x0en, 1)[0]).toBe(0x80); // two functions in slot 01:00
    expect(read(CFG + 0x06n, 2).readUInt16LE(0) & 0x10).toBe(0x10);
    // The ConnectX-5 chain: PM, VPD, PCI Express, MSI-X, vendor-specific.
    const chain: number[] = [];
    for (let at = read(CFG + 0x34n, 1)[0]; at; at = read(CFG + BigInt(at) + 1n, 1)[0]) chain.push(read(CFG + BigInt(at), 1)[0], at);
    expect(chain).toEqual([0x01, 0x40, 0x03, 0x48, 0x10, 0x60, 0x11, 0x9c, 0x09, 0xc0]);
    expect(read(CFG + 0x9en, 2).readUInt16LE(0)).toBe(63); // table size N-1
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

  it('refuses accesses past a region and regions that do not exist, with vfio-pci errnos', () => {
    const errno = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return (e as { errno: number }).errno;
      }
      return 0;
    };
    expect(errno(() => read(CFG + 4090n, 8))).toBe(EFAULT); // config: the whole access must fit
    expect(errno(() => read(CFG + 4096n, 1))).toBe(EFAULT);
    expect(read(CFG + 4095n, 1).length).toBe(1);
    expect(errno(() => read(1n << 40n, 4))).toBe(EINVAL); // upper half of the 64-bit BAR
    expect(errno(() => read(8n << 40n, 4))).toBe(EINVAL); // no VGA
    expect(errno(() => read(9n << 40n, 4))).toBe(EINVAL);
    expect(errno(() => dev.regionWrite(6n << 40n, Buffer.from([0])))).toBe(EINVAL); // the ROM is read-only
    expect(errno(() => read(0n, 4))).toBe(EIO); // memory decoding is off
    dev.regionWrite(CFG + 4n, Buffer.from([0x02, 0x00]));
    expect(errno(() => read(32n << 20n, 1))).toBe(EINVAL); // starts past the BAR
    expect(read((32n << 20n) - 2n, 8).length).toBe(2); // runs over its end: shortened
  });

  it('keeps BAR contents written through region space, with memory decoding on', () => {
    dev.regionWrite(CFG + 4n, Buffer.from([0x02, 0x00]));
    dev.regionWrite(0xff8n, Buffer.from('12345678abcd'));
    expect(read(0xff8n, 12).toString()).toBe('12345678abcd'); // across a page boundary
    expect(read(0x4000n, 4)).toEqual(Buffer.alloc(4));
    // The MSI-X table (64 entries at 0x2000) is the host's: all-ones to read, writes dropped; the PBA is not.
    expect(dev.regionWrite(0x1ffcn, Buffer.from('abcdefgh'))).toBe(8);
    expect(read(0x1ff8n, 12).toString('hex')).toBe('0000000061626364ffffffff');
    expect(read(0x23fcn, 8).toString('hex')).toBe('ffffffff00000000');
  });
});
