// Host memory as the TCE backend sees it: a locked-memory budget per owner (RLIMIT_MEMLOCK and
// locked_vm) and synthetic host-physical frames behind pinned user pages.

import { EFAULT, EINVAL, ENOMEM, fail } from '../errno.ts';
import type { FaultInjector } from './faults.ts';
import { PinRuns, type PinRun } from './pin-runs.ts';
import { U64_MAX } from './tce-entry.ts';

const ADDRESS_END = U64_MAX + 1n;

interface Span {
  start: bigint;
  end: bigint;
}

/** RLIM_INFINITY. */
export const MEMLOCK_UNLIMITED = U64_MAX;

/**
 * locked_vm of one process against its RLIMIT_MEMLOCK, counted in host pages like account_locked_vm:
 * a charge of `bytes` is bytes >> hostPageShift pages, so sub-page remainders are never charged.
 */
export class LockedMemoryAccount {
  lockedPages = 0n;
  private readonly shift: bigint;
  /** Times an uncharge asked for more than was charged; the kernel WARNs there. Leak checks want 0. */
  underflows = 0;

  constructor(
    readonly owner: string,
    /** RLIMIT_MEMLOCK in bytes. */
    public limit: bigint,
    readonly hostPageShift: number,
    /** CAP_IPC_LOCK: charges always succeed. */
    public capIpcLock = false,
  ) {
    this.shift = BigInt(hostPageShift);
  }

  /** Locked bytes, whole host pages. */
  get locked(): bigint {
    return this.lockedPages << this.shift;
  }

  /** Charges bytes >> hostPageShift pages, or throws ENOMEM leaving the count unchanged. */
  charge(bytes: bigint): bigint {
    const pages = this.pagesOf(bytes);
    if (!this.capIpcLock && this.lockedPages + pages > this.limit >> this.shift) {
      fail(ENOMEM, `${this.owner}: locking ${pages} more pages exceeds RLIMIT_MEMLOCK`);
    }
    this.lockedPages += pages;
    return pages;
  }

  uncharge(bytes: bigint): bigint {
    const pages = this.pagesOf(bytes);
    if (pages > this.lockedPages) {
      this.underflows++;
      this.lockedPages = 0n;
    } else {
      this.lockedPages -= pages;
    }
    return pages;
  }

  private pagesOf(bytes: bigint): bigint {
    if (bytes < 0n) fail(EINVAL, 'negative byte count');
    return bytes >> this.shift;
  }
}

/** Frames start here. Each owner with pins has its own slot of OWNER_SPAN bytes, so no two share a frame. */
export const HPA_BASE = 1n << 36n;
/** A slot covers a whole 48-bit user address space: the frame of a page is the slot's base plus its address. */
export const OWNER_SPAN = 1n << 48n;
/** The allocator gives up here; far beyond any real machine. */
export const HPA_LIMIT = 1n << 56n;
/**
 * Every frame keeps hpa ≡ ua modulo this, so memory that is naturally aligned in user space (a 16 MiB
 * huge page, a 1 GiB region) is equally aligned physically and can back large IOMMU pages.
 */
export const HPA_COLOUR = 1n << 30n;

/** Synthetic host-physical memory behind pinned user pages, one run of frames per pinned extent. */
export class HostMemory {
  private readonly owners = new Map<string, PinRuns>();
  /** Slot of each owner that has pins; a slot is reused once its owner has nothing pinned. */
  private readonly slots = new Map<string, bigint>();
  private readonly freeSlots: bigint[] = [];
  private nextSlot = 0n;
  readonly pageSize: bigint;
  private readonly pageMask: bigint;
  /** ~pageMask: clears the offset inside a page. */
  private readonly pageFrame: bigint;
  /** pin and unpin never nest, so they share one span instead of allocating one per call. */
  private readonly span: Span = { start: 0n, end: 0n };
  /** Told when an owner's last pin goes (device DMA closes its handle on that process's memory). */
  onOwnerIdle?: (owner: string) => void;
  /**
   * Whether [ua, ua + length) of `owner` is memory at all; a pin of what is not fails EFAULT, as
   * get_user_pages does. Unset, every address counts as mapped.
   */
  isMapped?: (owner: string, ua: bigint, length: bigint) => boolean;

  constructor(readonly hostPageShift = 16, private readonly faults?: FaultInjector) {
    if (hostPageShift !== 12 && hostPageShift !== 16) fail(EINVAL, `host page shift ${hostPageShift} unsupported`);
    this.pageSize = 1n << BigInt(hostPageShift);
    this.pageMask = this.pageSize - 1n;
    this.pageFrame = ~this.pageMask;
  }

  /**
   * Pins every host page touched by [ua, ua + length) once more and returns the host-physical address
   * of `ua` itself (sub-page offset included). Frames stay the same for as long as a page stays pinned.
   * A zero length pins nothing and returns 0n.
   */
  pin(owner: string, ua: bigint, length: bigint): bigint {
    this.pageSpan(ua, length, this.span);
    const { start, end } = this.span;
    this.faults?.check('pin');
    if (start === end) return 0n;
    // Everything that can fail is checked before the runs change, so a failed pin leaves nothing to undo.
    if (end > OWNER_SPAN) fail(ENOMEM, `0x${(end - 1n).toString(16)} is beyond the emulated host's 48-bit reach`);
    if (this.isMapped && !this.isMapped(owner, ua, length)) fail(EFAULT, `${owner}: 0x${ua.toString(16)}+0x${length.toString(16)} is not mapped`);
    const base = this.slotBase(owner);
    let runs = this.owners.get(owner);
    if (!runs) this.owners.set(owner, (runs = new PinRuns()));
    runs.pin(start, end, base);
    return base + ua;
  }

  /** Drops one pin from every host page touched by the range; EINVAL (and no change) if any is not pinned. */
  unpin(owner: string, ua: bigint, length: bigint): void {
    this.pageSpan(ua, length, this.span);
    const { start, end } = this.span;
    if (start === end) return;
    const runs = this.owners.get(owner);
    if (!runs) fail(EINVAL, `${owner} has nothing pinned`);
    runs.unpin(start, end);
    if (runs.runs.length === 0) this.forget(owner);
  }

  /** Drops every pin an owner holds (process exit); returns the bytes that were pinned. */
  unpinAll(owner: string): bigint {
    const bytes = this.owners.get(owner)?.bytes ?? 0n;
    this.forget(owner);
    return bytes;
  }

  /** Host-physical address behind a pinned user address; EFAULT when the page is not pinned. */
  hpaOf(owner: string, ua: bigint): bigint {
    const run = this.runAt(owner, ua);
    return run.hpa + (ua - run.start);
  }

  /** The run of pinned pages holding `ua`: physically contiguous, one pin count; EFAULT when not pinned. */
  runAt(owner: string, ua: bigint): PinRun {
    const run = this.owners.get(owner)?.find(ua);
    if (!run) fail(EFAULT, `${owner}: 0x${ua.toString(16)} is not pinned`);
    return run;
  }

  pinCount(owner: string, ua: bigint): number {
    return this.owners.get(owner)?.find(ua)?.count ?? 0;
  }

  /**
   * The pin count of the page at `ua` and where that count stops holding: the end of its run, or for an
   * unpinned page the start of the next run (no limit past the last one, as U64 + 1).
   */
  pinSpan(owner: string, ua: bigint): { count: number; end: bigint } {
    const runs = this.owners.get(owner)?.runs ?? [];
    let lo = 0;
    let hi = runs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (runs[mid].end <= ua) lo = mid + 1;
      else hi = mid;
    }
    const r = runs[lo];
    if (!r) return { count: 0, end: ADDRESS_END };
    return r.start <= ua ? { count: r.count, end: r.end } : { count: 0, end: r.start };
  }

  /** Distinct pinned bytes (whole host pages), for one owner or for everyone. */
  pinnedBytes(owner?: string): bigint {
    if (owner !== undefined) return this.owners.get(owner)?.bytes ?? 0n;
    let sum = 0n;
    for (const runs of this.owners.values()) sum += runs.bytes;
    return sum;
  }

  /** Physically contiguous extents currently pinned. */
  extentCount(owner?: string): number {
    if (owner !== undefined) return this.owners.get(owner)?.runs.length ?? 0;
    let n = 0;
    for (const runs of this.owners.values()) n += runs.runs.length;
    return n;
  }

  /**
   * The inverse of pin: which owner's pinned page a host-physical address falls in, and the user address
   * there. EFAULT when the frame belongs to no one or its page is not pinned (nothing backs it).
   */
  frameOwner(hpa: bigint): { owner: string; ua: bigint } {
    const rel = hpa - HPA_BASE;
    if (rel >= 0n) {
      const slot = rel / OWNER_SPAN;
      for (const [owner, s] of this.slots) {
        if (s !== slot) continue;
        const ua = rel - slot * OWNER_SPAN;
        if (this.owners.get(owner)?.find(ua)) return { owner, ua };
        break;
      }
    }
    fail(EFAULT, `no pinned memory behind host address 0x${hpa.toString(16)}`);
  }

  ownerNames(): string[] {
    return [...this.owners.keys()].sort();
  }

  /** The host pages [start, end) that [ua, ua + length) touches, into `span`; empty for a zero length. */
  private pageSpan(ua: bigint, length: bigint, span: Span): void {
    const end = ua + length;
    if (ua < 0n || length < 0n || end > ADDRESS_END) fail(EFAULT, 'range outside the address space');
    if (length === 0n) {
      span.start = span.end = ua;
      return;
    }
    span.start = ua & this.pageFrame;
    span.end = (end + this.pageMask) & this.pageFrame;
  }

  /**
   * Where `owner`'s frames start: the frame of user address ua is this plus ua. Stable for as long as the
   * owner has anything pinned, never another live owner's, and hpa ≡ ua modulo HPA_COLOUR.
   */
  private slotBase(owner: string): bigint {
    let slot = this.slots.get(owner);
    if (slot === undefined) {
      slot = this.freeSlots.pop() ?? this.nextSlot++;
      if (HPA_BASE + (slot + 1n) * OWNER_SPAN > HPA_LIMIT) {
        this.nextSlot--;
        fail(ENOMEM, 'synthetic physical memory exhausted: too many processes with pinned memory');
      }
      this.slots.set(owner, slot);
    }
    return HPA_BASE + slot * OWNER_SPAN;
  }

  /** The owner has nothing pinned any more: its slot goes back for reuse. */
  private forget(owner: string): void {
    this.owners.delete(owner);
    const slot = this.slots.get(owner);
    if (slot === undefined) return;
    this.slots.delete(owner);
    this.freeSlots.push(slot);
    this.onOwnerIdle?.(owner);
  }
}
