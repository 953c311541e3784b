// TRIGGER_VEVENT: a mock device translating through a nested domain of a vIOMMU, where it has a vDEVICE,
// reports an event (iommu_viommu_event_selftest: its virtual ID) to that vIOMMU's selftest vEVENTQ.
// ENOENT when the device has no vIOMMU or virtual ID; EOPNOTSUPP when no such vEVENTQ listens.
import { EINVAL, ENOENT, Errno } from '../../../errno.ts';
import { MockDevice } from '../../../mock/device.ts';
import { encode } from '../../../uapi/layout.ts';
import { iommu_viommu_event_selftest, SELFTEST } from '../../../uapi/selftest.ts';
import type { IommufdDevice } from '../device.ts';
import { reportVevent, type VeventqOwner } from '../eventq.ts';
import type { TestOps } from './test-cmd.ts';

export const viommuOps: TestOps = {
  IOMMU_TEST_OP_TRIGGER_VEVENT: {
    member: 'trigger_vevent',
    handler: (f, cmd) => {
      const idev = f.objects.get<IommufdDevice>(cmd.get('dev_id'), 'device');
      const mock = idev.iommu;
      if (!(mock instanceof MockDevice)) throw new Errno(EINVAL, `device ${idev.id} is not a mock device`);
      if (!mock.viommu || !mock.vdevId) throw new Errno(ENOENT, `device ${idev.id} translates through no vIOMMU with a virtual ID`);
      const data = encode(iommu_viommu_event_selftest, { virt_id: Number(BigInt.asUintN(32, mock.vdevId)) });
      reportVevent(mock.viommu as unknown as VeventqOwner, SELFTEST.IOMMU_VEVENTQ_TYPE_SELFTEST, data);
    },
  },
};
