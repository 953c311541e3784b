// A paging domain of the mock IOMMU: its own page table (IOVA -> the client's address, page by page),
// the aperture and page sizes of the table type it was made with, and hooks the dirty-tracking and
// nesting work plugs into (dirtyCapable, flags). It answers MD_CHECK_MAP from the table it keeps.
import { EFAULT, EINVAL, Errno } from '../errno.ts';
import type { PagingHwpt } from '../objects/iommufd/backend.ts';
import type { FaultQueue } from '../objects/iommufd/eventq.ts';
import type { Area, Ioas } from '../objects/iommufd/ioas.ts';
import type { Range } from '../objects/iommufd/ranges.ts';
import { SELFTEST } from '../uapi/selftest.ts';
import { MOCK_APERTURE_LAST, MOCK_APERTURE_START, MOCK_HUGE_PAGE_SIZE, MOCK_PAGE_SIZE, MOCK_VA_BITS, type MockTableType } from './geometry.ts';
import { MockPageTable } from './page-table.ts';

export interface MockDomainOptions {
  /** MOCK_IOMMUPT_DEFAULT or MOCK_IOMMUPT_HUGE (iommu_hwpt_selftest.pagetable_type). */
  tableType: MockTableType;
  /** IOMMU_HWPT_ALLOC flags it was made with (DIRTY_TRACKING, NEST_PARENT, PASID). */
  flags: number;
  /** The host's page size: a huge-page table also maps it, so iommufd accepts it. */
  hostPageSize: bigint;
}

export class MockHwpt implements PagingHwpt {
  readonly kind = 'hwpt_paging';
  readonly backend = 'mock';
  id = 0;
  users = 1;
  readonly table: MockPageTable;
  /** Bitmap of the page sizes the domain maps with (domain->pgsize_bitmap). */
  readonly pgsizeBitmap: bigint;
  private readonly aperture: Range[];
  /** Devices attached. */
  devices = 0;
  fault?: FaultQueue;
  /** Dirty tracking switched on (IOMMU_HWPT_SET_DIRTY_TRACKING); only a dirty-capable domain may. */
  dirtyTracking = false;

  private constructor(readonly ioas: Ioas, readonly auto: boolean, readonly options: MockDomainOptions) {
    if (options.tableType === SELFTEST.MOCK_IOMMUPT_HUGE) {
      this.pgsizeBitmap = MOCK_HUGE_PAGE_SIZE | options.hostPageSize;
      this.aperture = [{ start: 0n, last: (1n << MOCK_VA_BITS) - 1n }];
    } else {
      // Every power of two from the mock page up: the table holds large leaves at each level.
      this.pgsizeBitmap = BigInt.asUintN(64, ~(MOCK_PAGE_SIZE - 1n)) & ((1n << MOCK_VA_BITS) - 1n);
      this.aperture = [{ start: MOCK_APERTURE_START, last: MOCK_APERTURE_LAST }];
    }
    this.table = new MockPageTable(this.minPageSize);
  }

  /** Make the domain and add it to `ioas` (its areas mapped, its complement reserved). */
  static create(ioas: Ioas, auto: boolean, options: MockDomainOptions): MockHwpt {
    const d = new MockHwpt(ioas, auto, options);
    ioas.addDomain(d);
    ioas.users++;
    return d;
  }

  get pasidCompat(): boolean {
    return !!(this.options.flags & 8 /* IOMMU_HWPT_ALLOC_PASID */);
  }

  /** Made with IOMMU_HWPT_ALLOC_DIRTY_TRACKING: it has dirty ops. */
  get dirtyCapable(): boolean {
    return !!(this.options.flags & 2 /* IOMMU_HWPT_ALLOC_DIRTY_TRACKING */);
  }

  get minPageSize(): bigint {
    return this.pgsizeBitmap & -this.pgsizeBitmap;
  }

  apertures(): Range[] {
    return this.aperture;
  }

  map(area: Area): void {
    this.table.map({ start: area.start, last: area.last, owner: area.owner, addr: area.userVa, readable: area.readable, writeable: area.writeable });
  }

  unmap(area: Area): void {
    this.table.unmap(area.start, area.last);
  }

  /**
   * MD_CHECK_MAP: every page of [iova, iova + length) translates to the page that backs the same offset
   * from `uptr` in the caller's memory (`backing` names it as the IOAS's areas do, with where that
   * backing stops running on linearly; undefined where nothing is mapped: EFAULT). EINVAL for
   * misalignment or any mismatch. Both sides are linear over runs, so one comparison covers a run.
   */
  checkMap(iova: bigint, length: bigint, uptr: bigint, backing: (ua: bigint) => { owner: string; addr: bigint; end: bigint } | undefined): void {
    const mask = this.minPageSize - 1n;
    if (iova & mask || length & mask || uptr & mask || uptr + length > 1n << 64n) throw new Errno(EINVAL, 'not aligned to the domain page');
    for (let off = 0n; off < length; ) {
      const want = backing(uptr + off);
      if (!want) throw new Errno(EFAULT, `0x${(uptr + off).toString(16)} is not mapped`);
      const t = this.table.lookup(iova + off);
      if (!t || t.owner !== want.owner || t.addr !== want.addr) throw new Errno(EINVAL, `IOVA 0x${(iova + off).toString(16)} does not translate to 0x${(uptr + off).toString(16)}`);
      const run = [t.last + 1n - (iova + off), want.end - (uptr + off), length - off].reduce((a, b) => (a < b ? a : b));
      off += run;
    }
  }

  destroy(): void {
    if (this.fault) this.fault.users--;
    this.ioas.removeDomain(this);
    this.ioas.users--;
  }
}
