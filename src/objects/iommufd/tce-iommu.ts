// The TCE backend's side of a bound PCI function: its IOMMU group's PE. Binding claims the group's DMA
// for the context and blocks the PE; attaching programs a TCE domain's windows into it; the last device
// of the group to unbind gives the PE back to the host.
import { EBUSY, EINVAL, Errno } from '../../errno.ts';
import type { PciFunction } from '../inventory.ts';
import type { DeviceIommu, PagingHwpt } from './backend.ts';
import type { IommufdFile } from './context.ts';
import { HwptPaging } from './hwpt.ts';
import type { Ioas } from './ioas.ts';

export class TceDeviceIommu implements DeviceIommu {
  readonly backend = 'tce';

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
