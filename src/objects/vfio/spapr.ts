// The SPAPR TCE IOMMU driver of a legacy container (VFIO_SPAPR_TCE_IOMMU v1, VFIO_SPAPR_TCE_v2_IOMMU).
//
// A container owns up to two DMA windows (TCE tables), programmed into every PE of its groups. v1 has the
// one lazily created default window and pins pages at map time; v2 creates and removes windows and maps
// only preregistered memory. Checks run in the kernel's order with its errnos (reference spapr-tce.md
// §2.3-2.4, §3, §4). Two kernel bugs get a safe default and are reproduced with --strict-kernel: the
// end of a MAP/UNMAP range is not checked against the window, and a failed CREATE keeps its charge.
import { CommandTable } from '../../dispatch/table.ts';
import type { IoctlCall } from '../../dispatch/call.ts';
import { EBUSY, EFAULT, EINVAL, ENODEV, ENOENT, ENOSPC, ENOTTY, ENXIO, EPERM, Errno } from '../../errno.ts';
import { DmaDirection, SLOTS, type LockedMemoryAccount, type Slot, type TceTable } from '../../tce/index.ts';
import { VFIO } from '../../uapi/constants.ts';
import type { Daemon } from '../../daemon.ts';
import type { IommuGroup } from '../inventory.ts';
import type { FileKind } from '../../uapi/ioctls.ts';
import type { MmContext, PreregRegion } from './prereg.ts';

const PAGE_SHIFT_4K = 12;

/** The mm a request comes from: tcefs knows a process by the pid in its frames. */

export class SpaprIommu {
  enabled = false;
  /** The default window is created on first use (MAP, UNMAP, CREATE), or dropped by REMOVE(0). */
  defWindowPending = false;
  mm?: MmContext;
  readonly tables: [TceTable | null, TceTable | null] = [null, null];
  /** Regions this container registered, each holding one reference. */
  private readonly prereg = new Set<PreregRegion>();
  /** v1: the charge ENABLE took for the default window's worth of pages. */
  private enableCharge = 0n;

  /**
   * @param container whatever holds the groups: a legacy container, or an iommufd serving the SPAPR calls
   *   as an extension (its groups are those set to it with VFIO_GROUP_SET_CONTAINER)
   */
  constructor(readonly container: { readonly groups: IommuGroup[] }, readonly v2: boolean, readonly daemon: Daemon) {}

  get groups(): IommuGroup[] {
    return this.container.groups;
  }

  private get account(): LockedMemoryAccount {
    return this.daemon.host.account(this.mm!.owner);
  }

  checkExtension(ext: number): number {
    if (ext === VFIO.VFIO_SPAPR_TCE_IOMMU || ext === VFIO.VFIO_SPAPR_TCE_v2_IOMMU) return 1;
    if (ext === VFIO.VFIO_EEH) return this.daemon.host.eehEnabled ? 1 : 0;
    return 0;
  }

  // ---- group attach/detach (driven by the container core) ----

  attachGroup(g: IommuGroup): void {
    const pe = g.pe;
    if (this.v2 && pe.maxDynamicWindowsSupported === 0) throw new Errno(EINVAL, `${pe.name} has no dynamic windows`);
    if (!this.v2 && this.groups.length > 0) throw new Errno(EBUSY, 'a v1 container holds one group');
    if (this.groups.includes(g)) throw new Errno(EBUSY, 'group already attached');
    if (this.groups.some((o) => o.pe.ops !== pe.ops)) throw new Errno(EPERM, 'groups with different platform ops');
    // Program every window the container already has into the new PE (this is how v2 shares tables).
    try {
      SLOTS.forEach((slot) => {
        const t = this.tables[slot];
        if (t) pe.setWindow(slot, t);
      });
    } catch (e) {
      for (const slot of SLOTS) if (pe.tables[slot] && pe.tables[slot] === this.tables[slot]) pe.unsetWindow(slot);
      throw e;
    }
    if (this.groups.length === 0 && !this.tables[0]) this.defWindowPending = true;
  }

  /** Detaching wipes every mapping of the container's windows, including what other groups still see. */
  detachGroup(g: IommuGroup): void {
    for (const slot of SLOTS) {
      const t = this.tables[slot];
      if (!t) continue;
      this.clear(t, t.offset, t.size);
      if (g.pe.tables[slot] === t) g.pe.unsetWindow(slot);
    }
  }

  /** The last group left: free the windows, drop preregistered regions, undo ENABLE's charge, drop the mm. */
  release(): void {
    for (const slot of SLOTS) {
      const t = this.tables[slot];
      if (!t) continue;
      this.clear(t, t.offset, t.size);
      this.unsetEverywhere(slot, t);
      this.freeTable(t);
      this.tables[slot] = null;
    }
    if (this.mm) {
      for (const r of this.prereg) this.mm.put(r);
      this.prereg.clear();
      if (this.enableCharge) this.account.uncharge(this.enableCharge);
      this.enableCharge = 0n;
      this.daemon.mmRelease(this.mm);
      this.mm = undefined;
    }
    this.enabled = false;
  }

  // ---- helpers in the kernel's terms ----

  /** Every ioctl but CHECK_EXTENSION: a container bound to one process refuses all others. */
  private checkMm(call: IoctlCall): void {
    if (this.mm && this.mm.owner !== call.owner) throw new Errno(EPERM, `container bound to ${this.mm.owner}`);
  }

  private bindMm(call: IoctlCall): void {
    if (this.mm) {
      if (this.mm.owner !== call.owner) throw new Errno(EPERM, 'container bound to another process');
      return;
    }
    this.mm = this.daemon.mmAcquire(call.owner);
  }

  /** A container's table is programmed into the PEs of its groups and nowhere else. */
  private unsetEverywhere(slot: Slot, t: TceTable): void {
    for (const g of this.groups) if (g.pe.tables[slot] === t) g.pe.unsetWindow(slot);
  }

  private freeTable(t: TceTable): void {
    (this.groups[0]?.pe ?? this.daemon.host.pes()[0]).freeTable(t, this.account);
  }

  private createWindow(pageShift: number, windowSize: bigint, levels: number): bigint {
    const slot = SLOTS.find((s) => !this.tables[s]);
    if (slot === undefined) throw new Errno(ENOSPC, 'both windows in use');
    const first = this.groups[0].pe;
    const strict = this.daemon.options.strictKernel;
    const table = first.createTable(slot, pageShift, windowSize, levels, this.account, {
      boundsMode: strict ? 'kernel' : 'window',
      refundOnFailure: !strict,
    });
    try {
      for (const g of this.groups) if (g.pe.tables[slot] !== table) g.pe.setWindow(slot, table);
    } catch (e) {
      this.unsetEverywhere(slot, table);
      first.freeTable(table, this.account);
      throw e;
    }
    this.tables[slot] = table;
    return table.startAddr;
  }

  private createDefaultWindow(): void {
    if (!this.defWindowPending) return;
    if (this.groups.length === 0) throw new Errno(ENODEV, 'no group');
    const pe = this.groups[0].pe;
    this.createWindow(PAGE_SHIFT_4K, BigInt(pe.tce32Size), 1);
    this.defWindowPending = false;
  }

  private findTable(iova: bigint): { slot: Slot; table: TceTable } | undefined {
    for (const slot of SLOTS) {
      const t = this.tables[slot];
      if (t && t.contains(iova)) return { slot, table: t };
    }
    return undefined;
  }

  /** Clear entries, returning pinned pages (v1) or region mapping counts (v2). */
  private clear(t: TceTable, entry: bigint, count: bigint): void {
    for (const old of t.clearRange(entry, count)) this.dropOld(old.tce, old.ua);
  }

  private dropOld(tce: bigint, ua: bigint): void {
    if (tce === 0n || !this.mm) return;
    if (this.v2) {
      const r = this.mm.lookup(ua, 1n);
      if (r) this.mm.unmapped(r);
    } else {
      this.daemon.host.memory.unpin(this.mm.owner, ua, 1n);
    }
  }

  /** The range check the kernel does not do; --strict-kernel lets entries past the window through. */
  private checkEnd(t: TceTable, iova: bigint, size: bigint): void {
    if (this.daemon.options.strictKernel) return;
    if (iova + size > t.endAddr) throw new Errno(EINVAL, `range ends past the window at 0x${t.endAddr.toString(16)}`);
  }

  // ---- the ioctls ----

  getInfo(call: IoctlCall): number {
    this.checkMm(call);
    if (this.groups.length === 0) throw new Errno(ENXIO, 'no group');
    call.vfioCopyIn();
    const pe = this.groups[0].pe;
    call.set('dma32_window_start', pe.tce32Start);
    call.set('dma32_window_size', pe.tce32Size);
    call.set('flags', 0);
    if (this.v2 && pe.maxDynamicWindowsSupported !== 0) {
      call.set('flags', VFIO.VFIO_IOMMU_SPAPR_INFO_DDW);
      call.set('ddw.pgsizes', pe.pgsizes);
      call.set('ddw.max_dynamic_windows_supported', pe.maxDynamicWindowsSupported);
      call.set('ddw.levels', pe.maxLevels);
    }
    call.copyOut(call.get('argsz') >= call.struct.size ? call.struct.size : call.decl.minsz!);
    return 0;
  }

  enable(call: IoctlCall): number {
    this.checkMm(call);
    if (this.v2) throw new Errno(ENOTTY, 'ENABLE is v1 only');
    if (this.enabled) throw new Errno(EBUSY, 'already enabled');
    if (this.groups.length === 0) throw new Errno(ENODEV, 'no group');
    const pe = this.groups[0].pe;
    if (pe.tce32Size === 0) throw new Errno(EPERM, 'no 32-bit window');
    this.bindMm(call);
    const bytes = BigInt(pe.tce32Size);
    this.account.charge(bytes);
    this.enableCharge = bytes;
    this.enabled = true;
    return 0;
  }

  disable(call: IoctlCall): number {
    this.checkMm(call);
    if (this.v2) throw new Errno(ENOTTY, 'DISABLE is v1 only');
    if (this.enabled) {
      this.account.uncharge(this.enableCharge);
      this.enableCharge = 0n;
      this.enabled = false;
    }
    return 0;
  }

  private preregArgs(call: IoctlCall): { ua: bigint; size: bigint } {
    call.vfioCopyIn();
    if (call.get('flags') !== 0) throw new Errno(EINVAL, 'flags');
    const ua = call.get64('vaddr');
    const size = call.get64('size');
    const mask = (1n << BigInt(this.daemon.host.hostPageShift)) - 1n;
    if (ua & mask || size & mask || ua + size >= 1n << 64n) throw new Errno(EINVAL, 'vaddr/size not page aligned, or wrapping');
    return { ua, size };
  }

  registerMemory(call: IoctlCall): number {
    this.checkMm(call);
    if (!this.v2) throw new Errno(ENOTTY, 'REGISTER_MEMORY is v2 only');
    this.bindMm(call);
    const { ua, size } = this.preregArgs(call);
    const mm = this.mm!;
    const existing = mm.find(ua, size);
    if (existing) {
      if (this.prereg.has(existing)) throw new Errno(EBUSY, 'already registered by this container');
      existing.used++;
      this.prereg.add(existing);
    } else {
      this.prereg.add(mm.create(ua, size));
    }
    this.enabled = true;
    return 0;
  }

  unregisterMemory(call: IoctlCall): number {
    this.checkMm(call);
    if (!this.v2) throw new Errno(ENOTTY, 'UNREGISTER_MEMORY is v2 only');
    if (!this.mm) throw new Errno(EPERM, 'container never bound to a process');
    const { ua, size } = this.preregArgs(call);
    const r = this.mm.find(ua, size);
    if (!r || !this.prereg.has(r)) throw new Errno(ENOENT, 'no such region in this container');
    this.prereg.delete(r);
    // Still mapped: the reference goes, the region stays pinned and orphaned, and the call succeeds.
    this.mm.put(r);
    return 0;
  }

  /** The checks CREATE and REMOVE share, in the kernel's order (reference §2.3 rows 1-7, §2.4). */
  private windowCallPreamble(call: IoctlCall): void {
    this.checkMm(call);
    if (!this.v2) throw new Errno(ENOTTY, `${call.decl.name} is v2 only`);
    this.bindMm(call);
    if (this.groups.length === 0) throw new Errno(ENXIO, 'no group');
    call.vfioCopyIn();
    if (call.get('flags') !== 0) throw new Errno(EINVAL, 'flags');
  }

  create(call: IoctlCall): number {
    this.windowCallPreamble(call);
    this.createDefaultWindow();
    const start = this.createWindow(call.get('page_shift'), call.get64('window_size'), call.get('levels'));
    call.set('start_addr', start);
    call.copyOut(call.struct.size);
    return 0;
  }

  remove(call: IoctlCall): number {
    this.windowCallPreamble(call);
    const start = call.get64('start_addr');
    if (this.defWindowPending && start === 0n) {
      this.defWindowPending = false;
      return 0;
    }
    const found = this.findTable(start);
    if (!found) throw new Errno(EINVAL, `no window contains 0x${start.toString(16)}`);
    const { slot, table } = found;
    this.clear(table, table.offset, table.size);
    this.unsetEverywhere(slot, table);
    this.freeTable(table);
    this.tables[slot] = null;
    return 0;
  }

  private direction(flags: number): DmaDirection {
    const r = flags & VFIO.VFIO_DMA_MAP_FLAG_READ;
    const w = flags & VFIO.VFIO_DMA_MAP_FLAG_WRITE;
    if (r && w) return DmaDirection.BIDIRECTIONAL;
    if (r) return DmaDirection.TO_DEVICE;
    if (w) return DmaDirection.FROM_DEVICE;
    throw new Errno(EINVAL, 'neither READ nor WRITE');
  }

  mapDma(call: IoctlCall): number {
    this.checkMm(call);
    if (!this.enabled) throw new Errno(EPERM, this.v2 ? 'no memory registered' : 'not enabled');
    call.vfioCopyIn();
    const flags = call.get('flags');
    if (flags & ~(VFIO.VFIO_DMA_MAP_FLAG_READ | VFIO.VFIO_DMA_MAP_FLAG_WRITE)) throw new Errno(EINVAL, `flags 0x${flags.toString(16)}`);
    this.createDefaultWindow();
    const iova = call.get64('iova');
    const found = this.findTable(iova);
    if (!found) throw new Errno(ENXIO, `no window contains 0x${iova.toString(16)}`);
    const t = found.table;
    const size = call.get64('size');
    const vaddr = call.get64('vaddr');
    const mask = t.pageSize - 1n;
    if (size & mask || vaddr & mask) throw new Errno(EINVAL, 'size or vaddr not aligned to the IOMMU page');
    const dir = this.direction(flags);
    // The kernel's alignment helper ORs two checks into a boolean and returns it: a misaligned iova
    // makes the ioctl return 1 with nothing mapped and errno untouched.
    if (iova & mask) return 1;
    if (size === 0n) return 0;
    this.checkEnd(t, iova, size);
    const pages = size >> BigInt(t.pageShift);
    const first = t.entryOf(iova);
    let done = 0n;
    try {
      for (; done < pages; done++) {
        const ua = vaddr + (done << BigInt(t.pageShift));
        const hpa = this.v2 ? this.preregHpa(ua, t) : this.pinPage(ua, t);
        let old;
        try {
          old = t.xchg(first + done, t.makeTce(hpa, dir), ua);
        } catch (e) {
          this.undoHpa(ua);
          throw e;
        }
        this.dropOld(old.tce, old.ua);
      }
    } catch (e) {
      // A failed map clears what this call wrote (and with it any older mappings it had replaced).
      this.clear(t, first, done);
      throw e;
    }
    return 0;
  }

  private preregHpa(ua: bigint, t: TceTable): bigint {
    const r = this.mm!.lookup(ua, t.pageSize);
    if (!r) throw new Errno(EINVAL, `0x${ua.toString(16)} is not in preregistered memory`);
    if (r.pageShift < t.pageShift) throw new Errno(EINVAL, `region backs ${1 << r.pageShift}-byte pages, the window needs ${t.pageSize}`);
    r.mapped++;
    return r.hpa(ua);
  }

  private pinPage(ua: bigint, t: TceTable): bigint {
    const host = this.daemon.host;
    // Without hugetlb a system page backs at most PAGE_SIZE of IOMMU page.
    if (t.pageShift > host.hostPageShift) throw new Errno(EPERM, 'backing page smaller than the IOMMU page');
    try {
      return host.memory.pin(this.mm!.owner, ua, t.pageSize);
    } catch (e) {
      throw e instanceof Errno ? e : new Errno(EFAULT, String(e));
    }
  }

  /** Give back what preregHpa/pinPage took for a page that did not make it into the table. */
  private undoHpa(ua: bigint): void {
    if (this.v2) {
      const r = this.mm!.lookup(ua, 1n);
      if (r) this.mm!.unmapped(r);
    } else this.daemon.host.memory.unpin(this.mm!.owner, ua, 1n);
  }

  unmapDma(call: IoctlCall): number {
    this.checkMm(call);
    if (!this.enabled) throw new Errno(EPERM, this.v2 ? 'no memory registered' : 'not enabled');
    call.vfioCopyIn();
    if (call.get('flags') !== 0) throw new Errno(EINVAL, 'flags are not supported');
    this.createDefaultWindow();
    const iova = call.get64('iova');
    const found = this.findTable(iova);
    if (!found) throw new Errno(ENXIO, `no window contains 0x${iova.toString(16)}`);
    const t = found.table;
    const size = call.get64('size');
    const mask = t.pageSize - 1n;
    if (size & mask) throw new Errno(EINVAL, 'size not aligned to the IOMMU page');
    if (iova & mask) return 1;
    this.checkEnd(t, iova, size);
    const first = t.entryOf(iova);
    this.clear(t, first, size >> BigInt(t.pageShift));
    // What was just cleared, and the empty entries after it, an identical call would find empty too.
    if (call.wantsLease && size > 0n && iova + size <= t.endAddr) {
      const lease = this.daemon.leases.grant(t, first, t.offset + t.size);
      if (lease) call.outBlobs = [lease];
    }
    return 0;
  }

  eehPeOp(call: IoctlCall): number {
    this.checkMm(call);
    for (const g of this.groups) {
      call.vfioCopyIn();
      if (call.get('flags') !== 0) throw new Errno(EINVAL, 'flags');
      const op = call.get('op');
      let r: number;
      if (op === VFIO.VFIO_EEH_PE_INJECT_ERR) {
        call.vfioCopyIn(call.struct.size);
        r = g.pe.eeh.op(op, { type: call.get('err.type'), func: call.get('err.func'), addr: call.get64('err.addr'), mask: call.get64('err.mask') });
      } else r = g.pe.eeh.op(op);
      if (r !== 0) return r;
    }
    return 0;
  }
}

/** The SPAPR driver's calls, for any file kind that hosts the driver (a legacy container, or an iommufd). */
export function spaprCommands<F extends { spapr?: SpaprIommu }>(kind: FileKind): CommandTable<F> {
  return new CommandTable<F>(kind, {
    VFIO_IOMMU_SPAPR_TCE_GET_INFO: (f, c) => f.spapr!.getInfo(c),
    VFIO_IOMMU_MAP_DMA: (f, c) => f.spapr!.mapDma(c),
    VFIO_IOMMU_UNMAP_DMA: (f, c) => f.spapr!.unmapDma(c),
    VFIO_IOMMU_ENABLE: (f, c) => f.spapr!.enable(c),
    VFIO_IOMMU_DISABLE: (f, c) => f.spapr!.disable(c),
    VFIO_IOMMU_SPAPR_REGISTER_MEMORY: (f, c) => f.spapr!.registerMemory(c),
    VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY: (f, c) => f.spapr!.unregisterMemory(c),
    VFIO_IOMMU_SPAPR_TCE_CREATE: (f, c) => f.spapr!.create(c),
    VFIO_IOMMU_SPAPR_TCE_REMOVE: (f, c) => f.spapr!.remove(c),
    VFIO_EEH_PE_OP: (f, c) => f.spapr!.eehPeOp(c),
  });
}
