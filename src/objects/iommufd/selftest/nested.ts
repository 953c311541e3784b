// MD_CHECK_IOTLB: one IOTLB entry of a mock nested domain holds the value the test expects (seeded by
// the domain's iommu_hwpt_selftest.iotlb, zeroed by HWPT_INVALIDATE).
import { EINVAL, Errno } from '../../../errno.ts';
import { MockNestedHwpt } from '../../../mock/nested.ts';
import { SELFTEST } from '../../../uapi/selftest.ts';
import type { TestOps } from './test-cmd.ts';

export const nestedOps: TestOps = {
  IOMMU_TEST_OP_MD_CHECK_IOTLB: {
    member: 'check_iotlb',
    handler: (f, cmd) => {
      const hwpt = f.objects.get(cmd.id, 'hwpt_nested');
      if (!(hwpt instanceof MockNestedHwpt)) throw new Errno(EINVAL, `HWPT ${cmd.id} is not a mock nested domain`);
      const id = cmd.get('id');
      if (id > SELFTEST.MOCK_NESTED_DOMAIN_IOTLB_ID_MAX || hwpt.iotlb[id] !== cmd.get('iotlb')) throw new Errno(EINVAL, `IOTLB ${id} holds 0x${hwpt.iotlb[id]?.toString(16)}`);
    },
  },
};
