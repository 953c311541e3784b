// A VFIO device file: the cdev /dev/vfio/devices/vfioN, or a file returned by VFIO_GROUP_GET_DEVICE_FD.
// Regions and interrupts are those vfio-pci reports for the function; region i lives at offset i << 40.
// A cdev answers EINVAL to everything until it is bound to an iommufd, as the kernel does.
import { CommandTable } from '../../dispatch/table.ts';
import type { IoctlCall } from '../../dispatch/call.ts';
import { OpenFile } from '../../dispatch/open-file.ts';
import { E2BIG, EBADF, EBADFD, EBUSY, EFAULT, EINVAL, EIO, ENODEV, ENOENT, EOPNOTSUPP, Errno } from '../../errno.ts';
import { HANDLE_FOREIGN, HANDLE_NONE } from '../../transport/frame.ts';
import type { Daemon } from '../../daemon.ts';
import { IommufdFile } from '../iommufd/context.ts';
import { IommufdDevice } from '../iommufd/device.ts';
import { pasidAttach, pasidDetach, pasidHwpt, pasidReplace } from '../iommufd/pasid.ts';
import { offsetofend } from '../../uapi/layout.ts';
import { VFIO } from '../../uapi/constants.ts';
import type { PciFunction } from '../inventory.ts';
import { barRead, barWrite } from '../../devices/bars.ts';
import { deviceFeature, ioeventfd } from './device-features.ts';
import { hotReset, hotResetInfo, type ResetScope } from './hot-reset.ts';
import { setIrqsCall } from './irqs.ts';
import { IrqEvents } from './irq-events.ts';

const REGION_SHIFT = 40n;

export interface RegionInfo {
  index: number;
  flags: number;
  size: bigint;
  offset: bigint;
}

/**
 * The regions vfio-pci reports: BARs 0-5 as sized by the function, the expansion ROM (read-only) when it
 * has one, config space, no VGA. No MMAP flag: a FUSE direct_io file cannot be mmapped, so BARs are
 * reached by read/write. vfio-pci adds region-info capabilities only to mmappable BARs (SPARSE_MMAP,
 * MSIX_MAPPABLE) and to device-specific regions (TYPE), so with no MMAP flag there are none to add.
 */
export function regionInfo(fn: PciFunction, index: number): RegionInfo {
  const offset = BigInt(index) << REGION_SHIFT;
  const rw = VFIO.VFIO_REGION_INFO_FLAG_READ | VFIO.VFIO_REGION_INFO_FLAG_WRITE;
  if (index === VFIO.VFIO_PCI_CONFIG_REGION_INDEX) return { index, flags: rw, size: BigInt(fn.config.size), offset };
  if (index === VFIO.VFIO_PCI_ROM_REGION_INDEX) {
    const rom = fn.config.caps.romSize;
    return rom ? { index, flags: VFIO.VFIO_REGION_INFO_FLAG_READ, size: BigInt(rom), offset } : { index, flags: 0, size: 0n, offset };
  }
  const bar = index <= 5 ? fn.spec.bars.find((b) => b.index === index) : undefined;
  return bar ? { index, flags: rw, size: BigInt(bar.size), offset } : { index, flags: 0, size: 0n, offset };
}

/** What a hot reset of this device's bus needs from the daemon. */
function resetScope(f: DeviceFile): ResetScope {
  return {
    fn: f.fn,
    functions: f.daemon?.inventory.functions.values() ?? [f.fn],
    iommufd: f.iommufd?.ctx,
    viaCdev: f.viaCdev,
    file: (h) => f.daemon?.files.get(h),
  };
}

type Handlers = Record<string, (f: DeviceFile, call: IoctlCall) => number | bigint | void>;

/** What every device file answers once it has access (vfio-pci's device calls). */
const common: Handlers = {
  VFIO_DEVICE_GET_INFO: (f, call) => {
    call.vfioCopyIn();
    call.set('flags', VFIO.VFIO_DEVICE_FLAGS_PCI | VFIO.VFIO_DEVICE_FLAGS_RESET);
    call.set('num_regions', VFIO.VFIO_PCI_NUM_REGIONS);
    call.set('num_irqs', VFIO.VFIO_PCI_NUM_IRQS);
    call.copyOut(Math.min(call.get('argsz'), call.struct.size));
  },
  VFIO_DEVICE_GET_REGION_INFO: (f, call) => {
    call.vfioCopyIn();
    const index = call.get('index');
    if (index >= VFIO.VFIO_PCI_NUM_REGIONS) throw new Errno(EINVAL, `region ${index}`);
    const r = regionInfo(f.fn, index);
    call.set('flags', r.flags);
    call.set('cap_offset', 0);
    call.set('size', r.size);
    call.set('offset', r.offset);
    call.copyOut(call.decl.minsz!);
  },
  VFIO_DEVICE_GET_IRQ_INFO: (f, call) => {
    call.vfioCopyIn();
    const index = call.get('index');
    const i = f.fn.irqs.info(index);
    if (!i) throw new Errno(EINVAL, `irq index ${index}`);
    call.set('flags', i.flags);
    call.set('count', i.count);
    call.copyOut(call.decl.minsz!);
  },
  VFIO_DEVICE_SET_IRQS: (f, call) => setIrqsCall(f.fn.irqs, f.events, call),
  VFIO_DEVICE_RESET: (f) => {
    f.fn.irqs.disableAll();
    f.fn.reset();
  },
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: (f, call) => hotResetInfo(resetScope(f), call),
  VFIO_DEVICE_PCI_HOT_RESET: (f, call) => hotReset(resetScope(f), call),
  VFIO_DEVICE_FEATURE: (f, call) => deviceFeature(f.fn, call),
  VFIO_DEVICE_IOEVENTFD: (f, call) => ioeventfd(f.fn, call),
};

export class DeviceFile extends OpenFile {
  readonly kind = 'device';
  /** Set once a cdev is bound, or when the group path bound it for an iommufd container. */
  iommufd?: IommufdDevice;
  /** Interrupts for the eventfds this file attached, read by the client from .tcefs/irq/<handle>. */
  readonly events = new IrqEvents();

  constructor(path: string, readonly fn: PciFunction, readonly viaCdev: boolean, readonly daemon?: Daemon) {
    super(path);
    if (!viaCdev) fn.group.openDevices++;
    fn.files.add(this);
  }

  /** The device was hot-unplugged: its DMA stops now; every further call is ENODEV until close. */
  unplugged(): void {
    this.iommufd?.detach();
  }

  release(): void {
    this.fn.files.delete(this);
    this.fn.irqs.detach(this.events);
    this.events.end();
    // vfio-pci resets a function its last user closes: no interrupt or DMA outlives the client that set it up.
    if (this.fn.files.size === 0) {
      this.fn.irqs.disableAll();
      this.fn.model.reset();
    }
    if (this.iommufd) {
      this.iommufd.unbind();
      this.iommufd = undefined;
    }
    if (this.fn.cdevBinding === this) this.fn.cdevBinding = undefined;
    if (!this.viaCdev) this.fn.group.deviceClosed();
  }

  /** A cdev before BIND: only BIND exists, everything else is EINVAL. */
  static readonly unbound = new CommandTable<DeviceFile>('device', { VFIO_DEVICE_BIND_IOMMUFD: (f, c) => f.bind(c) }, EINVAL);
  /** A device from the group path: BIND is EINVAL, ATTACH/DETACH fall through to the driver (ENOTTY). */
  static readonly viaGroup = new CommandTable<DeviceFile>('device', {
    ...common,
    VFIO_DEVICE_BIND_IOMMUFD: () => {
      throw new Errno(EINVAL, 'a device from the group path cannot bind');
    },
  });
  /** A bound cdev. */
  static readonly bound = new CommandTable<DeviceFile>('device', {
    ...common,
    VFIO_DEVICE_BIND_IOMMUFD: () => {
      throw new Errno(EINVAL, 'already bound');
    },
    VFIO_DEVICE_ATTACH_IOMMUFD_PT: (f, c) => f.attach(c),
    VFIO_DEVICE_DETACH_IOMMUFD_PT: (f, c) => f.detach(c),
  });

  /** A removed device answers nothing but ENODEV. */
  static readonly gone = new CommandTable<DeviceFile>('device', {}, ENODEV);

  commands(): CommandTable<DeviceFile> {
    if (this.fn.removed) return DeviceFile.gone;
    if (!this.viaCdev) return DeviceFile.viaGroup;
    return this.iommufd ? DeviceFile.bound : DeviceFile.unbound;
  }

  /** VFIO_DEVICE_BIND_IOMMUFD, in the kernel's order of checks. */
  private bind(call: IoctlCall): void {
    const argsz = call.userSize();
    const minsz = call.decl.minsz!;
    if (argsz < minsz) throw new Errno(EINVAL, `argsz ${argsz}`);
    // Newer kernels copy this struct with the extensible rule: unknown trailing bytes must be zero.
    const ksize = call.struct.size;
    if (argsz > ksize) {
      const tail = call.copyIn(Math.min(argsz, call.userBytes));
      if (call.userBytes < argsz) throw new Errno(EFAULT, 'argument shorter than argsz');
      if (tail.subarray(ksize, argsz).some((b) => b !== 0)) throw new Errno(E2BIG, 'non-zero bytes past the struct');
    }
    call.copyIn(Math.min(argsz, ksize));
    const handle = call.get('iommufd') | 0;
    if (handle < 0) throw new Errno(EINVAL, 'negative iommufd');
    if (call.get('flags') & ~VFIO.VFIO_DEVICE_BIND_FLAG_TOKEN) throw new Errno(EINVAL, 'flags');
    if (call.get('flags') & VFIO.VFIO_DEVICE_BIND_FLAG_TOKEN) call.readPointer('token_uuid_ptr');
    const g = this.fn.group;
    if (g.file) throw new Errno(EBUSY, `group ${g.id} is open through /dev/vfio/${g.id}`);
    if (handle === HANDLE_NONE) throw new Errno(EBADF, 'iommufd is not an open file');
    if (handle === HANDLE_FOREIGN) throw new Errno(EBADFD, 'not an iommufd');
    const ctx = this.daemon!.files.get(handle);
    if (!ctx) throw new Errno(EBADF, 'iommufd is not an open file');
    if (!(ctx instanceof IommufdFile)) throw new Errno(EBADFD, `a ${ctx.kind} is not an iommufd`);
    if (this.fn.cdevBinding) throw new Errno(EINVAL, 'the device is bound through another cdev file');
    this.iommufd = IommufdDevice.bind(ctx, this.fn);
    this.fn.cdevBinding = this;
    call.set('out_devid', this.iommufd.id);
    call.copyOutField('out_devid');
  }

  /**
   * ATTACH and DETACH know one flag, PASID, which extends the struct by its `pasid` field: flags first,
   * then the longer argsz, then that field is read (vfio_df_ioctl_attach_pt's order). The PASID, or
   * undefined for the RID.
   */
  private static pasidOf(call: IoctlCall, pasidFlag: number): number | undefined {
    call.vfioCopyIn();
    const flags = call.get('flags');
    if (flags & ~pasidFlag) throw new Errno(EINVAL, 'flags');
    if (!flags) return undefined;
    const end = offsetofend(call.struct, 'pasid');
    if (call.get('argsz') < end) throw new Errno(EINVAL, `argsz ${call.get('argsz')} < ${end}`);
    call.copyIn(end);
    return call.get('pasid');
  }

  private attach(call: IoctlCall): void {
    const pasid = DeviceFile.pasidOf(call, VFIO.VFIO_DEVICE_ATTACH_PASID);
    const dev = this.iommufd!;
    let hwpt;
    // vfio-pci replaces a PASID it has attached (pasid_attach_ioas); a TCE domain never serves one (EINVAL).
    if (pasid !== undefined) hwpt = pasidHwpt(dev, pasid) ? pasidReplace(dev, pasid, call.get('pt_id')) : pasidAttach(dev, pasid, call.get('pt_id'));
    else {
      const target = dev.ctx.objects.find(call.get('pt_id'));
      if (!target) throw new Errno(ENOENT, `no object ${call.get('pt_id')}`);
      hwpt = dev.attach(target, call.owner);
    }
    call.set('pt_id', hwpt.id);
    call.copyOutField('pt_id');
  }

  private detach(call: IoctlCall): void {
    const pasid = DeviceFile.pasidOf(call, VFIO.VFIO_DEVICE_DETACH_PASID);
    if (pasid !== undefined) pasidDetach(this.iommufd!, pasid);
    else this.iommufd!.detach();
  }

  /**
   * Where an access lands, with vfio-pci's bounds: config space refuses any access that does not fit
   * (EFAULT); a BAR or the ROM refuses one that starts past its end (EINVAL) and shortens one that runs
   * over it; regions the function does not have are EINVAL.
   */
  private region(offset: bigint, length: number): { r: RegionInfo; at: number; n: number } {
    if (this.fn.removed) throw new Errno(ENODEV, `${this.fn.bdf} was removed`);
    if (this.viaCdev && !this.iommufd) throw new Errno(EINVAL, 'cdev not bound');
    const index = Number(offset >> REGION_SHIFT);
    const at = Number(offset & ((1n << REGION_SHIFT) - 1n));
    if (index >= VFIO.VFIO_PCI_NUM_REGIONS) throw new Errno(EINVAL, `no region ${index}`);
    const r = regionInfo(this.fn, index);
    if (index === VFIO.VFIO_PCI_CONFIG_REGION_INDEX) {
      if (length && BigInt(at) + BigInt(length) > r.size) throw new Errno(EFAULT, `access past config space (size ${r.size})`);
      return { r, at, n: length };
    }
    if (r.size === 0n) throw new Errno(EINVAL, `region ${index} does not exist on ${this.fn.bdf}`);
    if (BigInt(at) >= r.size) throw new Errno(EINVAL, `access past region ${index} (size ${r.size})`);
    return { r, at, n: Math.min(length, Number(r.size - BigInt(at))) };
  }

  /** The MSI-X table belongs to the host: vfio-pci reads it as all-ones and drops writes to it. */
  private excluded(r: RegionInfo): [number, number] {
    const m = this.fn.config.msixLayout;
    if (r.index === VFIO.VFIO_PCI_ROM_REGION_INDEX) return [this.fn.config.romImage().length, Number(r.size)];
    return m && m.tableBar === r.index ? [m.tableOffset, m.tableOffset + m.tableSize] : [0, 0];
  }

  /** Memory BARs need memory decoding on and the function in D0 (EIO otherwise), for bytes outside the table. */
  private checkDecode(r: RegionInfo, at: number, n: number): void {
    const bar = this.fn.spec.bars.find((b) => b.index === r.index);
    if (bar?.type === 'io' || n === 0 || this.fn.config.memoryEnabled) return;
    const [xs, xe] = this.excluded(r);
    if (at < xs || at + n > xe) throw new Errno(EIO, `memory decoding of ${this.fn.bdf} is off`);
  }

  regionRead(offset: bigint, length: number): Buffer | number {
    const { r, at, n } = this.region(offset, length);
    if (r.index === VFIO.VFIO_PCI_CONFIG_REGION_INDEX) return this.fn.config.read(at, n);
    this.checkDecode(r, at, n);
    if (r.index !== VFIO.VFIO_PCI_ROM_REGION_INDEX) return barRead(this.fn, r.index, at, n);
    // Past the image the ROM BAR decodes nothing: all ones, like the MSI-X table.
    const [xs] = this.excluded(r);
    const out = Buffer.alloc(n, 0xff);
    this.fn.config.romImage().copy(out, 0, Math.min(at, xs), Math.min(at + n, xs));
    return out;
  }

  /** The BARs, while a write there can only succeed: decoding on (memory BARs), not removed, bound. */
  override postWindows(): [bigint, bigint][] {
    if (this.fn.removed || (this.viaCdev && !this.iommufd)) return [];
    const out: [bigint, bigint][] = [];
    for (const bar of this.fn.spec.bars) {
      if (bar.index > 5 || bar.size <= 0 || (bar.type !== 'io' && !this.fn.config.memoryEnabled)) continue;
      const start = BigInt(bar.index) << REGION_SHIFT;
      out.push([start, start + BigInt(bar.size)]);
    }
    return out;
  }

  regionWrite(offset: bigint, data: Buffer): number {
    const index = Number(offset >> REGION_SHIFT);
    if (index === VFIO.VFIO_PCI_ROM_REGION_INDEX) {
      this.region(offset, data.length);
      throw new Errno(EINVAL, 'the ROM region is read-only');
    }
    const { r, at, n } = this.region(offset, data.length);
    if (r.index === VFIO.VFIO_PCI_CONFIG_REGION_INDEX) {
      this.fn.config.write(at, data.subarray(0, n));
      return n;
    }
    this.checkDecode(r, at, n);
    barWrite(this.fn, r.index, at, data.subarray(0, n));
    return n;
  }
}
