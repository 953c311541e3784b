// The host's IOMMU groups and PCI functions as long-lived objects. Files come and go; these hold the
// state that outlives any one open (which container a group is in, who owns a device).
import type { PciFunctionSpec, Topology } from '../topology/topology.ts';
import { PciConfigSpace } from './vfio/pci-config.ts';
import type { Pe, TceHost } from '../tce/index.ts';

export class PciFunction {
  /** The N of /dev/vfio/devices/vfioN. */
  readonly cdevIndex: number;
  readonly config: PciConfigSpace;
  /** BAR contents, sparse by 4 KiB page: the function's MMIO as a user-space driver sees it. */
  readonly barPages = new Map<string, Buffer>();
  constructor(readonly spec: PciFunctionSpec, readonly group: IommuGroup, cdevIndex: number, multifunction: boolean) {
    this.cdevIndex = cdevIndex;
    this.config = new PciConfigSpace(spec, multifunction);
  }
  get bdf(): string {
    return this.spec.bdf;
  }
}

export class IommuGroup {
  readonly devices: PciFunction[] = [];
  constructor(readonly id: number, readonly domain: number, readonly peNumber: number, readonly pe: Pe) {}

  /** The group name the PowerPC platform gives its table group. */
  get platformName(): string {
    return this.pe.name;
  }
}

export class Inventory {
  readonly groups = new Map<number, IommuGroup>();
  readonly functions = new Map<string, PciFunction>();

  constructor(readonly topology: Topology, host: TceHost) {
    let cdev = 0;
    for (const phb of topology.phbs) {
      for (const pe of phb.pes) {
        const g = new IommuGroup(pe.group, phb.domain, pe.pe, host.peByGroup(pe.group)!);
        this.groups.set(g.id, g);
        for (const spec of pe.devices) {
          const slot = spec.bdf.slice(0, -2);
          const multifunction = phb.pes.some((p) => p.devices.some((d) => d !== spec && d.bdf.slice(0, -2) === slot));
          const f = new PciFunction(spec, g, cdev++, multifunction);
          g.devices.push(f);
          this.functions.set(f.bdf, f);
        }
      }
    }
  }

  functionByCdev(index: number): PciFunction | undefined {
    for (const f of this.functions.values()) if (f.cdevIndex === index) return f;
    return undefined;
  }
}
