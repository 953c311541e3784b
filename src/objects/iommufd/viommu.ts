// vIOMMUs and vDEVICEs: IOMMU_VIOMMU_ALLOC over a nesting parent HWPT (which it holds), and
// IOMMU_VDEVICE_ALLOC, which gives a bound device its virtual ID on one vIOMMU (one vDEVICE per device,
// one device per virtual ID). The core's checks are drivers/iommu/iommufd/viommu.c's, in its order; what
// a vIOMMU does (nested domains, invalidations, events) is its backend's (backend.ts Viommu). A vDEVICE
// goes when its device is unbound, so its ID is then unknown. The TCE backend has no vIOMMU type: on a
// TCE host every type is EOPNOTSUPP, as on POWER.
import type { IoctlCall } from '../../dispatch/call.ts';
import { EEXIST, EINVAL, EOPNOTSUPP, Errno } from '../../errno.ts';
import { IOMMUFD } from '../../uapi/constants.ts';
import type { HwptData, PagingHwpt, Viommu } from './backend.ts';
import type { IommufdFile } from './context.ts';
import type { IommufdDevice } from './device.ts';
import type { VeventQueue } from './eventq.ts';
import type { IommufdObject } from './id-table.ts';
import { readUserMemory } from './user-memory.ts';

/** What every vIOMMU keeps, whatever its backend: the parent it holds, its vDEVICEs and vEVENTQs. */
export abstract class ViommuCore implements Viommu {
  readonly kind = 'viommu';
  id = 0;
  users = 1;
  /** vDEVICEs by virtual ID. */
  readonly vdevs = new Map<bigint, Vdevice>();
  /** vEVENTQs by type (eventq.ts). */
  readonly veventqs = new Map<number, VeventQueue>();

  constructor(readonly backend: string, readonly hwpt: PagingHwpt, readonly type: number) {
    hwpt.users++;
  }

  /** The virtual ID of the vDEVICE `device` (a DeviceIommu) has here. */
  virtIdOf(device: object): bigint | undefined {
    for (const [id, v] of this.vdevs) if (v.idev.iommu === device) return id;
    return undefined;
  }

  /** The device whose vDEVICE has `virtId` here. */
  deviceOf(virtId: bigint): IommufdDevice | undefined {
    return this.vdevs.get(virtId)?.idev;
  }

  destroy(): void {
    this.hwpt.users--;
  }
}

const vdevOf = new WeakMap<IommufdDevice, Vdevice>();

export class Vdevice implements IommufdObject {
  readonly kind = 'vdevice';
  id = 0;
  users = 1;

  constructor(readonly viommu: ViommuCore, readonly idev: IommufdDevice, readonly virtId: bigint) {
    viommu.vdevs.set(virtId, this);
    viommu.users++;
    vdevOf.set(idev, this);
  }

  destroy(): void {
    this.viommu.vdevs.delete(this.virtId);
    this.viommu.users--;
    vdevOf.delete(this.idev);
  }
}

/** The device is being unbound: its vDEVICE goes with it (its ID is then unknown). */
export function dropVdevice(idev: IommufdDevice): void {
  const v = vdevOf.get(idev);
  if (v && idev.ctx.objects.find(v.id) === v) idev.ctx.objects.remove(v);
}

function viommuAlloc(f: IommufdFile, call: IoctlCall): void {
  const type = call.get('type');
  if (call.get('flags') || type === IOMMUFD.IOMMU_VIOMMU_TYPE_DEFAULT) throw new Errno(EOPNOTSUPP, 'flags or type');
  const dev = f.objects.get<IommufdDevice>(call.get('dev_id'), 'device');
  if (!dev.iommu.viommuType?.(type) || !dev.iommu.allocViommu) throw new Errno(EOPNOTSUPP, `a ${dev.iommu.backend} IOMMU has no vIOMMU of type 0x${type.toString(16)}`);
  const hwpt = f.objects.get<PagingHwpt>(call.get('hwpt_id'), 'hwpt_paging');
  if (!hwpt.nestParent) throw new Errno(EINVAL, `HWPT ${hwpt.id} is not a nesting parent`);
  const len = call.get('data_len');
  const uptr = call.get64('data_uptr');
  let bytes: Buffer | undefined;
  // The driver data lies behind data_uptr for data_len bytes, read when the driver copies it.
  const data: HwptData | undefined = len
    ? {
        type,
        length: len,
        get bytes() {
          return (bytes ??= readUserMemory(call.pid, uptr, len));
        },
      }
    : undefined;
  const { viommu, out } = dev.iommu.allocViommu(type, hwpt, data);
  f.objects.insert(viommu);
  try {
    if (out) call.writePointer('data_uptr', out);
    call.set('out_viommu_id', viommu.id);
    call.respond();
  } catch (e) {
    f.objects.remove(viommu);
    throw e;
  }
}

function vdeviceAlloc(f: IommufdFile, call: IoctlCall): void {
  const virtId = call.get64('virt_id');
  const viommu = f.objects.get<ViommuCore>(call.get('viommu_id'), 'viommu');
  const idev = f.objects.get<IommufdDevice>(call.get('dev_id'), 'device');
  if (idev.iommu.backend !== viommu.backend) throw new Errno(EINVAL, `device ${idev.id} is behind another IOMMU`);
  if (vdevOf.has(idev)) throw new Errno(EEXIST, `device ${idev.id} has a vDEVICE`);
  if (viommu.vdevs.has(virtId)) throw new Errno(EEXIST, `virtual ID 0x${virtId.toString(16)} is taken`);
  const v = new Vdevice(viommu, idev, virtId);
  try {
    f.objects.insert(v);
    call.set('out_vdevice_id', v.id);
    call.respond();
  } catch (e) {
    if (f.objects.find(v.id) === v) f.objects.remove(v);
    else v.destroy();
    throw e;
  }
}

export const viommuCommands = {
  IOMMU_VIOMMU_ALLOC: viommuAlloc,
  IOMMU_VDEVICE_ALLOC: vdeviceAlloc,
};
