// /dev/iommu: one iommufd context per open. It owns an object table; numbers below 0x80 are the VFIO
// container calls served in compat mode.
import { CommandTable } from '../../dispatch/table.ts';
import { OpenFile } from '../../dispatch/open-file.ts';
import { VFIO } from '../../uapi/constants.ts';
import { IdTable } from './id-table.ts';

export class IommufdFile extends OpenFile {
  readonly kind = 'iommufd';
  readonly objects = new IdTable();

  static readonly table = new CommandTable<IommufdFile>('iommufd', {
    IOMMU_DESTROY: (f, call) => {
      f.objects.get(call.get('id'));
      // Object kinds with lifetimes arrive with the iommufd issue; nothing can be created yet.
    },
    VFIO_GET_API_VERSION: () => VFIO.VFIO_API_VERSION,
    VFIO_CHECK_EXTENSION: (_f, call) => {
      const ext = Number(BigInt.asUintN(32, call.arg));
      return ext === VFIO.VFIO_TYPE1_IOMMU || ext === VFIO.VFIO_TYPE1v2_IOMMU || ext === VFIO.VFIO_UNMAP_ALL ? 1 : 0;
    },
  });

  commands(): CommandTable<IommufdFile> {
    return IommufdFile.table;
  }
}
