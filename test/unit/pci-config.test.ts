// Config space through vfio-pci's rules: what the user reads and may write, field by field, and the
// topology checks that keep a function from contradicting itself.
import { describe, expect, it } from 'vitest';
import { PciConfigSpace } from '../../src/objects/vfio/pci-config.ts';
import { DEFAULT_TOPOLOGY_JSON, defaultTopology, parseTopology, type PciFunctionSpec } from '../../src/topology/topology.ts';
import { VFIO } from '../../src/uapi/constants.ts';

const specs = new Map<string, PciFunctionSpec>();
for (const pe of defaultTopology().phbs[0].pes) for (const d of pe.devices) specs.set(d.bdf, d);
const nic = () => new PciConfigSpace(specs.get('0000:01:00.0')!, true);
const nvme = () => new PciConfigSpace(specs.get('0000:02:00.0')!, false);

const u8 = (c: PciConfigSpace, at: number) => c.read(at, 1)[0];
const u16 = (c: PciConfigSpace, at: number) => c.read(at, 2).readUInt16LE(0);
const u32 = (c: PciConfigSpace, at: number) => c.read(at, 4).readUInt32LE(0);
const w16 = (c: PciConfigSpace, at: number, v: number) => c.write(at, Buffer.from([v & 0xff, v >> 8]));
const w32 = (c: PciConfigSpace, at: number, v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  c.write(at, b);
};
const capAt = (c: PciConfigSpace, id: number, extended = false) => c.capabilities().find((x) => x.id === id && x.extended === extended)!.offset;

/** A device entry of the default topology with some keys replaced, as a one-function topology. */
function withDevice(patch: Record<string, unknown>) {
  const nvmeEntry = DEFAULT_TOPOLOGY_JSON.phbs[0].pes[1].devices[0];
  return () => parseTopology({ host: DEFAULT_TOPOLOGY_JSON.host, phbs: [{ domain: 0, pes: [{ pe: 1, group: 0, devices: [{ ...nvmeEntry, ...patch }] }] }] });
}

describe('the default functions look like the real ones', () => {
  it('ConnectX-5 function 0: IDs, 4K space, chain PM/VPD/PCIe/MSI-X/vendor, AER/ARI/SR-IOV/ACS with Secondary PCIe hidden', () => {
    const c = nic();
    expect(c.size).toBe(4096);
    expect([u16(c, 0), u16(c, 2), u16(c, 0x2c), u16(c, 0x2e), u8(c, 8)]).toEqual([0x15b3, 0x1017, 0x15b3, 0x0007, 0]);
    expect(c.read(0x09, 3)).toEqual(Buffer.from([0, 0, 2]));
    const list = c.capabilities().map((x) => `${x.extended ? 'ext' : 'cap'} ${x.id.toString(16)}@${x.offset.toString(16)}`);
    expect(list).toEqual(['cap 1@40', 'cap 3@48', 'cap 10@60', 'cap 11@9c', 'cap 9@c0', 'ext 1@100', 'ext e@148', 'ext 10@150', 'ext d@1bc']);
    // The hidden block is still there to a raw read, only unlinked.
    expect(u16(c, 0x190)).toBe(0x19);
    expect(c.link).toEqual({ speed: '8.0 GT/s PCIe', width: 16, maxSpeed: '8.0 GT/s PCIe', maxWidth: 16 });
    expect(c.msixLayout).toMatchObject({ vectors: 64, tableBar: 0, tableOffset: 0x2000, pbaBar: 0, pbaOffset: 0x3000 });
  });

  it('Samsung NVMe: PM@40, MSI@50 (64-bit, 32 vectors), PCIe x4@70, MSI-X 33@b0 with table 0x3000 and PBA 0x2000', () => {
    const c = nvme();
    expect([u16(c, 0), u16(c, 2), u16(c, 0x2e)]).toEqual([0x144d, 0xa808, 0xa801]);
    expect(c.capabilities().filter((x) => !x.extended).map((x) => [x.id, x.offset])).toEqual([[1, 0x40], [5, 0x50], [0x10, 0x70], [0x11, 0xb0]]);
    expect(c.capabilities().filter((x) => x.extended).map((x) => x.id)).toEqual([0x01, 0x03, 0x04, 0x18]); // L1SS and Secondary PCIe hidden
    expect([u32(c, 0xb4), u32(c, 0xb8)]).toEqual([0x3000, 0x2000]);
    expect(c.link?.width).toBe(4);
    expect([0, 1, 2, 3, 4].map((i) => c.irqCount(i))).toEqual([1, 32, 33, 1, 1]);
  });
});

describe('vfio-pci virtualisation rules', () => {
  it('IDs, class, revision, header type and the capability pointers are read-only', () => {
    const c = nvme();
    const before = c.read(0, 0x40);
    for (const at of [0, 2, 8, 0x0a, 0x0e, 0x2c, 0x34, 0x3d]) w16(c, at, 0xffff);
    expect(c.read(0, 0x40).subarray(0, 4)).toEqual(before.subarray(0, 4));
    expect(c.read(8, 8)).toEqual(before.subarray(8, 16));
    expect(c.read(0x2c, 12)).toEqual(before.subarray(0x2c, 0x38));
    expect(u8(c, 0x3d)).toBe(1);
    w16(c, 0x50, 0xffff); // MSI id and next
    expect(u16(c, 0x50)).toBe(0x7005);
  });

  it('command: decode and bus master go to the function, INTx disable is virtual; status writes are dropped', () => {
    const c = nvme();
    expect(c.memoryEnabled).toBe(false);
    w16(c, 4, 0xffff);
    expect(u16(c, 4)).toBe(0x0546); // no I/O BAR, so no I/O enable
    expect(c.memoryEnabled && c.intxDisabled).toBe(true);
    w16(c, 6, 0xffff);
    expect(u16(c, 6)).toBe(0x0010);
    w16(c, 4, 0x0002);
    expect(c.intxDisabled).toBe(false);
  });

  it('BAR sizing: all-ones reads back the size mask with the flag bits; the upper half masks the high bits', () => {
    const c = nvme();
    expect(u32(c, 0x10) & 0xf).toBe(0x4); // 64-bit, not prefetchable
    w32(c, 0x10, 0xffffffff);
    w32(c, 0x14, 0xffffffff);
    expect([u32(c, 0x10), u32(c, 0x14)]).toEqual([0xffffc004, 0xffffffff]);
    for (const at of [0x18, 0x1c, 0x20, 0x24]) {
      w32(c, at, 0xffffffff);
      expect(u32(c, at)).toBe(0); // no BAR there
    }
    // Byte-wise writes land too.
    c.write(0x11, Buffer.from([0x12]));
    expect(u32(c, 0x10)).toBe(0xffff0004);
    c.write(0x12, Buffer.from([0x34, 0x56]));
    expect(u32(c, 0x10)).toBe(0x56340004);
  });

  it('the ROM BAR sizes to the ROM, keeps its enable bit, and is zero on a function without a ROM', () => {
    const c = nic();
    expect(u32(c, 0x30)).toBe(0x80000000); // where firmware put it, disabled
    w32(c, 0x30, 0xffffffff);
    expect(u32(c, 0x30)).toBe(0xfff00001);
    w32(c, 0x30, 0x80000001);
    expect(u32(c, 0x30)).toBe(0x80000001);
    const n = nvme();
    w32(n, 0x30, 0xffffffff);
    expect(u32(n, 0x30)).toBe(0);
  });

  it('PM: D3hot turns memory decoding off, D0 back on; PME bits are hidden; D1/D2 are not offered', () => {
    const c = nvme();
    w16(c, 4, 2);
    expect(u16(c, 0x42)).toBe(0x0003);
    w16(c, 0x44, 0x0003);
    expect(c.power).toBe('D3hot');
    expect(c.memoryEnabled).toBe(false);
    expect(u16(c, 0x44) & 3).toBe(3);
    w16(c, 0x44, 0x0001);
    expect(c.power).toBe('D3hot');
    c.write(0x44, Buffer.from([0x00])); // a byte write to PM control counts as well
    expect(c.power).toBe('D0');
    expect(c.memoryEnabled).toBe(true);
    w16(c, 0x44, 0x8100); // PME enable / status: virtual and cleared
    expect(u16(c, 0x44)).toBe(0x0008); // No_Soft_Reset
  });

  it('MSI: enable only through SET_IRQS, capable vectors read 0 until then, queue size capped, address/data kept', () => {
    const c = nvme();
    const at = capAt(c, 0x05);
    expect(u16(c, at + 2)).toBe(0x0080); // vfio-pci reads Multiple Message Capable as its msi_qmax, 0 before enabling
    expect(c.hardwareRead(at + 2, 2).readUInt16LE(0)).toBe(0x008a); // the function itself says 32 (sysfs view)
    w16(c, at + 2, 0x00f1); // enable + 8 vectors asked
    expect(u16(c, at + 2)).toBe(0x0080);
    w32(c, at + 4, 0xfee01000);
    w32(c, at + 8, 0x1);
    w16(c, at + 0x0c, 0x4041);
    expect([u32(c, at + 4), u32(c, at + 8), u16(c, at + 0x0c)]).toEqual([0xfee01000, 1, 0x4041]);
    c.setMsiEnabled(true, 4);
    expect(u16(c, at + 2) & 0x0e).toBe(2 << 1); // now log2(4)
    w16(c, at + 2, 0x00f1);
    expect(u16(c, at + 2)).toBe(0x00a5); // enable kept, queue size capped at 4
    expect(c.irqCount(VFIO.VFIO_PCI_MSI_IRQ_INDEX)).toBe(32); // GET_IRQ_INFO reads the function's own field
    c.setMsiEnabled(false);
    w16(c, at + 2, 0x0001);
    expect(u16(c, at + 2) & 1).toBe(0);
  });

  it('MSI-X: the user cannot write the capability; its enable bit follows SET_IRQS', () => {
    const c = nic();
    const at = capAt(c, 0x11);
    w16(c, at + 2, 0xc000);
    w32(c, at + 4, 0x5);
    expect([u16(c, at + 2), u32(c, at + 4)]).toEqual([63, 0x2000]);
    c.setMsixEnabled(true);
    expect(u16(c, at + 2)).toBe(0x8000 | 63);
    c.setMsixEnabled(false);
    expect(u16(c, at + 2)).toBe(63);
  });

  it('PCIe: device control writable but phantom functions, payload virtual; FLR resets; link fields read-only', () => {
    const c = nic();
    const at = capAt(c, 0x10);
    w16(c, 4, 0x0006);
    const ctl = u16(c, at + 8);
    w16(c, at + 8, (ctl | 0x0200 | 0x000f) & ~0x0010);
    expect(u16(c, at + 8)).toBe((ctl | 0x000f) & ~0x0010);
    const link = u32(c, at + 0x0c);
    w32(c, at + 0x0c, 0);
    w16(c, at + 0x10, 0x3);
    expect([u32(c, at + 0x0c), u16(c, at + 0x10), u16(c, at + 0x12) & 0x3ff]).toEqual([link, 0, 0x103]);
    w16(c, at + 8, u16(c, at + 8) | 0x8000); // initiate FLR
    expect(u16(c, at + 8) & 0x8000).toBe(0);
    expect(u16(c, 4)).toBe(0); // the function came back from reset
  });

  it('AER: status bits are RW1C in the function, masks writable, the header read-only', () => {
    const c = nic();
    const at = capAt(c, 0x01, true);
    const hdr = u32(c, at);
    w32(c, at, 0);
    expect(u32(c, at)).toBe(hdr);
    w32(c, at + 8, 0x00001010);
    expect(u32(c, at + 8)).toBe(0x00001010);
    w32(c, at + 8, 0xffffffff);
    expect(u32(c, at + 8)).toBe(0x03fff010);
    w32(c, at + 4, 0xffffffff); // nothing to clear
    expect(u32(c, at + 4)).toBe(0);
  });

  it('VPD: writing an address makes the data register hold the image, flagging completion', () => {
    const c = nic();
    const at = capAt(c, 0x03);
    w16(c, at + 2, 0x0000);
    expect(u16(c, at + 2)).toBe(0x8000);
    expect(u8(c, at + 4)).toBe(0x82); // identifier string tag
    w16(c, at + 2, 0x8000); // a write: the image is read-only, so it never completes
    expect(u16(c, at + 2)).toBe(0x8000);
  });

  it('accesses of any size and alignment, spanning capabilities, agree with byte-wise reads', () => {
    const c = nic();
    const whole = c.read(0, 4096);
    for (const [at, n] of [[0x3f, 3], [0x45, 7], [0x5e, 9], [0x9b, 6], [0xfd, 7], [0x101, 3], [0x18d, 13], [0xffd, 3]]) {
      expect(c.read(at, n)).toEqual(whole.subarray(at, at + n));
    }
    // An unaligned dword write across PM into the gap after it changes nothing read-only.
    c.write(0x46, Buffer.from([1, 2, 3, 4, 5]));
    expect(c.read(0x40, 8)).toEqual(whole.subarray(0x40, 0x48));
  });

  it('GET_IRQ_INFO counts: INTx only with a pin, ERR only for PCIe', () => {
    const t = withDevice({ interruptPin: 0, pcie: false, extCaps: [] })();
    const c = new PciConfigSpace(t.phbs[0].pes[0].devices[0], false);
    expect(c.size).toBe(256);
    expect([0, 1, 2, 3, 4].map((i) => c.irqCount(i))).toEqual([0, 32, 33, 0, 1]);
    expect(c.capabilities().map((x) => x.id)).toEqual([1, 5, 0x11]);
  });
});

describe('the topology describes capabilities and refuses contradictions', () => {
  it('keeps the short forms: msi/msix as counts, MSI-X placed in the first memory BAR without overlap', () => {
    const t = withDevice({ msi: 1, msix: 16, pm: undefined, pcie: undefined, extCaps: undefined })();
    const d = t.phbs[0].pes[0].devices[0];
    expect([d.msi, d.msix]).toEqual([1, 16]);
    expect(d.caps.msix).toMatchObject({ tableBar: 0, tableOffset: 0x2000, pbaBar: 0, pbaOffset: 0x3000 });
    expect(d.caps.pcie).toMatchObject({ type: 'endpoint', linkSpeed: 8, linkWidth: 8 });
    expect(d.caps.extCaps).toEqual(['aer']);
  });

  it.each([
    [{ msix: { vectors: 33, tableOffset: '0x3f00' } }, /MSI-X table .* does not fit BAR 0/],
    [{ msix: { vectors: 33, tableOffset: 0, pbaOffset: '0x100' } }, /overlap in BAR 0/],
    [{ msix: { vectors: 8, tableOffset: 4 } }, /not 8-byte aligned/],
    [{ msix: { vectors: 8, tableBar: 1 } }, /upper half of 64-bit BAR 0/],
    [{ msix: { vectors: 8, tableBar: 2 } }, /BAR the function does not have/],
    [{ msix: { vectors: 8, pbaBar: 7 } }, /not a BAR/],
    [{ msix: { vectors: 4096 } }, /vectors: 1..2048/],
    [{ msi: 3 }, /power of two/],
    [{ bars: [{ index: 0, size: '16K', type: 'mem64' }, { index: 1, size: '4K', type: 'mem32' }] }, /64-bit BAR 0 also takes index 1/],
    [{ bars: [{ index: 2, size: '256', type: 'io' }], msix: 8 }, /needs a memory BAR/],
    [{ msi: { vectors: 1, offset: 0x70 } }, /0x70 overlaps capability/],
    [{ pcie: { linkSpeed: 3 } }, /linkSpeed/],
    [{ pcie: false }, /need a PCI Express function/],
    [{ extCaps: ['aer', 'bogus'] }, /extCaps\[1\]/],
    [{ rom: '1000' }, /ROM BAR is a power of two/],
    [{ interruptPin: 5 }, /interruptPin/],
    [{ vpd: { offset: 0x41 } }, /dword/],
  ])('rejects %j', (patch, message) => {
    expect(withDevice(patch)).toThrow(message);
  });
});

describe('EEH', () => {
  it('while the PE is isolated the function answers all ones and takes no writes; virtual bits still read back', () => {
    let isolated = false;
    const c = new PciConfigSpace(specs.get('0000:02:00.0')!, false, () => isolated);
    w16(c, 4, 0x0006); // memory and bus master on, INTx enabled
    const bar0 = u32(c, 0x10);
    isolated = true;
    expect(u32(c, 0)).toBe(0xa808144d); // IDs are vfio-pci's copy
    expect(u32(c, 0x10)).toBe(bar0); // so are the BARs
    expect(u16(c, 4)).toBe(0xfbff); // the function's bits all ones, INTx disable (0) from the copy
    expect(u16(c, 6)).toBe(0xffff);
    w16(c, 4, 0x0402); // bus master off: does not reach the function; INTx disable is vfio-pci's and lands
    isolated = false;
    expect(u16(c, 4)).toBe(0x0406);
  });

  it('a PE reset puts the function back to power-on; what vfio-pci virtualises stays', () => {
    const c = nvme();
    w16(c, 4, 0x0406);
    w32(c, 0x10, 0x12340000);
    const bar0 = u32(c, 0x10);
    c.setMsixEnabled(true);
    const msix = capAt(c, 0x11);
    expect(u16(c, msix + 2) & 0x8000).toBe(0x8000);
    c.resetHardware();
    expect(u16(c, 4)).toBe(0x0400); // decode and bus master off, INTx disable kept
    expect(c.memoryEnabled).toBe(true); // vfio-pci still remembers the user's memory enable
    expect(u32(c, 0x10)).toBe(bar0);
    expect(u16(c, msix + 2) & 0x8000).toBe(0);
    c.reset();
    expect(u16(c, 4)).toBe(0); // a function-level reset takes the virtual state with it
  });
});
