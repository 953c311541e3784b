// /dev/vfio/<N>: an IOMMU group opened for VFIO. One open at a time, as in the kernel. Setting a
// container claims the group's DMA (the PE leaves the host's default setup); unsetting it, or closing
// the group with no device still open, gives the PE back to the host.
import { CommandTable } from '../../dispatch/table.ts';
import type { IoctlCall } from '../../dispatch/call.ts';
import { OpenFile } from '../../dispatch/open-file.ts';
import { EBADF, EBADFD, EBUSY, EINVAL, ENODEV, EFAULT, Errno } from '../../errno.ts';
import { HANDLE_FOREIGN, HANDLE_IN_RESULT, HANDLE_NONE } from '../../transport/frame.ts';
import { VFIO } from '../../uapi/constants.ts';
import type { Daemon } from '../../daemon.ts';
import type { IommuGroup } from '../inventory.ts';
import { ContainerFile } from './container.ts';
import { IommufdFile } from '../iommufd/context.ts';
import { IommufdDevice } from '../iommufd/device.ts';
import { DeviceFile } from './device.ts';

/** Largest device name GET_DEVICE_FD accepts (the kernel copies at most a page). */
const NAME_MAX = 4096;

export class GroupFile extends OpenFile {
  readonly kind = 'group';

  constructor(path: string, readonly group: IommuGroup, readonly daemon: Daemon) {
    super(path);
    if (group.file) throw new Errno(EBUSY, `group ${group.id} is already open`);
    if (group.devices.some((d) => d.cdevBinding)) throw new Errno(EBUSY, `a device of group ${group.id} is bound through its cdev`);
    group.file = this;
  }

  static readonly table = new CommandTable<GroupFile>('group', {
    VFIO_GROUP_GET_STATUS: (f, call) => {
      call.vfioCopyIn();
      // Every function of an emulated group is bound to vfio-pci, so the group is always viable.
      call.set('flags', VFIO.VFIO_GROUP_FLAGS_VIABLE | (f.group.container ? VFIO.VFIO_GROUP_FLAGS_CONTAINER_SET : 0));
      call.copyOut(call.struct.size);
    },
    VFIO_GROUP_SET_CONTAINER: (f, call) => f.setContainer(call),
    VFIO_GROUP_UNSET_CONTAINER: (f) => f.unsetContainer(),
    VFIO_GROUP_GET_DEVICE_FD: (f, call) => f.getDeviceFd(call),
  });

  commands(): CommandTable<GroupFile> {
    return GroupFile.table;
  }

  private setContainer(call: IoctlCall): number {
    const handle = call.copyIn(4).readInt32LE(0);
    if (handle < 0 || handle === HANDLE_NONE) throw new Errno(EBADF, 'not an open file');
    if (handle === HANDLE_FOREIGN) throw new Errno(EBADFD, 'not a VFIO container or iommufd');
    const target = this.daemon.files.get(handle);
    if (!target) throw new Errno(EBADF, `no file with handle ${handle.toString(16)}`);
    if (this.group.container) throw new Errno(EINVAL, 'group already has a container');
    if (!(target instanceof ContainerFile) && !(target instanceof IommufdFile)) throw new Errno(EBADFD, `${target.kind} is not a container`);
    target.addGroup(this.group, call.owner);
    this.group.container = target;
    return 0;
  }

  private unsetContainer(): number {
    if (!this.group.container) throw new Errno(EINVAL, 'no container set');
    if (this.group.openDevices > 0) throw new Errno(EBUSY, 'device files are still open');
    this.group.detachContainer();
    return 0;
  }

  private getDeviceFd(call: IoctlCall): number {
    const raw = call.copyIn(Math.min(NAME_MAX, Math.max(1, call.userBytes)));
    const nul = raw.indexOf(0);
    if (nul < 0) throw new Errno(call.userBytes >= NAME_MAX ? EINVAL : EFAULT, 'name is not NUL-terminated');
    // vfio-pci also accepts "<BDF> vf_token=<uuid>"; the token matters only for SR-IOV VFs.
    const name = raw.subarray(0, nul).toString('latin1').split(' ')[0];
    const container = this.group.container;
    if (!container || (container instanceof ContainerFile && !container.spapr && !container.type1)) throw new Errno(EINVAL, 'no container with an IOMMU set');
    const fn = this.group.devices.find((d) => d.bdf === name && !d.removed);
    if (!fn) throw new Errno(ENODEV, `no device "${name}" in group ${this.group.id}`);
    const dev = new DeviceFile(`/dev/vfio/${this.group.id}:${fn.bdf}`, fn, false, this.daemon);
    if (container instanceof IommufdFile && !container.spapr) {
      // Compat mode: the first open binds the device to the iommufd and attaches it to the compat IOAS.
      // (Serving the SPAPR calls, the iommufd owns the group's DMA itself, as a legacy container does.)
      try {
        dev.iommufd = IommufdDevice.bind(container, fn);
        if (!container.compatIoas) throw new Errno(EINVAL, 'the iommufd lost its compat IOAS');
        dev.iommufd.attach(container.compatIoas, call.owner);
      } catch (e) {
        dev.release();
        throw e;
      }
    }
    call.newHandle = this.daemon.files.addPending(dev, this.handle);
    call.handleField = HANDLE_IN_RESULT;
    return 0;
  }

  /** The group's open file goes; a device still open keeps the group attached until it closes. */
  release(): void {
    this.group.file = undefined;
    if (this.group.openDevices === 0) this.group.detachContainer();
  }
}
