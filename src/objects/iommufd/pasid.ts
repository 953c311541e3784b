// PASID attachments: beside its RID (the device's own translation, IommufdDevice.hwpt), a device may
// translate each PASID through a HWPT of its own. As in drivers/iommu/iommufd/device.c an attachment
// belongs to the device's IOMMU group and PASID, and lists the devices that asked for it; only a HWPT
// made with IOMMU_HWPT_ALLOC_PASID may serve a PASID, and once a PASID is attached the RID may only use
// such a HWPT too. The driver's part is DeviceIommu.setPasid (backend.ts).
import { EBUSY, EINVAL, ENOENT, EOPNOTSUPP, Errno } from '../../errno.ts';
import type { PagingHwpt } from './backend.ts';
import type { IommufdDevice } from './device.ts';

/** IOMMU_NO_PASID: the RID's own translation. */
export const NO_PASID = 0;

interface PasidAttach {
  hwpt: PagingHwpt;
  devices: Set<IommufdDevice>;
}

const byGroup = new WeakMap<object, Map<number, PasidAttach>>();

function attachments(idev: IommufdDevice): Map<number, PasidAttach> {
  let t = byGroup.get(idev.iommu.group);
  if (!t) byGroup.set(idev.iommu.group, (t = new Map()));
  return t;
}

const keys = new WeakMap<IommufdDevice, Map<number, object>>();

/** What the faults a device raises through one PASID (or its RID) are filed under, for the answers a detach owes. */
export function attachmentKey(idev: IommufdDevice, pasid: number): object {
  let m = keys.get(idev);
  if (!m) keys.set(idev, (m = new Map()));
  let k = m.get(pasid);
  if (!k) m.set(pasid, (k = {}));
  return k;
}

/** The HWPT a PASID of the device translates through now. */
export function pasidHwpt(idev: IommufdDevice, pasid: number): PagingHwpt | undefined {
  const a = attachments(idev).get(pasid);
  return a?.devices.has(idev) ? a.hwpt : undefined;
}

/** Page requests still waiting on `hwpt` from this device and PASID are answered INVALID: it no longer translates them. */
export function faultsDetached(idev: IommufdDevice, pasid: number, hwpt: PagingHwpt): void {
  hwpt.fault?.autoRespond(attachmentKey(idev, pasid));
}

/** The RID's rule: a HWPT without IOMMU_HWPT_ALLOC_PASID cannot serve a group that has PASIDs attached. */
export function checkRidAttach(idev: IommufdDevice, hwpt: PagingHwpt): void {
  if (!hwpt.pasidCompat && attachments(idev).size) throw new Errno(EINVAL, `HWPT ${hwpt.id} is not PASID-compatible and PASIDs are attached`);
}

function checkPasidAttach(idev: IommufdDevice, hwpt: PagingHwpt): void {
  if (!hwpt.pasidCompat) throw new Errno(EINVAL, `HWPT ${hwpt.id} was not made with IOMMU_HWPT_ALLOC_PASID`);
  if (idev.hwpt && !idev.hwpt.pasidCompat) throw new Errno(EINVAL, `the RID's HWPT ${idev.hwpt.id} is not PASID-compatible`);
}

/**
 * The HWPT `ptId` names for a PASID. An IOAS would get an automatic domain, which is never made
 * PASID-compatible, so it is EINVAL as every such attempt is on the kernel.
 */
function target(idev: IommufdDevice, ptId: number): PagingHwpt {
  const o = idev.ctx.objects.find(ptId);
  if (!o) throw new Errno(ENOENT, `no object ${ptId}`);
  if (o.kind === 'ioas') throw new Errno(EINVAL, 'an automatic domain cannot serve a PASID');
  if (o.kind !== 'hwpt_paging' && o.kind !== 'hwpt_nested') throw new Errno(EINVAL, `cannot attach a PASID to a ${o.kind}`);
  return o as PagingHwpt;
}

function setPasid(idev: IommufdDevice, pasid: number, hwpt: PagingHwpt | undefined): void {
  if (!idev.iommu.setPasid) throw new Errno(EOPNOTSUPP, `a ${idev.iommu.backend} device has no PASIDs`);
  if (hwpt && hwpt.backend !== idev.iommu.backend) throw new Errno(EINVAL, `a ${hwpt.backend} domain cannot translate for a ${idev.iommu.backend} device`);
  idev.iommu.setPasid(pasid, hwpt);
}

/** iommufd_device_attach with a PASID: EBUSY if the device has that PASID attached already. */
export function pasidAttach(idev: IommufdDevice, pasid: number, ptId: number): PagingHwpt {
  const hwpt = target(idev, ptId);
  const t = attachments(idev);
  const a = t.get(pasid);
  if (a?.devices.has(idev)) throw new Errno(EBUSY, `PASID ${pasid} is attached already`);
  if (a && a.hwpt !== hwpt) throw new Errno(EINVAL, `PASID ${pasid} of the group uses HWPT ${a.hwpt.id}`);
  if (a) a.devices.add(idev);
  else {
    checkPasidAttach(idev, hwpt);
    setPasid(idev, pasid, hwpt);
    t.set(pasid, { hwpt, devices: new Set([idev]) });
  }
  hwpt.users++;
  return hwpt;
}

/** iommufd_device_replace with a PASID: only an attached PASID, to a HWPT that may serve it. */
export function pasidReplace(idev: IommufdDevice, pasid: number, ptId: number): PagingHwpt {
  const hwpt = target(idev, ptId);
  const a = attachments(idev).get(pasid);
  if (!a || !a.devices.has(idev)) throw new Errno(EINVAL, `PASID ${pasid} is not attached`);
  const old = a.hwpt;
  if (hwpt === old) return hwpt;
  checkPasidAttach(idev, hwpt);
  setPasid(idev, pasid, hwpt);
  for (const d of a.devices) faultsDetached(d, pasid, old);
  a.hwpt = hwpt;
  hwpt.users += a.devices.size;
  old.users -= a.devices.size;
  return hwpt;
}

/** iommufd_device_detach with a PASID: nothing if it is not attached. */
export function pasidDetach(idev: IommufdDevice, pasid: number): void {
  const t = attachments(idev);
  const a = t.get(pasid);
  if (!a || !a.devices.delete(idev)) return;
  if (!a.devices.size) {
    idev.iommu.setPasid?.(pasid, undefined);
    t.delete(pasid);
  }
  faultsDetached(idev, pasid, a.hwpt);
  a.hwpt.users--;
}

/** The device is unbound: its PASIDs go first. */
export function pasidDetachAll(idev: IommufdDevice): void {
  for (const [pasid, a] of [...attachments(idev)]) if (a.devices.has(idev)) pasidDetach(idev, pasid);
}
