// What a function's topology entry may say about its config space: revision, interrupt pin, the
// capabilities (PM, MSI, PCI Express, MSI-X, VPD, a vendor capability) with optional fixed offsets, the
// expansion ROM and the extended capability list. Parsed here, checked for self-consistency (an MSI-X
// table must lie inside the BAR its BIR names, ...), and turned into a spec the config space builds from.
// The old short forms (`msi: 1`, `msix: 64`) stay valid and get the defaults described in docs/config-space.md.
import type { BarSpec } from './topology.ts';

export class CapsError extends Error {}

export interface MsiSpec {
  /** Vectors the function can do (Multiple Message Capable), a power of two up to 32. */
  vectors: number;
  is64: boolean;
  perVectorMask: boolean;
  offset?: number;
}

export interface MsixSpec {
  vectors: number;
  tableBar: number;
  tableOffset: number;
  pbaBar: number;
  pbaOffset: number;
  offset?: number;
}

export type PcieType = 'endpoint' | 'legacy-endpoint' | 'rc-endpoint';

export interface PcieSpec {
  type: PcieType;
  /** GT/s: 2.5, 5, 8, 16 or 32; the link trains at what it can do. */
  linkSpeed: number;
  linkWidth: number;
  /** Function Level Reset capable (Device Capabilities bit 28). */
  flr: boolean;
  /** Max payload the function supports, bytes. */
  maxPayload: number;
  offset?: number;
}

/** Extended capabilities a function can list; some of them vfio-pci hides from the user (see pci-config.ts). */
export const EXT_CAPS = {
  aer: 0x01,
  vc: 0x02,
  dsn: 0x03,
  'power-budget': 0x04,
  acs: 0x0d,
  ari: 0x0e,
  ats: 0x0f,
  sriov: 0x10,
  ltr: 0x18,
  'secondary-pcie': 0x19,
  'l1-substates': 0x1e,
} as const;
export type ExtCapName = keyof typeof EXT_CAPS;

export interface PciCapsSpec {
  revision: number;
  /** 0 = no INTx, 1..4 = INTA..INTD. */
  interruptPin: number;
  pm?: { offset?: number };
  msi?: MsiSpec;
  msix?: MsixSpec;
  pcie?: PcieSpec;
  vpd?: { offset?: number };
  vendor?: { offset?: number; length: number };
  /** Expansion ROM BAR size (0: none) and where firmware put it (a 32-bit memory window). */
  romSize: number;
  romAddress: bigint;
  extCaps: ExtCapName[];
  /** Device Serial Number, for the DSN extended capability. */
  serial: bigint;
}

type Json = Record<string, unknown>;
type Num = (v: unknown, where: string) => number;

function only(o: Json, keys: string[], where: string) {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new CapsError(`${where}: unknown key "${k}" (known: ${keys.join(', ')})`);
}

function isObj(v: unknown): v is Json {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

const LINK_SPEEDS = [2.5, 5, 8, 16, 32];
const PCIE_TYPES: PcieType[] = ['endpoint', 'legacy-endpoint', 'rc-endpoint'];

function capOffset(o: Json, where: string, num: Num): number | undefined {
  if (o.offset === undefined) return undefined;
  const off = num(o.offset, `${where}.offset`);
  if (off < 0x40 || off > 0xfc || off % 4) throw new CapsError(`${where}.offset: a capability starts at a dword in 0x40..0xfc, got 0x${off.toString(16)}`);
  return off;
}

/** The first memory BAR: where an MSI-X table goes when the topology does not say. */
function firstMemBar(bars: BarSpec[]): BarSpec | undefined {
  return [...bars].sort((a, b) => a.index - b.index).find((b) => b.type !== 'io');
}

function parseMsix(v: unknown, where: string, bars: BarSpec[], num: Num): MsixSpec | undefined {
  if (v === undefined || v === 0) return undefined;
  const o: Json = isObj(v) ? v : { vectors: v };
  only(o, ['vectors', 'tableBar', 'tableOffset', 'pbaBar', 'pbaOffset', 'offset'], where);
  const vectors = num(o.vectors, `${where}.vectors`);
  if (vectors < 1 || vectors > 2048) throw new CapsError(`${where}.vectors: 1..2048, got ${vectors}`);
  const first = firstMemBar(bars);
  const tableBar = o.tableBar === undefined ? first?.index : num(o.tableBar, `${where}.tableBar`);
  if (tableBar === undefined) throw new CapsError(`${where}: an MSI-X table needs a memory BAR, and the function has none`);
  const pbaBar = o.pbaBar === undefined ? tableBar : num(o.pbaBar, `${where}.pbaBar`);
  // Defaults: the table in the upper half of its BAR, the PBA on the next page of the same BAR (right
  // after the table in a BAR under 16K), or in the upper half of its own BAR.
  const sizeOf = (bir: number) => bars.find((b) => b.index === bir)?.size ?? 0;
  const tableOffset = o.tableOffset === undefined ? sizeOf(tableBar) / 2 : num(o.tableOffset, `${where}.tableOffset`);
  const step = sizeOf(tableBar) >= 0x4000 ? 0x1000 : 8;
  const pbaDefault = pbaBar === tableBar ? tableOffset + Math.ceil((vectors * 16) / step) * step : sizeOf(pbaBar) / 2;
  const pbaOffset = o.pbaOffset === undefined ? pbaDefault : num(o.pbaOffset, `${where}.pbaOffset`);
  const m: MsixSpec = { vectors, tableBar, tableOffset, pbaBar, pbaOffset, offset: capOffset(o, where, num) };
  checkMsixPlacement(m, bars, where);
  return m;
}

/** The checks QEMU's msix_init makes, and the BIR rules of the spec, as load-time errors. */
export function checkMsixPlacement(m: MsixSpec, bars: BarSpec[], where: string): void {
  const tableSize = m.vectors * 16;
  const pbaSize = Math.ceil(m.vectors / 64) * 8;
  const barOf = (bir: number, what: string) => {
    if (bir > 5) throw new CapsError(`${where}.${what}: BIR ${bir} is not a BAR (0..5)`);
    const bar = bars.find((b) => b.index === bir);
    if (bar) {
      if (bar.type === 'io') throw new CapsError(`${where}.${what}: BAR ${bir} is an I/O BAR; MSI-X structures live in memory BARs`);
      return bar;
    }
    const lower = bars.find((b) => b.index === bir - 1 && b.type === 'mem64');
    if (lower) throw new CapsError(`${where}.${what}: BIR ${bir} names the upper half of 64-bit BAR ${bir - 1}`);
    throw new CapsError(`${where}.${what}: BIR ${bir} names a BAR the function does not have`);
  };
  const tbar = barOf(m.tableBar, 'tableBar');
  const pbar = barOf(m.pbaBar, 'pbaBar');
  if (m.tableOffset % 8) throw new CapsError(`${where}.tableOffset: 0x${m.tableOffset.toString(16)} is not 8-byte aligned`);
  if (m.pbaOffset % 8) throw new CapsError(`${where}.pbaOffset: 0x${m.pbaOffset.toString(16)} is not 8-byte aligned`);
  if (m.tableOffset + tableSize > tbar.size) {
    throw new CapsError(`${where}: the MSI-X table (${m.vectors} x 16 bytes at 0x${m.tableOffset.toString(16)}) does not fit BAR ${m.tableBar} (size 0x${tbar.size.toString(16)})`);
  }
  if (m.pbaOffset + pbaSize > pbar.size) {
    throw new CapsError(`${where}: the MSI-X PBA (${pbaSize} bytes at 0x${m.pbaOffset.toString(16)}) does not fit BAR ${m.pbaBar} (size 0x${pbar.size.toString(16)})`);
  }
  if (m.tableBar === m.pbaBar && m.tableOffset < m.pbaOffset + pbaSize && m.pbaOffset < m.tableOffset + tableSize) {
    throw new CapsError(`${where}: the MSI-X table [0x${m.tableOffset.toString(16)}, +0x${tableSize.toString(16)}) and PBA [0x${m.pbaOffset.toString(16)}, +0x${pbaSize.toString(16)}) overlap in BAR ${m.tableBar}`);
  }
}

function parseMsi(v: unknown, where: string, num: Num): MsiSpec | undefined {
  if (v === undefined || v === 0) return undefined;
  const o: Json = isObj(v) ? v : { vectors: v };
  only(o, ['vectors', '64bit', 'perVectorMask', 'offset'], where);
  const vectors = num(o.vectors ?? 1, `${where}.vectors`);
  if (vectors < 1 || vectors > 32 || (vectors & (vectors - 1)) !== 0) throw new CapsError(`${where}.vectors: MSI offers a power of two from 1 to 32, got ${vectors}`);
  return { vectors, is64: o['64bit'] === undefined ? true : !!o['64bit'], perVectorMask: !!o.perVectorMask, offset: capOffset(o, where, num) };
}

function parsePcie(v: unknown, where: string, num: Num): PcieSpec | undefined {
  if (v === false) return undefined;
  const o: Json = isObj(v) ? v : {};
  if (v !== undefined && v !== true && !isObj(v)) throw new CapsError(`${where}: expected an object or false`);
  only(o, ['type', 'linkSpeed', 'linkWidth', 'flr', 'maxPayload', 'offset'], where);
  const type = (o.type ?? 'endpoint') as PcieType;
  if (!PCIE_TYPES.includes(type)) throw new CapsError(`${where}.type: one of ${PCIE_TYPES.join(', ')}`);
  const linkSpeed = typeof o.linkSpeed === 'string' ? Number(o.linkSpeed) : (o.linkSpeed ?? 8);
  if (!LINK_SPEEDS.includes(linkSpeed as number)) throw new CapsError(`${where}.linkSpeed: GT/s, one of ${LINK_SPEEDS.join(', ')}`);
  const linkWidth = num(o.linkWidth ?? 8, `${where}.linkWidth`);
  if (![1, 2, 4, 8, 12, 16, 32].includes(linkWidth)) throw new CapsError(`${where}.linkWidth: 1, 2, 4, 8, 12, 16 or 32 lanes`);
  const maxPayload = num(o.maxPayload ?? 256, `${where}.maxPayload`);
  if (![128, 256, 512, 1024, 2048, 4096].includes(maxPayload)) throw new CapsError(`${where}.maxPayload: 128..4096, a power of two`);
  return { type, linkSpeed: linkSpeed as number, linkWidth, flr: o.flr === undefined ? true : !!o.flr, maxPayload, offset: capOffset(o, where, num) };
}

export interface CapsInput {
  revision?: unknown;
  interruptPin?: unknown;
  pm?: unknown;
  msi?: unknown;
  msix?: unknown;
  pcie?: unknown;
  vpd?: unknown;
  vendorCap?: unknown;
  rom?: unknown;
  extCaps?: unknown;
  serial?: unknown;
}

/** The topology keys this module owns in a device entry. */
export const CAPS_KEYS = ['revision', 'interruptPin', 'pm', 'msi', 'msix', 'pcie', 'vpd', 'vendorCap', 'rom', 'extCaps', 'serial'];

export function parseCaps(d: CapsInput, where: string, bars: BarSpec[], num: Num, size: (v: unknown, where: string) => bigint, bdfIndex: number): PciCapsSpec {
  for (let i = 0; i < bars.length; i++) {
    for (let j = 0; j < bars.length; j++) {
      const a = bars[i];
      const b = bars[j];
      if (i !== j && a.type === 'mem64' && b.index === a.index + 1) throw new CapsError(`${where}.bars: 64-bit BAR ${a.index} also takes index ${a.index + 1}, which BAR ${j} claims`);
      if (i < j && a.index === b.index) throw new CapsError(`${where}.bars: two BARs at index ${a.index}`);
    }
  }
  const revision = num(d.revision ?? 0, `${where}.revision`);
  if (revision > 0xff) throw new CapsError(`${where}.revision: a byte`);
  const interruptPin = num(d.interruptPin ?? 1, `${where}.interruptPin`);
  if (interruptPin > 4) throw new CapsError(`${where}.interruptPin: 0 (none) or 1..4 (INTA..INTD)`);
  const pcie = parsePcie(d.pcie, `${where}.pcie`, num);
  let pm: PciCapsSpec['pm'];
  if (d.pm === undefined || d.pm === true) pm = {};
  else if (isObj(d.pm)) {
    only(d.pm, ['offset'], `${where}.pm`);
    pm = { offset: capOffset(d.pm, `${where}.pm`, num) };
  } else if (d.pm !== false) throw new CapsError(`${where}.pm: true, false or { offset }`);
  let vpd: PciCapsSpec['vpd'];
  if (d.vpd === true) vpd = {};
  else if (isObj(d.vpd)) {
    only(d.vpd, ['offset'], `${where}.vpd`);
    vpd = { offset: capOffset(d.vpd, `${where}.vpd`, num) };
  } else if (d.vpd !== undefined && d.vpd !== false) throw new CapsError(`${where}.vpd: true, false or { offset }`);
  let vendor: PciCapsSpec['vendor'];
  if (d.vendorCap !== undefined) {
    if (!isObj(d.vendorCap)) throw new CapsError(`${where}.vendorCap: expected { length, offset }`);
    only(d.vendorCap, ['offset', 'length'], `${where}.vendorCap`);
    const length = num(d.vendorCap.length ?? 8, `${where}.vendorCap.length`);
    if (length < 3 || length > 0xc0) throw new CapsError(`${where}.vendorCap.length: 3..192 bytes`);
    vendor = { offset: capOffset(d.vendorCap, `${where}.vendorCap`, num), length };
  }
  const romSize = d.rom === undefined ? 0 : Number(size(d.rom, `${where}.rom`));
  if (romSize && (romSize < 2048 || romSize > 1 << 24 || (romSize & (romSize - 1)) !== 0)) throw new CapsError(`${where}.rom: a ROM BAR is a power of two from 2K to 16M`);
  const extRaw = d.extCaps ?? (pcie ? ['aer'] : []);
  if (!Array.isArray(extRaw)) throw new CapsError(`${where}.extCaps: expected an array of names`);
  const extCaps = extRaw.map((n, i) => {
    if (typeof n !== 'string' || !(n in EXT_CAPS)) throw new CapsError(`${where}.extCaps[${i}]: one of ${Object.keys(EXT_CAPS).join(', ')}`);
    return n as ExtCapName;
  });
  if (extCaps.length && !pcie) throw new CapsError(`${where}.extCaps: extended capabilities need a PCI Express function (pcie is false)`);
  if (new Set(extCaps).size !== extCaps.length) throw new CapsError(`${where}.extCaps: a capability is listed twice`);
  const serial = d.serial === undefined ? 0x0025_3800_0000_0000n + BigInt(bdfIndex) : size(d.serial, `${where}.serial`);
  const caps: PciCapsSpec = {
    revision, interruptPin, pm, pcie, vpd, vendor, romSize, romAddress: -1n, extCaps, serial,
    msi: parseMsi(d.msi, `${where}.msi`, num),
    msix: parseMsix(d.msix, `${where}.msix`, bars, num),
  };
  layoutCaps(caps, where);
  return caps;
}

export interface CapPlace {
  id: number;
  offset: number;
  length: number;
}

export const CAP_ID = { pm: 0x01, vpd: 0x03, msi: 0x05, vendor: 0x09, pcie: 0x10, msix: 0x11 } as const;

export function msiLength(m: MsiSpec): number {
  return 10 + (m.is64 ? 4 : 0) + (m.perVectorMask ? 10 : 0);
}

export function pcieLength(p: PcieSpec): number {
  return p.type === 'rc-endpoint' ? 0x2c : 0x3c;
}

/**
 * Where each capability sits in the first 256 bytes: those with an offset where they say, the others
 * first-fit from 0x40 in the order PM, MSI, PCI Express, MSI-X, VPD, vendor. Sorted by offset, which is
 * also the order of the chain.
 */
export function layoutCaps(c: PciCapsSpec, where = 'device'): CapPlace[] {
  const want: (CapPlace & { fixed?: number; name: string })[] = [];
  const add = (name: string, id: number, length: number, fixed?: number) => want.push({ name, id, length, offset: -1, fixed });
  if (c.pm) add('pm', CAP_ID.pm, 8, c.pm.offset);
  if (c.msi) add('msi', CAP_ID.msi, msiLength(c.msi), c.msi.offset);
  if (c.pcie) add('pcie', CAP_ID.pcie, pcieLength(c.pcie), c.pcie.offset);
  if (c.msix) add('msix', CAP_ID.msix, 12, c.msix.offset);
  if (c.vpd) add('vpd', CAP_ID.vpd, 8, c.vpd.offset);
  if (c.vendor) add('vendorCap', CAP_ID.vendor, c.vendor.length, c.vendor.offset);
  const taken: CapPlace[] = [];
  const clash = (off: number, len: number) => taken.find((t) => off < t.offset + ((t.length + 3) & ~3) && t.offset < off + len);
  for (const w of want.filter((x) => x.fixed !== undefined)) {
    const off = w.fixed!;
    if (off + w.length > 0x100) throw new CapsError(`${where}.${w.name}.offset: ${w.length} bytes at 0x${off.toString(16)} run past 0xff`);
    const other = clash(off, w.length);
    if (other) throw new CapsError(`${where}.${w.name}.offset: 0x${off.toString(16)} overlaps capability 0x${other.id.toString(16)} at 0x${other.offset.toString(16)}`);
    taken.push({ id: w.id, offset: off, length: w.length });
  }
  for (const w of want.filter((x) => x.fixed === undefined)) {
    let off = 0x40;
    while (off + w.length <= 0x100 && clash(off, w.length)) off += 4;
    if (off + w.length > 0x100) throw new CapsError(`${where}: no room left in the first 256 bytes for the ${w.name} capability`);
    taken.push({ id: w.id, offset: off, length: w.length });
  }
  return taken.sort((a, b) => a.offset - b.offset);
}

/** Bytes each extended capability takes in the function's config space (its real register block). */
export function extCapLength(name: ExtCapName, c: PciCapsSpec): number {
  switch (name) {
    case 'aer': return 0x48;
    case 'vc': return 0x1c;
    case 'dsn': return 0x0c;
    case 'power-budget': return 0x10;
    case 'acs': return 0x08;
    case 'ari': return 0x08;
    case 'ats': return 0x08;
    case 'sriov': return 0x40;
    case 'ltr': return 0x08;
    case 'secondary-pcie': return 0x0c + ((2 * (c.pcie?.linkWidth ?? 1) + 3) & ~3);
    case 'l1-substates': return 0x10;
  }
}

/** Extended capabilities one after the other from 0x100, each on a dword, in the order listed. */
export function layoutExtCaps(c: PciCapsSpec): (CapPlace & { name: ExtCapName })[] {
  let at = 0x100;
  return c.extCaps.map((name) => {
    const p = { name, id: EXT_CAPS[name], offset: at, length: extCapLength(name, c) };
    at += (p.length + 3) & ~3;
    return p;
  });
}
