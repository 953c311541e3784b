// The PASID test ops on a mock device: attach, replace and detach one PASID of the selftest object's
// device (the core's iommufd_device_attach/replace/detach, src/objects/iommufd/pasid.ts), and check
// which HWPT a PASID translates through.
import { EINVAL, Errno } from '../../../errno.ts';
import { pasidAttach, pasidDetach, pasidHwpt, pasidReplace } from '../pasid.ts';
import { selftestDevice } from './mock-domain.ts';
import type { TestOps } from './test-cmd.ts';

export const pasidOps: TestOps = {
  IOMMU_TEST_OP_PASID_ATTACH: {
    member: 'pasid_attach',
    handler: (f, cmd) => {
      const idev = selftestDevice(f, cmd.id).idev!;
      const pasid = cmd.get('pasid');
      pasidAttach(idev, pasid, cmd.get('pt_id'));
      try {
        cmd.respond();
      } catch (e) {
        pasidDetach(idev, pasid);
        throw e;
      }
    },
  },
  // The kernel reads the replace arguments through the attach member; both have one layout.
  IOMMU_TEST_OP_PASID_REPLACE: {
    member: 'pasid_attach',
    handler: (f, cmd) => {
      pasidReplace(selftestDevice(f, cmd.id).idev!, cmd.get('pasid'), cmd.get('pt_id'));
      cmd.respond();
    },
  },
  IOMMU_TEST_OP_PASID_DETACH: {
    member: 'pasid_detach',
    handler: (f, cmd) => pasidDetach(selftestDevice(f, cmd.id).idev!, cmd.get('pasid')),
  },
  IOMMU_TEST_OP_PASID_CHECK_HWPT: {
    member: 'pasid_check',
    handler: (f, cmd) => {
      const attached = pasidHwpt(selftestDevice(f, cmd.id).idev!, cmd.get('pasid'));
      const id = cmd.get('hwpt_id');
      // hwpt_id 0 asks whether the PASID is detached.
      if (!id) {
        if (attached) throw new Errno(EINVAL, `PASID ${cmd.get('pasid')} is attached to HWPT ${attached.id}`);
        return;
      }
      const hwpt = f.objects.get(id);
      if (hwpt.kind !== 'hwpt_paging' && hwpt.kind !== 'hwpt_nested') throw new Errno(EINVAL, `object ${id} is not a HWPT`);
      if (attached !== hwpt) throw new Errno(EINVAL, `PASID ${cmd.get('pasid')} does not translate through HWPT ${id}`);
    },
  },
};
