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
import type { IommufdObject } from './id-table.ts';
import type { Area, Ioas, IoasDomain } from './ioas.ts';
import type { Range } from './ranges.ts';

export interface WindowSpec {
  pageShift: number;
  windowSize: bigint;
  levels: number;
}

export class HwptPaging implements IommufdObject, IoasDomain {
  readonly kind = 'hwpt_paging';
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
    // Every byte must be inside some window; the IOAS's reserved ranges normally guarantee it.
    if (!this.covers(area)) throw new Errno(EINVAL, 'area outside the domain apertures');
    const dir = this.direction(area);
    const memory = this.host.memory;
    // What each window got, so a failure part way can clear it again.
    const done: [TceTable, bigint, number][] = [];
    try {
      for (const t of this.windows) {
        if (!t) continue;
        const start = area.start > t.startAddr ? area.start : t.startAddr;
        const last = area.last < t.endAddr - 1n ? area.last : t.endAddr - 1n;
        if (start > last) continue;
        if ((start | (last + 1n)) & t.pageMask) throw new Errno(EINVAL, `0x${start.toString(16)}-0x${last.toString(16)} is not aligned to the window's ${t.pageSize}-byte pages`);
        const first = t.entryOf(start);
        const count = Number((last - start + 1n) >> t.shift);
        const entry: [TceTable, bigint, number] = [t, first, 0];
        done.push(entry);
        let ua = area.userVa + (start - area.start);
        let run = memory.runAt(area.owner, ua);
        for (let k = 0; k < count; k++, ua += t.pageSize) {
          if (ua >= run.end) run = memory.runAt(area.owner, ua);
          t.mapPage(first + BigInt(k), run.hpa + (ua - run.start), dir, ua);
          entry[2] = k + 1;
        }
      }
    } catch (e) {
      for (const [t, entry, n] of done) t.clear(entry, n);
      throw e;
    }
  }
  private covers(area: Area): boolean {
    for (const t of this.windows) if (t && area.start >= t.startAddr && area.last < t.endAddr) return true;
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
      const start = area.start > t.startAddr ? area.start : t.startAddr;
      const last = area.last < t.endAddr - 1n ? area.last : t.endAddr - 1n;
      if (start > last) continue;
      t.clear(t.entryOf(start), Number((last - start) >> t.shift) + 1);
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
