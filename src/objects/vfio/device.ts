// A VFIO device file: the cdev /dev/vfio/devices/vfioN, or a file returned by VFIO_GROUP_GET_DEVICE_FD.
// Regions and interrupts are those vfio-pci reports for the function; region i lives at offset i << 40.
// A cdev answers EINVAL to everything until it is bound to an iommufd, as the kernel does.
import { CommandTable } from '../../dispatch/table.ts';
import { OpenFile } from '../../dispatch/open-file.ts';
import { EINVAL, Errno } from '../../errno.ts';
import { VFIO } from '../../uapi/constants.ts';
import type { PciFunction } from '../inventory.ts';
import { CONFIG_SIZE } from './pci-config.ts';

const REGION_SHIFT = 40n;
const PAGE = 4096;

export interface RegionInfo {
  index: number;
  flags: number;
  size: bigint;
  offset: bigint;
}

/** The regions vfio-pci reports: BARs 0-5 as sized by the function, no ROM, config space, no VGA. */
export function regionInfo(fn: PciFunction, index: number): RegionInfo {
  const offset = BigInt(index) << REGION_SHIFT;
  const rw = VFIO.VFIO_REGION_INFO_FLAG_READ | VFIO.VFIO_REGION_INFO_FLAG_WRITE;
  if (index === VFIO.VFIO_PCI_CONFIG_REGION_INDEX) return { index, flags: rw, size: BigInt(CONFIG_SIZE), offset };
  const bar = index <= 5 ? fn.spec.bars.find((b) => b.index === index) : undefined;
  // No MMAP flag: a FUSE direct_io file cannot be mmapped, so BARs are reached by read/write.
  return bar ? { index, flags: rw, size: BigInt(bar.size), offset } : { index, flags: 0, size: 0n, offset };
}

/** Interrupt counts per vfio-pci index: INTx (pin A), MSI, MSI-X from the topology, ERR (PCIe), REQ. */
export function irqInfo(fn: PciFunction, index: number): { flags: number; count: number } {
  const eventfd = VFIO.VFIO_IRQ_INFO_EVENTFD;
  switch (index) {
    case VFIO.VFIO_PCI_INTX_IRQ_INDEX:
      return { flags: eventfd | VFIO.VFIO_IRQ_INFO_MASKABLE | VFIO.VFIO_IRQ_INFO_AUTOMASKED, count: 1 };
    case VFIO.VFIO_PCI_MSI_IRQ_INDEX:
      return { flags: eventfd | VFIO.VFIO_IRQ_INFO_NORESIZE, count: fn.spec.msi };
    case VFIO.VFIO_PCI_MSIX_IRQ_INDEX:
      return { flags: eventfd | VFIO.VFIO_IRQ_INFO_NORESIZE, count: fn.spec.msix };
    default:
      return { flags: eventfd | VFIO.VFIO_IRQ_INFO_NORESIZE, count: 1 };
  }
}

export class DeviceFile extends OpenFile {
  readonly kind = 'device';
  /** A cdev gains access only through VFIO_DEVICE_BIND_IOMMUFD. */
  bound = false;

  constructor(path: string, readonly fn: PciFunction, readonly viaCdev: boolean) {
    super(path);
    if (!viaCdev) fn.group.openDevices++;
  }

  release(): void {
    if (!this.viaCdev) this.fn.group.deviceClosed();
  }

  static readonly unbound = new CommandTable<DeviceFile>('device', {}, EINVAL);
  static readonly table = new CommandTable<DeviceFile>('device', {
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
      if (index >= VFIO.VFIO_PCI_NUM_IRQS) throw new Errno(EINVAL, `irq index ${index}`);
      const i = irqInfo(f.fn, index);
      call.set('flags', i.flags);
      call.set('count', i.count);
      call.copyOut(call.decl.minsz!);
    },
    VFIO_DEVICE_RESET: (f) => {
      f.fn.config.reset();
    },
  });

  commands(): CommandTable<DeviceFile> {
    return this.viaCdev && !this.bound ? DeviceFile.unbound : DeviceFile.table;
  }

  private region(offset: bigint, length: number): { r: RegionInfo; at: number } {
    if (this.viaCdev && !this.bound) throw new Errno(EINVAL, 'cdev not bound');
    const index = Number(offset >> REGION_SHIFT);
    const at = Number(offset & ((1n << REGION_SHIFT) - 1n));
    if (index >= VFIO.VFIO_PCI_NUM_REGIONS) throw new Errno(EINVAL, `no region ${index}`);
    const r = regionInfo(this.fn, index);
    if (BigInt(at) + BigInt(length) > r.size) throw new Errno(EINVAL, `access past region ${index} (size ${r.size})`);
    return { r, at };
  }

  regionRead(offset: bigint, length: number): Buffer | number {
    const { r, at } = this.region(offset, length);
    if (r.index === VFIO.VFIO_PCI_CONFIG_REGION_INDEX) return this.fn.config.read(at, length);
    const out = Buffer.alloc(length);
    for (let done = 0; done < length; ) {
      const page = Math.floor((at + done) / PAGE);
      const within = (at + done) % PAGE;
      const n = Math.min(length - done, PAGE - within);
      this.fn.barPages.get(`${r.index}:${page}`)?.copy(out, done, within, within + n);
      done += n;
    }
    return out;
  }

  regionWrite(offset: bigint, data: Buffer): number {
    const { r, at } = this.region(offset, data.length);
    if (r.index === VFIO.VFIO_PCI_CONFIG_REGION_INDEX) this.fn.config.write(at, data);
    else {
      for (let done = 0; done < data.length; ) {
        const page = Math.floor((at + done) / PAGE);
        const within = (at + done) % PAGE;
        const n = Math.min(data.length - done, PAGE - within);
        const key = `${r.index}:${page}`;
        let buf = this.fn.barPages.get(key);
        if (!buf) this.fn.barPages.set(key, (buf = Buffer.alloc(PAGE)));
        data.copy(buf, within, done, done + n);
        done += n;
      }
    }
    return data.length;
  }
}
