// A device bound to an iommufd context (VFIO_DEVICE_BIND_IOMMUFD, or a group's GET_DEVICE_FD in compat
// mode). Binding claims the group's DMA for the context and puts its PE in the BLOCKED state; ATTACH
// programs a domain's windows into the PE; DETACH (which cannot fail) and unbinding block it again; the
// last device of a group to unbind gives the PE back to the host.
import { EBUSY, EINVAL, EPERM, Errno } from '../../errno.ts';
import type { PciFunction } from '../inventory.ts';
import type { IommufdFile } from './context.ts';
import { HwptPaging } from './hwpt.ts';
import type { IommufdObject } from './id-table.ts';
import type { Ioas } from './ioas.ts';

export class IommufdDevice implements IommufdObject {
  readonly kind = 'device';
  id = 0;
  /** The table's reference and the binding driver's: user space can never destroy a bound device. */
  users = 2;
  hwpt?: HwptPaging;

  private constructor(readonly ctx: IommufdFile, readonly fn: PciFunction) {}

  static bind(ctx: IommufdFile, fn: PciFunction): IommufdDevice {
    const g = fn.group;
    if (g.dmaOwner && g.dmaOwner !== ctx) throw new Errno(EBUSY, `group ${g.id}'s DMA belongs to someone else`);
    return ctx.objects.create(() => {
      if (!g.dmaOwner) {
        g.pe.takeOwnership();
        g.pe.block();
        g.dmaOwner = ctx;
      }
      g.iommufdDevices++;
      ctx.bound++;
      return new IommufdDevice(ctx, fn);
    });
  }

  /** ATTACH_IOMMUFD_PT: to an IOAS (an automatic domain) or a paging HWPT; an attached device is replaced. */
  attach(target: IommufdObject, owner: string): HwptPaging {
    if (target.kind === 'hwpt_paging') return this.attachTo(target as HwptPaging);
    if (target.kind !== 'ioas') throw new Errno(EINVAL, `cannot attach to a ${target.kind}`);
    const ioas = target as Ioas;
    // Existing automatic domains first; one answering EINVAL (or a platform's EPERM) does not fit.
    for (const d of [...ioas.domains]) {
      if (!(d instanceof HwptPaging) || !d.auto) continue;
      try {
        return this.attachTo(d);
      } catch (e) {
        if (!(e instanceof Errno) || (e.errno !== EINVAL && e.errno !== EPERM)) throw e;
      }
    }
    const pe = this.fn.group.pe;
    const host = this.ctx.daemon.host;
    const d = this.ctx.objects.create(() => HwptPaging.create(host, ioas, pe, HwptPaging.defaultWindows(pe), true, host.account(owner)));
    try {
      return this.attachTo(d);
    } catch (e) {
      this.dropIfUnused(d);
      throw e;
    }
  }

  private attachTo(hwpt: HwptPaging): HwptPaging {
    if (hwpt === this.hwpt) return hwpt;
    // Devices of one group share its PE, so they share its domain.
    for (const o of this.ctx.objects.values()) {
      if (o instanceof IommufdDevice && o !== this && o.fn.group === this.fn.group && o.hwpt && o.hwpt !== hwpt) {
        throw new Errno(EINVAL, `device ${o.id} of the same group is attached to HWPT ${o.hwpt.id}`);
      }
    }
    // The device's reserved regions are enforced on the IOAS before anything changes (iommufd's point).
    this.ctx.daemon.host.faults.check('iommufd', EINVAL, 'reserved regions');
    const old = this.hwpt;
    const pe = this.fn.group.pe;
    if (old) old.detachPe(pe);
    try {
      hwpt.attachPe(pe);
    } catch (e) {
      if (old) old.attachPe(pe);
      throw e;
    }
    hwpt.users++;
    this.hwpt = hwpt;
    if (old) this.release(old);
    return hwpt;
  }

  detach(): void {
    const old = this.hwpt;
    if (!old) return;
    old.detachPe(this.fn.group.pe);
    this.hwpt = undefined;
    this.release(old);
  }

  private release(hwpt: HwptPaging): void {
    hwpt.users--;
    this.dropIfUnused(hwpt);
  }

  /** An automatic domain goes with its last device; its ID is then unknown (ENOENT). */
  private dropIfUnused(hwpt: HwptPaging): void {
    if (hwpt.auto && hwpt.users === 1 && this.ctx.objects.find(hwpt.id) === hwpt) this.ctx.objects.remove(hwpt);
  }

  /** The device file is gone: detach, leave the table, give the group back when it was the last. */
  unbind(): void {
    this.detach();
    this.users = 1;
    if (this.ctx.objects.find(this.id) === this) this.ctx.objects.remove(this);
    const g = this.fn.group;
    if (--g.iommufdDevices === 0) {
      g.dmaOwner = undefined;
      g.pe.releaseOwnership();
    }
    this.ctx.deviceUnbound();
  }
}
