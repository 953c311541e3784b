// vIOMMUs and vDEVICEs: IOMMU_VIOMMU_ALLOC over a nesting parent HWPT (which it holds), and
// IOMMU_VDEVICE_ALLOC, which gives a bound device its virtual ID on one vIOMMU (one vDEVICE per device,
// one device per virtual ID). The core's checks are drivers/iommu/iommufd/viommu.c's, in its order; what
// a vIOMMU does (nested domains, invalidations, events) is its backend's (backend.ts Viommu). A vDEVICE
// goes when its device is unbound, so its ID is then unknown. The TCE backend has no vIOMMU type: on a
// TCE host every type is EOPNOTSUPP, as on POWER.
import type { IoctlCall } from '../../dispatch/call.ts';
import { EEXIST, EFAULT, EINVAL, EOPNOTSUPP, EOVERFLOW, ERANGE, Errno } from '../../errno.ts';
import { IOMMUFD } from '../../uapi/constants.ts';
import type { HwptData, NestedHwpt, PagingHwpt, Viommu } from './backend.ts';
import type { InvalidateResult, UserDataArray } from './user-data.ts';
import type { IommufdFile } from './context.ts';
import type { IommufdDevice } from './device.ts';
import type { VeventQueue } from './eventq.ts';
import type { IommufdObject } from './id-table.ts';
import { U64_MAX } from './ranges.ts';
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

  // The driver's ops (backend.ts Viommu); a backend defines those it has.
  allocNested?(flags: number, data: HwptData): NestedHwpt;
  invalidate?(array: UserDataArray): InvalidateResult;
  hwQueueType?(type: number): boolean;
  initHwQueue?(queue: IommufdObject, index: number): () => void;

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
        read: () => (bytes ??= readUserMemory(call.pid, uptr, len)),
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

/**
 * IOMMU_HW_QUEUE_ALLOC: a queue of the vIOMMU's hardware in guest memory at nesting_parent_iova. The core
 * pins the host pages under it through the parent's IOAS (physically contiguous, or EFAULT) and holds
 * their areas (UNMAP is EBUSY) for the queue's life; the driver does the rest.
 */
export class HwQueue implements IommufdObject {
  readonly kind = 'hw_queue';
  id = 0;
  users = 1;
  /** The driver's destroy, once it has taken the queue. */
  driverDestroy?: () => void;

  constructor(
    readonly viommu: ViommuCore,
    readonly index: number,
    private readonly hold: { release(): void },
    private readonly unpin: () => void,
  ) {
    viommu.users++;
  }

  destroy(): void {
    this.driverDestroy?.();
    this.driverDestroy = undefined;
    this.hold.release();
    this.unpin();
    this.viommu.users--;
  }
}

function hwQueueAlloc(f: IommufdFile, call: IoctlCall): void {
  const type = call.get('type');
  if (call.get('flags') || type === IOMMUFD.IOMMU_HW_QUEUE_TYPE_DEFAULT) throw new Errno(EOPNOTSUPP, 'flags or type');
  const length = call.get64('length');
  const iova = call.get64('nesting_parent_iova');
  if (length === 0n) throw new Errno(EINVAL, 'length 0');
  if (iova + length - 1n > U64_MAX) throw new Errno(EOVERFLOW, 'range wraps');
  const viommu = f.objects.get<ViommuCore>(call.get('viommu_id'), 'viommu');
  if (!viommu.hwQueueType?.(type) || !viommu.initHwQueue) throw new Errno(EOPNOTSUPP, `vIOMMU ${viommu.id} has no hardware queue of type 0x${type.toString(16)}`);
  // Whole host pages around the queue.
  const ioas = viommu.hwpt.ioas;
  const memory = ioas.host.memory;
  const mask = memory.pageSize - 1n;
  const start = iova & ~mask;
  const end = iova + length + mask;
  if (end > U64_MAX + 1n) throw new Errno(ERANGE, 'the page-aligned range wraps');
  const last = (end & ~mask) - 1n;
  const hold = ioas.lock(start, last);
  const pinned: { owner: string; ua: bigint; len: bigint }[] = [];
  const unpin = () => {
    for (const p of pinned.splice(0)) memory.unpin(p.owner, p.ua, p.len);
  };
  let q: HwQueue | undefined;
  try {
    const slices = ioas.slices(start, last - start + 1n);
    // Synthetic host memory is contiguous exactly where one owner's user addresses are.
    for (let i = 1; i < slices.length; i++) {
      const prev = slices[i - 1];
      if (slices[i].owner !== prev.owner || slices[i].userVa !== prev.userVa + (prev.last - prev.start + 1n)) throw new Errno(EFAULT, 'the queue memory is not physically contiguous');
    }
    for (const sl of slices) {
      const len = sl.last - sl.start + 1n;
      memory.pin(sl.owner, sl.userVa, len);
      pinned.push({ owner: sl.owner, ua: sl.userVa, len });
    }
    q = new HwQueue(viommu, call.get('index'), hold, unpin);
    q.driverDestroy = viommu.initHwQueue(q, q.index);
    f.objects.insert(q);
    call.set('out_hw_queue_id', q.id);
    call.respond();
  } catch (e) {
    if (q && f.objects.find(q.id) === q) f.objects.remove(q);
    else if (q) q.destroy();
    else {
      unpin();
      hold.release();
    }
    throw e;
  }
}

export const viommuCommands = {
  IOMMU_VIOMMU_ALLOC: viommuAlloc,
  IOMMU_VDEVICE_ALLOC: vdeviceAlloc,
  IOMMU_HW_QUEUE_ALLOC: hwQueueAlloc,
};
