// A PCI function's configuration space, in two layers the way vfio-pci has it:
//  - the function's own registers (`hw`), with the bits its hardware lets software set and the RW1C bits;
//  - vfio-pci's virtual copy (`vconf`) and, per byte, which bits it virtualises and which the user may
//    write at all (drivers/vfio/pci/vfio_pci_config.c). A read takes virtualised bits from the copy and
//    the rest from the function; a write puts writable virtualised bits into the copy, writable other
//    bits through to the function, and drops the rest.
// Accesses are cut into the chunks vfio-pci makes (aligned 4/2/1 bytes, never across a capability), since
// a few rules look at the chunk (MSI flags, PM control). Capabilities vfio-pci cannot size (Secondary PCIe,
// L1 PM Substates, ...) are unlinked from the lists the user walks, as vfio-pci unlinks them.
//
// Interface for the interrupt code (VFIO_DEVICE_SET_IRQS):
//   setMsiEnabled(on, vectors)  - MSI armed/disarmed with that many vectors: the function's MSI enable and
//                                 Multiple Message Enable follow, and the Multiple Message Capable field
//                                 the user reads becomes log2(vectors), as vfio-pci makes it.
//   setMsixEnabled(on)          - MSI-X armed/disarmed: the MSI-X enable bit the user reads follows.
//   irqCount(index)             - what VFIO_DEVICE_GET_IRQ_INFO reports per vfio-pci index.
//   intxDisabled                - the user's (virtual) INTx disable bit of the command register.
//   memoryEnabled               - memory decoding on and the function in D0: BAR accesses allowed.
// For sysfs: `link` (current/max link speed and width strings) and hardwareRead() (the function's own
// registers, what /sys/bus/pci/devices/X/config shows, as opposed to the user's view through vfio-pci).
// For EEH: `isolated` (the function's PE is frozen or held in reset: its own registers answer all ones
// and take no writes, vfio-pci's virtual bits still read back) and resetHardware() (a PE reset).
// docs/config-space.md describes the topology keys and the rules.
import { layoutCaps, layoutExtCaps, CAP_ID, EXT_CAPS, type PciCapsSpec } from '../../topology/pci-caps.ts';
import type { PciFunctionSpec } from '../../topology/topology.ts';
import { VFIO } from '../../uapi/constants.ts';

export const PCI_CFG_SPACE_SIZE = 256;
export const PCIE_CFG_SPACE_SIZE = 4096;

const COMMAND = 0x04;
const STATUS = 0x06;
const BAR0 = 0x10;
const ROM_BAR = 0x30;
const CAP_PTR = 0x34;
const CMD_IO = 0x1;
const CMD_MEM = 0x2;
const CMD_INTX_DISABLE = 0x400;
const STATUS_CAP_LIST = 0x10;
const ROM_ENABLE = 0x1;
const PM_CTRL = 4;
const PM_NO_SOFT_RESET = 0x8;
const EXP_DEVCAP = 4;
const EXP_DEVCTL = 8;
const EXP_DEVCTL_FLR = 0x8000;
const EXP_DEVCTL_READRQ = 0x7000;
const EXP_DEVCTL_PAYLOAD = 0x00e0;
const EXP_DEVCTL_PHANTOM = 0x0200;
const EXP_DEVCTL2 = 0x28;
const EXP_DEVCTL2_ARI = 0x20;
const MSI_FLAGS = 2;
const MSI_ENABLE = 0x1;
const MSI_QMASK = 0x0e;
const MSI_QSIZE = 0x70;
const MSIX_ENABLE = 0x8000;
const MSIX_MASKALL = 0x4000;
const VPD_ADDR = 2;
const VPD_DATA = 4;
const VPD_F = 0x8000;

/** Extended capabilities whose length vfio-pci knows; the others it hides from the user. */
const VFIO_SIZED_EXT = new Set<number>([EXT_CAPS.aer, EXT_CAPS.vc, EXT_CAPS.dsn, EXT_CAPS['power-budget'], EXT_CAPS.acs, EXT_CAPS.ari, EXT_CAPS.ats, EXT_CAPS.sriov, EXT_CAPS.ltr]);
/** The bytes of an extended capability vfio-pci maps as that capability (the rest of its block is a gap). */
const VFIO_EXT_LENGTH: Record<number, number> = { [EXT_CAPS.aer]: 0x2c, [EXT_CAPS.dsn]: 0x0c, [EXT_CAPS['power-budget']]: 0x10, [EXT_CAPS.ari]: 8, [EXT_CAPS.ats]: 8, [EXT_CAPS.sriov]: 0x40, [EXT_CAPS.ltr]: 8, [EXT_CAPS.acs]: 8, [EXT_CAPS.vc]: 0x1c };

type Kind = 'basic' | 'pm' | 'msi' | 'pcie' | 'msix' | 'vpd' | 'vendor' | 'ext' | 'aer' | 'pwr';

interface Region {
  kind: Kind;
  start: number;
  length: number;
}

/** A capability as the user's walk finds it. */
export interface CapabilityInfo {
  id: number;
  offset: number;
  extended: boolean;
}

export interface MsixLayout {
  vectors: number;
  tableBar: number;
  tableOffset: number;
  tableSize: number;
  pbaBar: number;
  pbaOffset: number;
  pbaSize: number;
}

/** The link as sysfs current_link_speed/current_link_width (and the max_ ones) print it. */
export interface PciLinkDescription {
  speed: string;
  width: number;
  maxSpeed: string;
  maxWidth: number;
}

export type PowerState = 'D0' | 'D3hot';

const SPEED_CODE: Record<number, number> = { 2.5: 1, 5: 2, 8: 3, 16: 4, 32: 5 };

export function linkSpeedString(gts: number): string {
  return `${gts === 2.5 ? '2.5' : gts.toFixed(1)} GT/s PCIe`;
}

function pow2log(n: number): number {
  return Math.ceil(Math.log2(Math.max(1, n)));
}

export class PciConfigSpace {
  /** Bytes of config space the function has (what the config region and sysfs `config` expose). */
  readonly size: number;
  readonly caps: PciCapsSpec;
  private readonly hw: Buffer;
  private readonly hwWritable: Buffer;
  private readonly hwRw1c: Buffer;
  private readonly vconf: Buffer;
  private readonly virt: Buffer;
  private readonly writable: Buffer;
  /** Per byte: index into regions, -1 for a gap (raw access). */
  private readonly owner: Int16Array;
  private readonly regions: Region[] = [];
  private readonly offsets = new Map<Kind | number, number>();
  /** Per BAR register: size mask and flag bits, as vfio-pci's BAR fixup applies them. */
  private readonly barMask: number[] = new Array(6).fill(0);
  private readonly barFlags: number[] = new Array(6).fill(0);
  private readonly vpd: Buffer;
  private msiActive = false;
  /** vfio-pci's msi_qmax: zero until MSI is first enabled, then log2 of the vectors enabled. */
  private msiQmax = 0;
  power: PowerState = 'D0';

  /** @param isolated config cycles do not reach the function while this holds (EEH: PE frozen or in reset) */
  constructor(readonly spec: PciFunctionSpec, private readonly multifunction: boolean, private readonly isolated: () => boolean = () => false) {
    this.caps = spec.caps;
    this.size = this.caps.pcie ? PCIE_CFG_SPACE_SIZE : PCI_CFG_SPACE_SIZE;
    this.hw = Buffer.alloc(this.size);
    this.hwWritable = Buffer.alloc(this.size);
    this.hwRw1c = Buffer.alloc(this.size);
    this.vconf = Buffer.alloc(this.size);
    this.virt = Buffer.alloc(this.size);
    this.writable = Buffer.alloc(this.size);
    this.owner = new Int16Array(this.size).fill(-1);
    this.vpd = this.vpdImage();
    this.powerOn();
  }

  // ---- what other parts read ----

  /** The capability lists as a user walking them sees them. */
  capabilities(): CapabilityInfo[] {
    const out: CapabilityInfo[] = [];
    if (this.read(STATUS, 2).readUInt16LE(0) & STATUS_CAP_LIST) {
      for (let at = this.read(CAP_PTR, 1)[0] & ~3, n = 0; at && n < 48; n++) {
        out.push({ id: this.read(at, 1)[0], offset: at, extended: false });
        at = this.read(at + 1, 1)[0] & ~3;
      }
    }
    if (this.size > PCI_CFG_SPACE_SIZE) {
      for (let at = 0x100, n = 0; at >= 0x100 && n < 960; n++) {
        const h = this.read(at, 4).readUInt32LE(0);
        if (h === 0) break;
        if (h & 0xffff) out.push({ id: h & 0xffff, offset: at, extended: true });
        at = (h >>> 20) & 0xffc;
      }
    }
    return out;
  }

  /** The function's registers as the host sees them (sysfs `config`), without vfio-pci's virtualisation. */
  hardwareRead(pos: number, length: number): Buffer {
    const out = Buffer.alloc(length, 0xff);
    if (pos < this.size) this.hw.copy(out, 0, pos, Math.min(this.size, pos + length));
    return out;
  }

  get msixLayout(): MsixLayout | undefined {
    const m = this.caps.msix;
    if (!m) return undefined;
    return { vectors: m.vectors, tableBar: m.tableBar, tableOffset: m.tableOffset, tableSize: m.vectors * 16, pbaBar: m.pbaBar, pbaOffset: m.pbaOffset, pbaSize: Math.ceil(m.vectors / 64) * 8 };
  }

  get link(): PciLinkDescription | undefined {
    const p = this.caps.pcie;
    if (!p || p.type === 'rc-endpoint') return undefined;
    return { speed: linkSpeedString(p.linkSpeed), width: p.linkWidth, maxSpeed: linkSpeedString(p.linkSpeed), maxWidth: p.linkWidth };
  }

  /** VFIO_DEVICE_GET_IRQ_INFO counts, from the function's registers as vfio_pci_get_irq_count reads them. */
  irqCount(index: number): number {
    switch (index) {
      case VFIO.VFIO_PCI_INTX_IRQ_INDEX:
        return this.hw[0x3d] ? 1 : 0;
      case VFIO.VFIO_PCI_MSI_IRQ_INDEX: {
        const at = this.offsets.get('msi');
        return at === undefined ? 0 : 1 << ((this.hw.readUInt16LE(at + MSI_FLAGS) & MSI_QMASK) >> 1);
      }
      case VFIO.VFIO_PCI_MSIX_IRQ_INDEX: {
        const at = this.offsets.get('msix');
        return at === undefined ? 0 : (this.hw.readUInt16LE(at + 2) & 0x7ff) + 1;
      }
      case VFIO.VFIO_PCI_ERR_IRQ_INDEX:
        return this.caps.pcie ? 1 : 0;
      case VFIO.VFIO_PCI_REQ_IRQ_INDEX:
        return 1;
      default:
        return 0;
    }
  }

  get isPcie(): boolean {
    return !!this.caps.pcie;
  }

  get intxDisabled(): boolean {
    return !!(this.vconf.readUInt16LE(COMMAND) & CMD_INTX_DISABLE);
  }

  get memoryEnabled(): boolean {
    return this.power === 'D0' && !!(this.vconf.readUInt16LE(COMMAND) & CMD_MEM);
  }

  /** The expansion ROM's contents: an image header, then nothing (vfio-pci reads all-ones past the image). */
  romImage(): Buffer {
    const size = Math.min(this.caps.romSize, 0x800);
    const img = Buffer.alloc(size);
    if (!size) return img;
    img.writeUInt16LE(0xaa55, 0);
    img[2] = size / 512;
    img.writeUInt16LE(0x1c, 0x18);
    img.write('PCIR', 0x1c, 'latin1');
    img.writeUInt16LE(this.spec.vendor, 0x20);
    img.writeUInt16LE(this.spec.device, 0x22);
    img.writeUInt16LE(0x18, 0x26);
    img[0x29] = this.spec.classCode & 0xff;
    img[0x2a] = (this.spec.classCode >> 8) & 0xff;
    img[0x2b] = (this.spec.classCode >> 16) & 0xff;
    img.writeUInt16LE(size / 512, 0x2c);
    img[0x30] = 0x03; // EFI image
    img[0x31] = 0x80; // last image
    return img;
  }

  // ---- the interrupt code's interface ----

  setMsiEnabled(on: boolean, vectors = 1): void {
    const at = this.offsets.get('msi');
    if (at === undefined) return;
    this.msiActive = on;
    let flags = this.hw.readUInt16LE(at + MSI_FLAGS) & ~(MSI_ENABLE | MSI_QSIZE);
    if (on) {
      const q = pow2log(vectors);
      flags |= MSI_ENABLE | (q << 4);
      this.msiQmax = q;
    }
    this.hw.writeUInt16LE(flags, at + MSI_FLAGS);
  }

  setMsixEnabled(on: boolean): void {
    const at = this.offsets.get('msix');
    if (at === undefined) return;
    const flags = this.hw.readUInt16LE(at + 2) & ~(MSIX_ENABLE | MSIX_MASKALL);
    this.hw.writeUInt16LE(flags | (on ? MSIX_ENABLE : 0), at + 2);
  }

  // ---- resets ----

  /** The function as firmware left it and vfio-pci found it at probe: BARs assigned, decoding off. */
  powerOn(): void {
    this.hw.fill(0);
    this.hwWritable.fill(0);
    this.hwRw1c.fill(0);
    this.virt.fill(0);
    this.writable.fill(0);
    this.owner.fill(-1);
    this.regions.length = 0;
    this.offsets.clear();
    this.msiActive = false;
    this.msiQmax = 0;
    this.power = 'D0';
    this.buildHeader();
    this.buildCapabilities();
    this.buildExtCapabilities();
    this.hw.copy(this.vconf);
    this.virtualise();
  }

  /** Function-level reset: registers software set go back to their power-on values. */
  reset(): void {
    this.powerOn();
  }

  /**
   * A reset vfio-pci is not part of (an EEH hot or fundamental reset of the PE): the function's own
   * registers go back to their power-on values (command, MSI-X enable, power state), while vfio-pci's
   * virtual copy, and so what the user reads of virtualised bits (BARs, INTx disable), stays.
   */
  resetHardware(): void {
    const vconf = Buffer.from(this.vconf);
    const { msiActive, msiQmax } = this;
    this.powerOn();
    vconf.copy(this.vconf);
    this.msiActive = msiActive;
    this.msiQmax = msiQmax;
  }

  // ---- building the function ----

  private region(kind: Kind, start: number, length: number): number {
    const i = this.regions.push({ kind, start, length }) - 1;
    for (let b = start; b < Math.min(start + length, this.size); b++) this.owner[b] = i;
    return i;
  }

  /** Set a register of the function: value, bits software may set, bits it clears by writing one. */
  private reg(off: number, bytes: 1 | 2 | 4, value: number, writable = 0, rw1c = 0): void {
    for (let i = 0; i < bytes; i++) {
      this.hw[off + i] = (value >>> (8 * i)) & 0xff;
      this.hwWritable[off + i] = (writable >>> (8 * i)) & 0xff;
      this.hwRw1c[off + i] = (rw1c >>> (8 * i)) & 0xff;
    }
  }

  /** vfio-pci's rule for a field: virtualised bits, user-writable bits. */
  private perm(off: number, bytes: 1 | 2 | 4, virt: number, write: number): void {
    for (let i = 0; i < bytes; i++) {
      this.virt[off + i] = (virt >>> (8 * i)) & 0xff;
      this.writable[off + i] = (write >>> (8 * i)) & 0xff;
    }
  }

  private buildHeader(): void {
    const s = this.spec;
    const c = this.caps;
    const hasIo = s.bars.some((b) => b.type === 'io');
    this.reg(0x00, 2, s.vendor);
    this.reg(0x02, 2, s.device);
    // IO and memory decode, bus master, parity and SERR response, INTx disable.
    this.reg(COMMAND, 2, 0, (hasIo ? CMD_IO : 0) | CMD_MEM | 0x4 | 0x40 | 0x100 | CMD_INTX_DISABLE);
    // Error bits are RW1C in the function; vfio-pci lets the user write none of the status register.
    this.reg(STATUS, 2, c.pcie ? 0 : 0x0200, 0, 0xf900);
    this.reg(0x08, 1, c.revision);
    this.reg(0x09, 1, s.classCode & 0xff);
    this.reg(0x0a, 2, (s.classCode >> 8) & 0xffff);
    this.reg(0x0c, 1, 0, 0xff); // cache line size
    this.reg(0x0d, 1, 0, c.pcie ? 0 : 0xff); // latency timer: hardwired to 0 on PCIe
    this.reg(0x0e, 1, this.multifunction ? 0x80 : 0);
    for (const bar of s.bars) {
      const size = BigInt(bar.size);
      const addr = bar.address < 0n ? 0n : bar.address;
      const at = BAR0 + 4 * bar.index;
      if (bar.type === 'io') {
        this.barFlags[bar.index] = 0x1;
        this.barMask[bar.index] = Number(~(size - 1n) & 0xfffffffcn);
        this.reg(at, 4, Number(addr & 0xfffffffcn) | 1, this.barMask[bar.index]);
      } else {
        const flags = (bar.type === 'mem64' ? 0x4 : 0) | (bar.prefetchable ? 0x8 : 0);
        const mask64 = ~(size - 1n) & 0xffff_ffff_ffff_fff0n;
        this.barFlags[bar.index] = flags;
        this.barMask[bar.index] = Number(mask64 & 0xfffffff0n);
        this.reg(at, 4, (Number(addr & 0xfffffff0n) | flags) >>> 0, this.barMask[bar.index]);
        if (bar.type === 'mem64') {
          this.barMask[bar.index + 1] = Number(mask64 >> 32n);
          this.reg(at + 4, 4, Number((addr >> 32n) & 0xffffffffn), this.barMask[bar.index + 1]);
        }
      }
    }
    this.reg(0x2c, 2, s.subsystemVendor);
    this.reg(0x2e, 2, s.subsystemDevice);
    if (c.romSize) {
      const mask = (~(c.romSize - 1) >>> 0) & 0xfffff800;
      this.reg(ROM_BAR, 4, Number(c.romAddress < 0n ? 0n : c.romAddress) >>> 0, mask | ROM_ENABLE);
    }
    this.reg(0x3c, 1, 0, 0xff);
    this.reg(0x3d, 1, c.interruptPin);
    this.region('basic', 0, 0x40);
  }

  private buildCapabilities(): void {
    const places = layoutCaps(this.caps, this.spec.bdf);
    let prev = CAP_PTR;
    for (const p of places) {
      this.hw[prev] = p.offset;
      this.hw[p.offset] = p.id;
      prev = p.offset + 1;
      const at = p.offset;
      switch (p.id) {
        case CAP_ID.pm: this.buildPm(at); break;
        case CAP_ID.msi: this.buildMsi(at); break;
        case CAP_ID.pcie: this.buildPcie(at); break;
        case CAP_ID.msix: this.buildMsix(at); break;
        case CAP_ID.vpd: this.buildVpd(at); break;
        case CAP_ID.vendor: this.hw[at + 2] = p.length; this.region('vendor', at, p.length); break;
      }
    }
    if (places.length) this.hw[STATUS] |= STATUS_CAP_LIST;
  }

  private buildPm(at: number): void {
    this.offsets.set('pm', at);
    this.reg(at + 2, 2, 0x0003); // version 3, no D1/D2, no PME
    // Power state RW; PME enable RW; PME status RW1C; No_Soft_Reset: D3hot -> D0 keeps state.
    this.reg(at + PM_CTRL, 2, PM_NO_SOFT_RESET, 0x0103, 0x8000);
    this.region('pm', at, 8);
  }

  private buildMsi(at: number): void {
    const m = this.caps.msi!;
    this.offsets.set('msi', at);
    const flags = (pow2log(m.vectors) << 1) | (m.is64 ? 0x80 : 0) | (m.perVectorMask ? 0x100 : 0);
    this.reg(at + MSI_FLAGS, 2, flags, MSI_ENABLE | MSI_QSIZE);
    this.reg(at + 4, 4, 0, 0xfffffffc);
    let o = at + 8;
    if (m.is64) {
      this.reg(o, 4, 0, 0xffffffff);
      o += 4;
    }
    this.reg(o, 2, 0, 0xffff);
    if (m.perVectorMask) {
      const vec = m.vectors >= 32 ? 0xffffffff : (1 << m.vectors) - 1;
      this.reg(o + 4, 4, 0, vec); // mask bits
      this.reg(o + 8, 4, 0); // pending bits, read-only
    }
    this.region('msi', at, 10 + (m.is64 ? 4 : 0) + (m.perVectorMask ? 10 : 0));
  }

  private buildPcie(at: number): void {
    const p = this.caps.pcie!;
    this.offsets.set('pcie', at);
    const type = { endpoint: 0, 'legacy-endpoint': 1, 'rc-endpoint': 9 }[p.type];
    this.reg(at + 2, 2, 0x2 | (type << 4)); // capability version 2
    const mps = pow2log(p.maxPayload / 128);
    // Max payload, extended tags, L0s/L1 acceptable latency, role-based errors, FLR.
    this.reg(at + EXP_DEVCAP, 4, mps | 0x20 | (0x7 << 6) | (0x7 << 9) | 0x8000 | (p.flr ? 1 << 28 : 0));
    // Relaxed ordering, extended tags, no snoop on; payload 128 B until firmware raises it; read request 512 B.
    const devctl = 0x0010 | 0x0100 | 0x0800 | (Math.min(mps, 1) << 5) | (2 << 12);
    this.reg(at + EXP_DEVCTL, 2, devctl, 0x7fff & ~EXP_DEVCTL_PHANTOM);
    this.reg(at + 0x0a, 2, 0, 0, 0x000f); // device status: error bits RW1C
    if (p.type !== 'rc-endpoint') {
      const speed = SPEED_CODE[p.linkSpeed];
      this.reg(at + 0x0c, 4, speed | (p.linkWidth << 4) | (0x3 << 10)); // link cap: ASPM L0s/L1, port 0
      this.reg(at + 0x10, 2, 0, 0x01c3); // link control: ASPM, RCB, common clock, extended synch
      this.reg(at + 0x12, 2, speed | (p.linkWidth << 4) | 0x1000); // link status: trained, slot clock
    }
    const ltr = this.caps.extCaps.includes('ltr') ? 1 << 11 : 0;
    this.reg(at + 0x24, 4, 0xf | 0x10 | ltr); // device cap 2: completion timeout ranges, timeout disable
    this.reg(at + EXP_DEVCTL2, 2, 0, 0x041f | EXP_DEVCTL2_ARI);
    if (p.type !== 'rc-endpoint') {
      const speed = SPEED_CODE[p.linkSpeed];
      this.reg(at + 0x2c, 4, ((1 << speed) - 1) << 1); // supported link speeds
      this.reg(at + 0x30, 2, speed, 0x000f); // target link speed
    }
    this.region('pcie', at, p.type === 'rc-endpoint' ? 0x2c : 0x3c);
  }

  private buildMsix(at: number): void {
    const m = this.caps.msix!;
    this.offsets.set('msix', at);
    this.reg(at + 2, 2, m.vectors - 1, MSIX_ENABLE | MSIX_MASKALL);
    this.reg(at + 4, 4, m.tableOffset | m.tableBar);
    this.reg(at + 8, 4, m.pbaOffset | m.pbaBar);
    this.region('msix', at, 12);
  }

  private buildVpd(at: number): void {
    this.offsets.set('vpd', at);
    this.reg(at + VPD_ADDR, 2, 0, 0xffff);
    this.reg(at + VPD_DATA, 4, 0, 0xffffffff);
    this.region('vpd', at, 8);
  }

  private buildExtCapabilities(): void {
    if (!this.caps.pcie) return;
    const places = layoutExtCaps(this.caps);
    for (let i = 0; i < places.length; i++) {
      const p = places[i];
      const next = i + 1 < places.length ? places[i + 1].offset : 0;
      const version = p.name === 'aer' ? 2 : 1;
      this.reg(p.offset, 4, (p.id | (version << 16) | (next << 20)) >>> 0);
      const at = p.offset;
      switch (p.name) {
        case 'aer':
          // Uncorrectable/correctable status (RW1C), masks and severity (RW), capabilities and control.
          this.reg(at + 0x04, 4, 0, 0, 0x03fff010);
          this.reg(at + 0x08, 4, 0, 0x03fff010);
          this.reg(at + 0x0c, 4, 0x00462030, 0x03fff010);
          this.reg(at + 0x10, 4, 0, 0, 0x0000f1c1);
          this.reg(at + 0x14, 4, 0x00002000, 0x0000f1c1);
          this.reg(at + 0x18, 4, 0x000000a0, 0x00000140); // ECRC generation/check capable, their enables RW
          break;
        case 'dsn':
          this.reg(at + 4, 4, Number(this.caps.serial & 0xffffffffn));
          this.reg(at + 8, 4, Number((this.caps.serial >> 32n) & 0xffffffffn));
          break;
        case 'power-budget':
          this.reg(at + 4, 1, 0, 0xff); // data select
          this.reg(at + 8, 4, 0x0000_0019); // 25 W, base power
          this.reg(at + 0x0c, 1, 0x1);
          break;
        case 'ari': {
          const fn = Number(this.spec.bdf.slice(-1));
          const siblings = this.multifunction && fn === 0 ? 1 : 0;
          this.reg(at + 4, 2, siblings << 8); // next function number
          break;
        }
        case 'sriov':
          this.reg(at + 4, 4, 0x2); // ARI capable hierarchy preserved
          this.reg(at + 0x0c, 2, 8); // initial VFs
          this.reg(at + 0x0e, 2, 8); // total VFs
          this.reg(at + 0x14, 2, 0x80); // first VF offset
          this.reg(at + 0x16, 2, 1); // VF stride
          this.reg(at + 0x1a, 2, this.spec.device + 1); // VF device ID
          this.reg(at + 0x1c, 4, 0x553); // supported page sizes
          this.reg(at + 0x20, 4, 0x1, 0x553); // system page size
          break;
        case 'acs':
          this.reg(at + 4, 2, 0, 0, 0); // no ACS controls on an endpoint without P2P
          break;
        case 'ltr':
          this.reg(at + 4, 4, 0x1003_1003, 0x1fff_1fff);
          break;
        default:
          break;
      }
      const ownLength = VFIO_EXT_LENGTH[p.id] ?? p.length;
      const kind: Kind = p.name === 'aer' ? 'aer' : p.name === 'power-budget' ? 'pwr' : 'ext';
      this.region(kind, p.offset, Math.min(p.length, ownLength));
    }
  }

  /** A small read-only VPD image: identifier string, a read-only section with the part number, end tag. */
  private vpdImage(): Buffer {
    const name = Buffer.from(`tcefs emulated ${this.spec.vendor.toString(16)}:${this.spec.device.toString(16)}`, 'latin1');
    const pn = Buffer.from('PN', 'latin1');
    const pnValue = Buffer.from(`TCEFS-${this.spec.device.toString(16).toUpperCase()}`, 'latin1');
    const ro = Buffer.concat([pn, Buffer.from([pnValue.length]), pnValue]);
    const parts = [Buffer.from([0x82, name.length & 0xff, name.length >> 8]), name, Buffer.from([0x90, ro.length & 0xff, ro.length >> 8]), ro, Buffer.from([0x78])];
    const img = Buffer.alloc(256);
    Buffer.concat(parts).copy(img);
    return img;
  }

  // ---- vfio-pci's rules ----

  /** Which bits vfio-pci virtualises and lets the user write, per capability (vfio_pci_config.c). */
  private virtualise(): void {
    // Basic header: IDs, cap list bit and pointer, BARs, ROM, interrupt line and pin are virtual.
    this.perm(0x00, 4, 0xffffffff, 0);
    this.perm(COMMAND, 2, CMD_INTX_DISABLE, 0xffff);
    this.perm(STATUS, 2, STATUS_CAP_LIST, 0);
    this.perm(0x0c, 1, 0, 0xff);
    this.perm(0x0d, 1, 0, 0xff);
    this.perm(0x0f, 1, 0, 0xff);
    for (let i = 0; i < 6; i++) this.perm(BAR0 + 4 * i, 4, 0xffffffff, 0xffffffff);
    this.perm(ROM_BAR, 4, 0xffffffff, 0xffffffff);
    this.perm(CAP_PTR, 1, 0xff, 0);
    this.perm(0x3c, 1, 0xff, 0xff);
    this.perm(0x3d, 1, 0xff, 0);
    if (!this.caps.interruptPin) this.vconf[0x3d] = 0;
    for (const r of this.regions) {
      const at = r.start;
      switch (r.kind) {
        case 'pm':
          this.perm(at + 1, 1, 0xff, 0);
          this.perm(at + 2, 2, 0xf800, 0); // PME support: hidden, the user cannot take PMEs
          this.perm(at + PM_CTRL, 4, 0x8100, ~(0x8100 | 0x3));
          this.vconf.writeUInt16LE(this.vconf.readUInt16LE(at + 2) & ~0xf800, at + 2);
          this.vconf.writeUInt16LE(this.vconf.readUInt16LE(at + PM_CTRL) & ~0x8100, at + PM_CTRL);
          break;
        case 'msi': {
          const m = this.caps.msi!;
          this.perm(at + 1, 1, 0xff, 0);
          this.perm(at + MSI_FLAGS, 1, 0xff, 0xff);
          this.perm(at + 4, 4, 0xffffffff, 0xffffffff);
          let o = at + 8;
          if (m.is64) {
            this.perm(o, 4, 0xffffffff, 0xffffffff);
            o += 4;
          }
          this.perm(o, 2, 0xffff, 0xffff);
          if (m.perVectorMask) {
            this.perm(o + 4, 4, 0, 0xffffffff);
            this.perm(o + 8, 4, 0, 0xffffffff);
          }
          break;
        }
        case 'pcie':
          this.perm(at + 1, 1, 0xff, 0);
          this.perm(at + EXP_DEVCTL, 2, EXP_DEVCTL_FLR | EXP_DEVCTL_PAYLOAD | EXP_DEVCTL_READRQ, 0xffff & ~EXP_DEVCTL_PHANTOM);
          this.perm(at + EXP_DEVCTL2, 2, 0, 0xffff & ~EXP_DEVCTL2_ARI);
          break;
        case 'vpd':
          this.perm(at + 1, 1, 0xff, 0);
          this.perm(at + VPD_ADDR, 2, 0xffff, 0xffff);
          this.perm(at + VPD_DATA, 4, 0xffffffff, 0xffffffff);
          break;
        case 'msix':
          this.perm(at + 1, 1, 0xff, 0);
          break;
        case 'vendor':
          // Raw: reads and writes go to the function, the next pointer excepted.
          for (let b = at + 2; b < at + r.length; b++) this.perm(b, 1, 0, 0xff);
          this.perm(at + 1, 1, 0xff, 0);
          break;
        case 'aer':
          this.perm(at, 4, 0xffffffff, 0);
          this.perm(at + 0x04, 4, 0, 0x03fff010);
          this.perm(at + 0x08, 4, 0, 0x03fff010);
          this.perm(at + 0x0c, 4, 0, 0x03fff010);
          this.perm(at + 0x10, 4, 0, 0x0000f1c1);
          this.perm(at + 0x14, 4, 0, 0x0000f1c1);
          this.perm(at + 0x18, 4, 0, 0x00000140);
          break;
        case 'pwr':
          this.perm(at, 4, 0xffffffff, 0);
          this.perm(at + 4, 1, 0, 0xff);
          break;
        case 'ext':
          this.perm(at, 4, 0xffffffff, 0);
          break;
        case 'basic':
          break;
      }
    }
    // Gaps between capabilities are raw: the user reads and writes the function itself.
    for (let b = 0x40; b < this.size; b++) if (this.owner[b] === -1) this.perm(b, 1, 0, 0xff);
    this.hideUnsizedExtCaps();
  }

  /** vfio-pci unlinks extended capabilities it cannot size; a hidden first one stays as a bare link. */
  private hideUnsizedExtCaps(): void {
    if (this.size <= PCI_CFG_SPACE_SIZE) return;
    let prev = -1;
    let visible = 0;
    for (let at = 0x100, n = 0; at >= 0x100 && n < 960; n++) {
      const h = this.hw.readUInt32LE(at);
      if (h === 0) break;
      const next = (h >>> 20) & 0xffc;
      if (VFIO_SIZED_EXT.has(h & 0xffff)) {
        visible++;
        prev = at;
      } else if (prev >= 0) {
        const p = this.vconf.readUInt32LE(prev);
        this.vconf.writeUInt32LE(((p & 0x000fffff) | (next << 20)) >>> 0, prev);
        // The hidden block becomes a gap the user reaches raw, as any unmapped bytes.
        const i = this.owner[at];
        if (i >= 0) {
          for (let b = at; b < at + this.regions[i].length; b++) {
            this.owner[b] = -1;
            this.perm(b, 1, 0, 0xff);
          }
        }
      } else {
        // First in the list: keep only the next pointer, so the list still starts at 0x100.
        this.vconf.writeUInt32LE((next << 20) >>> 0, at);
        prev = at;
      }
      at = next;
    }
    if (!visible) this.vconf.writeUInt32LE(0, 0x100);
  }

  /** vfio-pci's BAR fixup: what a BAR register reads is the user's value cut to the BAR's size. */
  private barFixup(): void {
    for (let i = 0; i < 6; i++) {
      const at = BAR0 + 4 * i;
      const v = this.vconf.readUInt32LE(at);
      this.vconf.writeUInt32LE(((v & this.barMask[i]) | this.barFlags[i]) >>> 0, at);
    }
    const rom = this.caps.romSize;
    const v = this.vconf.readUInt32LE(ROM_BAR);
    this.vconf.writeUInt32LE(rom ? (v & ((((~(rom - 1)) >>> 0) & 0xfffff800) | ROM_ENABLE)) >>> 0 : 0, ROM_BAR);
  }

  // ---- user accesses (the config region) ----

  /** The chunk vfio-pci makes of an access at pos: aligned, within one dword and one capability. */
  private chunk(pos: number, count: number): number {
    let same = 1;
    while ((pos + same) % 4 && this.owner[pos + same] === this.owner[pos]) same++;
    const n = Math.min(count, same);
    if (n >= 4 && pos % 4 === 0) return 4;
    if (n >= 2 && pos % 2 === 0) return 2;
    return 1;
  }

  /** Bytes of config space through vfio-pci's rules; the config region checks bounds (device.ts), past the end reads all-ones. */
  read(pos: number, length: number): Buffer {
    const out = Buffer.alloc(length, 0xff);
    for (let done = 0; done < length && pos + done < this.size; ) {
      const n = this.chunk(pos + done, Math.min(length - done, this.size - pos - done));
      this.readChunk(pos + done, n).copy(out, done);
      done += n;
    }
    return out;
  }

  write(pos: number, data: Buffer): void {
    for (let done = 0; done < data.length && pos + done < this.size; ) {
      const n = this.chunk(pos + done, Math.min(data.length - done, this.size - pos - done));
      this.writeChunk(pos + done, data.subarray(done, done + n));
      done += n;
    }
  }

  private readChunk(pos: number, n: number): Buffer {
    const r = this.owner[pos] >= 0 ? this.regions[this.owner[pos]] : undefined;
    const offset = r ? pos - r.start : 0;
    if (r?.kind === 'basic' && ((pos >= BAR0 && pos < BAR0 + 24) || (pos >= ROM_BAR && pos < ROM_BAR + 4))) this.barFixup();
    if (r?.kind === 'msi' && offset <= MSI_FLAGS && offset + n >= MSI_FLAGS) {
      const f = this.vconf.readUInt16LE(r.start + MSI_FLAGS);
      this.vconf.writeUInt16LE((f & ~MSI_QMASK) | (this.msiQmax << 1), r.start + MSI_FLAGS);
    }
    const out = Buffer.alloc(n);
    const isolated = this.isolated();
    for (let i = 0; i < n; i++) {
      const v = this.virt[pos + i];
      out[i] = ((isolated ? 0xff : this.hw[pos + i]) & ~v) | (this.vconf[pos + i] & v);
    }
    return out;
  }

  private writeChunk(pos: number, data: Buffer): void {
    const n = data.length;
    let any = 0;
    for (let i = 0; i < n; i++) any |= this.writable[pos + i];
    if (!any) return;
    const r = this.owner[pos] >= 0 ? this.regions[this.owner[pos]] : undefined;
    const offset = r ? pos - r.start : 0;
    const readrqBefore = r?.kind === 'pcie' ? this.vconf.readUInt16LE(r.start + EXP_DEVCTL) & EXP_DEVCTL_READRQ : 0;
    const isolated = this.isolated();
    for (let i = 0; i < n; i++) {
      const at = pos + i;
      const w = this.writable[at];
      const v = this.virt[at];
      this.vconf[at] = (this.vconf[at] & ~(w & v)) | (data[i] & w & v);
      const through = isolated ? 0 : w & ~v;
      if (through) {
        const set = through & this.hwWritable[at];
        const clear = through & this.hwRw1c[at] & data[i];
        this.hw[at] = ((this.hw[at] & ~set) | (data[i] & set)) & ~clear;
      }
    }
    if (!r) return;
    const val = data.length === 4 ? data.readUInt32LE(0) : data.length === 2 ? data.readUInt16LE(0) : data[0];
    switch (r.kind) {
      case 'basic':
        if (offset === COMMAND) {
          // vfio-pci remembers the memory and I/O enables the user wrote.
          const mask = CMD_MEM | CMD_IO;
          this.vconf.writeUInt16LE((this.vconf.readUInt16LE(COMMAND) & ~mask) | (val & mask), COMMAND);
        }
        break;
      case 'pm':
        if (offset === PM_CTRL) this.setPower(val & 0x3);
        break;
      case 'msi':
        if (offset <= MSI_FLAGS && offset + n >= MSI_FLAGS) {
          let flags = this.vconf.readUInt16LE(r.start + MSI_FLAGS);
          if (!this.msiActive) flags &= ~MSI_ENABLE; // MSI is enabled with VFIO_DEVICE_SET_IRQS, not here
          if ((flags & MSI_QSIZE) >> 4 > this.msiQmax) flags = (flags & ~MSI_QSIZE) | (this.msiQmax << 4);
          this.vconf.writeUInt16LE(flags, r.start + MSI_FLAGS);
          const hwFlags = this.hw.readUInt16LE(r.start + MSI_FLAGS);
          const set = MSI_ENABLE | MSI_QSIZE;
          this.hw.writeUInt16LE((hwFlags & ~set) | (flags & set), r.start + MSI_FLAGS);
        }
        break;
      case 'pcie': {
        const ctlAt = r.start + EXP_DEVCTL;
        const ctl = this.vconf.readUInt16LE(ctlAt);
        if (ctl & EXP_DEVCTL_FLR) {
          this.vconf.writeUInt16LE(ctl & ~EXP_DEVCTL_FLR, ctlAt);
          if (this.hw.readUInt32LE(r.start + EXP_DEVCAP) & (1 << 28)) {
            this.functionLevelReset();
            return;
          }
        }
        const readrq = this.vconf.readUInt16LE(ctlAt) & EXP_DEVCTL_READRQ;
        if (readrq !== readrqBefore) {
          // The function gets the request size the user asked for, but never below its payload size.
          const payload = (this.hw.readUInt16LE(ctlAt) & EXP_DEVCTL_PAYLOAD) >> 5;
          const rq = Math.max(readrq >> 12, payload);
          this.hw.writeUInt16LE((this.hw.readUInt16LE(ctlAt) & ~EXP_DEVCTL_READRQ) | (rq << 12), ctlAt);
        }
        break;
      }
      case 'vpd':
        if (offset <= VPD_ADDR + 1 && offset + n > VPD_ADDR + 1) {
          const addr = this.vconf.readUInt16LE(r.start + VPD_ADDR);
          if (addr & VPD_F) return; // the image is read-only: a write never completes
          const a = addr & 0x7fff;
          const word = a + 4 <= this.vpd.length ? this.vpd.readUInt32LE(a) : 0;
          this.vconf.writeUInt32LE(word, r.start + VPD_DATA);
          this.vconf.writeUInt16LE(addr ^ VPD_F, r.start + VPD_ADDR);
        }
        break;
      default:
        break;
    }
  }

  /** A power state change the user asked for through PM control; D1/D2 the function does not have. */
  private setPower(state: number): void {
    const at = this.offsets.get('pm');
    if (at === undefined || state === 1 || state === 2) return;
    this.power = state === 3 ? 'D3hot' : 'D0';
    const ctl = this.hw.readUInt16LE(at + PM_CTRL);
    this.hw.writeUInt16LE((ctl & ~0x3) | state, at + PM_CTRL);
  }

  /** FLR from the PCIe device control bit: what software set goes back, as after VFIO_DEVICE_RESET. */
  private functionLevelReset(): void {
    this.powerOn();
  }
}
