// The daemon's state: the emulated machine (topology and inventory), every open file, and the tree.
// The FUSE adapter and the tests drive it through the same entry points.
import { Inventory } from './objects/inventory.ts';
import { FileRegistry } from './objects/file-registry.ts';
import { buildTree, type Node } from './transport/tree.ts';
import type { Topology } from './topology/topology.ts';
import { TceHost } from './tce/index.ts';

/** The TCE backend's view of a topology. */
export function hostConfig(t: Topology) {
  return {
    flavour: t.flavour,
    hostPageShift: t.hostPageShift,
    memlockLimit: t.memlockLimit,
    eehEnabled: t.eeh,
    enforceMaxPageOrder: t.enforceMaxPageOrder,
    pseries: t.pseries,
    phbs: t.phbs.map((p) => ({ domain: p.domain, model: p.model, m32PciBase: p.m32PciBase, pes: p.pes.map((pe) => ({ number: pe.pe, groupId: pe.group })) })),
  };
}

export class Daemon {
  /** The emulated TCE IOMMU: PHBs, PEs, windows, host memory, locked-memory accounts. */
  readonly host: TceHost;
  readonly inventory: Inventory;
  readonly files = new FileRegistry();
  readonly started = new Date();
  tree: Node & { type: 'dir' };

  constructor(readonly topology: Topology) {
    this.host = new TceHost(hostConfig(topology));
    this.inventory = new Inventory(topology, this.host);
    this.tree = buildTree(this);
  }

  /** Release every file (clients of a stopping daemon lose their state, as on a real close). */
  shutdown(): void {
    this.files.releaseAll();
  }
}
