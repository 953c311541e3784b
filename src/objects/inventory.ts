// The host's IOMMU groups and PCI functions as long-lived objects. Files come and go; these hold the
// state that outlives any one open (which container a group is in, who owns a device).
import { EEXIST, ENODEV, Errno } from '../errno.ts';
import type { PciFunctionSpec, Topology } from '../topology/topology.ts';
import { PciConfigSpace } from './vfio/pci-config.ts';
import { FunctionIrqs } from './vfio/irqs.ts';
import { VFIO } from '../uapi/constants.ts';
import type { Pe, TceHost } from '../tce/index.ts';
import type { ContainerFile } from './vfio/container.ts';
import type { GroupFile } from './vfio/group.ts';
import type { IommufdFile } from './iommufd/context.ts';
import { DEFAULT_MODEL, MODELS, type DeviceModel, type IrqPort } from '../devices/index.ts';
import type { BarOverlay, BarTarget } from '../devices/bars.ts';
import { ClientMemory } from '../devices/client-memory.ts';
import { FunctionDma } from '../devices/dma.ts';

export class PciFunction implements BarTarget {
  /** The N of /dev/vfio/devices/vfioN. */
  readonly cdevIndex: number;
  readonly config: PciConfigSpace;
  /** Interrupt state vfio-pci keeps per function; raise() is the device model's way in. */
  readonly irqs: FunctionIrqs;
  /** The cdev file currently bound to an iommufd for this function (one at a time). */
  cdevBinding?: object;
  /** Hot-unplugged: gone from /dev and sysfs; its open files answer ENODEV until they are closed. */
  removed = false;
  /** Open device files of this function, told when it is unplugged. */
  readonly files = new Set<{ unplugged(): void }>();
  /** What the function does behind its BARs (src/devices; the topology's "model", plain memory by default). */
  readonly model: DeviceModel;
  /** Where the model's interrupts go: the function's interrupt state, which delivers them (tests may watch instead). */
  irq: IrqPort = { raise: (index, vector) => this.irqs.raise(index, vector) };
  /** BAR ranges that are not the model's (the MSI-X table and PBA), served by their own handlers. */
  readonly overlays: BarOverlay[] = [];
  constructor(readonly spec: PciFunctionSpec, readonly group: IommuGroup, cdevIndex: number, multifunction: boolean, memory: ClientMemory) {
    this.cdevIndex = cdevIndex;
    this.config = new PciConfigSpace(spec, multifunction, () => group.pe.eeh.mmioFrozen || group.pe.eeh.cfgBlocked);
    this.irqs = new FunctionIrqs(this.config);
    this.model = MODELS[spec.model ?? DEFAULT_MODEL]({
      bdf: spec.bdf,
      bars: spec.bars,
      msixVectors: spec.msix,
      // Through this function so that replacing `irq` later reaches the model too.
      irq: { raise: (index, vector) => this.irq.raise(index, vector) },
      dma: new FunctionDma(group.pe, memory, spec.bdf),
      storage: spec.storage,
    });
    // The MSI-X table is the host's (vfio-pci reads it as all ones and drops writes), not the device's.
    const m = this.config.msixLayout;
    if (m) this.overlays.push({ bar: m.tableBar, offset: m.tableOffset, size: m.tableSize, read: (_o, n) => Buffer.alloc(n, 0xff), write: () => undefined });
  }
  /** Function-level reset: config registers to power-on values and the model's state with them. */
  reset(): void {
    this.config.reset();
    this.model.reset();
  }
  /** An EEH reset of the PE: the hardware's state goes back to power-on, vfio-pci's virtual config stays. */
  peReset(): void {
    this.config.resetHardware();
    this.model.reset();
  }
  /** MMIO reads all ones while EEH has the PE frozen. */
  get mmioFrozen(): boolean {
    return this.group.pe.eeh.mmioFrozen;
  }
  get bdf(): string {
    return this.spec.bdf;
  }
}

export class IommuGroup {
  readonly devices: PciFunction[] = [];
  /** The group's open /dev/vfio/<N> file, if any (one at a time). */
  file?: GroupFile;
  /** The container the group is attached to: a legacy one, or an iommufd in compat mode. */
  container?: ContainerFile | IommufdFile;
  /** The iommufd context that owns the group's DMA through bound devices, if any. */
  dmaOwner?: IommufdFile;
  /** Devices of the group bound to that context. */
  iommufdDevices = 0;
  /** Device files open through this group; they keep its container attachment alive. */
  openDevices = 0;

  constructor(readonly id: number, readonly domain: number, readonly peNumber: number, readonly pe: Pe) {}

  /** Leave the container and give the PE back to the host (unset, or the group's last user is gone). */
  detachContainer(): void {
    const c = this.container;
    if (!c) return;
    this.container = undefined;
    c.removeGroup(this);
  }

  /** A device file obtained through the group was released. */
  deviceClosed(): void {
    this.openDevices--;
    if (this.openDevices === 0 && !this.file) this.detachContainer();
  }

  /** The group name the PowerPC platform gives its table group. */
  get platformName(): string {
    return this.pe.name;
  }
}

export class Inventory {
  readonly groups = new Map<number, IommuGroup>();
  readonly functions = new Map<string, PciFunction>();
  /** Client memory as device DMA reaches it (/proc/<pid>/mem). */
  readonly clientMemory: ClientMemory;

  constructor(readonly topology: Topology, host: TceHost) {
    this.clientMemory = new ClientMemory(host.memory);
    let cdev = 0;
    for (const phb of topology.phbs) {
      for (const pe of phb.pes) {
        const g = new IommuGroup(pe.group, phb.domain, pe.pe, host.peByGroup(pe.group)!);
        this.groups.set(g.id, g);
        // A hot or fundamental PE reset resets the hardware behind it; vfio-pci's virtual config stays.
        g.pe.eeh.onReset = () => {
          for (const f of g.devices) f.peReset();
        };
        for (const spec of pe.devices) {
          const slot = spec.bdf.slice(0, -2);
          const multifunction = phb.pes.some((p) => p.devices.some((d) => d !== spec && d.bdf.slice(0, -2) === slot));
          const f = new PciFunction(spec, g, cdev++, multifunction, this.clientMemory);
          g.devices.push(f);
          this.functions.set(f.bdf, f);
        }
      }
    }
  }

  /** Hot-unplug: the function vanishes from the tree and its open files stop working. */
  remove(bdf: string): void {
    const f = this.functions.get(bdf);
    if (!f) throw new Errno(ENODEV, `no device ${bdf}`);
    if (f.removed) throw new Errno(ENODEV, `${bdf} is already removed`);
    // vfio-pci asks the user to let go of a device being removed through the request notifier.
    f.irqs.raise(VFIO.VFIO_PCI_REQ_IRQ_INDEX);
    f.removed = true;
    // Unplugged hardware stops: DMA in flight is abandoned.
    f.model.reset();
    for (const file of f.files) file.unplugged();
  }

  /** Hot-plug a removed function back, freshly reset. */
  add(bdf: string): void {
    const f = this.functions.get(bdf);
    if (!f) throw new Errno(ENODEV, `no device ${bdf} in the topology`);
    if (!f.removed) throw new Errno(EEXIST, `${bdf} is present`);
    f.removed = false;
    f.irqs.disableAll();
    f.reset();
  }

  functionByCdev(index: number): PciFunction | undefined {
    for (const f of this.functions.values()) if (f.cdevIndex === index) return f;
    return undefined;
  }
}
