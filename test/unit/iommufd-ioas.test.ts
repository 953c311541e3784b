// iommufd's IOAS without devices, as the kernel selftests' core cases and iommufd-and-vfio-cdev.md §1
// describe it: object IDs, size rules, map/unmap/copy, IOVA allocation, ranges, options, VFIO compat.
import { beforeEach, describe, expect, it } from 'vitest';
import {
  E2BIG, EADDRINUSE, EBUSY, EEXIST, EFAULT, EINVAL, EMSGSIZE, ENODEV, ENOENT, ENOSPC, ENOTTY, EOPNOTSUPP, EOVERFLOW,
} from '../../src/errno.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import { IOMMUFD, VFIO } from '../../src/uapi/constants.ts';
import { ioctl as decl } from '../../src/uapi/ioctls.ts';
import { encode } from '../../src/uapi/layout.ts';
import { Harness } from '../helpers/direct.ts';
import { seededRandom } from '../helpers/random.ts';

const { IOMMU_IOAS_MAP_FIXED_IOVA: FIXED, IOMMU_IOAS_MAP_READABLE: R, IOMMU_IOAS_MAP_WRITEABLE: W } = IOMMUFD;
const U64_MAX = (1n << 64n) - 1n;
const PAGE = 0x10000n; // the emulated POWER host's page

let h: Harness;
let i: OpenFile;
beforeEach(() => {
  h = new Harness();
  i = h.open('/dev/iommu');
});

const alloc = () => h.call(i, 'IOMMU_IOAS_ALLOC').out.out_ioas_id as number;
const map = (ioas_id: number, user_va: bigint, length: bigint, iova = 0n, flags = FIXED | R | W) =>
  h.call(i, 'IOMMU_IOAS_MAP', { ioas_id, flags, user_va, length, iova });
const unmap = (ioas_id: number, iova: bigint, length: bigint) => h.call(i, 'IOMMU_IOAS_UNMAP', { ioas_id, iova, length });
const ranges = (ioas_id: number, num_iovas = 8) => {
  const r = h.call(i, 'IOMMU_IOAS_IOVA_RANGES', { ioas_id, num_iovas, allowed_iovas: num_iovas ? 0x1000n : 0n });
  const data = r.blobs[0]?.data ?? Buffer.alloc(0);
  const list = Array.from({ length: data.length / 16 }, (_, k) => [data.readBigUInt64LE(k * 16), data.readBigUInt64LE(k * 16 + 8)]);
  return { ...r, list };
};
const rangesBlob = (list: [bigint, bigint][]) => {
  const b = Buffer.alloc(list.length * 16);
  list.forEach(([s, l], k) => {
    b.writeBigUInt64LE(s, k * 16);
    b.writeBigUInt64LE(l, k * 16 + 8);
  });
  return [{ fieldOffset: 16, data: b }];
};
const allow = (ioas_id: number, list: [bigint, bigint][]) =>
  h.call(i, 'IOMMU_IOAS_ALLOW_IOVAS', { ioas_id, num_iovas: list.length, allowed_iovas: list.length ? 0x1000n : 0n }, { blobs: rangesBlob(list) }).result;

describe('objects and size rules (selftest cmd_fail, cmd_length)', () => {
  it('gives IDs from 1, reuses the lowest free one, and destroys with ENOENT/EBUSY rules', () => {
    expect([alloc(), alloc(), alloc()]).toEqual([1, 2, 3]);
    expect(h.call(i, 'IOMMU_DESTROY', { id: 2 }).result).toBe(0);
    expect(alloc()).toBe(2);
    expect(h.call(i, 'IOMMU_DESTROY', { id: 0 }).result).toBe(-ENOENT);
    expect(h.call(i, 'IOMMU_IOAS_ALLOC', { flags: 1 }).result).toBe(-EOPNOTSUPP);
  });

  it('every implemented command: size = min-1 is EINVAL, a non-zero trailing byte E2BIG, a zero one as sizeof', () => {
    for (const name of ['IOMMU_DESTROY', 'IOMMU_IOAS_ALLOC', 'IOMMU_IOAS_IOVA_RANGES', 'IOMMU_IOAS_ALLOW_IOVAS', 'IOMMU_IOAS_MAP', 'IOMMU_IOAS_COPY', 'IOMMU_IOAS_UNMAP', 'IOMMU_OPTION', 'IOMMU_VFIO_IOAS']) {
      const d = decl(name);
      const s = d.struct!;
      const base = () => {
        const b = Buffer.alloc(s.size + 1);
        return b;
      };
      const short = base();
      short.writeUInt32LE(d.minsz! - 1);
      expect(h.call(i, name, {}, { raw: short }).result, `${name} min-1`).toBe(-EINVAL);
      const exact = base().subarray(0, s.size);
      exact.writeUInt32LE(s.size);
      const longer = base();
      longer.writeUInt32LE(s.size + 1);
      const r1 = h.call(i, name, {}, { raw: Buffer.from(exact) }).result;
      const r2 = h.call(i, name, {}, { raw: Buffer.from(longer) }).result;
      expect(r2, `${name} zero tail`).toBe(r1);
      longer[s.size] = 0xff;
      expect(h.call(i, name, {}, { raw: longer }).result, `${name} 0xff tail`).toBe(-E2BIG);
    }
  });
});

describe('IOAS map and unmap', () => {
  it('a fresh IOAS reports one range [0, U64_MAX] with alignment 1', () => {
    const id = alloc();
    const r = ranges(id);
    expect(r.list).toEqual([[0n, U64_MAX]]);
    expect(r.out).toMatchObject({ num_iovas: 1, out_iova_alignment: 1n });
  });

  it('asks for the count with num_iovas 0: EMSGSIZE with the struct written back', () => {
    const id = alloc();
    const r = ranges(id, 0);
    expect(r.result).toBe(-EMSGSIZE);
    expect(r.out.num_iovas).toBe(1);
    expect(r.blobs).toEqual([]);
  });

  it('maps with fixed IOVAs byte-granular without a domain, and refuses overlaps and bad input', () => {
    const id = alloc();
    expect(map(id, 0x1234n, 3n, 0x5000n).result).toBe(0); // odd length, odd address: fine without a domain
    expect(map(id, 0x9000n, 0x1000n, 0x5002n).result).toBe(-EEXIST);
    expect(map(id, 0x9000n, 0x1000n, 0x0n, FIXED | 8).result).toBe(-EOPNOTSUPP);
    expect(h.call(i, 'IOMMU_IOAS_MAP', { ioas_id: id, flags: FIXED | R, __reserved: 1, user_va: 0n, length: 1n }).result).toBe(-EOPNOTSUPP);
    expect(map(id, 0x9000n, 0x1000n, 0x0n, FIXED).result).toBe(-EINVAL); // neither R nor W
    expect(map(id, 0x9000n, U64_MAX, 0n).result).toBe(-EOVERFLOW);
    expect(map(id, 0x9000n, 0n, 0n).result).toBe(-EINVAL);
    expect(map(id, U64_MAX - 0x10n, 0x1000n, 0n).result).toBe(-EOVERFLOW); // user_va + length wraps
    expect(map(id, 0x9000n, 0x2000n, 0xffff_ffff_ffff_f000n).result).toBe(-EOVERFLOW);
    expect(map(99, 0x9000n, 0x1000n).result).toBe(-ENOENT);
    expect(map(id, 0x9000n, 0x1000n, 0n).result).toBe(0); // IOVA 0 is legal when fixed
  });

  it('unmaps whole areas only, returns the bytes removed, and unmap-all works on an empty IOAS', () => {
    const id = alloc();
    for (let k = 0n; k < 4n; k++) expect(map(id, 0x100000n, 0x8000n, 0x40000n + k * 0x8000n).result).toBe(0);
    expect(unmap(id, 0x40000n, 0x4000n).result).toBe(-ENOENT); // half an area
    expect(unmap(id, 0x3f000n, 0x40000n)).toMatchObject({ result: 0, out: { length: 0x20000n } }); // a superset
    expect(unmap(id, 0x40000n, 0x1000n).result).toBe(-ENOENT); // nothing there any more
    expect(unmap(id, 0n, U64_MAX)).toMatchObject({ result: 0, out: { length: 0n } });
    expect(unmap(id, 1n, U64_MAX).result).toBe(-EOVERFLOW);
    expect(unmap(id, 0x1000n, 0n).result).toBe(-EINVAL);
    map(id, 0x100000n, 0x8000n, 0x40000n);
    map(id, 0x100000n, 0x8000n, 0x50000n);
    // The first area inside the range is gone before the partial one fails.
    expect(unmap(id, 0x40000n, 0x14000n).result).toBe(-ENOENT);
    expect(h.daemon.host.stats().pinnedBytes).toBe(0n); // nothing pinned without a domain
    expect(unmap(id, 0n, U64_MAX).out.length).toBe(0x8000n);
  });

  it('allocates IOVAs first fit, never at 0 or in the last page, aligned and keeping the page offset', () => {
    const id = alloc();
    expect(map(id, 0x7f00_0000_0000n, 0x1000n, 0n, R | W).out.iova).toBe(PAGE); // IOVA 0 is never chosen
    expect(map(id, 0x7f00_0000_0000n, 0x1000n, 0n, R | W).out.iova).toBe(PAGE + 0x1000n);
    expect(map(id, 0x7f00_0001_0000n, 0x10000n, 0n, R | W).out.iova).toBe(2n * PAGE);
    // The source's page offset is OR'ed into the aligned hole start (0x12000 | 0x800), as the kernel does.
    expect(map(id, 0x7f00_0002_0800n, 0x800n, 0n, R | W).out.iova).toBe(PAGE + 0x2800n);
    // Alignment follows the length's power of two, capped at 2 MiB.
    const big = map(id, 0x7f00_0000_0000n, 0x300000n, 0n, R | W).out.iova as bigint;
    expect(big % 0x200000n).toBe(0n);
    // Allowed ranges bound allocation, and an exhausted space is ENOSPC.
    const a = alloc();
    expect(allow(a, [[0x1_0000_0000n, 0x1_0000_ffffn]])).toBe(0);
    expect(map(a, 0x7f00_0000_0000n, 0x10000n, 0n, R | W).out.iova).toBe(0x1_0000_0000n);
    expect(map(a, 0x7f00_0000_0000n, 0x10000n, 0n, R | W).result).toBe(-ENOSPC);
    // Fixed maps ignore the allowed list.
    expect(map(a, 0x7f00_0000_0000n, 0x10000n, 0x2000_0000n).result).toBe(0);
  });

  it('ALLOW_IOVAS rejects one-byte and overlapping ranges, replaces the list atomically, and clears it', () => {
    const id = alloc();
    expect(allow(id, [[0x1000n, 0x1000n]])).toBe(-EINVAL);
    expect(allow(id, [[0x1000n, 0x2fffn], [0x2000n, 0x3fffn]])).toBe(-EINVAL);
    expect(allow(id, [[0x1000n, 0x1fffn], [0x4000n, 0x4fffn]])).toBe(0);
    expect(allow(id, [])).toBe(0);
    expect(h.call(i, 'IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: id, num_iovas: 1, allowed_iovas: 0n }).result).toBe(-EFAULT);
    expect(h.call(i, 'IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: id, num_iovas: 0, __reserved: 1 }).result).toBe(-EOPNOTSUPP);
    expect(EADDRINUSE).toBe(98);
  });

  it('COPY takes contiguous sub-ranges at any byte offset and fails on holes', () => {
    const src = alloc();
    const dst = alloc();
    map(src, 0x100000n, 0x4000n, 0x10000n);
    map(src, 0x200000n, 0x4000n, 0x14000n);
    const copy = (src_iova: bigint, length: bigint, dst_iova = 0n, flags = FIXED | R) =>
      h.call(i, 'IOMMU_IOAS_COPY', { flags, dst_ioas_id: dst, src_ioas_id: src, length, dst_iova, src_iova });
    expect(copy(0x10000n + 511n, 0x5000n, 0x80000n).result).toBe(0); // spans both areas
    expect(copy(0x17000n, 0x2000n, 0x90000n).result).toBe(-ENOENT); // runs into a hole
    expect(copy(0x10000n, 0x1000n, 0x80000n).result).toBe(-EEXIST);
    expect(copy(0x10000n, 0n).result).toBe(-EINVAL);
    const auto = copy(0x10000n, 0x1000n, 0n, R);
    expect(auto.result).toBe(0);
    expect(auto.out.dst_iova).toBe(PAGE);
    // Two pieces: unmapping the copy's whole range returns exactly its length.
    expect(unmap(dst, 0x80000n, 0x6000n)).toMatchObject({ result: 0, out: { length: 0x5000n } });
  });
});

describe('IOMMU_OPTION and IOMMU_VFIO_IOAS (selftest global_options, vfio_ioas)', () => {
  const option = (option_id: number, op: number, object_id = 0, val64 = 0n) => h.call(i, 'IOMMU_OPTION', { option_id, op, object_id, val64 });

  it('RLIMIT_MODE gets, sets 0/1, refuses 2, and is global; HUGE_PAGES needs an IOAS', () => {
    expect(option(0, 1).out.val64).toBe(0n);
    expect(option(0, 0, 0, 1n).result).toBe(0);
    expect(option(0, 0, 0, 2n).result).toBe(-EINVAL);
    expect(option(0, 1).out.val64).toBe(1n);
    expect(option(0, 1, 7).result).toBe(-EOPNOTSUPP);
    expect(option(1, 1, 0).result).toBe(-ENOENT);
    expect(option(1, 0, 0, 1n).result).toBe(-ENOENT);
    expect(option(9, 1).result).toBe(-EOPNOTSUPP);
    expect(option(0, 5).result).toBe(-EOPNOTSUPP);
    const id = alloc();
    expect(option(0, 0, 0, 0n).result).toBe(-EBUSY); // objects exist now
    expect(option(1, 1, id).out.val64).toBe(1n);
    expect(option(1, 0, id, 0n).result).toBe(0);
    expect(ranges(id).out.out_iova_alignment).toBe(PAGE);
    expect(map(id, 0x1000n, 0x1000n, PAGE).result).toBe(-EINVAL); // length below PAGE_SIZE now
  });

  it('only val64 is written back by IOMMU_OPTION', () => {
    const r = option(0, 1);
    expect(r.outBytes.length).toBe(24);
    expect(r.outBytes.subarray(0, 16)).toEqual(encode(decl('IOMMU_OPTION').struct!, { size: 24, option_id: 0, op: 1 }).subarray(0, 16));
  });

  it('VFIO_IOAS: GET is ENODEV until SET; SET needs an IOAS; CLEAR always works', () => {
    const vfioIoas = (op: number, ioas_id = 0) => h.call(i, 'IOMMU_VFIO_IOAS', { op, ioas_id });
    expect(vfioIoas(0).result).toBe(-ENODEV);
    expect(vfioIoas(1, 0).result).toBe(-ENOENT);
    const id = alloc();
    expect(vfioIoas(1, id).result).toBe(0);
    expect(vfioIoas(0).out.ioas_id).toBe(id);
    expect(vfioIoas(2).result).toBe(0);
    expect(vfioIoas(0).result).toBe(-ENODEV);
    expect(vfioIoas(3).result).toBe(-EOPNOTSUPP);
  });
});

describe('VFIO container calls on an iommufd (compat)', () => {
  it('answers API_VERSION and CHECK_EXTENSION, and ENODEV until there is a compat IOAS', () => {
    expect(h.call(i, 'VFIO_GET_API_VERSION').result).toBe(0);
    expect(h.call(i, 'VFIO_CHECK_EXTENSION', {}, { arg: VFIO.VFIO_TYPE1v2_IOMMU }).result).toBe(1);
    expect(h.call(i, 'VFIO_CHECK_EXTENSION', {}, { arg: VFIO.VFIO_SPAPR_TCE_v2_IOMMU }).result).toBe(0);
    expect(h.call(i, 'VFIO_SET_IOMMU', {}, { arg: VFIO.VFIO_TYPE1v2_IOMMU }).result).toBe(-ENODEV);
    expect(h.call(i, 'VFIO_SET_IOMMU', {}, { arg: VFIO.VFIO_SPAPR_TCE_v2_IOMMU }).result).toBe(-EINVAL);
    expect(h.call(i, 'VFIO_IOMMU_MAP_DMA', { argsz: 1 }).result).toBe(-EINVAL);
    expect(h.call(i, 'VFIO_IOMMU_MAP_DMA', { flags: 1 << 31 }).result).toBe(-EINVAL);
    expect(h.call(i, 'VFIO_IOMMU_MAP_DMA', { flags: 1, size: 0x1000n }).result).toBe(-ENODEV);
    expect(h.call(i, 'VFIO_IOMMU_GET_INFO', { argsz: 1 }).result).toBe(-EINVAL);
    expect(h.call(i, 'VFIO_IOMMU_GET_INFO').result).toBe(-ENODEV);
    expect(h.call(i, 'VFIO_IOMMU_DIRTY_PAGES').result).toBe(-ENOTTY);
  });

  it('maps, reports the IOVA_RANGE capability bounded by argsz, and unmaps with size written back', () => {
    const id = alloc();
    h.call(i, 'IOMMU_VFIO_IOAS', { op: 1, ioas_id: id });
    expect(h.call(i, 'VFIO_SET_IOMMU', {}, { arg: VFIO.VFIO_TYPE1v2_IOMMU }).result).toBe(0);
    expect(h.call(i, 'VFIO_SET_IOMMU', {}, { arg: VFIO.VFIO_TYPE1v2_IOMMU }).result).toBe(0); // repeatable
    expect(h.call(i, 'VFIO_IOMMU_MAP_DMA', { flags: 3, vaddr: 0x10000n, iova: 0x20000n, size: 0x10000n }).result).toBe(0);
    // Probe with 24 bytes: argsz comes back as the full size, cap_offset 0.
    const probe = h.call(i, 'VFIO_IOMMU_GET_INFO', { argsz: 24 });
    expect(probe.out).toMatchObject({ flags: 3, cap_offset: 0, argsz: 24 + 16 + 16 + 16 });
    const full = Buffer.alloc(72, 0xaa);
    full.writeUInt32LE(72, 0);
    const r = h.call(i, 'VFIO_IOMMU_GET_INFO', {}, { raw: full });
    expect(r.out).toMatchObject({ cap_offset: 24, iova_pgsizes: 0xffff_ffff_ffff_0000n });
    const img = r.outBytes;
    expect([img.readUInt16LE(24), img.readUInt32LE(28), img.readUInt32LE(32)]).toEqual([3, 40, 0xffffffff]); // DMA_AVAIL
    expect([img.readUInt16LE(40), img.readUInt32LE(44), img.readUInt32LE(48)]).toEqual([1, 0, 1]); // IOVA_RANGE, 1 range
    expect([img.readBigUInt64LE(56), img.readBigUInt64LE(64)]).toEqual([0n, U64_MAX]);
    // Nothing is written past argsz, whatever argsz is.
    for (let argsz = 16; argsz < 72; argsz++) {
      const b = Buffer.alloc(80, 0xaa);
      b.writeUInt32LE(argsz, 0);
      const out = h.call(i, 'VFIO_IOMMU_GET_INFO', {}, { raw: b }).outBytes;
      expect(out.length, `argsz ${argsz}`).toBeLessThanOrEqual(argsz);
    }
    const unmap = (o: Record<string, bigint | number>) => h.call(i, 'VFIO_IOMMU_UNMAP_DMA', o);
    expect(unmap({ iova: 0x90000n, size: 0x1000n })).toMatchObject({ result: 0, out: { size: 0n } }); // nothing there: success
    expect(unmap({ flags: 2, iova: 0x20000n })).toMatchObject({ result: -EINVAL, out: { size: 0n } });
    expect(unmap({ flags: 1, iova: 0x20000n, size: 0x10000n }).result).toBe(-EINVAL);
    expect(unmap({ iova: 0xffff_ffff_ffff_f000n, size: 0x2000n }).result).toBe(-EOVERFLOW);
    expect(unmap({ iova: 0x20000n, size: 0x10000n })).toMatchObject({ result: 0, out: { size: 0x10000n } });
  });
});

describe('IOAS areas against a list of intervals, in any order', () => {
  it('refuses exactly the maps that overlap, whatever order areas came and went in', () => {
    const ioas = alloc();
    const next = seededRandom(12345);
    const live: [bigint, bigint][] = [];
    for (let step = 0; step < 3000; step++) {
      const start = BigInt(next(200)) * PAGE;
      const last = start + BigInt(1 + next(4)) * PAGE - 1n;
      if (next(3)) {
        const clash = live.some(([s, l]) => s <= last && start <= l);
        expect(map(ioas, 0x1000_0000n, last - start + 1n, start).result, `map ${start}-${last}`).toBe(clash ? -EEXIST : 0);
        if (!clash) live.push([start, last]);
      } else if (live.length) {
        const [s, l] = live.splice(next(live.length), 1)[0];
        expect(unmap(ioas, s, l - s + 1n).result).toBe(0);
      }
    }
    expect(live.length).toBeGreaterThan(10);
  });
});
