import type { PseriesHostConfig } from '../tce/host.ts';
import { MODELS } from '../devices/index.ts';
import { CAPS_KEYS, CapsError, parseCaps, type PciCapsSpec } from './pci-caps.ts';

// The emulated machine: host flavour, PHBs, PEs (IOMMU groups) and the PCI functions in them.
// Loaded from JSON (`--topology FILE`) or the embedded default, validated with errors that name the
// offending key, and turned into the typed inventory the daemon builds its tree and backend from.

export type Flavour = 'powernv' | 'pseries';

export interface BarSpec {
  index: number;
  size: number;
  /** 64-bit memory BARs take two BAR slots. */
  type: 'mem32' | 'mem64' | 'io';
  prefetchable: boolean;
  /** PCI bus address firmware assigned (what the BAR register holds at first). */
  address: bigint;
  /** The same window as the CPU sees it (what sysfs `resource` prints). */
  cpuAddress: bigint;
}

export interface PciFunctionSpec {
  bdf: string;
  vendor: number;
  device: number;
  classCode: number;
  subsystemVendor: number;
  subsystemDevice: number;
  bars: BarSpec[];
  /** MSI and MSI-X vector counts (0: no such capability); the details are in caps. */
  msi: number;
  msix: number;
  /** The device model behind the BARs (src/devices); absent means plain memory. */
  model?: string;
  /** What a storage model (nvme) keeps its namespace in: a file, else memory; size in bytes. */
  storage?: { backing?: string; size?: number };
  /** Config-space layout: capabilities, extended capabilities, ROM, revision (src/topology/pci-caps.ts). */
  caps: PciCapsSpec;
}

export interface PeSpec {
  pe: number;
  group: number;
  devices: PciFunctionSpec[];
}

export interface PhbSpec {
  domain: number;
  model: 'PHB3' | 'PHB4';
  m32PciBase: number;
  pes: PeSpec[];
}

export interface Topology {
  flavour: Flavour;
  hostPageShift: number;
  memlockLimit: bigint;
  eeh: boolean;
  /** Offer VFIO_TYPE1v2_IOMMU on the legacy container too (a profile, not a POWER host feature). */
  type1Compat: boolean;
  /** What /dev/vfio/vfio is: the legacy container, or an iommufd (the kernel's CONFIG_IOMMUFD_VFIO_CONTAINER). */
  vfioContainer: 'legacy' | 'iommufd';
  /** Extension: an iommufd also serves the SPAPR v2 container calls (docs/iommufd-spapr.md). */
  iommufdSpaprCompat: boolean;
  /** Refuse TCE table level nodes larger than the page allocator's largest block (why QEMU adds levels). */
  enforceMaxPageOrder: boolean;
  /** pSeries firmware behaviour (the RTAS DDW calls), as the TCE backend takes it. */
  pseries?: PseriesHostConfig;
  phbs: PhbSpec[];
}

/**
 * PowerNV, one PHB4 with two PEs: a two-function Mellanox ConnectX-5 (MT27800, 15b3:1017) in one, a
 * Samsung NVMe drive (PM983/970 EVO Plus controller, 144d:a808) alone in the other. IDs, BARs, MSI-X
 * tables and capability chains are those of the real functions (lspci -vvv of each; docs/config-space.md).
 */
const CX5_FUNCTION = {
  vendor: '0x15b3', device: '0x1017', class: '0x020000', subsystemVendor: '0x15b3', subsystemDevice: '0x0007', revision: 0,
  bars: [{ index: 0, size: '32M', type: 'mem64', prefetchable: true }],
  rom: '1M',
  pm: { offset: 0x40 }, vpd: { offset: 0x48 },
  pcie: { type: 'endpoint', linkSpeed: 8, linkWidth: 16, maxPayload: 512, offset: 0x60 },
  msix: { vectors: 64, tableBar: 0, tableOffset: '0x2000', pbaBar: 0, pbaOffset: '0x3000', offset: 0x9c },
  vendorCap: { offset: 0xc0, length: 0x18 },
  extCaps: ['aer', 'ari', 'sriov', 'secondary-pcie', 'acs'],
};

export const DEFAULT_TOPOLOGY_JSON = {
  host: { flavour: 'powernv', pageShift: 16, memlockLimit: '16G', eeh: true },
  phbs: [
    {
      domain: 0,
      model: 'PHB4',
      m32PciBase: '0x80000000',
      pes: [
        {
          pe: 0x1, group: 0,
          devices: [
            { bdf: '0000:01:00.0', ...CX5_FUNCTION },
            { bdf: '0000:01:00.1', ...CX5_FUNCTION, extCaps: ['aer', 'ari', 'sriov', 'acs'] },
          ],
        },
        {
          pe: 0x2, group: 1,
          devices: [
            {
              bdf: '0000:02:00.0', vendor: '0x144d', device: '0xa808', class: '0x010802', subsystemVendor: '0x144d', subsystemDevice: '0xa801', revision: 0,
              model: 'nvme',
              bars: [{ index: 0, size: '16K', type: 'mem64', prefetchable: false }],
              pm: { offset: 0x40 },
              msi: { vectors: 32, '64bit': true, perVectorMask: false, offset: 0x50 },
              pcie: { type: 'endpoint', linkSpeed: 8, linkWidth: 4, maxPayload: 256, offset: 0x70 },
              msix: { vectors: 33, tableBar: 0, tableOffset: '0x3000', pbaBar: 0, pbaOffset: '0x2000', offset: 0xb0 },
              extCaps: ['aer', 'dsn', 'power-budget', 'secondary-pcie', 'ltr', 'l1-substates'],
            },
          ],
        },
      ],
    },
  ],
};

export class TopologyError extends Error {}

type Json = Record<string, unknown>;

function num(v: unknown, where: string): number {
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new TopologyError(`${where}: expected a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

/** "16G", "32M", "4096", 0x1000 → bytes. */
export function parseSize(v: unknown, where: string): bigint {
  if (typeof v === 'number') return BigInt(num(v, where));
  const m = typeof v === 'string' && /^(0x[0-9a-f]+|\d+)\s*([KMGT]?)i?B?$/i.exec(v.trim());
  if (!m) throw new TopologyError(`${where}: expected a size like 4096, 0x1000 or 16G, got ${JSON.stringify(v)}`);
  const shift = { '': 0n, K: 10n, M: 20n, G: 30n, T: 40n }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return BigInt(m[1]) << shift;
}

function only(o: Json, keys: string[], where: string) {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new TopologyError(`${where}: unknown key "${k}" (known: ${keys.join(', ')})`);
}

function obj(v: unknown, where: string): Json {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new TopologyError(`${where}: expected an object`);
  return v as Json;
}

function arr(v: unknown, where: string): unknown[] {
  if (!Array.isArray(v)) throw new TopologyError(`${where}: expected an array`);
  return v;
}

const BDF = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/;

export function parseBdf(bdf: string) {
  const m = BDF.exec(bdf);
  if (!m) throw new TopologyError(`bad PCI address "${bdf}" (expected dddd:bb:ss.f in lower-case hex)`);
  return { domain: parseInt(m[1], 16), bus: parseInt(m[2], 16), slot: parseInt(m[3], 16), fn: parseInt(m[4], 16) };
}

function parseDevice(v: unknown, where: string, domain: number): PciFunctionSpec {
  const d = obj(v, where);
  only(d, ['bdf', 'vendor', 'device', 'class', 'subsystemVendor', 'subsystemDevice', 'bars', 'model', 'backing', 'size', ...CAPS_KEYS], where);
  if (d.model !== undefined && (typeof d.model !== 'string' || !Object.hasOwn(MODELS, d.model))) {
    throw new TopologyError(`${where}.model: unknown device model ${JSON.stringify(d.model)} (known: ${Object.keys(MODELS).join(', ')})`);
  }
  const storage = parseStorage(d, where);
  if (typeof d.bdf !== 'string') throw new TopologyError(`${where}.bdf: expected a string`);
  const bdf = parseBdf(d.bdf);
  if (bdf.domain !== domain) throw new TopologyError(`${where}.bdf: ${d.bdf} is not in PCI domain ${domain} of its PHB`);
  const bars = arr(d.bars ?? [], `${where}.bars`).map((b, i): BarSpec => {
    const w = `${where}.bars[${i}]`;
    const o = obj(b, w);
    only(o, ['index', 'size', 'type', 'prefetchable', 'address'], w);
    const index = num(o.index, `${w}.index`);
    const size = Number(parseSize(o.size, `${w}.size`));
    const type = (o.type ?? 'mem64') as BarSpec['type'];
    if (!['mem32', 'mem64', 'io'].includes(type)) throw new TopologyError(`${w}.type: mem32, mem64 or io`);
    if (index > 5 || (type === 'mem64' && index > 4)) throw new TopologyError(`${w}.index: ${index} does not fit a ${type} BAR`);
    if (size < 16 || (size & (size - 1)) !== 0) throw new TopologyError(`${w}.size: a BAR size is a power of two >= 16`);
    const address = o.address === undefined ? undefined : parseSize(o.address, `${w}.address`);
    if (address !== undefined && address % BigInt(size) !== 0n) throw new TopologyError(`${w}.address: a BAR is aligned to its size`);
    return { index, size, type, prefetchable: !!o.prefetchable, address: address ?? -1n, cpuAddress: -1n };
  });
  let caps: PciCapsSpec;
  try {
    caps = parseCaps(d, where, bars, num, parseSize, (bdf.bus << 8) | (bdf.slot << 3) | bdf.fn);
  } catch (e) {
    if (e instanceof CapsError) throw new TopologyError(e.message);
    throw e;
  }
  return {
    bdf: d.bdf,
    vendor: num(d.vendor, `${where}.vendor`),
    device: num(d.device, `${where}.device`),
    classCode: num(d.class ?? 0, `${where}.class`),
    subsystemVendor: num(d.subsystemVendor ?? d.vendor, `${where}.subsystemVendor`),
    subsystemDevice: num(d.subsystemDevice ?? 0, `${where}.subsystemDevice`),
    bars,
    msi: caps.msi?.vectors ?? 0,
    msix: caps.msix?.vectors ?? 0,
    caps,
    ...(d.model !== undefined && { model: d.model as string }),
    ...(storage && { storage }),
  };
}

/** "backing" (a file path, relative to the daemon's directory) and "size" of a storage model's namespace. */
function parseStorage(d: Json, where: string): PciFunctionSpec['storage'] {
  if (d.backing === undefined && d.size === undefined) return undefined;
  if (d.model !== 'nvme') throw new TopologyError(`${where}: "backing" and "size" belong to a storage model ("model": "nvme")`);
  if (d.backing !== undefined && (typeof d.backing !== 'string' || d.backing === '')) throw new TopologyError(`${where}.backing: expected a file path`);
  let size: number | undefined;
  if (d.size !== undefined) {
    size = Number(parseSize(d.size, `${where}.size`));
    if (size < 4096 || size % 512 !== 0 || !Number.isSafeInteger(size)) throw new TopologyError(`${where}.size: a namespace is a whole number of 512-byte blocks, at least 4K`);
  }
  return { ...(d.backing !== undefined && { backing: d.backing as string }), ...(size !== undefined && { size }) };
}

function parsePseries(p: Json): NonNullable<Topology['pseries']> {
  const w = 'host.pseries';
  only(p, ['windowsAvailable', 'ddwApplicable', 'limitedAddressing', 'dmaWindowSize', 'dmaWindowBase', 'pgsizeMask', 'largestAvailableBlock', 'queryStatus', 'kdump'], w);
  const n = (k: string) => (p[k] === undefined ? undefined : num(p[k], `${w}.${k}`));
  const big = (k: string) => (p[k] === undefined ? undefined : parseSize(p[k], `${w}.${k}`));
  const bool = (k: string) => (p[k] === undefined ? undefined : !!p[k]);
  return {
    windowsAvailable: n('windowsAvailable'),
    ddwApplicable: bool('ddwApplicable'),
    limitedAddressing: bool('limitedAddressing'),
    dmaWindowSize: n('dmaWindowSize'),
    dmaWindowBase: n('dmaWindowBase'),
    pgsizeMask: big('pgsizeMask'),
    largestAvailableBlock: big('largestAvailableBlock'),
    queryStatus: n('queryStatus'),
    kdump: bool('kdump'),
  };
}

/**
 * Where firmware put each BAR, as skiboot does on a PHB: 32-bit BARs in the M32 window (PCI addresses
 * from m32PciBase up, which is also why the 32-bit DMA window ends there), 64-bit ones in the M64 window,
 * whose PCI and CPU addresses are the same. Each BAR is aligned to its size; a topology may also fix one.
 */
export const M64_CPU_BASE = 0x0006_0000_0000_0000n;
export const M32_CPU_BASE = 0x0006_0030_0000_0000n;
const PHB_STRIDE = 1n << 38n;
const IO_BASE = 0x1000n;

function assignBars(phb: PhbSpec): void {
  const d = BigInt(phb.domain);
  const m64 = { next: M64_CPU_BASE + d * PHB_STRIDE, cpu: 0n };
  const m32 = { next: BigInt(phb.m32PciBase), cpu: M32_CPU_BASE + d * PHB_STRIDE - BigInt(phb.m32PciBase) };
  const io = { next: IO_BASE, cpu: 0n };
  for (const pe of phb.pes) {
    for (const dev of pe.devices) {
      for (const bar of dev.bars) {
        const win = bar.type === 'io' ? io : bar.type === 'mem64' ? m64 : m32;
        const size = BigInt(bar.size);
        if (bar.address < 0n) {
          bar.address = (win.next + size - 1n) & ~(size - 1n);
          win.next = bar.address + size;
        }
        bar.cpuAddress = bar.address + win.cpu;
      }
      // An expansion ROM is a 32-bit memory window.
      const rom = dev.caps.romSize ? BigInt(dev.caps.romSize) : 0n;
      if (rom) {
        dev.caps.romAddress = (m32.next + rom - 1n) & ~(rom - 1n);
        m32.next = dev.caps.romAddress + rom;
      }
    }
  }
}

export function parseTopology(json: unknown): Topology {
  const t = obj(json, 'topology');
  only(t, ['host', 'phbs'], 'topology');
  const h = obj(t.host ?? {}, 'host');
  only(h, ['flavour', 'pageShift', 'memlockLimit', 'eeh', 'type1Compat', 'vfioContainer', 'iommufdSpaprCompat', 'enforceMaxPageOrder', 'pseries'], 'host');
  const vfioContainer = (h.vfioContainer ?? 'legacy') as Topology['vfioContainer'];
  if (vfioContainer !== 'legacy' && vfioContainer !== 'iommufd') throw new TopologyError('host.vfioContainer: "legacy" or "iommufd"');
  const flavour = (h.flavour ?? 'powernv') as Flavour;
  if (flavour !== 'powernv' && flavour !== 'pseries') throw new TopologyError('host.flavour: "powernv" or "pseries"');
  const hostPageShift = num(h.pageShift ?? 16, 'host.pageShift');
  if (hostPageShift !== 12 && hostPageShift !== 16) throw new TopologyError('host.pageShift: 12 (4K) or 16 (64K)');
  const phbs = arr(t.phbs, 'phbs').map((p, i): PhbSpec => {
    const w = `phbs[${i}]`;
    const o = obj(p, w);
    only(o, ['domain', 'model', 'm32PciBase', 'pes'], w);
    const model = (o.model ?? 'PHB4') as PhbSpec['model'];
    if (model !== 'PHB3' && model !== 'PHB4') throw new TopologyError(`${w}.model: PHB3 or PHB4`);
    const domain = num(o.domain ?? i, `${w}.domain`);
    return {
      domain,
      model,
      m32PciBase: num(o.m32PciBase ?? 0x8000_0000, `${w}.m32PciBase`),
      pes: arr(o.pes, `${w}.pes`).map((pe, j) => {
        const pw = `${w}.pes[${j}]`;
        const q = obj(pe, pw);
        only(q, ['pe', 'group', 'devices'], pw);
        return {
          pe: num(q.pe, `${pw}.pe`),
          group: num(q.group, `${pw}.group`),
          devices: arr(q.devices, `${pw}.devices`).map((d, k) => parseDevice(d, `${pw}.devices[${k}]`, domain)),
        };
      }),
    };
  });
  const groups = new Set<number>();
  const bdfs = new Set<string>();
  for (const phb of phbs) {
    for (const pe of phb.pes) {
      if (groups.has(pe.group)) throw new TopologyError(`IOMMU group ${pe.group} is used twice`);
      groups.add(pe.group);
      if (pe.devices.length === 0) throw new TopologyError(`PE ${pe.pe} (group ${pe.group}) has no devices`);
      for (const d of pe.devices) {
        if (bdfs.has(d.bdf)) throw new TopologyError(`device ${d.bdf} appears twice`);
        bdfs.add(d.bdf);
      }
    }
  }
  if (groups.size === 0) throw new TopologyError('the topology has no PEs');
  for (const phb of phbs) assignBars(phb);
  return {
    flavour,
    hostPageShift,
    memlockLimit: parseSize(h.memlockLimit ?? '16G', 'host.memlockLimit'),
    eeh: h.eeh === undefined ? true : !!h.eeh,
    type1Compat: !!h.type1Compat,
    vfioContainer,
    iommufdSpaprCompat: !!h.iommufdSpaprCompat,
    enforceMaxPageOrder: !!h.enforceMaxPageOrder,
    pseries: h.pseries === undefined ? undefined : parsePseries(obj(h.pseries, 'host.pseries')),
    phbs,
  };
}

export function defaultTopology(): Topology {
  return parseTopology(DEFAULT_TOPOLOGY_JSON);
}
