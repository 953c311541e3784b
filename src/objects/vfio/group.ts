// /dev/vfio/<N>: an IOMMU group opened for VFIO. One open at a time, as in the kernel.
import { CommandTable } from '../../dispatch/table.ts';
import { OpenFile } from '../../dispatch/open-file.ts';
import { EBUSY, Errno } from '../../errno.ts';
import { VFIO } from '../../uapi/constants.ts';
import type { IommuGroup } from '../inventory.ts';

/** Groups currently open through /dev/vfio/<N>. */
const openGroups = new WeakMap<IommuGroup, GroupFile>();

export class GroupFile extends OpenFile {
  readonly kind = 'group';

  constructor(path: string, readonly group: IommuGroup) {
    super(path);
    if (openGroups.has(group)) throw new Errno(EBUSY, `group ${group.id} is already open`);
    openGroups.set(group, this);
  }

  static readonly table = new CommandTable<GroupFile>('group', {
    VFIO_GROUP_GET_STATUS: (f, call) => {
      call.vfioCopyIn();
      // Every function of an emulated group is bound to vfio-pci, so the group is always viable.
      call.set('flags', VFIO.VFIO_GROUP_FLAGS_VIABLE | (f.containerSet ? VFIO.VFIO_GROUP_FLAGS_CONTAINER_SET : 0));
      call.copyOut(call.struct.size);
    },
  });

  /** Set once VFIO_GROUP_SET_CONTAINER succeeds (the legacy VFIO issue builds it). */
  containerSet = false;

  commands(): CommandTable<GroupFile> {
    return GroupFile.table;
  }

  release(): void {
    openGroups.delete(this.group);
  }
}
