// A VFIO device file: the cdev /dev/vfio/devices/vfioN, or a file returned by VFIO_GROUP_GET_DEVICE_FD.
// A cdev answers EINVAL to everything until it is bound to an iommufd, as the kernel does.
import { CommandTable } from '../../dispatch/table.ts';
import { OpenFile } from '../../dispatch/open-file.ts';
import { EINVAL } from '../../errno.ts';
import type { PciFunction } from '../inventory.ts';

export class DeviceFile extends OpenFile {
  readonly kind = 'device';
  /** A cdev gains access only through VFIO_DEVICE_BIND_IOMMUFD. */
  bound = false;

  constructor(path: string, readonly fn: PciFunction, readonly viaCdev: boolean) {
    super(path);
  }

  static readonly unbound = new CommandTable<DeviceFile>('device', {}, EINVAL);
  static readonly table = new CommandTable<DeviceFile>('device', {});

  commands(): CommandTable<DeviceFile> {
    return this.viaCdev && !this.bound ? DeviceFile.unbound : DeviceFile.table;
  }
}
