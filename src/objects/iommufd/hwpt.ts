// A paging domain (IOMMU_HWPT_PAGING) over TCE tables: what the PPC64 iommufd RFC set out to do and got
// wrong (spapr-tce.md §5.3), done as the reference says it should be:
//
// - up to two windows, each a TCE table, reported as a *list* of apertures (slot 0 at the 32-bit window's
//   start, slot 1 at the 64-bit start);
// - every page checked against its window (inclusive last byte) and the window's page size;
// - read-only maps get R TCEs and write-only maps W TCEs (PowerNV adds R to W, as its hardware path does);
// - mapped counts are exact and errors are returned, with what the call wrote undone;
// - the tables are programmed into the PE of every attached group, so several devices and groups share
//   one domain.
import { EINVAL, Errno } from '../../errno.ts';
import { DmaDirection, SLOTS, type LockedMemoryAccount, type Pe, type Slot, type TceHost, type TceTable } from '../../tce/index.ts';
import type { PagingHwpt } from './backend.ts';
import type { Area, Ioas } from './ioas.ts';
import type { Range } from './ranges.ts';

export interface WindowSpec {
  pageShift: number;
  windowSize: bigint;
  levels: number;
}

export class HwptPaging implements PagingHwpt {
  readonly kind = 'hwpt_paging';
  readonly backend = 'tce';
  id = 0;
  users = 1;
  readonly windows: [TceTable | null, TceTable | null] = [null, null];
  /** PEs the windows are programmed into, with the number of attached devices behind each. */
  private readonly pes = new Map<Pe, number>();
  private apertureList?: Range[];

  private constructor(
    readonly host: TceHost,
    readonly ioas: Ioas,
    /** Created by ATTACH to an IOAS; destroyed with its last device. */
    readonly auto: boolean,
    private readonly account: LockedMemoryAccount,
    /** The PE whose platform made the tables (they are freed through it). */
    private readonly creator: Pe,
  ) {}

  /**
   * Make a domain on `ioas` with the given windows, created through `pe`'s platform (which must be owned
   * by user space), and add it to the IOAS: its complement becomes reserved and every area is mapped.
   */
  static create(host: TceHost, ioas: Ioas, pe: Pe, specs: (WindowSpec | null)[], auto: boolean, account: LockedMemoryAccount): HwptPaging {
    if (!specs.some(Boolean)) throw new Errno(EINVAL, 'a domain needs at least one window');
    const d = new HwptPaging(host, ioas, auto, account, pe);
    try {
      SLOTS.forEach((slot) => {
        const s = specs[slot];
        if (s) d.windows[slot] = pe.createTable(slot, s.pageShift, s.windowSize, s.levels, account, { refundOnFailure: true });
      });
      // A platform that opens windows at once (pSeries firmware) has programmed them into `pe` already.
      if (SLOTS.some((slot) => d.windows[slot] && pe.tables[slot] === d.windows[slot])) d.pes.set(pe, 0);
      ioas.addDomain(d);
    } catch (e) {
      d.freeWindows();
      throw e;
    }
    ioas.users++;
    return d;
  }

  /** The default window a device gets when attached to an IOAS: the 32-bit window, 4K pages, one level. */
  static defaultWindows(pe: Pe): (WindowSpec | null)[] {
    return [{ pageShift: 12, windowSize: BigInt(pe.tce32Size), levels: 1 }, null];
  }

  get minPageSize(): bigint {
    let min = 0n;
    for (const t of this.windows) if (t && (min === 0n || t.pageSize < min)) min = t.pageSize;
    return min;
  }

  /** The page sizes the domain maps with, for VFIO compat's iova_pgsizes. */
  get pgsizeBitmap(): bigint {
    return this.windows.reduce((m, t) => (t ? m | t.pageSize : m), 0n);
  }

  apertures(): Range[] {
    // Windows are set when the domain is made and go when it is destroyed; every map asks for these.
    this.apertureList ??= this.windows.filter((t): t is TceTable => !!t).map((t) => ({ start: t.startAddr, last: t.endAddr - 1n }));
    return this.apertureList;
  }

  private direction(area: Area): DmaDirection {
    if (area.readable && area.writeable) return DmaDirection.BIDIRECTIONAL;
    return area.writeable ? DmaDirection.FROM_DEVICE : DmaDirection.TO_DEVICE;
  }

  map(area: Area): void {
    const dir = this.direction(area);
    // Most areas lie inside one window.
    for (const t of this.windows) if (t && area.start >= t.startAddr && area.last < t.endAddr) return this.fill(t, area, area.start, area.last, dir);
    // Otherwise every byte must still be inside some window; the IOAS's reserved ranges normally see to it.
    if (!this.covers(area)) throw new Errno(EINVAL, 'area outside the domain apertures');
    const done: [TceTable, bigint, bigint][] = [];
    try {
      for (const t of this.windows) {
        const piece = t && this.inWindow(t, area);
        if (!piece) continue;
        this.fill(t, area, piece[0], piece[1], dir);
        done.push([t, ...piece]);
      }
    } catch (e) {
      for (const [t, start, last] of done) this.clearPiece(t, start, last);
      throw e;
    }
  }

  /** The part of `area` inside window `t`, if any. */
  private inWindow(t: TceTable, area: Area): [bigint, bigint] | undefined {
    const start = area.start > t.startAddr ? area.start : t.startAddr;
    const last = area.last < t.endAddr - 1n ? area.last : t.endAddr - 1n;
    return start <= last ? [start, last] : undefined;
  }

  /** Write the TCEs of [start, last], a part of `area` inside window `t`; all of them or, failing, none. */
  private fill(t: TceTable, area: Area, start: bigint, last: bigint, dir: DmaDirection): void {
    if ((start | (last + 1n)) & t.pageMask) throw new Errno(EINVAL, `0x${start.toString(16)}-0x${last.toString(16)} is not aligned to the window's ${t.pageSize}-byte pages`);
    const memory = this.host.memory;
    const first = t.entryOf(start);
    const count = Number((last - start) >> t.shift) + 1;
    let ua = start === area.start ? area.userVa : area.userVa + (start - area.start);
    let entry = first;
    let done = 0;
    try {
      // A pin run is physically contiguous, so it is looked up once for all the pages it holds.
      let run = memory.runAt(area.owner, ua);
      for (;;) {
        if (ua >= run.end) run = memory.runAt(area.owner, ua);
        t.mapPage(entry, run.hpa + (ua - run.start), dir, ua);
        if (++done === count) break;
        entry += 1n;
        ua += t.pageSize;
      }
    } catch (e) {
      if (done) t.clear(first, done);
      throw e;
    }
  }

  private clearPiece(t: TceTable, start: bigint, last: bigint): void {
    t.clear(t.entryOf(start), Number((last - start) >> t.shift) + 1);
  }

  private covers(area: Area): boolean {
    let covered = 0n;
    for (const a of this.apertures()) {
      const s = area.start > a.start ? area.start : a.start;
      const l = area.last < a.last ? area.last : a.last;
      if (s <= l) covered += l - s + 1n;
    }
    return covered === area.last - area.start + 1n;
  }

  unmap(area: Area): void {
    for (const t of this.windows) {
      if (!t) continue;
      if (area.start >= t.startAddr && area.last < t.endAddr) return this.clearPiece(t, area.start, area.last);
      const piece = this.inWindow(t, area);
      if (piece) this.clearPiece(t, ...piece);
    }
  }

  /** Program the windows into a device's PE (the first device behind it) or count one more device. */
  attachPe(pe: Pe): void {
    const n = this.pes.get(pe);
    if (n !== undefined) {
      this.pes.set(pe, n + 1);
      return;
    }
    const set: Slot[] = [];
    try {
      for (const slot of SLOTS) {
        const t = this.windows[slot];
        if (t && pe.tables[slot] !== t) {
          pe.setWindow(slot, t);
          set.push(slot);
        }
      }
    } catch (e) {
      for (const slot of set) pe.unsetWindow(slot);
      throw e;
    }
    this.pes.set(pe, 1);
  }

  /** One device fewer behind `pe`; with none left the PE goes back to blocked DMA. */
  detachPe(pe: Pe): void {
    const n = this.pes.get(pe);
    if (n === undefined) return;
    if (n > 1) {
      this.pes.set(pe, n - 1);
      return;
    }
    this.pes.delete(pe);
    pe.block();
  }

  get attachedDevices(): number {
    let n = 0;
    for (const c of this.pes.values()) n += c;
    return n;
  }

  private freeWindows(): void {
    for (const slot of SLOTS) {
      const t = this.windows[slot];
      if (!t) continue;
      for (const pe of this.pes.keys()) if (pe.tables[slot] === t) pe.unsetWindow(slot);
      if (this.creator.tables[slot] === t) this.creator.unsetWindow(slot);
      this.creator.freeTable(t, this.account);
      this.windows[slot] = null;
    }
    this.apertureList = undefined;
  }

  destroy(): void {
    this.ioas.removeDomain(this);
    this.ioas.users--;
    for (const pe of this.pes.keys()) pe.block();
    this.pes.clear();
    this.freeWindows();
  }
}
