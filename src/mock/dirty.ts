// Dirty bits of a mock domain's leaves (the PTEs of its page table), for the iommu_dirty_ops of a domain
// made with IOMMU_HWPT_ALLOC_DIRTY_TRACKING. Nothing in tcefs writes through a mock domain, so leaves
// become dirty only when IOMMU_TEST_OP_DIRTY says so; a leaf is the whole range one PTE maps, and a report
// gives the whole leaf, as a hardware table's dirty bit would.
import type { DirtyOps } from '../objects/iommufd/backend.ts';
import { IovaTree } from '../objects/iommufd/iova-tree.ts';
import type { Range } from '../objects/iommufd/ranges.ts';

export class MockDirty implements DirtyOps {
  /** Recording (IOMMU_HWPT_SET_DIRTY_TRACKING): IOMMU_TEST_OP_DIRTY is EINVAL while it is off. */
  tracking = false;
  private readonly leaves = new IovaTree<Range>();

  /** @param leafAt the leaf that maps `iova`, undefined where nothing is mapped */
  constructor(private readonly leafAt: (iova: bigint) => Range | undefined) {}

  setTracking(enable: boolean): void {
    if (enable) this.forget(0n, (1n << 64n) - 1n);
    this.tracking = enable;
  }

  /** The device wrote at `iova`: its leaf is dirty, and returned (nothing happens where nothing is mapped). */
  mark(iova: bigint): Range | undefined {
    const leaf = this.leafAt(iova);
    if (!leaf) return undefined;
    this.forget(leaf.start, leaf.last);
    this.leaves.set(leaf.start, { ...leaf });
    return leaf;
  }

  private overlapping(start: bigint, last: bigint): Range[] {
    const out: Range[] = [];
    let e = this.leaves.atOrBelow(start);
    if (!e || e.last < start) e = this.leaves.above(start);
    for (; e && e.start <= last; e = this.leaves.above(e.start)) out.push(e);
    return out;
  }

  readAndClear(iova: bigint, last: bigint, noClear: boolean, record: (start: bigint, length: bigint) => void): void {
    for (const e of this.overlapping(iova, last)) {
      record(e.start, e.last - e.start + 1n);
      if (!noClear) this.leaves.delete(e.start);
    }
  }

  /** Leaves unmapped (or a fresh snapshot) lose their bits. */
  forget(start: bigint, last: bigint): void {
    for (const e of this.overlapping(start, last)) this.leaves.delete(e.start);
  }

  get dirtyLeaves(): number {
    return this.leaves.size;
  }
}
