// The text formats of the PCI sysfs attributes (Documentation/ABI/testing/sysfs-bus-pci), as pure
// functions of the topology and config space, and the kernel's parsers for the values written to them.
import { EINVAL, ERANGE, Errno } from '../errno.ts';
import type { BarSpec, PciFunctionSpec } from '../topology/topology.ts';

// struct resource flags (include/linux/ioport.h).
const IORESOURCE_IO = 0x100;
const IORESOURCE_MEM = 0x200;
const IORESOURCE_PREFETCH = 0x2000;
const IORESOURCE_SIZEALIGN = 0x40000;
const IORESOURCE_MEM_64 = 0x100000;

/**
 * Lines in `resource` for a function that is not a bridge: the six BARs, the ROM, and the six SR-IOV
 * BARs, which every ppc64 kernel has (CONFIG_PCI_IOV).
 */
export const RESOURCE_LINES = 13;

/** The flags the PCI core gives a BAR's resource: its type, plus the low bits of the BAR register. */
export function resourceFlags(bar: BarSpec): number {
  if (bar.type === 'io') return IORESOURCE_IO | IORESOURCE_SIZEALIGN | 0x1;
  let f = IORESOURCE_MEM | IORESOURCE_SIZEALIGN;
  if (bar.type === 'mem64') f |= IORESOURCE_MEM_64 | 0x4;
  if (bar.prefetchable) f |= IORESOURCE_PREFETCH | 0x8;
  return f;
}

const hex64 = (v: bigint | number) => '0x' + BigInt(v).toString(16).padStart(16, '0');

/**
 * `resource`: start, end and flags per resource. PowerPC shows memory BARs at their CPU address (what
 * /dev/mem and X want) and I/O BARs at their bus address; an unused slot is all zeros.
 */
export function resourceText(bars: BarSpec[]): string {
  let out = '';
  for (let i = 0; i < RESOURCE_LINES; i++) {
    const bar = i < 6 ? bars.find((b) => b.index === i) : undefined;
    out += bar
      ? `${hex64(bar.cpuAddress)} ${hex64(bar.cpuAddress + BigInt(bar.size) - 1n)} ${hex64(resourceFlags(bar))}\n`
      : `${hex64(0)} ${hex64(0)} ${hex64(0)}\n`;
  }
  return out;
}

const h8 = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
const h2 = (n: number) => n.toString(16).toUpperCase().padStart(2, '0');

/** `modalias`, the name module autoloading matches (pci:v<vendor>d<device>sv..sd..bc..sc..i..). */
export function modalias(s: PciFunctionSpec): string {
  const c = s.classCode;
  return `pci:v${h8(s.vendor)}d${h8(s.device)}sv${h8(s.subsystemVendor)}sd${h8(s.subsystemDevice)}bc${h2(c >> 16)}sc${h2((c >> 8) & 0xff)}i${h2(c & 0xff)}\n`;
}

/** `uevent`: what udev gets for the function bound to `driver`. */
export function ueventText(s: PciFunctionSpec, driver: string | undefined): string {
  const id = (a: number, b: number) => `${a.toString(16).toUpperCase().padStart(4, '0')}:${b.toString(16).toUpperCase().padStart(4, '0')}`;
  return (
    (driver ? `DRIVER=${driver}\n` : '') +
    `PCI_CLASS=${s.classCode.toString(16).toUpperCase()}\nPCI_ID=${id(s.vendor, s.device)}\nPCI_SUBSYS_ID=${id(s.subsystemVendor, s.subsystemDevice)}\n` +
    `PCI_SLOT_NAME=${s.bdf}\nMODALIAS=${modalias(s)}`
  );
}

/** A cpumask as `%*pb` prints it: 32-bit hex chunks, most significant first, separated by commas. */
export function cpumaskText(cpus: number[], nrCpuIds: number): string {
  const chunks: string[] = [];
  for (let lo = 0; lo < nrCpuIds; lo += 32) {
    const bits = Math.min(32, nrCpuIds - lo);
    let v = 0;
    for (const c of cpus) if (c >= lo && c < lo + bits) v |= 1 << (c - lo);
    chunks.unshift((v >>> 0).toString(16).padStart(Math.ceil(bits / 4), '0'));
  }
  return chunks.join(',') + '\n';
}

/** A cpumask as `%*pbl` prints it: ranges, "0-3,8". */
export function cpulistText(cpus: number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',') + '\n';
}

// Link speeds by the PCIe encoding (1 = 2.5 GT/s ...), as pci_speed_string() names them.
const SPEEDS = ['Unknown', '2.5 GT/s PCIe', '5.0 GT/s PCIe', '8.0 GT/s PCIe', '16.0 GT/s PCIe', '32.0 GT/s PCIe', '64.0 GT/s PCIe'];

export function linkSpeedText(code: number): string {
  return `${SPEEDS[code] ?? 'Unknown'}\n`;
}

/** The capability list of a config space: id → offset of the first such capability. */
export function capabilities(read: (off: number, len: number) => Buffer): Map<number, number> {
  const caps = new Map<number, number>();
  if (!(read(0x06, 2).readUInt16LE(0) & 0x10)) return caps;
  let at = read(0x34, 1)[0] & 0xfc;
  for (let n = 0; at >= 0x40 && n < 48; n++) {
    const [id, next] = read(at, 2);
    if (!caps.has(id)) caps.set(id, at);
    at = next & 0xfc;
  }
  return caps;
}

/** Link attributes from the PCIe capability: what current_/max_link_speed and _width print. */
export function pcieLink(read: (off: number, len: number) => Buffer, cap: number) {
  const lnkcap = read(cap + 0x0c, 4).readUInt32LE(0);
  const lnksta = read(cap + 0x12, 2).readUInt16LE(0);
  const version = read(cap + 0x02, 2).readUInt16LE(0) & 0xf;
  // Link Capabilities 2 (version 2 capabilities) lists every supported speed; the highest bit wins.
  const cap2 = version >= 2 ? (read(cap + 0x2c, 4).readUInt32LE(0) >> 1) & 0x7f : 0;
  const maxSpeed = cap2 ? 32 - Math.clz32(cap2) : lnkcap & 0xf;
  return { speed: lnksta & 0xf, width: (lnksta >> 4) & 0x3f, maxSpeed, maxWidth: (lnkcap >> 4) & 0x3f };
}

/** The reset methods the PCI core would find for a function, in its order of preference. */
export function resetMethods(read: (off: number, len: number) => Buffer, aloneOnBusBelowBridge: boolean): string[] {
  const caps = capabilities(read);
  const out: string[] = [];
  const exp = caps.get(0x10);
  if (exp !== undefined && read(exp + 0x04, 4).readUInt32LE(0) & (1 << 28)) out.push('flr');
  const af = caps.get(0x13);
  if (af !== undefined && (read(af + 0x03, 1)[0] & 0x03) === 0x03) out.push('af_flr');
  const pm = caps.get(0x01);
  if (pm !== undefined && !(read(pm + 0x04, 2).readUInt16LE(0) & 0x08)) out.push('pm');
  if (aloneOnBusBelowBridge) out.push('bus');
  return out;
}

/**
 * The kernel's kstrtoull/kstrtoll: optional sign, base 0 (0x hex, 0 octal, decimal), one trailing newline,
 * nothing else. A write's bytes count up to the first NUL, as the store sees a C string.
 */
export function kstrto(buf: Buffer | string, signed: boolean, bits: number): bigint {
  let s = typeof buf === 'string' ? buf : buf.toString('latin1');
  const nul = s.indexOf('\0');
  if (nul >= 0) s = s.slice(0, nul);
  let neg = false;
  if (s[0] === '+') s = s.slice(1);
  else if (s[0] === '-' && signed) {
    neg = true;
    s = s.slice(1);
  }
  if (s.endsWith('\n')) s = s.slice(0, -1);
  const m = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) throw new Errno(EINVAL, `not a number: ${JSON.stringify(s)}`);
  const v = /^0[xX]/.test(s) ? BigInt(s) : s.length > 1 && s[0] === '0' ? BigInt('0o' + s.slice(1)) : BigInt(s);
  const max = signed ? (1n << BigInt(bits - 1)) - (neg ? 0n : 1n) : (1n << BigInt(bits)) - 1n;
  if (v > max) throw new Errno(ERANGE, `${s} is out of range`);
  return neg ? -v : v;
}

/** sysfs_streq: equal, ignoring one trailing newline on either side. */
export function sysfsStreq(a: string, b: string): boolean {
  const t = (x: string) => (x.endsWith('\n') ? x.slice(0, -1) : x);
  return t(a) === t(b);
}
