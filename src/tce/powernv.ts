// PowerNV (bare metal, IODA2 PHB3/PHB4): the kernel programs each PE's two TVT entries itself.
// Slot 0 decodes bus addresses from tce32Start (0), slot 1 from 2^59 (PCI address bit 59 picks it).

import { EBUSY, EINVAL, ENOMEM, Errno, fail } from '../errno.ts';
import { log2, powernvTableGeometry, powernvTableSize, roundDownPow2 } from './geometry.ts';
import type { Pe } from './pe.ts';
import type { PlatformOps, Slot, TceContext } from './platform.ts';
import { TceTable } from './table.ts';

export const POWERNV_WINDOW64_START = 1n << 59n;
/** Level count the host uses at least for its own default table, to lean on on-demand levels. */
export const POWERNV_DEFAULT_LEVELS = 2;
export const PHB_PGSIZES = { PHB3: 0x1101_1000n, PHB4: 0x4021_1000n } as const;
const FOUR_GIB = 1n << 32n;

/** One level node (top node, or one that appears on demand) must be one contiguous block. */
function allocNode(ctx: TceContext, levelShift: number): void {
  ctx.faults.check('alloc');
  if (ctx.enforceMaxPageOrder && levelShift > ctx.hostPageShift + ctx.maxPageOrder) {
    fail(ENOMEM, `a 2^${levelShift}-byte level node exceeds the largest contiguous block`);
  }
}

export const powernvOps: PlatformOps = {
  flavour: 'powernv',

  slotStart(pe: Pe, slot: Slot): bigint {
    return slot === 0 ? BigInt(pe.tce32Start) : pe.window64Start;
  },

  tableSize(pe: Pe, pageShift: number, windowSize: bigint, levels: number): bigint {
    return powernvTableSize(pageShift, windowSize, levels, pe.context.hostPageShift);
  },

  createTable(pe, slot, pageShift, windowSize, levels, opts): TceTable {
    const ctx = pe.context;
    ctx.faults.check('alloc'); // the iommu_table itself, allocated before any rule is checked
    const g = powernvTableGeometry(pageShift, windowSize, levels, ctx.hostPageShift);
    allocNode(ctx, g.levelShift); // top node of the hardware table
    allocNode(ctx, g.levelShift); // top node of the user-address shadow
    return new TceTable({
      flavour: 'powernv',
      pageShift,
      offset: this.slotStart(pe, slot) >> BigInt(pageShift),
      size: g.itSize,
      levels,
      levelSize: g.levelSize,
      userView: true,
      boundsMode: opts.boundsMode,
      faults: ctx.faults,
    });
  },

  setWindow(pe, slot, table): void {
    if (table.flavour !== 'powernv') fail(EINVAL, 'not a PowerNV table');
    // The TVE is chosen by bus address bit 59, so a table can only ever serve the slot it was built for.
    if (table.startAddr !== this.slotStart(pe, slot)) {
      fail(EINVAL, `window at 0x${table.startAddr.toString(16)} cannot be programmed into slot ${slot}`);
    }
    const current = pe.tables[slot];
    if (current === table) return;
    if (current) fail(EBUSY, `${pe.name} slot ${slot} is in use`);
    pe.install(slot, table);
  },

  unsetWindow(pe, slot): void {
    pe.uninstall(slot);
  },

  takeOwnership(pe): void {
    // Ownership moves per device; only the first device of a group finds the host table to remove.
    if (!pe.tables[0]) return;
    pe.bypass = false;
    pe.uninstall(0);
  },

  releaseOwnership(pe): void {
    if (pe.tables[0]) return;
    setupHostDefaultWindow(pe);
  },
};

/**
 * The host's own DMA setup for a PE it owns: a table in slot 0 at bus address 0 with host-page-sized
 * IOMMU pages, as large as the biggest contiguous block allows (at least two levels so lower levels
 * appear on demand), plus the 64-bit bypass. A failure to build the table is only logged by the kernel:
 * the PE then has the bypass but no slot 0 window.
 */
export function setupHostDefaultWindow(pe: Pe): void {
  const ctx = pe.context;
  const P = ctx.hostPageShift;
  const maxBlock = 1n << BigInt(P + ctx.maxPageOrder);
  let windowSize = (maxBlock * 8n) << BigInt(P); // the host allocator keeps one bit per IOMMU page
  const memory = roundDownPow2(ctx.hostMemory);
  if (memory < windowSize) windowSize = memory;
  const tcesOrder = log2(windowSize >> BigInt(P));
  const perLevelOrder = log2(maxBlock >> 3n);
  const levels = Math.max(Math.ceil(tcesOrder / perLevelOrder), POWERNV_DEFAULT_LEVELS);
  try {
    ctx.faults.check('alloc');
    const g = powernvTableGeometry(P, windowSize, levels, P);
    allocNode(ctx, g.levelShift);
    const m32 = BigInt(pe.phb.m32PciBase);
    const table = new TceTable({
      flavour: 'powernv',
      pageShift: P,
      offset: BigInt(pe.tce32Start) >> BigInt(P),
      size: g.itSize,
      levels,
      levelSize: g.levelSize,
      userView: false,
      kernelOwned: true,
      faults: ctx.faults,
      index: (BigInt(pe.phb.domain) << 16n) | BigInt(pe.number),
      reserved: windowSize > m32 ? { start: m32, end: windowSize < FOUR_GIB ? windowSize : FOUR_GIB } : undefined,
    });
    ctx.tables.add(table);
    pe.install(0, table);
  } catch (e) {
    if (!(e instanceof Errno)) throw e;
  }
  pe.bypass = true;
}
