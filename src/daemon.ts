// The daemon's state: the emulated machine (topology and inventory), every open file, and the tree.
// The FUSE adapter and the tests drive it through the same entry points.
import { Inventory } from './objects/inventory.ts';
import { FileRegistry } from './objects/file-registry.ts';
import { buildTree, type Node } from './transport/tree.ts';
import type { Topology } from './topology/topology.ts';

export class Daemon {
  readonly inventory: Inventory;
  readonly files = new FileRegistry();
  readonly started = new Date();
  tree: Node & { type: 'dir' };

  constructor(readonly topology: Topology) {
    this.inventory = new Inventory(topology);
    this.tree = buildTree(this);
  }

  /** Release every file (clients of a stopping daemon lose their state, as on a real close). */
  shutdown(): void {
    this.files.releaseAll();
  }
}
