// A Partitionable Endpoint: the kernel's iommu_table_group and one Linux IOMMU group. It owns the two
// hardware window slots and its EEH state; the tables themselves belong to whoever created them
// (a VFIO container or an iommufd domain) and may be programmed into several PEs at once.

import { EACCES, EBUSY, EFAULT, EINVAL, EIO, fail } from '../errno.ts';
import { EehPe } from './eeh.ts';
import { roundUpPow2 } from './geometry.ts';
import type { LockedMemoryAccount } from './memory.ts';
import type { Phb } from './phb.ts';
import { SLOTS, type CreateTableOptions, type PlatformOps, type Slot, type TceContext } from './platform.ts';
import type { PseriesFirmware } from './pseries.ts';
import type { TceTable } from './table.ts';
import { TCE_PCI_READ, TCE_PCI_WRITE, tceAddress, type Flavour } from './tce-entry.ts';

export interface PeInit {
  phb: Phb;
  number: number;
  groupId: number;
  pgsizes: bigint;
  tce32Start: number;
  tce32Size: number;
  window64Start: bigint;
  maxDynamicWindowsSupported: number;
  maxLevels: number;
  ops: PlatformOps;
  context: TceContext;
  firmware?: PseriesFirmware;
}

export interface Aperture {
  slot: Slot;
  start: bigint;
  /** Inclusive. */
  last: bigint;
  pageShift: number;
  kernelOwned: boolean;
}

/** Device access as seen from the device: a DMA read needs TCE R, a DMA write needs TCE W. */
export type DmaAccess = 'read' | 'write';

export class Pe {
  readonly phb: Phb;
  readonly number: number;
  readonly groupId: number;
  readonly name: string;
  readonly pgsizes: bigint;
  readonly maxDynamicWindowsSupported: number;
  readonly maxLevels: number;
  readonly tce32Start: number;
  readonly tce32Size: number;
  readonly window64Start: bigint;
  readonly eeh: EehPe;
  /** pSeries only: the hypervisor's view of this PE's windows. */
  readonly firmware?: PseriesFirmware;
  /** @internal platform ops and host wiring */
  readonly context: TceContext;
  /** @internal */
  readonly ops: PlatformOps;
  /** PowerNV: the host's 64-bit real-mode window at window64Start (TVE #1) is on. Platform ops set it. */
  bypass = false;
  private readonly slots: [TceTable | null, TceTable | null] = [null, null];
  private owner: 'platform' | 'user' = 'platform';

  constructor(init: PeInit) {
    this.phb = init.phb;
    this.number = init.number;
    this.groupId = init.groupId;
    this.pgsizes = init.pgsizes;
    this.tce32Start = init.tce32Start;
    this.tce32Size = init.tce32Size;
    this.window64Start = init.window64Start;
    this.maxDynamicWindowsSupported = init.maxDynamicWindowsSupported;
    this.maxLevels = init.maxLevels;
    this.ops = init.ops;
    this.context = init.context;
    this.firmware = init.firmware;
    // pSeries registers every group as PE 0 of its domain.
    const peNo = init.ops.flavour === 'pseries' ? 0 : init.number;
    this.name = `domain${init.phb.domain}-pe${peNo.toString(16)}`;
    this.eeh = new EehPe(init.ops.flavour, () => init.context.eehEnabled());
  }

  /** Who drives the PE's DMA: the host kernel (platform domain) or user space (after take). */
  get ownership(): 'platform' | 'user' {
    return this.owner;
  }

  /** Windows programmed into this PE's hardware, slot 0 and slot 1. */
  get tables(): readonly [TceTable | null, TceTable | null] {
    return this.slots;
  }

  /** No window and no bypass: every DMA fails. */
  get blocked(): boolean {
    return this.owner === 'user' && !this.slots[0] && !this.slots[1] && !this.bypass;
  }

  get flavour(): Flavour {
    return this.ops.flavour;
  }

  slotStart(slot: Slot): bigint {
    checkSlot(slot);
    return this.ops.slotStart(this, slot);
  }

  /**
   * The platform half of CREATE (reference 2.3 rows 11 to 15, in order): the page size must be in
   * pgsizes, get_table_size must not refuse, the size is charged to `account`, then the platform builds
   * the table. When that last step fails the charge stays, as in the kernel, unless opts.refundOnFailure.
   * On PowerNV the table still has to be programmed with setWindow; pSeries firmware opens it at once.
   */
  createTable(
    slot: Slot,
    pageShift: number,
    windowSize: bigint,
    levels: number,
    account: LockedMemoryAccount,
    opts: CreateTableOptions = {},
  ): TceTable {
    this.requireUser();
    checkSlot(slot);
    if (!Number.isInteger(pageShift) || pageShift < 0 || pageShift >= 64 || (this.pgsizes & (1n << BigInt(pageShift))) === 0n) {
      fail(EINVAL, `page shift ${pageShift} not in pgsizes 0x${this.pgsizes.toString(16)}`);
    }
    if (windowSize < 0n || windowSize >= 1n << 64n) fail(EINVAL, 'window size outside 64 bits');
    if (!Number.isInteger(levels) || levels < 0 || levels > 0xffff_ffff) fail(EINVAL, 'levels outside 32 bits');
    const bytes = this.ops.tableSize(this, pageShift, windowSize, levels);
    if (bytes === 0n) fail(EINVAL, 'platform refuses this table size');
    account.charge(bytes);
    let table: TceTable;
    try {
      table = this.ops.createTable(this, slot, pageShift, windowSize, levels, opts);
    } catch (e) {
      if (opts.refundOnFailure) account.uncharge(bytes);
      throw e;
    }
    table.accountedBytes = bytes;
    this.context.tables.add(table);
    return table;
  }

  /** Frees a table this PE's platform created: un-charges it_allocated_size and drops the storage. */
  freeTable(table: TceTable, account: LockedMemoryAccount): void {
    if (table.kernelOwned) fail(EINVAL, 'the host kernel owns this table');
    if (table.isFreed) fail(EINVAL, 'table already freed');
    if (!this.context.tables.has(table)) fail(EINVAL, 'not a table of this host');
    if (table.groups.size > 0) fail(EBUSY, 'table is still programmed into a PE');
    account.uncharge(table.accountedBytes);
    table.release();
    this.context.tables.delete(table);
  }

  /** Programs `table` into `slot` of this PE (set_window). */
  setWindow(slot: Slot, table: TceTable): void {
    this.requireUser();
    checkSlot(slot);
    if (table.isFreed) fail(EINVAL, 'table already freed');
    this.ops.setWindow(this, slot, table);
  }

  /** Removes whatever `slot` holds from the hardware (unset_window); the table itself lives on. */
  unsetWindow(slot: Slot): void {
    checkSlot(slot);
    this.ops.unsetWindow(this, slot);
  }

  /** The host gives the PE up (blocked-domain attach): its own default DMA setup goes away. Idempotent. */
  takeOwnership(): void {
    if (this.owner === 'user') return;
    this.ops.takeOwnership(this);
    this.owner = 'user';
  }

  /** The PE returns to the host, which rebuilds its default window if slot 0 is free. Idempotent. */
  releaseOwnership(): void {
    if (this.owner === 'platform') return;
    this.ops.releaseOwnership(this);
    this.owner = 'platform';
    this.eeh.changeOwner();
  }

  /**
   * A true blocking domain: no window and no bypass, so every translation fails. User tables are only
   * unprogrammed, never freed. Cannot fail. (The kernel's own blocked domain is just take_ownership,
   * which may leave the PowerNV bypass on; this one does not.)
   */
  block(): void {
    this.takeOwnership();
    for (const slot of SLOTS) if (this.slots[slot]) this.ops.unsetWindow(this, slot);
    this.bypass = false;
  }

  /** Every programmed window, slot order. */
  apertures(): Aperture[] {
    const out: Aperture[] = [];
    for (const slot of SLOTS) {
      const t = this.slots[slot];
      if (t) out.push({ slot, start: t.startAddr, last: t.endAddr - 1n, pageShift: t.pageShift, kernelOwned: t.kernelOwned });
    }
    return out;
  }

  /** The programmed window containing `iova`, as MAP/UNMAP/REMOVE look it up. */
  findWindow(iova: bigint): { slot: Slot; table: TceTable } | null {
    for (const slot of SLOTS) {
      const t = this.slots[slot];
      if (t?.contains(iova)) return { slot, table: t };
    }
    return null;
  }

  /**
   * What the PHB does with a device DMA to `iova`: EIO while DMA is frozen by EEH, EFAULT when no window
   * decodes the address or its TCE is empty, EACCES when the TCE lacks the permission. The result keeps
   * the offset inside the IOMMU page.
   */
  translate(iova: bigint, access: DmaAccess): bigint {
    if (this.eeh.dmaFrozen) fail(EIO, `${this.name}: DMA frozen by EEH`);
    for (const t of this.slots) {
      if (!t || !t.decodes(iova)) continue;
      const idx = (iova >> BigInt(t.pageShift)) - t.offset;
      const tce = t.boundsMode === 'kernel' || idx < t.size ? t.get(t.entryOf(iova)) : 0n;
      if (tce === 0n) fail(EFAULT, `${this.name}: no TCE for 0x${iova.toString(16)}`);
      const need = access === 'write' ? TCE_PCI_WRITE : TCE_PCI_READ;
      if ((tce & need) === 0n) fail(EACCES, `${this.name}: TCE for 0x${iova.toString(16)} forbids ${access}`);
      return tceAddress(tce, t.pageShift) | (iova & (t.pageSize - 1n));
    }
    if (this.bypass && iova >= this.window64Start && iova - this.window64Start < this.bypassSize()) {
      return iova - this.window64Start;
    }
    fail(EFAULT, `${this.name}: no window decodes 0x${iova.toString(16)}`);
  }

  /** Size of the PowerNV bypass window: end of DRAM rounded up to a power of two. */
  bypassSize(): bigint {
    return roundUpPow2(this.context.hostMemory);
  }

  /** @internal platform ops: put a table into a hardware slot. */
  install(slot: Slot, table: TceTable): void {
    this.slots[slot] = table;
    table.groups.add(this);
  }

  /** @internal platform ops: empty a hardware slot, dropping host tables for good. */
  uninstall(slot: Slot): TceTable | null {
    const table = this.slots[slot];
    if (!table) return null;
    this.slots[slot] = null;
    table.groups.delete(this);
    if (table.kernelOwned && table.groups.size === 0) {
      table.release();
      this.context.tables.delete(table);
    }
    return table;
  }

  private requireUser(): void {
    // Unreachable through VFIO (the group is claimed first); guards the host's own default window.
    if (this.owner !== 'user') fail(EBUSY, `${this.name} is owned by the host kernel`);
  }
}

function checkSlot(slot: number): asserts slot is Slot {
  if (slot !== 0 && slot !== 1) fail(EINVAL, `slot ${slot} is not 0 or 1`);
}
