// VFIO_DEVICE_GET_PCI_HOT_RESET_INFO and VFIO_DEVICE_PCI_HOT_RESET, after vfio-pci's rules.
//
// An emulated function has no reset slot, so a hot reset is a secondary bus reset: it resets every
// function on the device's bus, and the kernel allows it only when the caller owns all of them. From the
// group path the caller proves it with the group fds it passes (every function's group must be among
// them); from a cdev with an empty array and its iommufd (every function bound to that iommufd, or in a
// group one of whose devices is). The kernel's set of functions reset together (its dev_set) is every
// vfio-pci function on the bus, here every emulated function on it that is not unplugged.
import type { IoctlCall } from '../../dispatch/call.ts';
import type { OpenFile } from '../../dispatch/open-file.ts';
import { EBADF, EINVAL, ENOSPC, Errno } from '../../errno.ts';
import { HANDLE_FOREIGN, HANDLE_NONE } from '../../transport/frame.ts';
import { vfio_pci_dependent_device, vfio_pci_hot_reset, vfio_pci_hot_reset_info } from '../../uapi/structs.ts';
import type { IommufdFile } from '../iommufd/context.ts';
import type { IommufdDevice } from '../iommufd/device.ts';
import type { IommuGroup, PciFunction } from '../inventory.ts';

const FLAG_DEV_ID = 1;
const FLAG_DEV_ID_OWNED = 2;
const DEVID_OWNED = 0;
const DEVID_NOT_OWNED = -1;

/** What a hot reset of one device needs to know, passed in by the device file. */
export interface ResetScope {
  fn: PciFunction;
  /** Every function of the host (the inventory's). */
  functions: Iterable<PciFunction>;
  /** The iommufd the device is bound to, when it was opened as a cdev. */
  iommufd?: IommufdFile;
  viaCdev: boolean;
  /** A client's file by handle (for the group fds of PCI_HOT_RESET). */
  file(handle: number): OpenFile | undefined;
}

const busOf = (bdf: string) => bdf.slice(0, bdf.lastIndexOf(':'));

/** The functions a reset of `fn` resets with it: those on its bus, in BDF order. */
function busFunctions(s: ResetScope): PciFunction[] {
  const bus = busOf(s.fn.bdf);
  return [...s.functions].filter((f) => !f.removed && busOf(f.bdf) === bus).sort((a, b) => (a.bdf < b.bdf ? -1 : 1));
}

/** vfio_iommufd_get_dev_id: the function's ID in `ctx`, -ENOENT-like OWNED if its group is, else NOT_OWNED. */
function devId(ctx: IommufdFile, fn: PciFunction): number {
  const devices = ctx.objects.values().filter((o) => o.kind === 'device') as IommufdDevice[];
  const own = devices.find((d) => d.fn === fn);
  if (own) return own.id;
  return devices.some((d) => d.fn?.group === fn.group) ? DEVID_OWNED : DEVID_NOT_OWNED;
}

export function hotResetInfo(s: ResetScope, call: IoctlCall): void {
  call.vfioCopyIn();
  const minsz = call.decl.minsz!;
  const deps = busFunctions(s);
  const room = Math.floor((call.get('argsz') - vfio_pci_hot_reset_info.size) / vfio_pci_dependent_device.size);
  if (deps.length > room) {
    call.set('flags', 0);
    call.set('count', deps.length);
    call.copyOut(minsz);
    throw new Errno(ENOSPC, `${deps.length} dependent devices, room for ${Math.max(room, 0)}`);
  }
  let flags = s.viaCdev ? FLAG_DEV_ID | FLAG_DEV_ID_OWNED : 0;
  const out = Buffer.alloc(deps.length * vfio_pci_dependent_device.size);
  deps.forEach((d, k) => {
    const at = k * vfio_pci_dependent_device.size;
    const [segment, bus, slot, func] = d.bdf.split(/[:.]/).map((x) => parseInt(x, 16));
    if (s.viaCdev) {
      const id = devId(s.iommufd!, d);
      if (id === DEVID_NOT_OWNED) flags &= ~FLAG_DEV_ID_OWNED;
      out.writeInt32LE(id, at);
    } else out.writeUInt32LE(d.group.id, at);
    out.writeUInt16LE(segment, at + 4);
    out.writeUInt8(bus, at + 6);
    out.writeUInt8((slot << 3) | func, at + 7);
  });
  call.writeUser(vfio_pci_hot_reset_info.size, out);
  call.set('flags', flags);
  call.set('count', deps.length);
  call.copyOut(minsz);
}

export function hotReset(s: ResetScope, call: IoctlCall): void {
  call.vfioCopyIn();
  if (call.get('flags')) throw new Errno(EINVAL, 'flags');
  const count = call.get('count');
  // An empty array is for cdev-opened devices only, and only they may pass one.
  if (!!count === s.viaCdev) throw new Errno(EINVAL, s.viaCdev ? 'a cdev passes no group fds' : 'no group fds');
  const deps = busFunctions(s);
  let owned: (fn: PciFunction) => boolean;
  if (count) {
    if (count > deps.length) throw new Errno(EINVAL, `${count} group fds for ${deps.length} devices`);
    const base = vfio_pci_hot_reset.size;
    const fds = call.copyIn(base + 4 * count);
    const groups = new Set<IommuGroup>();
    for (let k = 0; k < count; k++) {
      const handle = fds.readInt32LE(base + 4 * k);
      if (handle === HANDLE_FOREIGN) throw new Errno(EINVAL, `group_fds[${k}] is not a VFIO group`);
      const file = handle < 0 || handle === HANDLE_NONE ? undefined : s.file(handle);
      if (!file) throw new Errno(EBADF, `group_fds[${k}] is not open`);
      if (file.kind !== 'group') throw new Errno(EINVAL, `group_fds[${k}] is a ${file.kind}`);
      groups.add((file as OpenFile & { group: IommuGroup }).group);
    }
    owned = (fn) => groups.has(fn.group);
  } else {
    const ctx = s.iommufd!;
    owned = (fn) => devId(ctx, fn) !== DEVID_NOT_OWNED;
  }
  const stranger = deps.find((fn) => !owned(fn));
  if (stranger) throw new Errno(EINVAL, `${stranger.bdf} is not the caller's`);
  // The bus reset: each function's config space returns to its power-on state, as VFIO_DEVICE_RESET does.
  for (const fn of deps) fn.reset();
}
