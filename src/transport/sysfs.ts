// The PCI part of the emulated sysfs, laid out as the kernel lays it out on the emulated POWER host:
//
//   /sys/devices/pci<dom>:00/<dom>:00:00.0/<BDF>/   a PowerNV PHB: functions on bus N > 0 sit below the
//                                                  PHB's root port (the directory exists; the root port
//                                                  is not an emulated function, so it is not listed)
//   /sys/devices/pci<dom>:<bus>/<BDF>/             pSeries (the hypervisor hides the root port) and
//                                                  PowerNV functions on the root bus itself
//   /sys/bus/pci/devices/<BDF>                     links into /sys/devices, and nothing else (umockdev-
//                                                  style: the host's functions only with --host-pci)
//   /sys/bus/pci/drivers/vfio-pci/<BDF>            every function is bound to vfio-pci
//   /sys/kernel/iommu_groups/<N>/devices/<BDF>     links into /sys/devices
//   /sys/devices/virtual/iommu/iommu-phb<dom>/     the PHB's IOMMU device (the `iommu` links)
//
// Attributes follow drivers/pci/pci-sysfs.c: the same text formats, the same modes, and the same
// errnos for what the kernel refuses (kernfs: EACCES at open for a direction the file has no handler
// or mode bit for; EINVAL from the kstrto* parsers; EFBIG writing a binary file at or past its end).
import { readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { posix } from 'node:path';
import { E2BIG, EACCES, EFBIG, EINVAL, EIO, ENODEV, ENOENT, ENOTTY, ERANGE, Errno } from '../errno.ts';
import type { Inventory, IommuGroup, PciFunction } from '../objects/inventory.ts';
import { parseBdf, type SriovSpec, type Topology } from '../topology/topology.ts';
import { mkdirp, put, type Node } from './tree.ts';
import {
  capabilities,
  cpulistText,
  cpumaskText,
  kstrto,
  linkSpeedText,
  modalias,
  pcieLink,
  resetMethods,
  resourceText,
  sysfsStreq,
  ueventText,
} from './sysfs-format.ts';

/** A sysfs file: a text attribute (show/store) or a binary one (read/write at an offset, fixed size). */
export interface SysfsAttr {
  /** Permission bits, as the kernel creates the file. */
  mode: number;
  /** st_size: PAGE_SIZE for text attributes (what sysfs reports), the length for binary ones. */
  size: number;
  show?: () => string;
  store?: (value: Buffer) => void;
  bin?: {
    read?: (offset: number, length: number) => Buffer;
    write?: (offset: number, data: Buffer) => void;
    /** Memory BAR files only map; a read or write of them is EIO. */
    mmapOnly?: boolean;
  };
}

/** One open of an attribute: what the FUSE read and write calls do with it. */
export interface AttrFile {
  read(length: number, position: number): Buffer;
  write(data: Buffer, position: number): number;
}

const O_ACCMODE = 3;

/** kernfs_fop_open: a direction needs both a mode bit and a handler, for root too. */
export function openAttr(a: SysfsAttr, flags: number, pageSize: number): AttrFile {
  const acc = flags & O_ACCMODE;
  const reading = acc === 0 || acc === 2;
  const writing = acc === 1 || acc === 2;
  const canRead = !!(a.show || a.bin?.read || a.bin?.mmapOnly);
  const canWrite = !!(a.store || a.bin?.write || a.bin?.mmapOnly);
  if (writing && (!(a.mode & 0o222) || !canWrite)) throw new Errno(EACCES, 'not writable');
  if (reading && (!(a.mode & 0o444) || !canRead)) throw new Errno(EACCES, 'not readable');
  let shown: Buffer | undefined;
  return {
    read(length, position) {
      if (a.bin) {
        if (!a.bin.read) throw new Errno(EIO, 'mmap only');
        if (position >= a.size) return Buffer.alloc(0);
        return a.bin.read(position, Math.min(length, a.size - position));
      }
      // A text attribute is shown once per open and read from that copy, as kernfs's seq_file does.
      shown ??= Buffer.from(a.show!());
      return shown.subarray(Math.min(position, shown.length), Math.min(position + length, shown.length));
    },
    write(data, position) {
      if (!data.length) return 0;
      if (a.bin) {
        if (!a.bin.write) throw new Errno(EIO, 'mmap only');
        if (position >= a.size) throw new Errno(EFBIG, 'past the end');
        const n = Math.min(data.length, a.size - position);
        a.bin.write(position, data.subarray(0, n));
        return n;
      }
      if (data.length > pageSize) throw new Errno(E2BIG, 'longer than a page');
      a.store!(data);
      return data.length;
    },
  };
}

/**
 * What the daemon shows of the real host's sysfs, read once when it starts: the loaded modules (listed
 * beside the emulated vfio ones) and, with --host-pci, the PCI functions and the entries of each
 * /sys/devices/pci<dom>:<bus>.
 */
export interface HostSysfs {
  modules: string[];
  pci?: { devices: string[]; domains: Map<string, string[]> };
}

function list(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

export function scanHost(withPci: boolean, sys = '/sys'): HostSysfs {
  const modules = list(`${sys}/module`);
  if (!withPci) return { modules };
  const domains = new Map<string, string[]>();
  for (const d of list(`${sys}/devices`)) if (d.startsWith('pci')) domains.set(d, list(`${sys}/devices/${d}`));
  return { modules, pci: { devices: list(`${sys}/bus/pci/devices`), domains } };
}

export interface SysfsContext {
  topology: Topology;
  inventory: Inventory;
  /** The tree is rebuilt after `remove` and `rescan` change the inventory. */
  rebuild: () => void;
  host?: HostSysfs;
}

const hex = (n: number, width: number) => '0x' + n.toString(16).padStart(width, '0');
const TEXT_SIZE = 4096;

/** State the attributes' stores change; it outlives tree rebuilds. */
interface FnState {
  /** pci_enable_device calls made through `enable` (the count also has vfio-pci's while the device is open). */
  enables: number;
  noMsi: boolean;
  numaNode: number;
  driverOverride: string | null;
  /** null: the default list. */
  resetMethods: string[] | null;
  vfAutoprobe: boolean;
}
const states = new WeakMap<PciFunction, FnState>();

function stateOf(fn: PciFunction): FnState {
  let s = states.get(fn);
  if (!s) states.set(fn, (s = { enables: 0, noMsi: false, numaNode: 0, driverOverride: 'vfio-pci', resetMethods: null, vfAutoprobe: true }));
  return s;
}

/** Where a function's directory is: below the PHB's root port on PowerNV, on the root bus otherwise. */
export function deviceDir(flavour: Topology['flavour'], bdf: string): string {
  const { domain, bus } = parseBdf(bdf);
  const dom = domain.toString(16).padStart(4, '0');
  if (flavour === 'powernv' && bus !== 0) return `/sys/devices/pci${dom}:00/${dom}:00:00.0/${bdf}`;
  return `/sys/devices/pci${dom}:${bus.toString(16).padStart(2, '0')}/${bdf}`;
}

export function iommuDeviceDir(domain: number): string {
  return `/sys/devices/virtual/iommu/iommu-phb${domain.toString(16).padStart(4, '0')}`;
}

/** The relative target a link at `at` needs to reach `to` (both absolute), as sysfs writes its links. */
export function relLink(at: string, to: string): string {
  return posix.relative(posix.dirname(at), to);
}

function link(root: Node & { type: 'dir' }, at: string, to: string) {
  put(root, at, { type: 'link', target: relLink(at, to) });
}

const attr = (a: SysfsAttr): Node => ({ type: 'attr', attr: a });
const ro = (show: () => string): Node => attr({ mode: 0o444, size: TEXT_SIZE, show });
const rw = (show: () => string, store: (v: Buffer) => void): Node => attr({ mode: 0o644, size: TEXT_SIZE, show, store });
const wo = (store: (v: Buffer) => void): Node => attr({ mode: 0o200, size: TEXT_SIZE, store });

/** The INTx line the emulated interrupt controller gives a function with an interrupt pin. */
function irqOf(fn: PciFunction): number {
  return fn.config.read(0x3d, 1)[0] ? 16 + fn.cdevIndex : 0;
}

export function addPciSysfs(root: Node & { type: 'dir' }, ctx: SysfsContext): void {
  const { inventory } = ctx;
  mkdirp(root, '/sys/bus/pci/devices');
  const drv = '/sys/bus/pci/drivers/vfio-pci';
  mkdirp(root, drv);
  // No function here is unbound, and a host function cannot be bound: the kernel's answer to both.
  put(root, `${drv}/bind`, wo(() => {
    throw new Errno(ENODEV, 'no unbound device of that name');
  }));
  put(root, `${drv}/uevent`, wo(ueventStore));
  const rescan = (v: Buffer) => {
    if (!kstrto(v, false, 64)) return;
    let added = false;
    for (const f of inventory.functions.values()) {
      if (f.removed) {
        inventory.add(f.bdf);
        added = true;
      }
    }
    if (added) ctx.rebuild();
  };
  put(root, '/sys/bus/pci/rescan', wo(rescan));
  const cpus = [...Array(availableParallelism()).keys()];
  for (const g of inventory.groups.values()) {
    const present = g.devices.filter((f) => !f.removed);
    if (!present.length) continue;
    addGroup(root, g);
    for (const f of present) addFunction(root, ctx, f, cpus, rescan);
  }
  addModules(root);
  if (ctx.host) mergeHost(root, ctx.host);
}

/** The modules a VFIO user looks for (DPDK and dpdk-devbind.py read /sys/module to see them loaded). */
function addModules(root: Node & { type: 'dir' }) {
  const off = ro(() => 'N\n');
  for (const m of ['vfio', 'vfio_pci', 'vfio_pci_core', 'vfio_iommu_spapr_tce', 'iommufd']) {
    put(root, `/sys/module/${m}/initstate`, ro(() => 'live\n'));
    mkdirp(root, `/sys/module/${m}/parameters`);
  }
  // tcefs has no no-IOMMU mode: the parameter reads N and only takes the values that keep it off.
  put(root, '/sys/module/vfio/parameters/enable_unsafe_noiommu_mode', rw(() => 'N\n', (v) => {
    const c = v.toString('latin1')[0];
    if (!c || !'Nn0'.includes(c)) throw new Errno(EINVAL, 'no no-IOMMU mode here');
  }));
  for (const p of ['enable_sriov', 'disable_vga', 'disable_idle_d3', 'nointxmask', 'disable_denylist']) put(root, `/sys/module/vfio_pci/parameters/${p}`, off);
  link(root, '/sys/module/vfio_pci/drivers/pci:vfio-pci', '/sys/bus/pci/drivers/vfio-pci');
  link(root, '/sys/bus/pci/drivers/vfio-pci/module', '/sys/module/vfio_pci');
}

function addGroup(root: Node & { type: 'dir' }, g: IommuGroup) {
  const gdir = `/sys/kernel/iommu_groups/${g.id}`;
  mkdirp(root, `${gdir}/devices`);
  // The SPAPR TCE IOMMU reports no reserved regions (PowerNV and pSeries alike): the file is empty.
  put(root, `${gdir}/reserved_regions`, ro(() => ''));
  // Its platform default domain has no name in iommu_group_show_type, which prints "unknown" then.
  put(root, `${gdir}/type`, ro(() => 'unknown\n'));
  put(root, `${gdir}/name`, ro(() => `${g.platformName}\n`));
}

function ueventStore(v: Buffer) {
  const action = v.toString('latin1').split(/[\s\0]/)[0];
  if (!['add', 'remove', 'change', 'move', 'online', 'offline', 'bind', 'unbind'].includes(action)) throw new Errno(EINVAL, `no uevent action ${action}`);
}

function addFunction(root: Node & { type: 'dir' }, ctx: SysfsContext, f: PciFunction, cpus: number[], rescan: (v: Buffer) => void) {
  const { topology, inventory } = ctx;
  const s = f.spec;
  const st = stateOf(f);
  const d = deviceDir(topology.flavour, f.bdf);
  const { domain, bus } = parseBdf(f.bdf);
  const cfg = (off: number, len: number) => f.config.read(off, len);
  const caps = capabilities(cfg);

  link(root, `/sys/bus/pci/devices/${f.bdf}`, d);
  link(root, `/sys/kernel/iommu_groups/${f.group.id}/devices/${f.bdf}`, d);
  link(root, `/sys/bus/pci/drivers/vfio-pci/${f.bdf}`, d);
  link(root, `${d}/iommu_group`, `/sys/kernel/iommu_groups/${f.group.id}`);
  link(root, `${d}/driver`, '/sys/bus/pci/drivers/vfio-pci');
  link(root, `${d}/subsystem`, '/sys/bus/pci');
  const iommu = iommuDeviceDir(domain);
  link(root, `${d}/iommu`, iommu);
  link(root, `${iommu}/devices/${f.bdf}`, d);
  link(root, `/sys/class/iommu/${posix.basename(iommu)}`, iommu);

  put(root, `${d}/config`, attr({
    mode: 0o644,
    size: f.config.size,
    bin: { read: (off, len) => f.config.read(off, len), write: (off, data) => f.config.write(off, data) },
  }));
  put(root, `${d}/resource`, ro(() => resourceText(s.bars)));
  for (const bar of s.bars) {
    const file = attr({ mode: 0o600, size: bar.size, bin: { mmapOnly: true } });
    put(root, `${d}/resource${bar.index}`, file);
    if (bar.type !== 'io' && bar.prefetchable) put(root, `${d}/resource${bar.index}_wc`, file);
  }
  put(root, `${d}/vendor`, ro(() => `${hex(s.vendor, 4)}\n`));
  put(root, `${d}/device`, ro(() => `${hex(s.device, 4)}\n`));
  put(root, `${d}/subsystem_vendor`, ro(() => `${hex(s.subsystemVendor, 4)}\n`));
  put(root, `${d}/subsystem_device`, ro(() => `${hex(s.subsystemDevice, 4)}\n`));
  put(root, `${d}/class`, ro(() => `${hex(s.classCode, 6)}\n`));
  put(root, `${d}/revision`, ro(() => `${hex(cfg(0x08, 1)[0], 2)}\n`));
  put(root, `${d}/irq`, ro(() => `${irqOf(f)}\n`));
  put(root, `${d}/modalias`, ro(() => modalias(s)));
  put(root, `${d}/uevent`, rw(() => ueventText(s, 'vfio-pci'), ueventStore));
  // vfio-pci leaves the PCI core's default 32-bit masks; the TCE windows decide what DMA reaches.
  put(root, `${d}/dma_mask_bits`, ro(() => '32\n'));
  put(root, `${d}/consistent_dma_mask_bits`, ro(() => '32\n'));
  // One NUMA node holds every CPU of the emulated host: the real machine's CPUs, which the program runs on.
  put(root, `${d}/local_cpus`, ro(() => cpumaskText(cpus, cpus.length)));
  put(root, `${d}/local_cpulist`, ro(() => cpulistText(cpus)));
  put(root, `${d}/numa_node`, rw(() => `${st.numaNode}\n`, (v) => {
    const node = Number(kstrto(v, true, 32));
    if (node !== -1 && node !== 0) throw new Errno(EINVAL, `node ${node} is not online`);
    st.numaNode = node;
  }));
  put(root, `${d}/enable`, rw(() => `${st.enables + (f.files.size ? 1 : 0)}\n`, (v) => {
    if (kstrto(v, false, 64)) st.enables++;
    else if (st.enables + (f.files.size ? 1 : 0) > 0) st.enables--;
    else throw new Errno(EIO, 'not enabled');
  }));
  put(root, `${d}/msi_bus`, rw(() => (st.noMsi ? '0\n' : '1\n'), (v) => {
    st.noMsi = !kstrto(v, false, 64);
  }));
  put(root, `${d}/driver_override`, rw(() => `${st.driverOverride ?? '(null)'}\n`, (v) => {
    const str = v.toString('latin1');
    const nul = str.indexOf('\0');
    const value = (nul >= 0 ? str.slice(0, nul) : str).split('\n')[0];
    st.driverOverride = value || null;
  }));
  put(root, `${d}/remove`, wo((v) => {
    if (!kstrto(v, false, 64)) return;
    inventory.remove(f.bdf);
    ctx.rebuild();
  }));
  put(root, `${d}/rescan`, wo(rescan));

  // Bus reset needs a bridge above and no other function on the bus (pci_parent_bus_reset).
  const alone = ![...inventory.functions.values()].some((o) => o !== f && !o.removed && o.bdf.slice(0, 7) === f.bdf.slice(0, 7));
  const supported = resetMethods(cfg, alone && topology.flavour === 'powernv' && bus !== 0);
  if (supported.length) {
    const current = () => st.resetMethods ?? supported;
    put(root, `${d}/reset_method`, rw(() => (current().length ? current().join(' ') + '\n' : ''), (v) => {
      const text = v.toString('latin1').split('\0')[0];
      if (sysfsStreq(text, '')) return void (st.resetMethods = []);
      if (sysfsStreq(text, 'default')) return void (st.resetMethods = null);
      const names = text.split(' ').map((n) => n.trim()).filter(Boolean);
      for (const n of names) if (!supported.includes(n)) throw new Errno(EINVAL, `unsupported reset method ${n}`);
      if (names.length > supported.length) throw new Errno(EINVAL, 'too many reset methods');
      st.resetMethods = names;
    }));
    put(root, `${d}/reset`, wo((v) => {
      if (kstrto(v, false, 64) !== 1n) throw new Errno(EINVAL, 'write 1');
      if (!current().length) throw new Errno(ENOTTY, 'every reset method is disabled');
      f.config.reset();
    }));
  }
  const exp = caps.get(0x10);
  if (exp !== undefined) {
    const l = () => pcieLink(cfg, exp);
    put(root, `${d}/current_link_speed`, ro(() => linkSpeedText(l().speed)));
    put(root, `${d}/current_link_width`, ro(() => `${l().width}\n`));
    put(root, `${d}/max_link_speed`, ro(() => linkSpeedText(l().maxSpeed)));
    put(root, `${d}/max_link_width`, ro(() => `${l().maxWidth}\n`));
  }
  put(root, `${d}/vfio-dev/vfio${f.cdevIndex}/dev`, ro(() => `511:${f.cdevIndex}\n`));
  if (s.sriov) addSriov(root, d, s.sriov, st);
}

/**
 * An SR-IOV PF bound to vfio-pci. vfio-pci creates VFs only when loaded with enable_sriov=1, which the
 * emulated host's is not (its parameter reads N): any change of sriov_numvfs is ENOENT, after the checks
 * sriov_numvfs_store makes first.
 */
function addSriov(root: Node & { type: 'dir' }, d: string, sr: SriovSpec, st: FnState) {
  put(root, `${d}/sriov_totalvfs`, ro(() => `${sr.totalVfs}\n`));
  put(root, `${d}/sriov_offset`, ro(() => `${sr.offset}\n`));
  put(root, `${d}/sriov_stride`, ro(() => `${sr.stride}\n`));
  put(root, `${d}/sriov_vf_device`, ro(() => `${sr.vfDevice.toString(16)}\n`));
  put(root, `${d}/sriov_numvfs`, rw(() => '0\n', (v) => {
    const n = kstrto(v, false, 16);
    if (n > BigInt(sr.totalVfs)) throw new Errno(ERANGE, `at most ${sr.totalVfs} VFs`);
    if (n !== 0n) throw new Errno(ENOENT, 'vfio-pci was loaded without enable_sriov');
  }));
  put(root, `${d}/sriov_drivers_autoprobe`, rw(() => (st.vfAutoprobe ? '1\n' : '0\n'), (v) => {
    st.vfAutoprobe = kstrtobool(v);
  }));
}

/** kstrtobool: y/Y/1/t/T/on and n/N/0/f/F/off, by their first characters. */
function kstrtobool(v: Buffer): boolean {
  const s = v.toString('latin1');
  if ('yY1tT'.includes(s[0] ?? 'x')) return true;
  if ('nN0fF'.includes(s[0] ?? 'x')) return false;
  if ((s[0] === 'o' || s[0] === 'O') && (s[1] === 'n' || s[1] === 'N')) return true;
  if ((s[0] === 'o' || s[0] === 'O') && (s[1] === 'f' || s[1] === 'F')) return false;
  throw new Errno(EINVAL, 'not a boolean');
}

/**
 * The host's entries beside the emulated ones, each as a link with an absolute target: the shim leaves
 * the paths of such an entry to the host (c/shim-path.c), and the kernel, following it from inside the
 * mount, reaches the host's file too. The emulated entries win every name they share.
 */
function mergeHost(root: Node & { type: 'dir' }, host: HostSysfs) {
  const merge = (path: string, names: string[]) => {
    const d = mkdirp(root, path);
    for (const n of names) if (!d.entries.has(n)) d.entries.set(n, { type: 'link', target: `${path}/${n}` });
  };
  merge('/sys/module', host.modules);
  if (!host.pci) return;
  merge('/sys/bus/pci/devices', host.pci.devices);
  for (const [name, entries] of host.pci.domains) if (lookupDir(root, `/sys/devices/${name}`)) merge(`/sys/devices/${name}`, entries);
}

function lookupDir(root: Node & { type: 'dir' }, path: string): boolean {
  let n: Node | undefined = root;
  for (const part of path.split('/').filter(Boolean)) n = n?.type === 'dir' ? n.entries.get(part) : undefined;
  return n?.type === 'dir';
}
