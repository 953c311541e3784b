// What a platform provides to a PE, mirroring the kernel's iommu_table_group_ops: the only place where
// PowerNV (bare-metal IODA2) and pSeries (hypervisor firmware) differ.

import type { FaultInjector } from './faults.ts';
import type { Pe } from './pe.ts';
import type { BoundsMode, TceTable } from './table.ts';
import type { Flavour } from './tce-entry.ts';

export type Slot = 0 | 1;
export const SLOTS: readonly Slot[] = [0, 1];

export interface CreateTableOptions {
  boundsMode?: BoundsMode;
  /**
   * The kernel keeps the locked-memory charge when the platform fails to create a table after charging
   * (a real leak, reference 1.4 and 8.8). Set this to model a fixed kernel that returns it.
   */
  refundOnFailure?: boolean;
}

/** Host-wide facts every PE needs; owned by TceHost. */
export interface TceContext {
  readonly flavour: Flavour;
  readonly hostPageShift: number;
  readonly faults: FaultInjector;
  /** Every table in existence (user tables until freed, host tables while installed): the leak census. */
  readonly tables: Set<TceTable>;
  /** memory_hotplug_max: sizes the host default window and, rounded up, the PowerNV bypass window. */
  readonly hostMemory: bigint;
  /** MAX_PAGE_ORDER: the largest physically contiguous block is 2^(hostPageShift + maxPageOrder) bytes. */
  readonly maxPageOrder: number;
  /** Refuse level nodes above that block size with ENOMEM, as the page allocator would. */
  readonly enforceMaxPageOrder: boolean;
  eehEnabled(): boolean;
}

export interface PlatformOps {
  readonly flavour: Flavour;
  /** Bus address a window created in `slot` starts at. */
  slotStart(pe: Pe, slot: Slot): bigint;
  /** get_table_size: bytes to charge, 0n to refuse. */
  tableSize(pe: Pe, pageShift: number, windowSize: bigint, levels: number): bigint;
  /** create_table: the platform's own rules only; charging is the caller's business. */
  createTable(pe: Pe, slot: Slot, pageShift: number, windowSize: bigint, levels: number, opts: CreateTableOptions): TceTable;
  setWindow(pe: Pe, slot: Slot, table: TceTable): void;
  unsetWindow(pe: Pe, slot: Slot): void;
  takeOwnership(pe: Pe): void;
  releaseOwnership(pe: Pe): void;
}
