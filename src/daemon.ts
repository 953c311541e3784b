// The daemon's state: the emulated machine (topology and inventory), every open file, and the tree.
// The FUSE adapter and the tests drive it through the same entry points.
import { Inventory } from './objects/inventory.ts';
import { FileRegistry } from './objects/file-registry.ts';
import { buildTree, type Node } from './transport/tree.ts';
import type { HostSysfs } from './transport/sysfs.ts';
import type { Topology } from './topology/topology.ts';
import { TceHost } from './tce/index.ts';
import { MmContext } from './objects/vfio/prereg.ts';
import { IommufdFile } from './objects/iommufd/context.ts';
import { DeviceFile } from './objects/vfio/device.ts';
import type { IrqEvents } from './objects/vfio/irq-events.ts';
import { LeaseBoard } from './transport/leases.ts';
import { PostServer } from './transport/posted.ts';
import { SelftestState } from './objects/iommufd/selftest/state.ts';
import { isMapped, readMaps } from './devices/process-maps.ts';

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

export interface DaemonOptions {
  /** Reproduce kernel bugs the emulation otherwise guards against (unchecked window ends, leaked charges). */
  strictKernel?: boolean;
  /** Objects one iommufd context may hold (ENOSPC past it). */
  maxObjects?: number;
  /** What of the real host's sysfs is listed beside the emulated one (modules; PCI with `--host-pci`). */
  host?: HostSysfs;
  /** Serve CONFIG_IOMMUFD_TEST's IOMMU_TEST_CMD and its mock IOMMU (`--selftest`); ENOTTY without. */
  selftest?: boolean;
}

export class Daemon {
  /** The emulated TCE IOMMU: PHBs, PEs, windows, host memory, locked-memory accounts. */
  readonly host: TceHost;
  readonly inventory: Inventory;
  readonly files = new FileRegistry();
  readonly started = new Date();
  tree: Node & { type: 'dir' };
  /** The selftest's global state, with --selftest only. */
  readonly selftest?: SelftestState;
  /** Open interrupt event files (.tcefs/irq/<handle>), by FUSE file handle. */
  readonly irqStreams = new Map<number, IrqEvents>();
  /** Unmap leases granted to clients, revoked before anything that could break them. */
  readonly leases = new LeaseBoard();
  /** Connections clients post BAR writes down, checked against the leases' second word. */
  readonly posts = new PostServer(this.leases);

  /** Client address spaces with preregistered memory, by owner ("pid:N"), and the containers bound to each. */
  private readonly mms = new Map<string, { mm: MmContext; refs: number }>();

  constructor(readonly topology: Topology, readonly options: DaemonOptions = {}) {
    this.host = new TceHost(hostConfig(topology));
    if (options.selftest) {
      this.selftest = new SelftestState();
      // The selftests map holes on purpose and expect EFAULT when the pages are pinned.
      const selftest = this.selftest;
      this.host.memory.isMapped = (owner, ua, length) => {
        const pid = /^pid:(\d+)$/.exec(owner)?.[1];
        if (pid === undefined) return true;
        const maps = readMaps(Number(pid));
        selftest.shared.remember(owner, maps, ua, length);
        return isMapped(maps, ua, length);
      };
    }
    this.inventory = new Inventory(topology, this.host);
    this.files.afterRelease = () => {
      // A release the FUSE side did not see coming (a pending file nobody claimed) ends leases too.
      this.leases.revoke();
      this.host.pruneIdleAccounts();
    };
    this.tree = buildTree(this);
  }

  /** A container binds to a process's address space; the first binding creates its context. */
  mmAcquire(owner: string): MmContext {
    let e = this.mms.get(owner);
    if (!e) this.mms.set(owner, (e = { mm: new MmContext(owner, this.host), refs: 0 }));
    e.refs++;
    return e.mm;
  }

  /** With no container bound to it any more, the address space is treated as gone (its pins released). */
  mmRelease(mm: MmContext): void {
    const e = this.mms.get(mm.owner);
    if (!e || --e.refs > 0) return;
    this.mms.delete(mm.owner);
    mm.teardown();
  }

  /** Rebuild the tree after the inventory changed (hot-plug); FUSE looks nodes up in it on every call. */
  rebuildTree(): void {
    this.tree = buildTree(this);
  }

  /** The daemon's own state, for leak checks: what is open, pending, allocated, removed. */
  describe() {
    const files = this.files.list();
    const byKind: Record<string, number> = {};
    for (const f of files) byKind[f.kind] = (byKind[f.kind] ?? 0) + 1;
    const ctxs = files.filter((f): f is IommufdFile => f instanceof IommufdFile);
    const faults = this.host.faults;
    return {
      openFiles: files.length,
      byKind,
      pendingFiles: this.files.pendingCount,
      iommufdObjects: ctxs.reduce((n, c) => n + c.objects.size, 0),
      mmContexts: this.mms.size,
      /** /proc/<pid>/mem handles device DMA holds open (one per client with pinned memory that saw DMA). */
      procHandles: this.inventory.clientMemory.openHandles,
      irqStreams: this.irqStreams.size,
      /** Connections clients post BAR writes down or take interrupt records from (src/transport/posted.ts). */
      postConnections: this.posts.connections,
      irqWaiters: [...new Set(this.irqStreams.values())].reduce((n, e) => n + e.waiting, 0),
      /** Functions with interrupts on (an interrupt mode, or an ERR/REQ eventfd), as "BDF:mode". */
      irqsEnabled: [...this.inventory.functions.values()].map((f) => [f.bdf, f.irqs.describe()] as const)
        .filter(([, i]) => i.mode !== 'none' || i.err || i.req).map(([bdf, i]) => `${bdf}:${i.mode}`),
      faults: { armed: faults.armed, fired: faults.fired, checks: faults.checks },
      removedDevices: [...this.inventory.functions.values()].filter((f) => f.removed).map((f) => f.bdf),
      options: this.options,
    };
  }

  /** The interrupt stream of an open device file, for .tcefs/irq/<handle>; undefined if there is none. */
  irqEvents(handle: number): IrqEvents | undefined {
    const f = this.files.get(handle);
    return f instanceof DeviceFile ? f.events : undefined;
  }

  /** Release every file (clients of a stopping daemon lose their state, as on a real close). */
  shutdown(): void {
    this.posts.close();
    this.leases.close();
    this.files.releaseAll();
    this.inventory.clientMemory.closeAll();
  }
}
