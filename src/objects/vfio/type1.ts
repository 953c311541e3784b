// VFIO_TYPE1v2_IOMMU (and TYPE1) on the legacy container, for hosts whose profile offers it (topology
// host.type1Compat): the container gets an IO address space of its own and one paging domain over TCE
// windows shared by its groups, and answers the type1 calls exactly as an iommufd-backed container does
// (the same handlers serve both; see src/objects/iommufd/compat.ts).
import { CommandTable } from '../../dispatch/table.ts';
import { VFIO } from '../../uapi/constants.ts';
import type { Daemon } from '../../daemon.ts';
import { enforcesCoherency, type1GetInfo, type1MapDma, type1UnmapDma } from '../iommufd/compat.ts';
import { HwptPaging } from '../iommufd/hwpt.ts';
import { Ioas } from '../iommufd/ioas.ts';
import type { IommuGroup } from '../inventory.ts';
import type { ContainerFile } from './container.ts';

export class Type1Iommu {
  readonly ioas: Ioas;
  private domain?: HwptPaging;

  constructor(readonly v2: boolean, readonly daemon: Daemon) {
    // Pins count in locked_vm as well as pinned_vm, as they do behind an iommufd-backed container.
    this.ioas = new Ioas(daemon.host, () => true);
    // TYPE1 (v1) maps in PAGE_SIZE units only.
    if (!v2) this.ioas.setHugePages(false);
  }

  checkExtension(ext: number): number {
    if (ext === VFIO.VFIO_DMA_CC_IOMMU) return enforcesCoherency(this.ioas);
    return ext === VFIO.VFIO_TYPE1_IOMMU || ext === VFIO.VFIO_TYPE1v2_IOMMU || ext === VFIO.VFIO_UNMAP_ALL ? 1 : 0;
  }

  /** The first group's platform makes the domain; later groups have its windows programmed into their PEs. */
  attachGroup(g: IommuGroup, owner: string): void {
    if (!this.domain) {
      this.domain = HwptPaging.create(this.daemon.host, this.ioas, g.pe, HwptPaging.defaultWindows(g.pe), true, this.daemon.host.account(owner));
    }
    g.pe.block();
    this.domain.attachPe(g.pe);
  }

  detachGroup(g: IommuGroup): void {
    this.domain?.detachPe(g.pe);
  }

  release(): void {
    this.ioas.destroy();
    this.domain?.destroy();
    this.domain = undefined;
  }
}

export const type1 = new CommandTable<ContainerFile>('container', {
  VFIO_IOMMU_GET_INFO: (f, call) => type1GetInfo(call, () => f.type1!.ioas),
  VFIO_IOMMU_MAP_DMA: (f, call) => type1MapDma(call, () => f.type1!.ioas),
  VFIO_IOMMU_UNMAP_DMA: (f, call) => type1UnmapDma(call, () => f.type1!.ioas),
});
