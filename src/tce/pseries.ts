// pSeries (an LPAR or a nested KVM guest acting as host): windows live in the hypervisor and are
// opened and closed through RTAS calls, so creating a table already opens its window, and a window
// can only ever be "set" on the PE whose firmware opened it.

import { EBUSY, EEXIST, EINVAL, ENODEV, EPERM, fail } from '../errno.ts';
import { isPowerOfTwo, log2, pseriesTableSize } from './geometry.ts';
import type { Pe } from './pe.ts';
import type { PlatformOps, Slot } from './platform.ts';
import { TceTable } from './table.ts';

export const PSERIES_WINDOW64_START = 1n << 59n;
/** Limited addressing mode puts the dynamic window just above the 32-bit space. */
export const PSERIES_LIMITED_WINDOW64_START = 1n << 32n;
/** max_dynamic_windows_supported when DDW is unavailable: the kernel stores -1 in a u32. */
export const PSERIES_NO_DDW_WINDOWS = 0xffff_ffff;
const DEFAULT_PAGE_SHIFT = 12;

/** Page sizes ibm,query-pe-dma-window can report, by bit: 4K 64K 16M 32M 64M 128M 256M 16G 2M. */
export const QUERY_PAGE_SIZES: readonly bigint[] = [
  1n << 12n, 1n << 16n, 1n << 24n, 1n << 25n, 1n << 26n, 1n << 27n, 1n << 28n, 1n << 34n, 1n << 21n,
];

export function queryPageSizeToMask(bits: number): bigint {
  let mask = 0n;
  QUERY_PAGE_SIZES.forEach((size, bit) => {
    if (bits & (1 << bit)) mask |= size;
  });
  return mask;
}

export interface PseriesFirmwareConfig {
  /** Query answer with the default window open; 0 means a DDW needs the default window gone first. */
  windowsAvailable: number;
  ddwApplicable: boolean;
  limitedAddressing: boolean;
  /** ibm,dma-window: bus address and size of the default window. */
  dmaWindowBase: number;
  dmaWindowSize: number;
  /** Byte mask of DDW page sizes the hypervisor offers (only sizes in QUERY_PAGE_SIZES). */
  pgsizeMask: bigint;
  /** In TCEs. */
  largestAvailableBlock: bigint;
  /** Non-zero: ibm,query-pe-dma-window fails with this RTAS status. */
  queryStatus: number;
  kdump: boolean;
  /** LIOBN of the default window; a DDW gets this + 1. */
  liobn: bigint;
}

/**
 * The hypervisor side of one PE plus the device-tree facts the kernel keys its decisions on: whether
 * ibm,dma-window is present, whether a DDW property exists, and whether the device sits on the kernel's
 * failed-DDW list (after which every CREATE answers ENODEV).
 */
export class PseriesFirmware {
  defaultPresent = true;
  /** ibm,dma-window-saved exists. */
  defaultSaved = false;
  ddw: { start: bigint; pageShift: number; windowShift: number } | null = null;
  failedDdw = false;
  /** Windows the hypervisor allows at once, the default one included. */
  readonly capacity: number;

  constructor(readonly config: PseriesFirmwareConfig) {
    this.capacity = config.windowsAvailable + 1;
  }

  get activeWindows(): number {
    return (this.defaultPresent ? 1 : 0) + (this.ddw ? 1 : 0);
  }

  get windowsAvailable(): number {
    return Math.max(this.capacity - this.activeWindows, 0);
  }

  get queryWorks(): boolean {
    return this.config.ddwApplicable && this.config.queryStatus === 0;
  }

  get ddwStart(): bigint {
    return this.config.limitedAddressing ? PSERIES_LIMITED_WINDOW64_START : PSERIES_WINDOW64_START;
  }

  /** Removing the default window keeps its property as ibm,dma-window-saved. */
  removeDefault(): void {
    if (!this.defaultPresent) return;
    this.defaultPresent = false;
    this.defaultSaved = true;
  }

  /** ibm,reset-pe-dma-windows: back to the firmware default, any DDW dropped. */
  reset(): void {
    this.ddw = null;
    this.defaultPresent = true;
  }
}

function isDefaultWindowRequest(pe: Pe, pageShift: number, windowSize: bigint): boolean {
  return pageShift === DEFAULT_PAGE_SHIFT && windowSize <= BigInt(pe.tce32Size);
}

function firmwareOf(pe: Pe): PseriesFirmware {
  if (!pe.firmware) fail(ENODEV, `${pe.name} has no pSeries firmware state`);
  return pe.firmware;
}

/** Failures that put the device on the failed-DDW list, so that every later CREATE gets ENODEV. */
function blacklist(fw: PseriesFirmware, errno: number, why: string): never {
  fw.failedDdw = true;
  fail(errno, why);
}

function flatTable(pe: Pe, start: bigint, pageShift: number, windowSize: bigint, extra: { kernelOwned?: boolean; index: bigint; boundsMode?: 'window' | 'kernel' }): TceTable {
  const size = windowSize >> BigInt(pageShift);
  return new TceTable({
    flavour: 'pseries',
    pageShift,
    offset: start >> BigInt(pageShift),
    size,
    levels: 1,
    levelSize: size,
    userView: !extra.kernelOwned,
    kernelOwned: extra.kernelOwned,
    index: extra.index,
    boundsMode: extra.boundsMode,
    faults: pe.context.faults,
  });
}

export const pseriesOps: PlatformOps = {
  flavour: 'pseries',

  slotStart(pe: Pe, slot: Slot): bigint {
    return slot === 0 ? BigInt(pe.tce32Start) : pe.window64Start;
  },

  tableSize(_pe, pageShift, windowSize, levels): bigint {
    return pseriesTableSize(pageShift, windowSize, levels);
  },

  createTable(pe, slot, pageShift, windowSize, levels, opts): TceTable {
    if (!isPowerOfTwo(windowSize) || levels > 1) fail(EINVAL, 'pSeries needs a power-of-two window and one level');
    const fw = firmwareOf(pe);
    const windowShift = log2(windowSize);
    // Negative shifts are undefined in the kernel; no firmware would open such a window.
    if (windowShift < pageShift) fail(EINVAL, 'window smaller than one IOMMU page');
    if (fw.failedDdw) fail(ENODEV, `${pe.name} is on the failed DDW list`);
    // The kernel would overwrite tables[num]; through VFIO the container never asks for a busy slot.
    if (pe.tables[slot]) fail(EBUSY, `${pe.name} slot ${slot} is in use`);
    if (pe.context.faults.fails('alloc')) fail(ENODEV, 'could not allocate the iommu_table');

    if (slot === 0) {
      if (!isDefaultWindowRequest(pe, pageShift, windowSize)) {
        if (fw.ddw) fail(EPERM, 'a 64-bit window already exists');
      } else if (!fw.defaultPresent) {
        // Restoring the default window would also destroy the DDW, so the kernel refuses.
        if (fw.ddw) fail(EPERM, 'restoring window 0 would remove the existing 64-bit window');
        fw.reset();
        // The restored default window is clipped to what was asked for.
        const table = flatTable(pe, BigInt(fw.config.dmaWindowBase), DEFAULT_PAGE_SHIFT, windowSize, {
          index: fw.config.liobn, boundsMode: opts.boundsMode,
        });
        pe.install(0, table);
        return table;
      }
    }

    if (!fw.config.ddwApplicable) blacklist(fw, EINVAL, 'ibm,ddw-applicable missing');
    if (fw.config.queryStatus !== 0) blacklist(fw, Math.abs(fw.config.queryStatus), 'ibm,query-pe-dma-window failed');
    if (fw.config.largestAvailableBlock < 1n << BigInt(windowShift - pageShift)) {
      fail(EINVAL, 'window larger than the largest available block');
    }
    if (fw.windowsAvailable === 0) blacklist(fw, ENODEV, 'ibm,create-pe-dma-window failed: no window available');
    // The new window's device-tree property collides with an existing DDW's: the kernel closes the new
    // window again and gives up on the device.
    if (fw.ddw) blacklist(fw, EEXIST, 'a DDW property already exists');
    const start = fw.ddwStart;
    const table = flatTable(pe, start, pageShift, windowSize, { index: fw.config.liobn + 1n, boundsMode: opts.boundsMode });
    fw.ddw = { start, pageShift, windowShift };
    pe.install(slot, table);
    return table;
  },

  setWindow(pe, slot, table): void {
    // The firmware opened the window for this PE alone, at create time.
    if (pe.tables[slot] !== table) fail(EPERM, `${pe.name}: pSeries windows cannot be shared or re-set`);
  },

  unsetWindow(pe, slot): void {
    const table = pe.tables[slot];
    if (!table) return;
    const fw = firmwareOf(pe);
    const defaultLike = table.pageShift === DEFAULT_PAGE_SHIFT && table.size << BigInt(table.pageShift) <= BigInt(pe.tce32Size);
    if (slot === 0 && defaultLike) fw.removeDefault();
    else fw.ddw = null;
    pe.uninstall(slot);
  },

  takeOwnership(pe): void {
    // Nothing to take when the host is not using window 0, unless only one window fits at a time.
    if (!pe.tables[0] && pe.maxDynamicWindowsSupported !== 1) return;
    const fw = firmwareOf(pe);
    if (fw.ddw) {
      fw.ddw = null;
      if (pe.tables[1]) pe.uninstall(1);
      else if (pe.tables[0]) pe.uninstall(0);
    }
    if (pe.tables[0]) {
      fw.removeDefault();
      pe.uninstall(0);
    }
  },

  releaseOwnership(pe): void {
    if (pe.tables[0]) return;
    setupHostDefaultWindow(pe);
  },
};

/** The host's table over the firmware default window (full size, 4K pages), after a reset. */
export function setupHostDefaultWindow(pe: Pe): void {
  const fw = firmwareOf(pe);
  fw.reset();
  if (pe.context.faults.fails('alloc')) return; // the kernel logs it and leaves the PE without a window
  const table = flatTable(pe, BigInt(fw.config.dmaWindowBase), DEFAULT_PAGE_SHIFT, BigInt(fw.config.dmaWindowSize), {
    kernelOwned: true, index: fw.config.liobn,
  });
  pe.context.tables.add(table);
  pe.install(0, table);
}
