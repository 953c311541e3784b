// The file tree tcefs mounts: the /dev nodes programs open, the sysfs files they read to find groups and
// devices (src/transport/sysfs.ts), and .tcefs/ for protocol plumbing. Built from the daemon's inventory; rebuilt when it changes.
import type { Daemon } from '../daemon.ts';
import { ownerName } from '../dispatch/call.ts';
import type { OpenFile } from '../dispatch/open-file.ts';
import { ContainerFile } from '../objects/vfio/container.ts';
import { DeviceFile } from '../objects/vfio/device.ts';
import { GroupFile } from '../objects/vfio/group.ts';
import { IommufdFile } from '../objects/iommufd/context.ts';
import { describeHost, describePe, renderHostText, renderTceText, renderVmCharge, type ProcessVm } from '../tce/index.ts';
import { CLAIM_DIR, CONTROL_PATH, DEBUG_DIR, DEBUGFS, IRQ_DIR, LEASE_PATH, PID_PATH, RELEASE_DIR, VM_DIR } from './paths.ts';
import { addPciSysfs, type SysfsAttr } from './sysfs.ts';
import { perf } from '../perf.ts';

export { CLAIM_DIR, CONTROL_PATH, DEBUG_DIR, RELEASE_DIR };

export type Node =
  | { type: 'dir'; entries: Map<string, Node> }
  | { type: 'link'; target: string }
  /** A read-only text file whose content is computed at open (sysfs attributes, state views). */
  | { type: 'text'; read: () => string }
  /** A sysfs attribute with the kernel's modes and store semantics (src/transport/sysfs.ts). */
  | { type: 'attr'; attr: SysfsAttr }
  /** A node that opens into a file object taking request frames (/dev/iommu, /dev/vfio/...). */
  | { type: 'device'; open: (path: string) => OpenFile }
  /** The daemon's control node: text commands written to it (src/control.ts). */
  | { type: 'control' };


const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x), 2) + '\n';


export function dir(entries: Record<string, Node> = {}): Node & { type: 'dir' } {
  return { type: 'dir', entries: new Map(Object.entries(entries)) };
}

export function mkdirp(root: Node & { type: 'dir' }, path: string): Node & { type: 'dir' } {
  let d = root;
  for (const part of path.split('/').filter(Boolean)) {
    const existing = d.entries.get(part);
    const next = existing ?? dir();
    if (!existing) d.entries.set(part, next);
    if (next.type !== 'dir') throw new Error(`${path}: ${part} is not a directory`);
    d = next;
  }
  return d;
}

export function put(root: Node & { type: 'dir' }, path: string, node: Node) {
  const i = path.lastIndexOf('/');
  mkdirp(root, path.slice(0, i)).entries.set(path.slice(i + 1), node);
}

/** VM_DIR: a directory with an entry for every pid, answered from the counts when looked up. */
function vmDir(vm: ProcessVm): Node & { type: 'dir' } {
  const entries = new Map<string, Node>();
  entries.get = (name: string) => (/^[1-9][0-9]{0,9}$/.test(name) ? { type: 'text', read: () => renderVmCharge(vm.of(ownerName(Number(name)))) } : undefined);
  return { type: 'dir', entries };
}

export function buildTree(daemon: Daemon): Node & { type: 'dir' } {
  const root = dir();
  const inv = daemon.inventory;
  put(root, '/dev/iommu', { type: 'device', open: (p) => new IommufdFile(p, daemon) });
  // With CONFIG_IOMMUFD_VFIO_CONTAINER the kernel's /dev/vfio/vfio is just another iommufd, accounting
  // per process by default.
  put(root, '/dev/vfio/vfio', {
    type: 'device',
    open: (p) => (daemon.topology.vfioContainer === 'iommufd' ? Object.assign(new IommufdFile(p, daemon), { rlimitMode: 1 }) : new ContainerFile(p, daemon)),
  });
  mkdirp(root, '/dev/vfio/devices');
  mkdirp(root, CLAIM_DIR);
  mkdirp(root, IRQ_DIR);
  mkdirp(root, RELEASE_DIR);
  // State views for people (the kernel has no such files; they live under debugfs where such views go).
  const host = daemon.host;
  put(root, `${DEBUG_DIR}/host`, { type: 'text', read: () => renderHostText(host) });
  put(root, `${DEBUG_DIR}/host.json`, { type: 'text', read: () => json(describeHost(host)) });
  put(root, `${DEBUG_DIR}/daemon.json`, { type: 'text', read: () => json(daemon.describe()) });
  put(root, `${DEBUG_DIR}/perf.json`, { type: 'text', read: () => json(perf.describe()) });
  // The fault-injection capabilities' knobs, where a kernel with CONFIG_FAULT_INJECTION_DEBUG_FS has them.
  for (const a of Object.values(host.faults.attrs)) {
    for (const k of a.knobs()) put(root, `${DEBUGFS}/${a.name}/${k.name}`, { type: 'attr', attr: { mode: 0o600, size: 0, show: k.show, store: k.store } });
  }
  put(root, CONTROL_PATH, { type: 'control' });
  put(root, VM_DIR, vmDir(daemon.host.vm));
  put(root, PID_PATH, { type: 'text', read: () => `${process.pid}\n` });
  const leases = daemon.leases;
  put(root, LEASE_PATH, { type: 'link', get target() { return leases.target; } });
  for (const g of inv.groups.values()) {
    // A group whose every device was unplugged is gone from /dev and sysfs, as the kernel's would be.
    const present = g.devices.filter((f) => !f.removed);
    if (!present.length) continue;
    put(root, `/dev/vfio/${g.id}`, { type: 'device', open: (p) => new GroupFile(p, g, daemon) });
    put(root, `${DEBUG_DIR}/groups/${g.id}/tce`, { type: 'text', read: () => renderTceText(g.pe) });
    put(root, `${DEBUG_DIR}/groups/${g.id}/pe.json`, { type: 'text', read: () => json(describePe(g.pe)) });
    for (const f of present) {
      put(root, `/dev/vfio/devices/vfio${f.cdevIndex}`, { type: 'device', open: (p) => new DeviceFile(p, f, true, daemon) });
    }
  }
  addPciSysfs(root, { topology: daemon.topology, inventory: inv, rebuild: () => daemon.rebuildTree(), host: daemon.options.host });
  return root;
}

export function lookup(root: Node, path: string): Node | undefined {
  let n: Node | undefined = root;
  for (const part of path.split('/').filter(Boolean)) {
    if (!n || n.type !== 'dir') return undefined;
    n = n.entries.get(part);
  }
  return n;
}
