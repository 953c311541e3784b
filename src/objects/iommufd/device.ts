// A device bound to an iommufd context (VFIO_DEVICE_BIND_IOMMUFD, a group's GET_DEVICE_FD in compat
// mode, or a selftest mock device). Binding claims the device's group for the context with DMA blocked;
// ATTACH points it at a paging domain; DETACH (which cannot fail) and unbinding block it again. What
// claiming and attaching mean is the backend's business (backend.ts: a TCE PE, a mock device).
import { EINVAL, EPERM, Errno } from '../../errno.ts';
import type { PciFunction } from '../inventory.ts';
import type { DeviceIommu, PagingHwpt } from './backend.ts';
import type { IommufdFile } from './context.ts';
import type { IommufdObject } from './id-table.ts';
import type { Ioas } from './ioas.ts';
import { checkRidAttach, faultsDetached, NO_PASID, pasidDetachAll } from './pasid.ts';
import { TceDeviceIommu } from './tce-iommu.ts';

export class IommufdDevice implements IommufdObject {
  readonly kind = 'device';
  id = 0;
  /** The table's reference and the binding driver's: user space can never destroy a bound device. */
  users = 2;
  hwpt?: PagingHwpt;

  private constructor(
    readonly ctx: IommufdFile,
    readonly iommu: DeviceIommu,
    /** Bound from outside the context (a VFIO device file), so the binding keeps the context alive. */
    private readonly external: boolean,
  ) {}

  /** The PCI function behind a TCE-backed device; a mock device has none. */
  get fn(): PciFunction | undefined {
    return this.iommu instanceof TceDeviceIommu ? this.iommu.fn : undefined;
  }

  static bind(ctx: IommufdFile, fn: PciFunction): IommufdDevice {
    return IommufdDevice.bindIommu(ctx, new TceDeviceIommu(fn));
  }

  /** @param external the binding lives outside the context (a device file), not in one of its objects */
  static bindIommu(ctx: IommufdFile, iommu: DeviceIommu, external = true): IommufdDevice {
    iommu.claim(ctx);
    try {
      const dev = ctx.objects.insert(new IommufdDevice(ctx, iommu, external));
      if (external) ctx.bound++;
      return dev;
    } catch (e) {
      iommu.unclaim(ctx);
      throw e;
    }
  }

  /** ATTACH_IOMMUFD_PT: to an IOAS (an automatic domain) or a paging HWPT; an attached device is replaced. */
  attach(target: IommufdObject, owner: string): PagingHwpt {
    if (target.kind === 'hwpt_paging') return this.attachTo(target as PagingHwpt);
    if (target.kind !== 'ioas') throw new Errno(EINVAL, `cannot attach to a ${target.kind}`);
    const ioas = target as Ioas;
    // Existing automatic domains first; one answering EINVAL (or a platform's EPERM) does not fit.
    for (const d of [...ioas.domains] as Partial<PagingHwpt>[]) {
      if (d.kind !== 'hwpt_paging' || !d.auto) continue;
      try {
        return this.attachTo(d as PagingHwpt);
      } catch (e) {
        if (!(e instanceof Errno) || (e.errno !== EINVAL && e.errno !== EPERM)) throw e;
      }
    }
    const d = this.ctx.objects.insert(this.iommu.autoDomain(ioas, owner));
    try {
      return this.attachTo(d);
    } catch (e) {
      this.dropIfUnused(d);
      throw e;
    }
  }

  private attachTo(hwpt: PagingHwpt): PagingHwpt {
    if (hwpt === this.hwpt) return hwpt;
    // Devices of one group share its translation, so they share its domain.
    for (const o of this.ctx.objects.values()) {
      if (o instanceof IommufdDevice && o !== this && o.iommu.group === this.iommu.group && o.hwpt && o.hwpt !== hwpt) {
        throw new Errno(EINVAL, `device ${o.id} of the same group is attached to HWPT ${o.hwpt.id}`);
      }
    }
    checkRidAttach(this, hwpt);
    const old = this.hwpt;
    if (old) this.iommu.detach(old);
    try {
      this.iommu.attach(hwpt);
    } catch (e) {
      if (old) this.iommu.attach(old);
      throw e;
    }
    hwpt.users++;
    this.hwpt = hwpt;
    if (old) {
      faultsDetached(this, NO_PASID, old);
      this.release(old);
    }
    return hwpt;
  }

  detach(): void {
    const old = this.hwpt;
    if (!old) return;
    this.iommu.detach(old);
    this.hwpt = undefined;
    faultsDetached(this, NO_PASID, old);
    this.release(old);
  }

  private release(hwpt: PagingHwpt): void {
    hwpt.users--;
    this.dropIfUnused(hwpt);
  }

  /** An automatic domain goes with its last device; its ID is then unknown (ENOENT). */
  private dropIfUnused(hwpt: PagingHwpt): void {
    if (hwpt.auto && hwpt.users === 1 && this.ctx.objects.find(hwpt.id) === hwpt) this.ctx.objects.remove(hwpt);
  }

  /** The binding is gone: detach, leave the table, give the group back when it was the last. */
  unbind(): void {
    pasidDetachAll(this);
    this.detach();
    this.users = 1;
    if (this.ctx.objects.find(this.id) === this) this.ctx.objects.remove(this);
    this.iommu.unclaim(this.ctx);
    if (this.external) this.ctx.deviceUnbound();
  }
}
