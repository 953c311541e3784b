// Test ops that set up or check the state of the core: the temporary memory limit, reserved IOVA, and
// the checks of a mock domain's translations (MD_CHECK_MAP), of page pin counts (MD_CHECK_REFS) and of
// a mock device's caches (DEV_CHECK_CACHE).
import { EFAULT, EINVAL, EIO, EOVERFLOW, Errno } from '../../../errno.ts';
import { backingOf, readMaps } from '../../../devices/process-maps.ts';
import { MockDevice } from '../../../mock/device.ts';
import { MockHwpt } from '../../../mock/domain.ts';
import { SELFTEST } from '../../../uapi/selftest.ts';
import type { IommufdFile } from '../context.ts';
import type { IommufdDevice } from '../device.ts';
import { U64_MAX } from '../ranges.ts';
import { selftestState } from './mock-domain.ts';
import type { TestOps } from './test-cmd.ts';

/** Reserved ranges ADD_RESERVED makes belong to no domain, so they stay for the IOAS's life. */
const BY_TEST = {};

/** The batch the kernel pins with needs room for one entry (an unsigned long and a u32). */
const MIN_MEMORY_LIMIT = 8 + 4;

function mockHwpt(f: IommufdFile, id: number): MockHwpt {
  const o = f.objects.get(id, 'hwpt_paging');
  if (!(o instanceof MockHwpt)) throw new Errno(EINVAL, `HWPT ${id} is not a mock domain`);
  return o;
}

export const bookkeepingOps: TestOps = {
  IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: {
    member: 'memory_limit',
    handler: (f, cmd) => {
      const limit = cmd.get('limit');
      if (limit < MIN_MEMORY_LIMIT) throw new Errno(EINVAL, `limit ${limit}`);
      selftestState(f).memoryLimit = limit;
    },
  },
  IOMMU_TEST_OP_ADD_RESERVED: {
    member: 'add_reserved',
    handler: (f, cmd) => {
      const start = cmd.get64('start');
      const length = cmd.get64('length');
      if (length === 0n) throw new Errno(EINVAL, 'length 0');
      if (start + length - 1n > U64_MAX) throw new Errno(EOVERFLOW, 'start + length wraps');
      f.ioas(cmd.id).reserve(BY_TEST, { start, last: start + length - 1n });
    },
  },
  IOMMU_TEST_OP_MD_CHECK_MAP: {
    member: 'check_map',
    handler: (f, cmd) => {
      const hwpt = mockHwpt(f, cmd.id);
      const maps = readMaps(cmd.pid);
      hwpt.checkMap(cmd.get64('iova'), cmd.get64('length'), cmd.get64('uptr'), (ua) => backingOf(maps, cmd.pid, ua));
    },
  },
  IOMMU_TEST_OP_MD_CHECK_REFS: {
    member: 'check_refs',
    handler: (f, cmd) => {
      // Pages are the host's (the client's PAGE_SIZE): pins are counted per host page.
      const memory = f.daemon.host.memory;
      const page = memory.pageSize;
      const length = cmd.get64('length');
      const uptr = cmd.get64('uptr');
      if (length % page || uptr % page || uptr + length > U64_MAX + 1n) throw new Errno(EINVAL, 'not page aligned');
      const refs = cmd.get('refs');
      const maps = readMaps(cmd.pid);
      // Page by page as the kernel does, but a run of pages with one backing and one count at a time.
      for (let off = 0n; off < length; ) {
        const b = backingOf(maps, cmd.pid, uptr + off);
        if (!b) throw new Errno(EFAULT, `0x${(uptr + off).toString(16)} is not mapped`);
        const span = memory.pinSpan(b.owner, b.addr);
        if (span.count !== refs) throw new Errno(EIO, `page 0x${(uptr + off).toString(16)} has ${span.count} pins, not ${refs}`);
        const run = [span.end - b.addr, b.end - (uptr + off), length - off].reduce((x, y) => (x < y ? x : y));
        // Runs and mappings are whole pages; never step by less than one.
        off += run > page ? run - (run % page) : page;
      }
    },
  },
  IOMMU_TEST_OP_DEV_CHECK_CACHE: {
    member: 'check_dev_cache',
    handler: (f, cmd) => {
      const idev = f.objects.get<IommufdDevice>(cmd.id, 'device');
      if (!(idev.iommu instanceof MockDevice)) throw new Errno(EINVAL, `device ${cmd.id} is not a mock device`);
      const id = cmd.get('id');
      if (id > SELFTEST.MOCK_DEV_CACHE_ID_MAX || idev.iommu.cache[id] !== cmd.get('cache')) throw new Errno(EINVAL, `cache ${id}`);
    },
  },
};
