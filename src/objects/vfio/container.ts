// /dev/vfio/vfio: the legacy VFIO container. Until an IOMMU backend is chosen with VFIO_SET_IOMMU it
// answers only the core calls (anything else is EINVAL); afterwards the backend's table is added and
// unknown numbers are ENOTTY.
import { CommandTable } from '../../dispatch/table.ts';
import { OpenFile } from '../../dispatch/open-file.ts';
import { EINVAL } from '../../errno.ts';
import { VFIO } from '../../uapi/constants.ts';
import type { Daemon } from '../../daemon.ts';

export class ContainerFile extends OpenFile {
  readonly kind = 'container';

  constructor(path: string, readonly daemon: Daemon) {
    super(path);
  }

  static readonly core = new CommandTable<ContainerFile>(
    'container',
    {
      VFIO_GET_API_VERSION: () => VFIO.VFIO_API_VERSION,
      VFIO_CHECK_EXTENSION: (f, call) => f.checkExtension(Number(BigInt.asUintN(32, call.arg))),
    },
    EINVAL,
  );

  commands(): CommandTable<ContainerFile> {
    return ContainerFile.core;
  }

  /** Before a backend is set every IOMMU driver the host has is asked; the first yes wins. */
  checkExtension(ext: number): number {
    const t = this.daemon.topology;
    const spapr = ext === VFIO.VFIO_SPAPR_TCE_IOMMU || ext === VFIO.VFIO_SPAPR_TCE_v2_IOMMU ? 1 : ext === VFIO.VFIO_EEH ? (t.eeh ? 1 : 0) : 0;
    if (spapr) return spapr;
    if (t.type1Compat && (ext === VFIO.VFIO_TYPE1_IOMMU || ext === VFIO.VFIO_TYPE1v2_IOMMU || ext === VFIO.VFIO_UNMAP_ALL)) return 1;
    return 0;
  }
}
