// /dev/vfio/vfio: the legacy VFIO container. Until an IOMMU backend is chosen with VFIO_SET_IOMMU it
// answers only the core calls (anything else is EINVAL); afterwards the backend's table is added and
// unknown numbers are ENOTTY. Groups keep a container alive after its file is closed, as in the kernel;
// when the last group leaves, the backend is released and the container is back to "no IOMMU set".
import { CommandTable } from '../../dispatch/table.ts';
import { OpenFile } from '../../dispatch/open-file.ts';
import { EINVAL, ENODEV, Errno } from '../../errno.ts';
import { VFIO } from '../../uapi/constants.ts';
import type { Daemon } from '../../daemon.ts';
import type { IommuGroup } from '../inventory.ts';
import { spaprCommands, SpaprIommu } from './spapr.ts';
import { type1, Type1Iommu } from './type1.ts';

export class ContainerFile extends OpenFile {
  readonly kind = 'container';
  /** Attached groups, most recently attached first (the kernel adds at the head of its list). */
  readonly groups: IommuGroup[] = [];
  /** The IOMMU driver chosen by VFIO_SET_IOMMU: SPAPR TCE, or type1 where the host profile offers it. */
  spapr?: SpaprIommu;
  type1?: Type1Iommu;
  private closed = false;

  constructor(path: string, readonly daemon: Daemon) {
    super(path);
  }

  static readonly core = new CommandTable<ContainerFile>(
    'container',
    {
      VFIO_GET_API_VERSION: () => VFIO.VFIO_API_VERSION,
      VFIO_CHECK_EXTENSION: (f, call) => f.checkExtension(Number(BigInt.asUintN(32, call.arg))),
      VFIO_SET_IOMMU: (f, call) => f.setIommu(Number(BigInt.asUintN(32, call.arg)), call.owner),
    },
    EINVAL,
  );
  static readonly withSpapr = ContainerFile.core.with(spaprCommands<ContainerFile>('container'));
  static readonly withType1 = ContainerFile.core.with(type1);

  commands(): CommandTable<ContainerFile> {
    return this.spapr ? ContainerFile.withSpapr : this.type1 ? ContainerFile.withType1 : ContainerFile.core;
  }

  private get driver(): SpaprIommu | Type1Iommu | undefined {
    return this.spapr ?? this.type1;
  }

  /** Before a backend is set every IOMMU driver the host has is asked; the first yes wins. */
  checkExtension(ext: number): number {
    if (this.driver) return this.driver.checkExtension(ext);
    const t = this.daemon.topology;
    const spapr = ext === VFIO.VFIO_SPAPR_TCE_IOMMU || ext === VFIO.VFIO_SPAPR_TCE_v2_IOMMU ? 1 : ext === VFIO.VFIO_EEH ? (this.daemon.host.eehEnabled ? 1 : 0) : 0;
    if (spapr) return spapr;
    if (t.type1Compat && (ext === VFIO.VFIO_TYPE1_IOMMU || ext === VFIO.VFIO_TYPE1v2_IOMMU || ext === VFIO.VFIO_UNMAP_ALL)) return 1;
    return 0;
  }

  /** Drivers that answer CHECK_EXTENSION(type) are tried; ENODEV when none takes it. */
  setIommu(type: number, owner: string): number {
    if (this.groups.length === 0) throw new Errno(EINVAL, 'no group in the container');
    if (this.driver) throw new Errno(EINVAL, 'IOMMU already set');
    const isSpapr = type === VFIO.VFIO_SPAPR_TCE_IOMMU || type === VFIO.VFIO_SPAPR_TCE_v2_IOMMU;
    const isType1 = type === VFIO.VFIO_TYPE1_IOMMU || type === VFIO.VFIO_TYPE1v2_IOMMU;
    if (!isSpapr && !(isType1 && this.daemon.topology.type1Compat)) throw new Errno(ENODEV, `no IOMMU driver for type ${type} on this host`);
    const driver = isSpapr
      ? new SpaprIommu(this, type === VFIO.VFIO_SPAPR_TCE_v2_IOMMU, this.daemon)
      : new Type1Iommu(type === VFIO.VFIO_TYPE1v2_IOMMU, this.daemon);
    // attach_group checks the container's own list, so attach the groups as if one by one.
    const groups = [...this.groups];
    this.groups.length = 0;
    try {
      for (const g of [...groups].reverse()) {
        driver.attachGroup(g, owner);
        this.groups.unshift(g);
      }
    } catch (e) {
      for (const g of [...this.groups]) driver.detachGroup(g);
      driver.release();
      this.groups.splice(0, this.groups.length, ...groups);
      throw e;
    }
    if (driver instanceof SpaprIommu) this.spapr = driver;
    else this.type1 = driver;
    return 0;
  }

  /** VFIO_GROUP_SET_CONTAINER: claim the group's DMA (its PE leaves the host) and attach it if a driver is set. */
  addGroup(g: IommuGroup, owner: string): void {
    g.pe.takeOwnership();
    try {
      this.driver?.attachGroup(g, owner);
    } catch (e) {
      g.pe.releaseOwnership();
      throw e;
    }
    this.groups.unshift(g);
  }

  /** The group leaves and its PE goes back to the host; with the last group the driver is released. */
  removeGroup(g: IommuGroup): void {
    this.driver?.detachGroup(g);
    this.groups.splice(this.groups.indexOf(g), 1);
    g.pe.releaseOwnership();
    if (this.groups.length === 0 && this.driver) {
      this.driver.release();
      this.spapr = undefined;
      this.type1 = undefined;
    }
  }

  /** Closing the container's file alone does nothing while groups hold it. */
  release(): void {
    this.closed = true;
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
