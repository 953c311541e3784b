// Read-only views of the emulated host for people: a JSON-able description and text renderings,
// served under the mount and by `tcefs status` / `tcefs tce <group>`.
// JSON conventions: addresses and masks are "0x..." strings; byte counts and sizes are numbers when
// exactly representable, decimal strings otherwise.

import { eehStateName, type DmaFaultRecord } from './eeh.ts';
import type { TceHost } from './host.ts';
import type { Pe } from './pe.ts';
import type { TceTable } from './table.ts';
import { tceAddress, tcePermString } from './tce-entry.ts';

export function hex(v: bigint | number, width = 16): string {
  return '0x' + BigInt(v).toString(16).padStart(width, '0');
}

function exact(v: bigint): number | string {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}

const UNITS: [bigint, string][] = [[1n << 40n, 'T'], [1n << 30n, 'G'], [1n << 20n, 'M'], [1n << 10n, 'K']];

/** Short exact size: "64K", "2G", "1536" (bytes when not a whole unit). */
export function sizeName(bytes: bigint): string {
  for (const [unit, name] of UNITS) if (bytes >= unit && bytes % unit === 0n) return `${bytes / unit}${name}`;
  return bytes.toString();
}

export function pageSizeNames(mask: bigint): string[] {
  const out: string[] = [];
  for (let s = 0n; s < 64n; s++) if (mask & (1n << s)) out.push(sizeName(1n << s));
  return out;
}

export interface WindowView {
  slot: number;
  kernelOwned: boolean;
  start: string;
  last: string;
  sizeBytes: number | string;
  pageShift: number;
  levels: number;
  levelSize: number | string;
  entries: number | string;
  liveTces: number;
  allocatedBytes: number;
  accountedBytes: number | string;
  kernelBytes: number | string;
  levelNodes: { hw: number[]; shadow: number[] };
  boundsMode: string;
  index: string;
  /** Other PEs this table is programmed into. */
  sharedWith: string[];
}

export interface DmaFaultView {
  iova: string;
  direction: string;
  reason: string;
  device: string;
  detail: string;
}

export interface PeView {
  name: string;
  number: number;
  groupId: number;
  ownership: 'platform' | 'user';
  blocked: boolean;
  bypass: boolean;
  pgsizes: string;
  pageSizes: string[];
  maxDynamicWindowsSupported: number;
  maxLevels: number;
  tce32Start: string;
  tce32Size: string;
  window64Start: string;
  eeh: { state: number; stateName: string; mmioEnabled: boolean; dmaEnabled: boolean; resetAsserted: boolean; cfgBlocked: boolean; dmaFaults: DmaFaultView[] };
  firmware?: { defaultWindowPresent: boolean; ddw: string | null; windowsAvailable: number; failedDdw: boolean };
  windows: WindowView[];
}

export interface HostView {
  flavour: string;
  hostPageShift: number;
  eehEnabled: boolean;
  memlockLimit: number | string;
  stats: Record<string, number | string>;
  phbs: { domain: number; model: string; m32PciBase: string; pes: PeView[] }[];
  pinned: { owner: string; pinnedBytes: number | string; extents: number }[];
  locked: { owner: string; lockedBytes: number | string; lockedPages: number | string; limit: number | string; underflows: number }[];
}

export function describeWindow(pe: Pe, slot: number, t: TceTable): WindowView {
  return {
    slot,
    kernelOwned: t.kernelOwned,
    start: hex(t.startAddr),
    last: hex(t.endAddr - 1n),
    sizeBytes: exact(t.endAddr - t.startAddr),
    pageShift: t.pageShift,
    levels: t.levels,
    levelSize: exact(t.levelSize),
    entries: exact(t.size),
    liveTces: t.liveCount,
    allocatedBytes: t.allocatedBytes(),
    accountedBytes: exact(t.accountedBytes),
    kernelBytes: exact(t.kernelBytes()),
    levelNodes: t.levelNodes(),
    boundsMode: t.boundsMode,
    index: hex(t.index, 8),
    sharedWith: [...t.groups].filter((g) => g !== pe).map((g) => g.name),
  };
}

export function describePe(pe: Pe): PeView {
  const fw = pe.firmware;
  return {
    name: pe.name,
    number: pe.number,
    groupId: pe.groupId,
    ownership: pe.ownership,
    blocked: pe.blocked,
    bypass: pe.bypass,
    pgsizes: hex(pe.pgsizes, 8),
    pageSizes: pageSizeNames(pe.pgsizes),
    maxDynamicWindowsSupported: pe.maxDynamicWindowsSupported,
    maxLevels: pe.maxLevels,
    tce32Start: hex(pe.tce32Start, 8),
    tce32Size: hex(pe.tce32Size, 8),
    window64Start: hex(pe.window64Start),
    eeh: {
      state: pe.eeh.state(),
      stateName: eehStateName(pe.eeh.state()),
      mmioEnabled: pe.eeh.mmioEnabled,
      dmaEnabled: pe.eeh.dmaEnabled,
      resetAsserted: pe.eeh.resetAsserted,
      cfgBlocked: pe.eeh.cfgBlocked,
      dmaFaults: pe.eeh.dmaFaults.map((f) => ({ iova: hex(f.iova), direction: f.direction, reason: f.reason, device: f.device, detail: f.detail })),
    },
    firmware: fw && {
      defaultWindowPresent: fw.defaultPresent,
      ddw: fw.ddw ? hex(fw.ddw.start) : null,
      windowsAvailable: fw.windowsAvailable,
      failedDdw: fw.failedDdw,
    },
    windows: pe.tables.flatMap((t, slot) => (t ? [describeWindow(pe, slot, t)] : [])),
  };
}

export function describeHost(host: TceHost): HostView {
  const stats = host.stats();
  return {
    flavour: host.flavour,
    hostPageShift: host.hostPageShift,
    eehEnabled: host.eehEnabled,
    memlockLimit: exact(host.memlockLimit),
    stats: Object.fromEntries(Object.entries(stats).map(([k, v]) => [k, typeof v === 'bigint' ? exact(v) : v])),
    phbs: host.phbs.map((phb) => ({
      domain: phb.domain,
      model: phb.model,
      m32PciBase: hex(phb.m32PciBase, 8),
      pes: phb.pes.map(describePe),
    })),
    pinned: host.memory.ownerNames().map((owner) => ({
      owner,
      pinnedBytes: exact(host.memory.pinnedBytes(owner)),
      extents: host.memory.extentCount(owner),
    })),
    locked: host.accounts().map((a) => ({
      owner: a.owner,
      lockedBytes: exact(a.locked),
      lockedPages: exact(a.lockedPages),
      limit: exact(a.limit),
      underflows: a.underflows,
    })),
  };
}

function windowLine(slot: number, t: TceTable): string {
  const kind = t.kernelOwned ? 'host' : 'user';
  return `slot${slot} ${kind}  ${hex(t.startAddr)}-${hex(t.endAddr - 1n)}  ${sizeName(t.pageSize)} pages  ` +
    `${t.levels} level${t.levels > 1 ? 's' : ''}  ${t.size} TCEs  ${t.liveCount} live  ` +
    `alloc ${t.allocatedBytes()} B  charged ${t.accountedBytes} B`;
}

export function renderHostText(host: TceHost): string {
  const lines = [
    `tce host: ${host.flavour}, ${sizeName(1n << BigInt(host.hostPageShift))} host pages, EEH ${host.eehEnabled ? 'on' : 'off'}, ` +
      `memlock limit ${sizeName(host.memlockLimit)}`,
  ];
  for (const phb of host.phbs) {
    lines.push(`domain ${phb.domain} ${phb.model} m32 base ${hex(phb.m32PciBase, 8)}`);
    for (const pe of phb.pes) {
      const state = pe.blocked ? 'blocked' : pe.ownership;
      lines.push(`  ${pe.name}  group ${pe.groupId}  ${state}  eeh ${eehStateName(pe.eeh.state())}  ` +
        `pgsizes ${pageSizeNames(pe.pgsizes).join(',')}  windows<=${pe.maxDynamicWindowsSupported}  levels<=${pe.maxLevels}`);
      pe.tables.forEach((t, slot) => t && lines.push(`    ${windowLine(slot, t)}`));
      if (pe.bypass) lines.push(`    bypass ${hex(pe.window64Start)}-${hex(pe.window64Start + pe.bypassSize() - 1n)}`);
      for (const f of pe.eeh.dmaFaults) lines.push(`    ${dmaFaultLine(f)}`);
    }
  }
  for (const owner of host.memory.ownerNames()) {
    lines.push(`pinned ${owner}: ${host.memory.pinnedBytes(owner)} B in ${host.memory.extentCount(owner)} extents`);
  }
  for (const a of host.accounts()) {
    lines.push(`locked ${a.owner}: ${a.lockedPages} pages (${a.locked} B) of ${a.limit} B` +
      (a.underflows ? `, ${a.underflows} underflows` : ''));
  }
  return lines.join('\n') + '\n';
}

/** `dma fault 0000:03:00.0 write 0x...  no-tce`: one refused device DMA. */
export function dmaFaultLine(f: DmaFaultRecord): string {
  return `dma fault ${f.device} ${f.direction} ${hex(f.iova)}  ${f.reason}`;
}

/**
 * Every live TCE of a PE's windows, one per line:
 * `<iova>  tce=<tce>  RW  hpa=<address>  ua=<shadow or ->`, after one comment line per window.
 * `limit` caps the TCE lines per window; the rest is summarised.
 */
export function renderTceText(pe: Pe, opts: { limit?: number } = {}): string {
  const lines = [`# ${pe.name} group ${pe.groupId}`];
  pe.tables.forEach((t, slot) => {
    if (!t) return;
    lines.push(`# ${windowLine(slot, t)}`);
    let shown = 0;
    for (const e of t.entries()) {
      if (opts.limit !== undefined && shown >= opts.limit) {
        lines.push(`# ... ${t.liveCount - shown} more`);
        break;
      }
      shown++;
      lines.push(`${hex(e.iova)}  tce=${hex(e.tce)}  ${tcePermString(e.tce)}  hpa=${hex(tceAddress(e.tce, t.pageShift))}  ` +
        `ua=${e.ua ? hex(e.ua) : '-'}${e.hidden ? '  hidden' : ''}`);
    }
  });
  if (!pe.tables[0] && !pe.tables[1]) lines.push('# no windows');
  for (const f of pe.eeh.dmaFaults) lines.push(`# ${dmaFaultLine(f)}`);
  return lines.join('\n') + '\n';
}
