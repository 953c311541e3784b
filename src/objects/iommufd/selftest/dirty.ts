// IOMMU_TEST_OP_DIRTY: the mock device "writes" the pages a user bitmap names (bit i: the page at
// iova + i * page_size), so their leaves in the mock domain turn dirty; out_nr_dirty counts the bits.
// The checks are the kernel mock's, in its order.
import { EINVAL, EOVERFLOW, Errno } from '../../../errno.ts';
import { MockHwpt } from '../../../mock/domain.ts';
import { bitmapBytes, countBits, nextSetBit } from '../dirty-bitmap.ts';
import { readUserMemory } from '../user-memory.ts';
import type { TestOps } from './test-cmd.ts';

/** The most bits one call may name: a 16 MiB bitmap. */
const MAX_BITS = 16n * 1024n * 1024n * 8n;

export const dirtyOps: TestOps = {
  IOMMU_TEST_OP_DIRTY: {
    member: 'dirty',
    handler: (f, cmd) => {
      const iova = cmd.get64('iova');
      const length = cmd.get64('length');
      const pageSize = cmd.get64('page_size');
      const uptr = cmd.get64('uptr');
      if (!pageSize || !length || iova % pageSize || length % pageSize || !uptr) throw new Errno(EINVAL, 'iova, length, page_size or uptr');
      const nbits = length / pageSize;
      if (nbits > MAX_BITS) throw new Errno(EOVERFLOW, `${nbits} pages`);
      const hwpt = f.objects.get(cmd.id, 'hwpt_paging');
      if (!(hwpt instanceof MockHwpt)) throw new Errno(EINVAL, `HWPT ${cmd.id} is not a mock domain`);
      if (!hwpt.dirty?.tracking) throw new Errno(EINVAL, `HWPT ${cmd.id} is not tracking dirty pages`);
      const bits = readUserMemory(cmd.pid, uptr, Number(bitmapBytes(nbits)));
      const n = Number(nbits);
      // Bit by bit as the kernel goes, but a leaf once marked and a stretch of nothing mapped are
      // skipped whole, so the work follows the leaves touched and not the bits named.
      for (let i = nextSetBit(bits, 0, n); i >= 0; ) {
        const at = iova + BigInt(i) * pageSize;
        const leaf = hwpt.dirty.mark(at);
        let next: bigint;
        if (leaf) next = (leaf.last + 1n - iova + pageSize - 1n) / pageSize;
        else {
          const mapped = hwpt.table.mappedFrom(at);
          if (mapped === undefined) break;
          next = (mapped - iova) / pageSize;
        }
        const skip = next > BigInt(i) ? next : BigInt(i) + 1n;
        i = skip >= nbits ? -1 : nextSetBit(bits, Number(skip), n);
      }
      cmd.set('out_nr_dirty', countBits(bits, n));
      cmd.respond();
    },
  },
};
