// A PCI function's configuration space as vfio-pci presents it: identity read from the topology, a
// command register that starts with bus mastering off, BARs that answer the sizing protocol (write all
// ones, read back the size mask), and a capability list with MSI and MSI-X where the function has them.
import type { PciFunctionSpec } from '../../topology/topology.ts';

export const CONFIG_SIZE = 256;
const PCI_COMMAND = 0x04;
const PCI_STATUS = 0x06;
const PCI_BAR0 = 0x10;
const PCI_CAP_PTR = 0x34;
const CAP_MSI = 0x05;
const CAP_MSIX = 0x11;

/** Writable bits of the command register: IO, memory, bus master, parity, SERR, INTx disable. */
const COMMAND_MASK = 0x0547;

interface BarReg {
  /** Low flag bits that read back unchanged (type, prefetchable). */
  flags: number;
  /** Size mask for this 32-bit register (the upper half of a 64-bit BAR masks the high size bits). */
  mask: number;
  value: number;
}

export class PciConfigSpace {
  /** Bytes of config space the function has (what the config region and sysfs `config` expose). */
  readonly size = CONFIG_SIZE;
  private readonly bytes = Buffer.alloc(CONFIG_SIZE);
  private readonly bars: (BarReg | undefined)[] = new Array(6).fill(undefined);

  constructor(readonly spec: PciFunctionSpec, multifunction: boolean) {
    const b = this.bytes;
    b.writeUInt16LE(spec.vendor, 0x00);
    b.writeUInt16LE(spec.device, 0x02);
    b.writeUInt8(spec.classCode & 0xff, 0x09);
    b.writeUInt8((spec.classCode >> 8) & 0xff, 0x0a);
    b.writeUInt8((spec.classCode >> 16) & 0xff, 0x0b);
    b.writeUInt8(multifunction ? 0x80 : 0x00, 0x0e);
    b.writeUInt16LE(spec.subsystemVendor, 0x2c);
    b.writeUInt16LE(spec.subsystemDevice, 0x2e);
    b.writeUInt8(1, 0x3d); // interrupt pin INTA
    for (const bar of spec.bars) {
      const size = BigInt(bar.size);
      if (bar.type === 'io') {
        this.bars[bar.index] = { flags: 0x1, mask: Number(~(size - 1n) & 0xfffffffcn), value: 0 };
      } else {
        const flags = (bar.type === 'mem64' ? 0x4 : 0) | (bar.prefetchable ? 0x8 : 0);
        const mask64 = ~(size - 1n) & 0xffff_ffff_ffff_fff0n;
        this.bars[bar.index] = { flags, mask: Number(mask64 & 0xfffffff0n), value: 0 };
        if (bar.type === 'mem64') this.bars[bar.index + 1] = { flags: 0, mask: Number(mask64 >> 32n), value: 0 };
      }
    }
    this.buildCapabilities();
    this.reset();
  }

  private buildCapabilities(): void {
    const caps: [number, Buffer][] = [];
    if (this.spec.msi > 0) {
      // Message control: 64-bit capable, multiple message capable = log2(count).
      const mmc = Math.min(5, Math.ceil(Math.log2(Math.max(1, this.spec.msi))));
      const cap = Buffer.alloc(14);
      cap.writeUInt16LE(0x0080 | (mmc << 1), 2);
      caps.push([CAP_MSI, cap]);
    }
    if (this.spec.msix > 0) {
      const cap = Buffer.alloc(12);
      cap.writeUInt16LE(this.spec.msix - 1, 2); // table size is N-1
      caps.push([CAP_MSIX, cap]);
    }
    let at = 0x40;
    let prev = PCI_CAP_PTR;
    for (const [id, body] of caps) {
      this.bytes.writeUInt8(at, prev);
      body.copy(this.bytes, at);
      this.bytes.writeUInt8(id, at);
      this.bytes.writeUInt8(0, at + 1);
      prev = at + 1;
      at += (body.length + 3) & ~3;
    }
    if (caps.length) this.bytes.writeUInt16LE(0x0010, PCI_STATUS); // capability list present
  }

  /** Function-level reset: command register and BAR addresses back to their power-on values. */
  reset(): void {
    this.bytes.writeUInt16LE(0, PCI_COMMAND);
    for (const b of this.bars) if (b) b.value = 0;
  }

  // ---- Interrupt enable bits, moved by VFIO_DEVICE_SET_IRQS (src/objects/vfio/irqs.ts) ----

  /** MSI enable and multiple message enable (log2 of the vectors enabled). */
  setMsiEnabled(enabled: boolean, vectors: number): void {
    const at = this.capability(CAP_MSI);
    if (!at) return;
    const mme = enabled ? Math.min(5, Math.ceil(Math.log2(Math.max(1, vectors)))) : 0;
    const ctl = this.bytes.readUInt16LE(at + 2) & ~0x0071;
    this.bytes.writeUInt16LE(ctl | (mme << 4) | (enabled ? 1 : 0), at + 2);
  }

  /** MSI-X enable (bit 15 of message control). */
  setMsixEnabled(enabled: boolean): void {
    const at = this.capability(CAP_MSIX);
    if (!at) return;
    const ctl = this.bytes.readUInt16LE(at + 2) & ~0x8000;
    this.bytes.writeUInt16LE(ctl | (enabled ? 0x8000 : 0), at + 2);
  }

  private capability(id: number): number {
    for (let at = this.bytes[PCI_CAP_PTR]; at >= 0x40; at = this.bytes[at + 1]) if (this.bytes[at] === id) return at;
    return 0;
  }

  read(offset: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = this.byte(offset + i);
    return out;
  }

  private byte(off: number): number {
    if (off >= CONFIG_SIZE) return 0xff;
    if (off >= PCI_BAR0 && off < PCI_BAR0 + 24) {
      const reg = this.barRegister((off - PCI_BAR0) >> 2);
      return (reg >>> (8 * (off & 3))) & 0xff;
    }
    return this.bytes[off];
  }

  private barRegister(i: number): number {
    const b = this.bars[i];
    return b ? ((b.value & b.mask) | b.flags) >>> 0 : 0;
  }

  write(offset: number, data: Buffer): void {
    for (let i = 0; i < data.length; i++) {
      const off = offset + i;
      if (off >= PCI_BAR0 && off < PCI_BAR0 + 24) {
        const b = this.bars[(off - PCI_BAR0) >> 2];
        if (!b) continue;
        const shift = 8 * (off & 3);
        b.value = ((b.value & ~(0xff << shift)) | (data[i] << shift)) >>> 0;
      } else if (off === PCI_COMMAND || off === PCI_COMMAND + 1) {
        const cur = this.bytes.readUInt16LE(PCI_COMMAND);
        const shift = 8 * (off - PCI_COMMAND);
        const next = (cur & ~(0xff << shift)) | (data[i] << shift);
        this.bytes.writeUInt16LE(next & COMMAND_MASK, PCI_COMMAND);
      }
      // Everything else is read-only to the user, as vfio-pci's virtualized config space makes it.
    }
  }
}
