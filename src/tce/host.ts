// The emulated POWER host: PHBs and their PEs, host memory, locked-memory accounts per owner and the
// fault injector, all built from one plain config object.

import { EINVAL, fail } from '../errno.ts';
import { FaultInjector } from './faults.ts';
import { HostMemory, LockedMemoryAccount } from './memory.ts';
import { Pe } from './pe.ts';
import { ProcessVm } from './vm-status.ts';
import { Phb, type PhbModel } from './phb.ts';
import type { TceContext } from './platform.ts';
import { POWERNV_WINDOW64_START, powernvOps, setupHostDefaultWindow as powernvDefault } from './powernv.ts';
import {
  PSERIES_NO_DDW_WINDOWS, PseriesFirmware, pseriesOps, QUERY_PAGE_SIZES,
  setupHostDefaultWindow as pseriesDefault,
} from './pseries.ts';
import type { TceTable } from './table.ts';
import type { Flavour } from './tce-entry.ts';

export interface PseriesHostConfig {
  /** Default 1: one DDW besides the default window (QEMU as hypervisor allows 2 windows). */
  windowsAvailable?: number;
  /** Default true. */
  ddwApplicable?: boolean;
  /** Default false: DDWs at 2^59; true: just above 4 GiB. */
  limitedAddressing?: boolean;
  /** Default window size in bytes; default 0x4000_0000 (QEMU as hypervisor). */
  dmaWindowSize?: number;
  /** Default window bus address; default 0. */
  dmaWindowBase?: number;
  /** DDW page sizes as a byte mask; default 4K|64K|2M|16M. 4K is always added to pgsizes. */
  pgsizeMask?: bigint;
  /** In TCEs; default 2^32. */
  largestAvailableBlock?: bigint;
  /** Non-zero: ibm,query-pe-dma-window fails with this RTAS status. Default 0. */
  queryStatus?: number;
  /** A kdump kernel never fills in the DDW facts. Default false. */
  kdump?: boolean;
}

export interface TceHostConfig {
  flavour: Flavour;
  /** 16 (64 KiB, the usual ppc64 kernel) or 12. Default 16. */
  hostPageShift?: number;
  /** RLIMIT_MEMLOCK per owner in bytes; default 8 GiB. */
  memlockLimit?: bigint;
  /** eeh_enabled(); default true. */
  eehEnabled?: boolean;
  /** End of host RAM (memory_hotplug_max); default 256 GiB. */
  hostMemory?: bigint;
  /** MAX_PAGE_ORDER; default 8 with 64 KiB pages, 12 with 4 KiB pages (both give 16 MiB blocks). */
  maxPageOrder?: number;
  /**
   * Refuse level nodes larger than 2^(hostPageShift + maxPageOrder) bytes with ENOMEM, as the kernel's
   * page allocator does (why QEMU retries CREATE with more levels). Default false, so one-level windows
   * of any size can be created.
   */
  enforceMaxPageOrder?: boolean;
  pseries?: PseriesHostConfig;
  phbs: { domain: number; model?: PhbModel; m32PciBase?: number; pes: { number: number; groupId: number }[] }[];
}

export interface TceHostStats {
  phbs: number;
  pes: number;
  /** User tables that exist (created and not yet freed). */
  tables: number;
  /** Host kernel default tables in place. */
  kernelTables: number;
  /** Live TCEs in user tables. */
  liveTces: number;
  /** Emulator bytes held for entries of all tables. */
  tableBytes: number;
  pinnedBytes: bigint;
  pinnedExtents: number;
  lockedBytes: bigint;
  accounts: number;
  /** Uncharges that exceeded the charge; any non-zero value is a bookkeeping bug. */
  lockUnderflows: number;
  frozenPes: number;
}

const GIB = 1n << 30n;

export class TceHost {
  readonly flavour: Flavour;
  readonly hostPageShift: number;
  memlockLimit: bigint;
  eehEnabled: boolean;
  readonly faults = new FaultInjector();
  readonly memory: HostMemory;
  /** VmPin and VmLck of each process iommufd charged (what /proc/<pid>/status shows of it). */
  readonly vm = new ProcessVm();
  readonly phbs: Phb[] = [];
  readonly context: TceContext;
  private readonly tableSet = new Set<TceTable>();
  private readonly accountMap = new Map<string, LockedMemoryAccount>();
  private readonly byGroup = new Map<number, Pe>();

  constructor(config: TceHostConfig) {
    if (config.flavour !== 'powernv' && config.flavour !== 'pseries') fail(EINVAL, `unknown flavour ${String(config.flavour)}`);
    this.flavour = config.flavour;
    this.hostPageShift = config.hostPageShift ?? 16;
    this.memory = new HostMemory(this.hostPageShift, this.faults); // refuses page sizes other than 4K and 64K
    this.memlockLimit = config.memlockLimit ?? 8n * GIB;
    this.eehEnabled = config.eehEnabled ?? true;
    const hostMemory = config.hostMemory ?? 256n * GIB;
    if (hostMemory < this.memory.pageSize) fail(EINVAL, 'hostMemory below one page');
    this.context = {
      flavour: this.flavour,
      hostPageShift: this.hostPageShift,
      faults: this.faults,
      tables: this.tableSet,
      hostMemory,
      maxPageOrder: config.maxPageOrder ?? (this.hostPageShift === 16 ? 8 : 12),
      enforceMaxPageOrder: config.enforceMaxPageOrder ?? false,
      eehEnabled: () => this.eehEnabled,
    };
    for (const pc of config.phbs) this.addPhb(pc, config.pseries ?? {});
  }

  pes(): Pe[] {
    return this.phbs.flatMap((p) => p.pes);
  }

  peByGroup(groupId: number): Pe | undefined {
    return this.byGroup.get(groupId);
  }

  /** The locked-memory account of an owner (one per process), created on first use. */
  account(owner: string): LockedMemoryAccount {
    let a = this.accountMap.get(owner);
    if (!a) this.accountMap.set(owner, (a = new LockedMemoryAccount(owner, this.memlockLimit, this.hostPageShift)));
    return a;
  }

  accounts(): LockedMemoryAccount[] {
    return [...this.accountMap.values()];
  }

  /** Forget accounts with nothing charged, so a long-running host does not keep one per past process. */
  pruneIdleAccounts(): void {
    for (const [owner, a] of this.accountMap) if (a.locked === 0n && a.underflows === 0) this.accountMap.delete(owner);
  }

  /** Every table in existence, user and host-owned. */
  tables(): TceTable[] {
    return [...this.tableSet];
  }

  stats(): TceHostStats {
    const tables = this.tables();
    const user = tables.filter((t) => !t.kernelOwned);
    return {
      phbs: this.phbs.length,
      pes: this.pes().length,
      tables: user.length,
      kernelTables: tables.length - user.length,
      liveTces: user.reduce((n, t) => n + t.liveCount, 0),
      tableBytes: tables.reduce((n, t) => n + t.allocatedBytes(), 0),
      pinnedBytes: this.memory.pinnedBytes(),
      pinnedExtents: this.memory.extentCount(),
      lockedBytes: this.accounts().reduce((n, a) => n + a.locked, 0n),
      accounts: this.accountMap.size,
      lockUnderflows: this.accounts().reduce((n, a) => n + a.underflows, 0),
      frozenPes: this.pes().filter((pe) => pe.eeh.frozen).length,
    };
  }

  private addPhb(pc: TceHostConfig['phbs'][number], ps: PseriesHostConfig): void {
    if (!Number.isInteger(pc.domain) || pc.domain < 0) fail(EINVAL, `bad PCI domain ${pc.domain}`);
    if (this.phbs.some((p) => p.domain === pc.domain)) fail(EINVAL, `duplicate PCI domain ${pc.domain}`);
    if (pc.model !== undefined && pc.model !== 'PHB3' && pc.model !== 'PHB4') fail(EINVAL, `unknown PHB model ${String(pc.model)}`);
    const m32 = pc.m32PciBase;
    if (m32 !== undefined && (!Number.isInteger(m32) || m32 <= 0 || m32 > 0xffff_ffff)) fail(EINVAL, 'm32PciBase must be a u32');
    const phb = new Phb(pc.domain, pc.model, m32);
    this.phbs.push(phb);
    for (const pec of pc.pes) {
      if (!Number.isInteger(pec.number) || pec.number < 0) fail(EINVAL, `bad PE number ${pec.number}`);
      if (!Number.isInteger(pec.groupId) || pec.groupId < 0) fail(EINVAL, `bad group id ${pec.groupId}`);
      if (this.byGroup.has(pec.groupId)) fail(EINVAL, `duplicate group id ${pec.groupId}`);
      if (phb.pes.some((p) => p.number === pec.number)) fail(EINVAL, `duplicate PE ${pec.number} on domain ${pc.domain}`);
      const pe = this.flavour === 'powernv' ? this.powernvPe(phb, pec) : this.pseriesPe(phb, pec, ps);
      phb.pes.push(pe);
      this.byGroup.set(pec.groupId, pe);
    }
  }

  private powernvPe(phb: Phb, pec: { number: number; groupId: number }): Pe {
    const pe = new Pe({
      phb, number: pec.number, groupId: pec.groupId,
      pgsizes: phb.pgsizes,
      tce32Start: 0,
      tce32Size: phb.m32PciBase,
      window64Start: POWERNV_WINDOW64_START,
      maxDynamicWindowsSupported: 2,
      maxLevels: 5,
      ops: powernvOps,
      context: this.context,
    });
    powernvDefault(pe);
    return pe;
  }

  private pseriesPe(phb: Phb, pec: { number: number; groupId: number }, ps: PseriesHostConfig): Pe {
    const pgsizeMask = ps.pgsizeMask ?? 0x0121_1000n;
    const offered = QUERY_PAGE_SIZES.reduce((m, s) => m | s, 0n);
    if ((pgsizeMask & ~offered) !== 0n) fail(EINVAL, 'pgsizeMask holds sizes ibm,query-pe-dma-window cannot report');
    const windowsAvailable = ps.windowsAvailable ?? 1;
    if (!Number.isInteger(windowsAvailable) || windowsAvailable < 0) fail(EINVAL, 'bad windowsAvailable');
    const dmaWindowSize = ps.dmaWindowSize ?? 0x4000_0000;
    if (!Number.isInteger(dmaWindowSize) || dmaWindowSize <= 0 || dmaWindowSize > 0xffff_ffff) fail(EINVAL, 'bad dmaWindowSize');
    const firmware = new PseriesFirmware({
      windowsAvailable,
      ddwApplicable: ps.ddwApplicable ?? true,
      limitedAddressing: ps.limitedAddressing ?? false,
      dmaWindowBase: ps.dmaWindowBase ?? 0,
      dmaWindowSize,
      pgsizeMask,
      largestAvailableBlock: ps.largestAvailableBlock ?? 1n << 32n,
      queryStatus: ps.queryStatus ?? 0,
      kdump: ps.kdump ?? false,
      // After QEMU's LIOBN scheme, 0x80000000 | (phb index << 8) | window, with two windows per PE.
      liobn: 0x8000_0000n | (BigInt(this.phbs.length - 1) << 8n) | (BigInt(phb.pes.length) << 1n),
    });
    const cfg = firmware.config;
    const maxWindows = cfg.kdump ? 0 : !firmware.queryWorks ? PSERIES_NO_DDW_WINDOWS : windowsAvailable === 0 ? 1 : 2;
    const pe = new Pe({
      phb, number: pec.number, groupId: pec.groupId,
      pgsizes: (1n << 12n) | (!cfg.kdump && firmware.queryWorks ? pgsizeMask : 0n),
      tce32Start: cfg.kdump ? 0 : cfg.dmaWindowBase,
      tce32Size: cfg.kdump ? 0 : dmaWindowSize,
      window64Start: firmware.ddwStart,
      maxDynamicWindowsSupported: maxWindows,
      maxLevels: !cfg.kdump && firmware.queryWorks ? 1 : 0,
      ops: pseriesOps,
      context: this.context,
      firmware,
    });
    pseriesDefault(pe);
    return pe;
  }
}
