// TRIGGER_IOPF: a mock device raises a page request, as the kernel's mock does through
// iommu_report_device_fault. It goes to the fault queue of the HWPT that translates the PASID it names
// (or the RID), and nowhere when that HWPT has none; the trigger itself succeeds either way.
import { EINVAL, Errno } from '../../../errno.ts';
import { MockDevice } from '../../../mock/device.ts';
import { IOMMUFD } from '../../../uapi/constants.ts';
import type { PagingHwpt } from '../backend.ts';
import type { IommufdDevice } from '../device.ts';
import { attachmentKey, NO_PASID, pasidHwpt } from '../pasid.ts';
import type { TestOps } from './test-cmd.ts';

const { IOMMU_PGFAULT_FLAGS_LAST_PAGE: LAST_PAGE, IOMMU_PGFAULT_FLAGS_PASID_VALID: PASID_VALID } = IOMMUFD;

/**
 * Where a request through `pasid` is handled: that PASID's HWPT; failing that, since the mock driver
 * keeps the PASID table in user space, a nested HWPT on the RID; without a PASID, the RID's HWPT.
 */
function handler(idev: IommufdDevice, pasid: number | undefined): { hwpt: PagingHwpt; key: object } | undefined {
  if (pasid !== undefined) {
    const hwpt = pasidHwpt(idev, pasid);
    if (hwpt) return { hwpt, key: attachmentKey(idev, pasid) };
    if ((idev.hwpt?.kind as string | undefined) !== 'hwpt_nested') return undefined;
  }
  return idev.hwpt ? { hwpt: idev.hwpt, key: attachmentKey(idev, NO_PASID) } : undefined;
}

export const iopfOps: TestOps = {
  IOMMU_TEST_OP_TRIGGER_IOPF: {
    member: 'trigger_iopf',
    handler: (f, cmd) => {
      const idev = f.objects.get<IommufdDevice>(cmd.get('dev_id'), 'device');
      const mock = idev.iommu;
      if (!(mock instanceof MockDevice)) throw new Errno(EINVAL, `device ${idev.id} is not a mock device`);
      const pasid = cmd.get('pasid');
      const to = handler(idev, pasid === NO_PASID ? undefined : pasid);
      if (!to?.hwpt.fault) return; // no fault-capable domain: the core answers the device itself
      to.hwpt.fault.report({
        devId: idev.id,
        requests: [{ flags: LAST_PAGE | (pasid === NO_PASID ? 0 : PASID_VALID), pasid, grpid: cmd.get('grpid'), perm: cmd.get('perm'), addr: cmd.get64('addr') }],
        attachment: to.key,
        respond: (code) => mock.pageResponses.push(code),
      });
    },
  },
};
