// VFIO_DEVICE_FEATURE and VFIO_DEVICE_IOEVENTFD on a vfio-pci device, in the order of checks of
// drivers/vfio/vfio_main.c (the feature multiplexer) and drivers/vfio/pci (vfio-pci's own features).
//
// vfio-pci has no migration or DMA-logging ops, so those features are ENOTTY; it has the runtime-PM
// features (LOW_POWER_*), the VF token of an SR-IOV physical function, and DMA_BUF export. tcefs keeps
// the low-power state; it cannot export a dma-buf or watch an eventfd (docs/c-programs.md).
import { readlinkSync } from 'node:fs';
import type { IoctlCall } from '../../dispatch/call.ts';
import { EBADF, EINVAL, ENODEV, ENOSPC, ENOTTY, EOPNOTSUPP, Errno } from '../../errno.ts';
import { VFIO } from '../../uapi/constants.ts';
import { vfio_device_feature, vfio_device_low_power_entry_with_wakeup } from '../../uapi/structs.ts';
import type { PciFunction } from '../inventory.ts';
import { regionInfo } from './device.ts';

const { VFIO_DEVICE_FEATURE_GET: GET, VFIO_DEVICE_FEATURE_SET: SET, VFIO_DEVICE_FEATURE_PROBE: PROBE } = VFIO;
const HEADER = vfio_device_feature.size;
/** VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 (Linux 7.3; test/fixtures/linux-7.3-uapi-additions.json). */
const MIG_PRECOPY_INFO_V2 = 12;

/** Functions in runtime low power (the kernel's pm_runtime_engaged), per function as on the kernel. */
const lowPower = new WeakSet<PciFunction>();

/**
 * vfio_check_feature: the operations a feature supports, PROBE, and the payload size. Returns false for
 * a PROBE that passed (the call then succeeds with nothing done), true when the feature should run.
 */
function checkFeature(flags: number, payload: number, supported: number, minsz: number): boolean {
  if (flags & (GET | SET) & ~supported) throw new Errno(EINVAL, 'operation not supported by the feature');
  if (flags & PROBE) return false;
  if (!(flags & (GET | SET))) throw new Errno(EINVAL, 'neither GET nor SET');
  if (payload < minsz) throw new Errno(EINVAL, `payload ${payload} < ${minsz}`);
  return true;
}

/** What a client's fd is, read from /proc (the daemon runs on the client's machine); unknown without a pid. */
function clientFd(pid: number, fd: number): 'closed' | 'eventfd' | 'other' | 'unknown' {
  if (!pid) return 'unknown';
  try {
    return readlinkSync(`/proc/${pid}/fd/${fd}`) === 'anon_inode:[eventfd]' ? 'eventfd' : 'other';
  } catch {
    return 'closed';
  }
}

export function deviceFeature(fn: PciFunction, call: IoctlCall): number {
  call.vfioCopyIn();
  const flags = call.get('flags');
  if (flags & ~(VFIO.VFIO_DEVICE_FEATURE_MASK | GET | SET | PROBE)) throw new Errno(EINVAL, 'unknown flags');
  if (!(flags & PROBE) && flags & SET && flags & GET) throw new Errno(EINVAL, 'GET and SET without PROBE');
  const payload = call.get('argsz') - HEADER;
  const feature = flags & VFIO.VFIO_DEVICE_FEATURE_MASK;
  switch (feature) {
    // The core's migration and DMA-logging features need a migration driver; vfio-pci is none.
    case VFIO.VFIO_DEVICE_FEATURE_MIGRATION:
    case VFIO.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
    case VFIO.VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
    case VFIO.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
    case VFIO.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
    case VFIO.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE:
      throw new Errno(ENOTTY, 'vfio-pci has no migration or logging ops');
    case MIG_PRECOPY_INFO_V2:
      throw new Errno(EINVAL, 'the device does not migrate with PRE_COPY');
    case VFIO.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY:
      if (!checkFeature(flags, payload, SET, 0)) return 0;
      return enterLowPower(fn);
    case VFIO.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP: {
      if (!checkFeature(flags, payload, SET, vfio_device_low_power_entry_with_wakeup.size)) return 0;
      const fd = call.copyIn(HEADER + vfio_device_low_power_entry_with_wakeup.size).readInt32LE(HEADER);
      if (fd < 0) throw new Errno(EINVAL, 'wakeup_eventfd < 0');
      const what = clientFd(call.pid, fd);
      if (what === 'closed') throw new Errno(EBADF, `fd ${fd} is not open`);
      if (what === 'other') throw new Errno(EINVAL, `fd ${fd} is not an eventfd`);
      // The kernel signals the eventfd when the function wakes; an emulated function never sleeps, so
      // the eventfd is never signalled (the irq helper's delivery path is not involved).
      return enterLowPower(fn);
    }
    case VFIO.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT:
      if (!checkFeature(flags, payload, SET, 0)) return 0;
      lowPower.delete(fn);
      return 0;
    case VFIO.VFIO_DEVICE_FEATURE_PCI_VF_TOKEN:
      // Only an SR-IOV physical function has a VF token, and the topology declares no SR-IOV.
      throw new Errno(ENOTTY, 'not an SR-IOV physical function');
    case VFIO.VFIO_DEVICE_FEATURE_DMA_BUF:
      // As a vfio-pci without dma-buf export (its first check, before PROBE): tcefs has no dma-buf to give.
      throw new Errno(EOPNOTSUPP, 'no dma-buf export');
    default:
      // BUS_MASTER is CDX's, ZPCI_ERROR s390's; everything else is unknown.
      throw new Errno(ENOTTY, `feature ${feature}`);
  }
}

function enterLowPower(fn: PciFunction): number {
  if (lowPower.has(fn)) throw new Errno(EINVAL, 'already in low power');
  lowPower.add(fn);
  return 0;
}

/**
 * VFIO_DEVICE_IOEVENTFD: every argument check of vfio-pci, then the answer of a function whose ioeventfd
 * table is full (ENOSPC), since the daemon cannot see the client's eventfd. Callers such as QEMU fall
 * back to trapping the write, which tcefs serves.
 */
export function ioeventfd(fn: PciFunction, call: IoctlCall): never {
  call.vfioCopyIn();
  const flags = call.get('flags');
  if (flags & ~VFIO.VFIO_DEVICE_IOEVENTFD_SIZE_MASK) throw new Errno(EINVAL, 'flags');
  const count = flags & VFIO.VFIO_DEVICE_IOEVENTFD_SIZE_MASK;
  const fd = call.get('fd');
  if ((count & (count - 1)) !== 0 || count === 0 || fd < -1) throw new Errno(EINVAL, 'size flag or fd');
  const offset = call.get64('offset');
  const bar = Number(offset >> 40n);
  const pos = offset & ((1n << 40n) - 1n);
  if (bar > 5) throw new Errno(EINVAL, 'not a BAR');
  if (pos + BigInt(count) > regionInfo(fn, bar).size) throw new Errno(EINVAL, 'past the BAR');
  // No ioeventfd is ever registered: removing one finds nothing.
  if (fd === -1) throw new Errno(ENODEV, 'no such ioeventfd');
  // The kernel's per-function table has room for 1000; tcefs cannot watch eventfds, so it has room for none.
  throw new Errno(ENOSPC, 'tcefs cannot watch eventfds');
}
