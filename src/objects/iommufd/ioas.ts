// An IO address space: areas (one per successful MAP or COPY piece, the unit of UNMAP), reserved ranges
// (where attached domains cannot translate), the allowed list for IOVA allocation, and the domains
// (HWPTs) that mirror every area into their page tables. Areas live in a B+ tree keyed by IOVA
// (iova-tree.ts), so lookup, insert and removal stay O(log n) at any number of areas.
//
// With no domain nothing is pinned: a MAP only records the address, as the kernel does. The first domain
// pins every area and maps it; the last one to leave unpins.
import { EADDRINUSE, EBUSY, EDEADLK, EEXIST, EINVAL, ENOENT, ENOMEM, ENOSPC, EOPNOTSUPP, EOVERFLOW, EPERM, Errno } from '../../errno.ts';
import type { TceHost } from '../../tce/index.ts';
import { IOMMUFD } from '../../uapi/constants.ts';
import type { IommufdObject } from './id-table.ts';
import { IovaTree } from './iova-tree.ts';
import { PinCover } from './pin-cover.ts';
import { complement, overlaps, U64_MAX, union, type Range } from './ranges.ts';

export interface Area extends Range {
  /** The user address mapped at `start`. */
  userVa: bigint;
  /** Objects holding the area whole (a vIOMMU's hardware queue, viommu.ts): UNMAP is EBUSY while any does. */
  locks?: number;
  /** What backs the area: the process that issued the MAP, or the memfd of a MAP_FILE. */
  owner: string;
  /** The process charged for the pinned pages when that is not `owner` (file-backed areas). */
  chargeTo?: string;
  /** While pinned: whether the charge counts in locked_vm too (per-process accounting when pinned). */
  lockedVm?: boolean;
  readable: boolean;
  writeable: boolean;
  /** A dma-buf's memory (MAP_FILE of a dma-buf fd): nothing to pin or charge; revoked, no domain maps it. */
  dmabuf?: DmabufImport;
}

/** One mapping of a dma-buf in an IOAS, as the exporter sees its importer (dmabuf.ts). */
export interface DmabufImport {
  /** Revoked by the exporter: the domains no longer map it, and never will again. */
  readonly revoked: boolean;
  /** The area is gone from the IOAS. */
  detach(): void;
}

/** What an IOAS needs from a paging domain. */
export interface IoasDomain {
  /** Smallest page the domain maps: IOVAs and lengths must be multiples of it. */
  readonly minPageSize: bigint;
  /** IOVA ranges the domain translates; everything else is reserved in the IOAS. */
  apertures(): Range[];
  /** Program the translations of `area`; on failure nothing of it may remain. */
  map(area: Area): void;
  unmap(area: Area): void;
}

/**
 * A user of the IOAS that reaches its memory without DMA (iommufd_access): it pins pages through the
 * areas and reads or writes them, and must let go of a range when it is unmapped.
 */
export interface IoasAccess {
  /** IOVAs it pins at must be aligned to this (the page for an access that pins, else 1). */
  readonly iovaAlignment: bigint;
  /** [iova, iova + length) is being unmapped: drop every pin inside it before returning. */
  unmapNotify(iova: bigint, length: bigint): void;
}

/** Pages an access pinned, as accessPin made them: one piece per area, in page-aligned user addresses. */
export interface AccessPin {
  readonly ioas: Ioas;
  readonly pieces: { area: Area; start: bigint; end: bigint }[];
}

/** Unmap asks the accesses this many times to let go of an area before it gives up (EDEADLK). */
const UNMAP_NOTIFY_TRIES = 100;

const cmp = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);
const pow2Ceil = (v: bigint) => {
  let p = 1n;
  while (p < v) p <<= 1n;
  return p;
};
const lowestBit = (v: bigint) => v & -v;

const ADDRESS_END = U64_MAX + 1n;

/** Largest alignment auto-allocation asks for: the transparent huge page of a POWER9 radix host. */
const THP_SIZE = 2n << 20n;

export class Ioas implements IommufdObject {
  readonly kind = 'ioas';
  id = 0;
  users = 1;
  readonly areas = new IovaTree<Area>();
  private readonly reserved = new Map<object, Range[]>();
  allowed: Range[] = [];
  private huge = true;
  readonly pageSize: bigint;
  private readonly pageMask: bigint;
  private readonly pageFrame: bigint;
  /** Longest MAP: the kernel refuses lengths within a page of 2^64. */
  private readonly maxLength: bigint;
  // These change only when a domain comes or goes (or huge pages are switched), so they are kept.
  private alignment = 1n;
  private alignMask = 0n;
  private reservedUnion: Range[] = [];
  private readonly domainList: IoasDomain[] = [];
  private readonly accessList: IoasAccess[] = [];
  /** Pages of an area that accesses hold; while no domain pins the area, exactly these are pinned. */
  private readonly held = new WeakMap<Area, PinCover>();

  constructor(
    readonly host: TceHost,
    /** Whether pins are accounted per process (IOMMU_OPTION_RLIMIT_MODE of the owning iommufd). */
    private readonly accountsPerProcess: () => boolean = () => false,
  ) {
    this.pageSize = 1n << BigInt(host.hostPageShift);
    this.pageMask = this.pageSize - 1n;
    this.pageFrame = ~this.pageMask;
    this.maxLength = U64_MAX - this.pageSize;
  }

  /** The attached domains, in the order they came. */
  get domains(): readonly IoasDomain[] {
    return this.domainList;
  }

  /** IOMMU_OPTION HUGE_PAGES (on by default). */
  get hugePages(): boolean {
    return this.huge;
  }

  /** 1 with no domain; the largest of the domains' smallest pages; PAGE_SIZE with huge pages off. */
  get iovaAlignment(): bigint {
    return this.alignment;
  }

  /** Union of every domain's reserved ranges. */
  reservedRanges(): Range[] {
    return this.reservedUnion;
  }

  private domainsChanged(): void {
    this.reservedUnion = union([...this.reserved.values()].flat());
    let a = this.huge ? 1n : this.pageSize;
    for (const d of this.domains) if (d.minPageSize > a) a = d.minPageSize;
    for (const x of this.accessList) if (x.iovaAlignment > a) a = x.iovaAlignment;
    this.alignment = a;
    this.alignMask = a - 1n;
  }

  /** IOMMU_IOAS_IOVA_RANGES: the holes of the reserved set (the allowed list does not show here). */
  usableRanges(): Range[] {
    return complement(this.reservedRanges());
  }

  private areaAt(iova: bigint): Area | undefined {
    const a = this.areas.atOrBelow(iova);
    return a && a.last >= iova ? a : undefined;
  }

  private overlapsArea(r: Range): boolean {
    // Sequential maps land above every area: the highest one answers without a search.
    const top = this.areas.max();
    if (!top || r.start > top.last) return false;
    const a = this.areas.atOrBelow(r.last);
    return !!a && a.last >= r.start;
  }

  // ---- allocation ----

  /** First fit, lowest address, keeping the source's offset within a page (iommufd's IOVA allocator). */
  private allocate(length: bigint, srcAddr: bigint): bigint {
    let align = pow2Ceil(length);
    if (srcAddr !== 0n) align = align < lowestBit(srcAddr) ? align : lowestBit(srcAddr);
    if (align > THP_SIZE) align = THP_SIZE;
    if (align < this.iovaAlignment) throw new Errno(EINVAL, `alignment ${align} below the IOAS's ${this.iovaAlignment}`);
    const subPage = srcAddr & this.pageMask;
    const space = this.allowed.length ? this.allowed : [{ start: this.pageSize, last: U64_MAX - this.pageSize }];
    for (const s of space) {
      let found: bigint | undefined;
      this.holes(s.start, s.last, (lo, hi) => {
        // Round up (an overflow means "does not fit", never wrap-around), then OR the source's offset
        // inside its page back in, as the kernel's allocator does.
        if (lo + align - 1n > U64_MAX) return false;
        const iova = ((lo + align - 1n) & ~(align - 1n)) | subPage;
        if (iova >= hi || hi - iova < length - 1n) return false;
        found = iova;
        return true;
      });
      if (found !== undefined) return found;
    }
    throw new Errno(ENOSPC, `no ${length}-byte hole`);
  }

  /**
   * The free IOVA ranges (neither reserved nor mapped) inside [from, to], lowest first, clipped to it,
   * until `fit` takes one. Walks areas and reserved ranges in order from `from`, so the first fit costs
   * a search and the blockers below it, not a pass over every area.
   */
  private holes(from: bigint, to: bigint, fit: (lo: bigint, hi: bigint) => boolean): void {
    let lo = from;
    const below = this.areas.atOrBelow(lo);
    if (below && below.last >= lo) {
      if (below.last >= to) return;
      lo = below.last + 1n;
    }
    const areas = this.areas.valuesFrom(lo);
    let area = areas.next().value;
    const reserved = this.reservedUnion;
    let r = 0;
    while (lo <= to) {
      while (area && area.last < lo) area = areas.next().value;
      while (r < reserved.length && reserved[r].last < lo) r++;
      const res = r < reserved.length ? reserved[r] : undefined;
      // Whatever starts at or below lo blocks it: go past it.
      const blocker = area && area.start <= lo ? area : res && res.start <= lo ? res : undefined;
      if (blocker) {
        if (blocker.last >= to) return;
        lo = blocker.last + 1n;
        continue;
      }
      // lo is free up to the next blocker.
      let end = to;
      if (area && area.start - 1n < end) end = area.start - 1n;
      if (res && res.start - 1n < end) end = res.start - 1n;
      if (end < lo) return; // cannot happen with sorted, disjoint blockers; never loop on it
      if (fit(lo, end) || end >= to) return;
      lo = end + 1n;
    }
  }

  // ---- map, copy, unmap ----

  /** Checks shared by MAP, MAP_FILE and COPY's destination, after the caller's own checks. */
  place(length: bigint, srcAddr: bigint, fixedIova: bigint | undefined): bigint {
    const align = this.iovaAlignment;
    if (length === 0n || length > this.maxLength) throw new Errno(EINVAL, `length ${length}`);
    // The alignment is a power of two: masks instead of divisions.
    if (length & this.alignMask) throw new Errno(EINVAL, `length not a multiple of ${align}`);
    let iova: bigint;
    if (fixedIova !== undefined) {
      iova = fixedIova;
      if (iova & this.alignMask) throw new Errno(EINVAL, `iova not a multiple of ${align}`);
      const last = iova + length - 1n;
      if (last > U64_MAX) throw new Errno(EOVERFLOW, 'iova + length wraps');
      for (const x of this.reservedUnion) if (x.start <= last && iova <= x.last) throw new Errno(EINVAL, 'range is reserved');
      if (this.overlapsArea({ start: iova, last })) throw new Errno(EEXIST, 'range already mapped');
    } else iova = this.allocate(length, srcAddr);
    if (srcAddr & this.pageMask & this.alignMask) throw new Errno(EINVAL, 'sub-page offset not a multiple of the IOVA alignment');
    return iova;
  }

  /** Insert an area and mirror it into every domain; undo everything on failure. */
  insert(area: Area): void {
    this.host.faults.check('alloc', undefined, 'area allocation');
    const domains = this.domainList;
    if (domains.length) this.pin(area);
    let done = 0;
    try {
      for (; done < domains.length; done++) this.mapIn(domains[done], area);
    } catch (e) {
      for (let i = 0; i < done; i++) this.unmapIn(domains[i], area);
      if (domains.length) this.unpin(area);
      throw e;
    }
    this.areas.set(area.start, area);
  }

  private remove(area: Area): void {
    const domains = this.domainList;
    for (let i = 0; i < domains.length; i++) this.unmapIn(domains[i], area);
    if (domains.length) this.unpin(area);
    this.areas.delete(area.start);
    area.dmabuf?.detach();
  }

  private mapIn(d: IoasDomain, area: Area): void {
    if (!area.dmabuf?.revoked) d.map(area);
  }

  private unmapIn(d: IoasDomain, area: Area): void {
    if (!area.dmabuf?.revoked) d.unmap(area);
  }

  /** The exporter revokes a dma-buf area (before it marks it revoked): every domain stops translating it. */
  revokeArea(area: Area): void {
    if (this.areas.get(area.start) !== area) return;
    for (const d of this.domainList) this.unmapIn(d, area);
  }

  /** Page-aligned [start, end) of the user addresses behind an area (or a part of it). */
  private pageSpan(area: Area, first = area.start, last = area.last): { start: bigint; end: bigint } {
    const ua = area.userVa + (first - area.start);
    return { start: ua & this.pageFrame, end: (area.userVa + (last - area.start) + 1n + this.pageMask) & this.pageFrame };
  }

  /** Pin and charge whole pages [start, end) of an area's backing. */
  private pinPages(area: Area, start: bigint, end: bigint): void {
    const account = this.host.account(area.chargeTo ?? area.owner);
    // iommufd's point where the pinned-page count is updated (ENOMEM), then the pin itself (EFAULT).
    this.host.faults.check('iommufd', ENOMEM, 'pinned-page accounting');
    account.charge(end - start);
    try {
      this.host.memory.pin(area.owner, start, end - start);
    } catch (e) {
      account.uncharge(end - start);
      throw e;
    }
    // /proc/<pid>/status: pinned_vm always, locked_vm too under per-process accounting (as when first pinned).
    area.lockedVm ??= this.accountsPerProcess();
    this.host.vm.charge(area.chargeTo ?? area.owner, end - start, area.lockedVm);
  }

  private unpinPages(area: Area, start: bigint, end: bigint): void {
    this.host.memory.unpin(area.owner, start, end - start);
    this.host.account(area.chargeTo ?? area.owner).uncharge(end - start);
    this.host.vm.uncharge(area.chargeTo ?? area.owner, end - start, !!area.lockedVm);
  }

  /** The domains pin an area: every page of it that accesses do not already hold. */
  private pin(area: Area): void {
    if (area.dmabuf) return;
    const span = this.pageSpan(area);
    const gaps = this.held.get(area)?.gaps(span.start, span.end) ?? [span];
    const done: typeof gaps = [];
    try {
      for (const g of gaps) {
        this.pinPages(area, g.start, g.end);
        done.push(g);
      }
    } catch (e) {
      for (const g of done) this.unpinPages(area, g.start, g.end);
      throw e;
    }
  }

  private unpin(area: Area): void {
    if (area.dmabuf) return;
    const span = this.pageSpan(area);
    for (const g of this.held.get(area)?.gaps(span.start, span.end) ?? [span]) this.unpinPages(area, g.start, g.end);
  }

  /** Bytes of pinned pages an area is charged for: all of it under a domain, else what accesses hold. */
  chargedBytes(area: Area): bigint {
    if (area.dmabuf) return 0n;
    const span = this.pageSpan(area);
    if (this.domainList.length) return span.end - span.start;
    const cover = this.held.get(area);
    if (!cover) return 0n;
    return cover.gaps(span.start, span.end).reduce((n, g) => n - (g.end - g.start), span.end - span.start);
  }

  /** Bytes of host pages spanned by [ua, ua + len). */
  private pagesOf(ua: bigint, len: bigint): bigint {
    return ((ua + len + this.pageMask) & this.pageFrame) - (ua & this.pageFrame);
  }

  map(userVa: bigint, length: bigint, fixedIova: bigint | undefined, flags: number, owner: string): bigint {
    if (length > 0n && userVa + length > ADDRESS_END) throw new Errno(EOVERFLOW, 'user_va + length wraps');
    const iova = this.place(length, userVa, fixedIova);
    this.insert({
      start: iova, last: iova + length - 1n, userVa, owner,
      readable: !!(flags & IOMMUFD.IOMMU_IOAS_MAP_READABLE), writeable: !!(flags & IOMMUFD.IOMMU_IOAS_MAP_WRITEABLE),
    });
    return iova;
  }

  /** The source pieces of [iova, iova + length) for COPY: contiguous areas, any byte offset; holes are ENOENT. */
  slices(iova: bigint, length: bigint): Area[] {
    const last = iova + length - 1n;
    const out: Area[] = [];
    let at = iova;
    while (at <= last) {
      const a = this.areaAt(at);
      if (!a) throw new Errno(ENOENT, `0x${at.toString(16)} is not mapped`);
      const end = a.last < last ? a.last : last;
      out.push({ ...a, start: at, last: end, userVa: a.userVa + (at - a.start) });
      at = end + 1n;
      if (end === U64_MAX) break;
    }
    return out;
  }

  /**
   * Hold the areas under [iova, last] (the whole range must be mapped: ENOENT), so that UNMAP of any of
   * them is EBUSY until `release` runs.
   */
  lock(iova: bigint, last: bigint): { release(): void } {
    const held: Area[] = [];
    for (let at = iova; ; ) {
      const a = this.areaAt(at);
      if (!a) throw new Errno(ENOENT, `0x${at.toString(16)} is not mapped`);
      held.push(a);
      if (a.last >= last) break;
      at = a.last + 1n;
    }
    for (const a of held) a.locks = (a.locks ?? 0) + 1;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        for (const a of held) a.locks!--;
      },
    };
  }

  /**
   * IOMMU_IOAS_UNMAP: whole areas only; areas met before a partial one are already gone when it fails,
   * and `progress.bytes` says how much that was (VFIO compat reports it).
   */
  unmap(iova: bigint, length: bigint, progress: { bytes: bigint } = { bytes: 0n }): bigint {
    const last = iova + length - 1n;
    let removed = 0n;
    // Ascending order, each area found from the one before it (areas never overlap).
    let a = this.lowestIntersecting(iova, last);
    while (a) {
      if (a.locks) throw new Errno(EBUSY, `area 0x${a.start.toString(16)} is held by ${a.locks} object(s)`);
      if (a.start < iova || a.last > last) throw new Errno(ENOENT, `area 0x${a.start.toString(16)}-0x${a.last.toString(16)} is not inside the range`);
      this.evictAccesses(a);
      this.remove(a);
      removed += a.last - a.start + 1n;
      progress.bytes = removed;
      if (a.last >= last) break;
      const next = this.areas.above(a.last);
      a = next && next.start <= last ? next : undefined;
    }
    return removed;
  }

  /**
   * VFIO TYPE1 (v1) compat: split the area holding `at` so that `at` ends one piece, letting an unmap
   * take part of a mapping. Nothing happens where no area is or at an area's first or last byte. The
   * new start must keep the IOVA alignment, and an area that domains may have mapped with large pages
   * (huge pages on) is never split: EINVAL. Both pieces keep the original's pins and TCEs.
   */
  cut(at: bigint): void {
    const a = this.areaAt(at);
    if (!a || at === a.start || at === a.last) return;
    if (a.dmabuf) throw new Errno(EOPNOTSUPP, 'a dma-buf area is never split');
    const next = at + 1n;
    const nextVa = a.userVa + (next - a.start);
    if (next & this.alignMask || nextVa & this.alignMask) throw new Errno(EINVAL, `0x${next.toString(16)} is not aligned to ${this.alignment}`);
    if (this.domainList.length && this.huge) throw new Errno(EINVAL, 'the domains may map the area with large pages');
    if (this.held.has(a)) throw new Errno(EINVAL, 'an access holds pages of the area');
    this.areas.set(a.start, { ...a, last: at });
    this.areas.set(next, { ...a, start: next, userVa: nextVa });
  }

  private lowestIntersecting(iova: bigint, last: bigint): Area | undefined {
    const below = this.areaAt(iova);
    if (below) return below;
    const a = this.areas.above(iova);
    return a && a.start <= last ? a : undefined;
  }

  unmapAll(): bigint {
    let removed = 0n;
    for (const a of this.areas.valuesArray()) {
      if (a.locks) throw new Errno(EBUSY, `area 0x${a.start.toString(16)} is held by ${a.locks} object(s)`);
      this.evictAccesses(a);
      this.remove(a);
      removed += a.last - a.start + 1n;
    }
    return removed;
  }

  // ---- accesses ----

  /** Before an area goes, every access must drop its pins in it; one that does not is EDEADLK. */
  private evictAccesses(a: Area): void {
    for (let tries = 0; this.held.has(a); tries++) {
      if (tries === UNMAP_NOTIFY_TRIES) throw new Errno(EDEADLK, `an access keeps 0x${a.start.toString(16)} pinned`);
      for (const x of [...this.accessList]) x.unmapNotify(a.start, a.last - a.start + 1n);
    }
  }

  /** An access starts using the IOAS; EADDRINUSE when the areas break the alignment it needs. */
  addAccess(x: IoasAccess): void {
    if (x.iovaAlignment > this.alignment) {
      const m = x.iovaAlignment - 1n;
      for (const a of this.areas.valuesArray()) {
        if (a.start & m || (a.last + 1n) & m || a.userVa & this.pageMask & m) throw new Errno(EADDRINUSE, 'an area is not aligned for the access');
      }
    }
    this.accessList.push(x);
    this.domainsChanged();
  }

  removeAccess(x: IoasAccess): void {
    const at = this.accessList.indexOf(x);
    if (at < 0) return;
    this.accessList.splice(at, 1);
    this.domainsChanged();
  }

  /**
   * iommufd_access_pin_pages: hold the pages under [iova, iova + length), which must be mapped by
   * contiguous areas (ENOENT), start on a page and cross areas only at page ends (EINVAL), and allow
   * the access (EPERM). The pages are pinned unless a domain or another access holds them already.
   */
  accessPin(iova: bigint, length: bigint, write: boolean): AccessPin {
    const pin: AccessPin = { ioas: this, pieces: [] };
    try {
      this.eachPiece(iova, length, (a, first, last, isLast) => {
        if ((a.userVa + (first - a.start)) & this.pageMask) throw new Errno(EINVAL, `0x${first.toString(16)} is not at the start of a page`);
        if (!isLast && ((a.userVa + (a.last - a.start)) & this.pageMask) !== this.pageMask) throw new Errno(EINVAL, 'the area does not end on a page');
        if (write ? !a.writeable : !a.readable) throw new Errno(EPERM, `area 0x${a.start.toString(16)} does not allow it`);
        if (a.dmabuf) throw new Errno(EINVAL, 'a dma-buf has no pages to pin');
        const span = this.pageSpan(a, first, last);
        this.hold(a, span.start, span.end);
        pin.pieces.push({ area: a, ...span });
      });
    } catch (e) {
      this.accessUnpin(pin);
      throw e;
    }
    return pin;
  }

  accessUnpin(pin: AccessPin): void {
    for (const p of pin.pieces.splice(0)) this.release(p.area, p.start, p.end);
  }

  /**
   * The pieces of [iova, iova + length) an access reads or writes, area by area, with the user address
   * (or file offset) each starts at: EPERM where an area does not allow it, ENOENT at the first hole;
   * pieces before the failing one have been handed to `fn` already, as the kernel copies as it goes.
   */
  accessRw(iova: bigint, length: bigint, write: boolean, fn: (area: Area, ua: bigint, offset: bigint, bytes: bigint) => void): void {
    this.eachPiece(iova, length, (a, first, last) => {
      if (write ? !a.writeable : !a.readable) throw new Errno(EPERM, `area 0x${a.start.toString(16)} does not allow it`);
      if (a.dmabuf) throw new Errno(EINVAL, 'a dma-buf is not reachable by the CPU here');
      fn(a, a.userVa + (first - a.start), first - iova, last - first + 1n);
    });
  }

  /** Walk [iova, iova + length) over contiguous areas; a hole anywhere is ENOENT once it is reached. */
  private eachPiece(iova: bigint, length: bigint, fn: (a: Area, first: bigint, last: bigint, isLast: boolean) => void): void {
    if (length === 0n) throw new Errno(EINVAL, 'length 0');
    const last = iova + length - 1n;
    if (last > U64_MAX) throw new Errno(EOVERFLOW, 'iova + length wraps');
    for (let at = iova; ; ) {
      const a = this.areaAt(at);
      if (!a) throw new Errno(ENOENT, `0x${at.toString(16)} is not mapped`);
      const end = a.last < last ? a.last : last;
      fn(a, at, end, end === last);
      if (end === last) return;
      at = end + 1n;
    }
  }

  private hold(a: Area, start: bigint, end: bigint): void {
    let cover = this.held.get(a);
    if (!cover) this.held.set(a, (cover = new PinCover()));
    const fresh = cover.add(start, end);
    if (this.domainList.length) return;
    const done: typeof fresh = [];
    try {
      for (const g of fresh) {
        this.pinPages(a, g.start, g.end);
        done.push(g);
      }
    } catch (e) {
      for (const g of done) this.unpinPages(a, g.start, g.end);
      cover.remove(start, end);
      if (cover.empty) this.held.delete(a);
      throw e;
    }
  }

  private release(a: Area, start: bigint, end: bigint): void {
    const cover = this.held.get(a);
    if (!cover) return;
    const freed = cover.remove(start, end);
    if (cover.empty) this.held.delete(a);
    if (!this.domainList.length) for (const g of freed) this.unpinPages(a, g.start, g.end);
  }

  // ---- allowed and reserved ranges, domains ----

  allow(ranges: Range[]): void {
    for (const r of ranges) if (r.start >= r.last) throw new Errno(EINVAL, 'each allowed range needs start < last');
    const sorted = [...ranges].sort((a, b) => cmp(a.start, b.start));
    for (let i = 1; i < sorted.length; i++) if (overlaps(sorted[i - 1], sorted[i])) throw new Errno(EINVAL, 'allowed ranges overlap');
    const reserved = this.reservedRanges();
    if (sorted.some((r) => reserved.some((x) => overlaps(x, r)))) throw new Errno(EADDRINUSE, 'an allowed range is reserved');
    this.allowed = sorted;
  }

  /**
   * Reserve a range for `owner` beside the domains' (the selftest's ADD_RESERVED); EADDRINUSE when an
   * area or an allowed range is in it.
   */
  reserve(owner: object, r: Range): void {
    if (this.overlapsArea(r) || this.allowed.some((x) => overlaps(x, r))) throw new Errno(EADDRINUSE, 'the range is mapped or allowed');
    this.reserved.set(owner, [...(this.reserved.get(owner) ?? []), r]);
    this.domainsChanged();
  }

  /**
   * Attach a domain: its non-aperture space becomes reserved (EADDRINUSE if that hits an area or an
   * allowed range; EADDRINUSE if existing areas break the new alignment), then every area is mapped.
   */
  addDomain(d: IoasDomain): void {
    const reserved = complement(d.apertures());
    for (const r of reserved) {
      if (this.overlapsArea(r)) throw new Errno(EADDRINUSE, `an area lies outside the domain's apertures`);
      if (this.allowed.some((x) => overlaps(x, r))) throw new Errno(EADDRINUSE, 'an allowed range lies outside the domain');
    }
    const align = d.minPageSize > this.iovaAlignment ? d.minPageSize : this.iovaAlignment;
    for (const a of this.areas.valuesArray()) {
      if (a.start % align || (a.last + 1n) % align || (a.userVa & this.pageMask) % align) throw new Errno(EADDRINUSE, 'an area is not aligned for the domain');
    }
    const first = this.domainList.length === 0;
    const areas = this.areas.valuesArray();
    const mapped: Area[] = [];
    try {
      for (const a of areas) {
        if (first) this.pin(a);
        try {
          this.mapIn(d, a);
        } catch (e) {
          if (first) this.unpin(a);
          throw e;
        }
        mapped.push(a);
      }
    } catch (e) {
      for (const a of mapped) {
        this.unmapIn(d, a);
        if (first) this.unpin(a);
      }
      throw e;
    }
    this.domainList.push(d);
    this.reserved.set(d, reserved);
    this.domainsChanged();
  }

  removeDomain(d: IoasDomain): void {
    const at = this.domainList.indexOf(d);
    if (at < 0) return;
    this.domainList.splice(at, 1);
    this.reserved.delete(d);
    this.domainsChanged();
    for (const a of this.areas.valuesArray()) {
      this.unmapIn(d, a);
      if (this.domainList.length === 0) this.unpin(a);
    }
  }

  /** IOMMU_OPTION HUGE_PAGES. */
  setHugePages(on: boolean): void {
    if (on === this.huge) return;
    if (!on) {
      if (this.domainList.length && this.areas.size) throw new Errno(EINVAL, 'domains and areas present');
      const m = this.pageMask;
      if (this.areas.valuesArray().some((a) => a.start & m || (a.last + 1n) & m || a.userVa & m)) throw new Errno(EADDRINUSE, 'an area is not page aligned');
    }
    this.huge = on;
    this.domainsChanged();
  }

  destroy(): void {
    this.unmapAll();
  }
}
