// The TCE backend's side of a bound PCI function: its IOMMU group's PE. Binding claims the group's DMA
// for the context and blocks the PE; attaching programs a TCE domain's windows into it; the last device
// of the group to unbind gives the PE back to the host.
import { EBUSY, EINVAL, EOPNOTSUPP, Errno } from '../../errno.ts';
import { IOMMUFD, TCEFS_EXT } from '../../uapi/constants.ts';
import { decode, encode } from '../../uapi/layout.ts';
import { iommu_hw_info_spapr_tce, iommu_hwpt_spapr_tce } from '../../uapi/structs.ts';
import type { PciFunction } from '../inventory.ts';
import type { DeviceIommu, HwInfo, HwptData, PagingHwpt } from './backend.ts';
import type { IommufdFile } from './context.ts';
import { HwptPaging, type WindowSpec } from './hwpt.ts';
import type { Ioas } from './ioas.ts';

/** Parse IOMMU_HWPT_DATA_SPAPR_TCE: two window slots; a page_shift of 0 leaves a slot empty. */
function spaprWindows(data: Buffer): (WindowSpec | null)[] {
  if (data.length < iommu_hwpt_spapr_tce.size) throw new Errno(EINVAL, `SPAPR TCE data is ${iommu_hwpt_spapr_tce.size} bytes`);
  const v = decode(iommu_hwpt_spapr_tce, data);
  if (v.flags || v.__reserved) throw new Errno(EOPNOTSUPP, 'flags or __reserved');
  return [0, 1].map((slot) => {
    const shift = Number(v[`window${slot}.page_shift`]);
    return shift === 0 ? null : { pageShift: shift, levels: Number(v[`window${slot}.levels`]), windowSize: BigInt(v[`window${slot}.window_size`] as bigint) };
  });
}

export class TceDeviceIommu implements DeviceIommu {
  readonly backend = 'tce';
  /** TCEs carry no dirty bit. */
  readonly dirtyCapable = false;

  constructor(readonly fn: PciFunction) {}

  get group(): object {
    return this.fn.group;
  }

  claim(owner: object): void {
    const g = this.fn.group;
    if (g.dmaOwner && g.dmaOwner !== owner) throw new Errno(EBUSY, `group ${g.id}'s DMA belongs to someone else`);
    if (!g.dmaOwner) {
      g.pe.takeOwnership();
      g.pe.block();
      g.dmaOwner = owner as IommufdFile;
    }
    g.iommufdDevices++;
  }

  unclaim(): void {
    const g = this.fn.group;
    if (--g.iommufdDevices === 0) {
      g.dmaOwner = undefined;
      g.pe.releaseOwnership();
    }
  }

  /** The TCE IOMMU's capabilities, so a client can discover the windows it may create. */
  hwInfo(type: number): HwInfo {
    if (type !== TCEFS_EXT.IOMMU_HW_INFO_TYPE_SPAPR_TCE && type !== IOMMUFD.IOMMU_HW_INFO_TYPE_DEFAULT) {
      throw new Errno(EOPNOTSUPP, `hw info type 0x${type.toString(16)}`);
    }
    const pe = this.fn.group.pe;
    const data = encode(iommu_hw_info_spapr_tce, {
      flags: pe.flavour === 'powernv' ? TCEFS_EXT.IOMMU_HW_INFO_SPAPR_TCE_POWERNV : 0,
      max_dynamic_windows_supported: pe.maxDynamicWindowsSupported,
      max_levels: pe.maxLevels,
      tce32_start: pe.tce32Start,
      tce32_size: pe.tce32Size,
      pgsizes: pe.pgsizes,
      window64_start: pe.window64Start,
    });
    return { type: TCEFS_EXT.IOMMU_HW_INFO_TYPE_SPAPR_TCE, data, capabilities: 0n, maxPasidLog2: 0 };
  }

  /**
   * A paging domain for the device's platform. Without data it has the default 32-bit window; with
   * IOMMU_HWPT_DATA_SPAPR_TCE (a tcefs extension) the caller chooses both windows. No flags exist.
   */
  allocPaging(ioas: Ioas, flags: number, data: HwptData | undefined, account: string): PagingHwpt {
    if (flags) throw new Errno(EOPNOTSUPP, 'TCE domains support no HWPT_ALLOC flags');
    const pe = this.fn.group.pe;
    let windows = HwptPaging.defaultWindows(pe);
    if (data?.type === TCEFS_EXT.IOMMU_HWPT_DATA_SPAPR_TCE) windows = spaprWindows(data.read());
    else if (data) throw new Errno(EOPNOTSUPP, `data_type 0x${data.type.toString(16)}`);
    return HwptPaging.create(ioas.host, ioas, pe, windows, false, ioas.host.account(account));
  }

  autoDomain(ioas: Ioas, account: string): PagingHwpt {
    const pe = this.fn.group.pe;
    return HwptPaging.create(ioas.host, ioas, pe, HwptPaging.defaultWindows(pe), true, ioas.host.account(account));
  }

  attach(hwpt: PagingHwpt): void {
    if (!(hwpt instanceof HwptPaging)) throw new Errno(EINVAL, `a ${hwpt.backend} domain cannot translate for a TCE PE`);
    hwpt.attachPe(this.fn.group.pe);
  }

  detach(hwpt: PagingHwpt): void {
    if (hwpt instanceof HwptPaging) hwpt.detachPe(this.fn.group.pe);
  }
}
