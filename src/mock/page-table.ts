// The mock IOMMU's page table: IOVA -> (backing owner, address) at a fixed page granularity, kept as
// extents (one per mapped run) so a large map costs one entry, while lookups answer page by page as a
// real table walk would. Pure: the mock domain (domain.ts) feeds it and MD_CHECK_MAP reads it.
import { EEXIST, EINVAL, Errno } from '../errno.ts';
import { IovaTree } from '../objects/iommufd/iova-tree.ts';

export interface Extent {
  start: bigint;
  last: bigint;
  /** Whose memory backs the extent (a client process, or a memfd for MAP_FILE areas). */
  owner: string;
  /** Address (or file offset) at `start`. */
  addr: bigint;
  readable: boolean;
  writeable: boolean;
}

export class MockPageTable {
  private readonly extents = new IovaTree<Extent>();
  private readonly mask: bigint;

  constructor(readonly pageSize: bigint) {
    this.mask = pageSize - 1n;
  }

  get size(): number {
    return this.extents.size;
  }

  /** Map [start, last] to `addr` onwards; page aligned at both ends, and over nothing already mapped. */
  map(e: Extent): void {
    if (e.start & this.mask || (e.last + 1n) & this.mask) throw new Errno(EINVAL, `0x${e.start.toString(16)}-0x${e.last.toString(16)} is not ${this.pageSize}-byte aligned`);
    if (e.last < e.start) throw new Errno(EINVAL, 'empty extent');
    const below = this.extents.atOrBelow(e.last);
    if (below && below.last >= e.start) throw new Errno(EEXIST, `0x${below.start.toString(16)} is mapped`);
    this.extents.set(e.start, { ...e });
  }

  /** Unmap every page in [start, last]; extents crossing the ends are cut. Returns the bytes unmapped. */
  unmap(start: bigint, last: bigint): bigint {
    let removed = 0n;
    let e = this.extents.atOrBelow(last);
    while (e && e.last >= start) {
      const prev = e.start > 0n ? this.extents.atOrBelow(e.start - 1n) : undefined;
      this.extents.delete(e.start);
      const lo = e.start > start ? e.start : start;
      const hi = e.last < last ? e.last : last;
      removed += hi - lo + 1n;
      if (e.start < start) this.extents.set(e.start, { ...e, last: start - 1n });
      if (e.last > last) this.extents.set(last + 1n, { ...e, start: last + 1n, addr: e.addr + (last + 1n - e.start) });
      e = prev;
    }
    return removed;
  }

  /**
   * The translation of one IOVA (any byte of a page), or undefined where nothing is mapped; `last` is
   * the last IOVA that translates on linearly from it (the end of its extent).
   */
  lookup(iova: bigint): { owner: string; addr: bigint; last: bigint; readable: boolean; writeable: boolean } | undefined {
    const e = this.extents.atOrBelow(iova);
    if (!e || e.last < iova) return undefined;
    return { owner: e.owner, addr: e.addr + (iova - e.start), last: e.last, readable: e.readable, writeable: e.writeable };
  }

  /** Mapped bytes in all. */
  mappedBytes(): bigint {
    let n = 0n;
    for (const e of this.extents.valuesArray()) n += e.last - e.start + 1n;
    return n;
  }
}
