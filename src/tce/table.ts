// One DMA window: the TCE table (iommu_table) plus its user-address shadow (it_userspace).
// The kernel's level structure is kept as bookkeeping (which nodes exist, what they would cost);
// the entries themselves live in sparse chunks so memory follows use, not the declared size.

import { EINVAL, fail } from '../errno.ts';
import type { FaultInjector } from './faults.ts';
import { SparseU64 } from './sparse-u64.ts';
import {
  buildTce, directionToPerm, DmaDirection, platformPerm, TCE_PERM_MASK, U64_MAX, type Flavour,
} from './tce-entry.ts';

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * window: entries outside [offset, offset + size) are refused with EINVAL (recommended).
 * kernel: like the kernel, which never checks the end of a range, entries up to levelSize^levels are
 * accepted; those beyond the window are the hidden on-demand entries of a multi-level table. Anything
 * past that would be an out-of-bounds write in the kernel and is still refused.
 */
export type BoundsMode = 'window' | 'kernel';

export interface TceTableSpec {
  flavour: Flavour;
  pageShift: number;
  /** it_offset: window start in IOMMU pages. */
  offset: bigint;
  /** it_size: TCE count of the window. */
  size: bigint;
  levels: number;
  /** it_level_size: entries per level node. Equal to size for one-level and pSeries tables. */
  levelSize: bigint;
  /** Whether the user-address shadow exists (VFIO-created tables have it, host kernel tables do not). */
  userView: boolean;
  kernelOwned?: boolean;
  boundsMode?: BoundsMode;
  faults?: FaultInjector;
  /** it_index: LIOBN on pSeries, (phb << 16) | pe for the PowerNV host default table, else 0. */
  index?: bigint;
  /** Host-kernel DMA allocator hole (the MMIO32 range), shown in views only. */
  reserved?: { start: bigint; end: bigint };
}

/** Whatever has a table programmed into its hardware (a PE); the table only needs its name for views. */
export interface WindowHolder {
  readonly name: string;
}

export interface OldTce {
  tce: bigint;
  ua: bigint;
}

export interface LiveTce {
  entry: bigint;
  iova: bigint;
  tce: bigint;
  ua: bigint;
  /** Past the window end: only reachable in kernel bounds mode on multi-level tables. */
  hidden: boolean;
}

export class TceTable {
  readonly flavour: Flavour;
  readonly pageShift: number;
  readonly offset: bigint;
  readonly size: bigint;
  readonly levels: number;
  readonly levelSize: bigint;
  readonly userView: boolean;
  readonly kernelOwned: boolean;
  readonly index: bigint;
  readonly reserved?: { start: bigint; end: bigint };
  readonly startAddr: bigint;
  /** Exclusive end of the window: (offset + size) << pageShift. */
  readonly endAddr: bigint;
  /** Entries the level walk can reach, levelSize^levels; what the hardware decodes behind this window. */
  readonly reach: bigint;
  boundsMode: BoundsMode;
  /** Bytes charged to locked memory for this table (it_allocated_size); 0 for host kernel tables. */
  accountedBytes = 0n;
  /** PEs whose hardware currently has this table programmed (the kernel's it_group_list). */
  readonly groups = new Set<WindowHolder>();

  private readonly tces = new SparseU64();
  private readonly uas = new SparseU64();
  private readonly hwNodes: LevelNodes;
  private readonly uaNodes: LevelNodes;
  private readonly faults?: FaultInjector;
  /** TCE bits between the permissions and the page number, which must stay clear. */
  private readonly subPageMask: bigint;
  /** pageShift as a bigint, for IOVA arithmetic. */
  readonly shift: bigint;
  readonly pageSize: bigint;
  readonly pageMask: bigint;
  /** Permission bits per DmaDirection on this platform. */
  private readonly perms: bigint[];
  /** size and reach as plain numbers, for index arithmetic (reach stays below 2^53). */
  private readonly sizeIndex: number;
  private readonly reachIndex: number;
  /** offset as a plain number, or -1 where it does not fit one exactly. */
  private readonly offsetIndex: number;
  private freed = false;

  constructor(spec: TceTableSpec) {
    if (!Number.isInteger(spec.pageShift) || spec.pageShift < 0 || spec.pageShift >= 64) fail(EINVAL, 'bad page shift');
    if (!Number.isInteger(spec.levels) || spec.levels < 1) fail(EINVAL, 'a table has at least one level');
    if (spec.size <= 0n || spec.levelSize <= 0n) fail(EINVAL, 'empty table');
    if (spec.offset < 0n) fail(EINVAL, 'negative window offset');
    this.flavour = spec.flavour;
    this.pageShift = spec.pageShift;
    this.offset = spec.offset;
    this.size = spec.size;
    this.levels = spec.levels;
    this.levelSize = spec.levelSize;
    this.userView = spec.userView;
    this.kernelOwned = spec.kernelOwned ?? false;
    this.index = spec.index ?? 0n;
    this.reserved = spec.reserved;
    this.boundsMode = spec.boundsMode ?? 'window';
    this.faults = spec.faults;
    this.startAddr = spec.offset << BigInt(spec.pageShift);
    this.endAddr = (spec.offset + spec.size) << BigInt(spec.pageShift);
    this.reach = spec.levels === 1 ? spec.size : spec.levelSize ** BigInt(spec.levels);
    if (this.endAddr - 1n > U64_MAX) fail(EINVAL, 'window runs past the 64-bit bus');
    if (this.reach > BigInt(Number.MAX_SAFE_INTEGER)) fail(EINVAL, 'table reach beyond 2^53 entries');
    this.subPageMask = ((1n << BigInt(spec.pageShift)) - 1n) & ~TCE_PERM_MASK;
    this.shift = BigInt(spec.pageShift);
    this.pageSize = 1n << this.shift;
    this.pageMask = this.pageSize - 1n;
    this.perms = [DmaDirection.BIDIRECTIONAL, DmaDirection.TO_DEVICE, DmaDirection.FROM_DEVICE].map((d) => platformPerm(directionToPerm(d), this.flavour));
    this.sizeIndex = Number(spec.size);
    this.reachIndex = Number(this.reach);
    this.offsetIndex = spec.offset <= MAX_SAFE ? Number(spec.offset) : -1;
    this.hwNodes = new LevelNodes(spec.levels, Number(spec.levelSize));
    this.uaNodes = new LevelNodes(spec.levels, Number(spec.levelSize));
  }

  get liveCount(): number {
    return this.tces.count;
  }

  get isFreed(): boolean {
    return this.freed;
  }

  /** Whether `iova` lies in the window [startAddr, endAddr). */
  contains(iova: bigint): boolean {
    return iova >= this.startAddr && iova < this.endAddr;
  }

  /** Whether the hardware walk behind this window decodes `iova` (includes hidden multi-level entries). */
  decodes(iova: bigint): boolean {
    return iova >= this.startAddr && (iova >> this.shift) - this.offset < this.reach;
  }

  /** Absolute entry index of an IOVA, the kernel's iova >> it_page_shift. */
  entryOf(iova: bigint): bigint {
    return iova >> this.shift;
  }

  /** A TCE for this table's platform and page size. */
  makeTce(hpa: bigint, dir: DmaDirection): bigint {
    return this.plainTce(hpa, dir) ?? buildTce(hpa, dir, this.flavour, this.pageShift);
  }

  /** The TCE in the common case (a page-aligned address, a known direction); undefined for anything else,
   * which buildTce checks and refuses with the right error. */
  private plainTce(hpa: bigint, dir: DmaDirection): bigint | undefined {
    const perm = this.perms[dir];
    return perm !== undefined && hpa > 0n && hpa <= U64_MAX && (hpa & this.pageMask) === 0n ? hpa | perm : undefined;
  }

  /** The raw TCE at an absolute entry, 0n when empty. */
  get(entry: bigint): bigint {
    return this.tces.get(this.indexOf(entry));
  }

  /** The user address recorded in the shadow for an absolute entry, 0n when none. */
  ua(entry: bigint): bigint {
    return this.uas.get(this.indexOf(entry));
  }

  /**
   * Exchanges the TCE at an absolute entry and returns the old TCE and shadow value. With `ua` the shadow
   * entry is replaced too; without it the shadow is left alone (the v1 and iommufd paths never use it).
   * Level nodes come into existence on the first non-zero write below them, shadow first, as the v2 map
   * path looks its shadow slot up before exchanging. A failed node allocation throws ENOMEM and leaves
   * the entry untouched (nodes already allocated stay, as in the kernel).
   */
  xchg(entry: bigint, tce: bigint, ua?: bigint): OldTce {
    const idx = this.indexOf(entry);
    const stored = this.checkTce(tce);
    if (ua !== undefined) {
      if (!this.userView) fail(EINVAL, 'table has no user-address shadow');
      if (ua < 0n || ua > U64_MAX) fail(EINVAL, 'ua outside 64 bits');
      if (ua !== 0n) this.uaNodes.ensure(idx, this.faults);
    }
    if (stored !== 0n) this.hwNodes.ensure(idx, this.faults);
    const oldTce = this.tces.set(idx, stored);
    const oldUa = ua === undefined ? this.uas.get(idx) : this.uas.set(idx, ua);
    return { tce: oldTce, ua: oldUa };
  }

  /**
   * Maps one page: what xchg(entry, makeTce(hpa, dir), ua) does, for the map paths that build the TCE
   * from a pinned page and so need not check it twice. Anything unusual takes xchg's path and errors.
   */
  mapPage(entry: bigint, hpa: bigint, dir: DmaDirection, ua: bigint): void {
    const tce = this.userView && ua > 0n && ua <= U64_MAX ? this.plainTce(hpa, dir) : undefined;
    if (tce === undefined) {
      this.xchg(entry, this.makeTce(hpa, dir), ua);
      return;
    }
    const idx = this.indexOf(entry);
    this.uaNodes.ensure(idx, this.faults);
    this.hwNodes.ensure(idx, this.faults);
    this.tces.put(idx, tce);
    this.uas.put(idx, ua);
  }

  /**
   * Clears `count` entries from an absolute entry, TCEs and shadow alike, and returns the entries that
   * were live. The whole range is bounds-checked before anything changes.
   */
  clearRange(entry: bigint, count: bigint | number): LiveTce[] {
    const n = BigInt(count);
    if (n < 0n) fail(EINVAL, 'negative count');
    if (n === 0n) return [];
    const first = this.indexOf(entry);
    const end = this.indexOf(entry + n - 1n) + 1;
    const cleared: LiveTce[] = [];
    this.tces.take(first, end, (idx, tce) => cleared.push(this.describe(idx, tce, this.uas.get(idx))));
    this.uas.take(first, end);
    return cleared;
  }

  /** Clears `count` entries from an absolute entry, TCEs and shadow alike (clearRange without the report). */
  clear(entry: bigint, count: number): void {
    if (count <= 0) return;
    const first = this.indexOf(entry);
    const end = this.indexOf(entry + BigInt(count - 1)) + 1;
    this.tces.take(first, end);
    this.uas.take(first, end);
  }

  /**
   * The first entry at or after `entry` and before `end` (absolute entries inside the window) that holds
   * a TCE, or `end` when the run between them is empty.
   */
  nextLive(entry: bigint, end: bigint): bigint {
    if (end <= entry) return end;
    const first = this.indexOf(entry);
    const idx = this.tces.firstNonZero(first, this.indexOf(end - 1n) + 1);
    return idx < 0 ? end : this.offset + BigInt(idx);
  }

  /** Live TCEs in entry order. */
  *entries(): Generator<LiveTce> {
    this.alive();
    for (const [idx, tce] of this.tces.range(0, Number(this.reach))) yield this.describe(idx, tce, this.uas.get(idx));
  }

  /** Bytes this emulator holds for entries right now (TCE and shadow chunks). */
  allocatedBytes(): number {
    return this.tces.bytes + this.uas.bytes;
  }

  /** Level nodes that exist, top level first, for the hardware table and for the shadow. */
  levelNodes(): { hw: number[]; shadow: number[] } {
    return { hw: this.hwNodes.counts(), shadow: this.userView ? this.uaNodes.counts() : [] };
  }

  /** Bytes the PowerNV kernel would have allocated by now: every existing node of both trees. */
  kernelBytes(): bigint {
    const nodeBytes = this.levelSize * 8n;
    const sum = (c: number[]) => c.reduce((a, b) => a + BigInt(b), 0n);
    const { hw, shadow } = this.levelNodes();
    return (sum(hw) + sum(shadow)) * nodeBytes;
  }

  /** Raw big-endian bytes of the storage chunk holding `entry`, for dumps; null if that chunk is empty. */
  rawChunk(entry: bigint): Uint8Array | null {
    return this.tces.rawChunk(this.indexOf(entry));
  }

  /** Drops all storage. Any later use of the table fails with EINVAL. */
  release(): void {
    this.tces.clear();
    this.uas.clear();
    this.freed = true;
  }

  private describe(idx: number, tce: bigint, ua: bigint): LiveTce {
    const entry = this.offset + BigInt(idx);
    return { entry, iova: entry << this.shift, tce, ua, hidden: idx >= this.sizeIndex };
  }

  private alive(): void {
    if (this.freed) fail(EINVAL, 'table already freed');
  }

  private indexOf(entry: bigint): number {
    this.alive();
    const kernel = this.boundsMode === 'kernel';
    // Entries of 4K-or-larger pages fit a double exactly; so do offsets and limits (reach < 2^53).
    if (entry >= 0n && entry <= MAX_SAFE && this.offsetIndex >= 0) {
      const idx = Number(entry) - this.offsetIndex;
      if (idx >= 0 && idx < (kernel ? this.reachIndex : this.sizeIndex)) return idx;
    } else {
      const idx = entry - this.offset;
      if (idx >= 0n && idx < (kernel ? this.reach : this.size)) return Number(idx);
    }
    fail(EINVAL, `entry 0x${entry.toString(16)} outside the ${kernel ? 'table reach' : 'window'}`);
  }

  /** Validates a TCE as the exchange path expects it and applies the platform's permission rule. */
  private checkTce(tce: bigint): bigint {
    if (tce < 0n || tce > U64_MAX) fail(EINVAL, 'TCE outside 64 bits');
    if (tce === 0n) return 0n;
    if ((tce & TCE_PERM_MASK) === 0n) fail(EINVAL, 'a TCE with an address must carry R or W');
    if ((tce & this.subPageMask) !== 0n) fail(EINVAL, `TCE 0x${tce.toString(16)} has bits below the page shift set`);
    return (tce & ~TCE_PERM_MASK) | platformPerm(tce & TCE_PERM_MASK, this.flavour);
  }
}

/**
 * Which indirect level nodes exist. The top node always exists; a node at depth d (1 = just below the
 * top) holding index idx is identified by idx / levelSize^(levels - d).
 */
class LevelNodes {
  private readonly present: Set<number>[] = [];
  private readonly spans: number[] = [];

  constructor(private readonly levels: number, levelSize: number) {
    for (let d = 1; d < levels; d++) {
      this.present[d] = new Set();
      this.spans[d] = levelSize ** (levels - d);
    }
  }

  ensure(idx: number, faults?: FaultInjector): void {
    for (let d = 1; d < this.levels; d++) {
      const id = Math.floor(idx / this.spans[d]);
      if (this.present[d].has(id)) continue;
      faults?.check('alloc');
      this.present[d].add(id);
    }
  }

  counts(): number[] {
    const out = [1];
    for (let d = 1; d < this.levels; d++) out.push(this.present[d].size);
    return out;
  }
}
