// /dev/iommu: one iommufd context per open. It owns an object table (IOAS, HWPT, device objects) with
// one ID space; numbers below 0x80 are the VFIO container calls served in compat mode (compat.ts).
// Checks follow drivers/iommu/iommufd's order and vocabulary: EOPNOTSUPP for unknown flags and non-zero
// reserved fields, ENOENT for unknown IDs, EOVERFLOW for arithmetic that wraps.
import { CommandTable } from '../../dispatch/table.ts';
import type { IoctlCall } from '../../dispatch/call.ts';
import { OpenFile } from '../../dispatch/open-file.ts';
import { EBUSY, EINVAL, EMSGSIZE, ENODEV, EOPNOTSUPP, EOVERFLOW, EPERM, Errno } from '../../errno.ts';
import { IOMMUFD } from '../../uapi/constants.ts';
import type { Daemon } from '../../daemon.ts';
import { IdTable } from './id-table.ts';
import { Ioas } from './ioas.ts';
import { readRanges, U64_MAX, writeRanges } from './ranges.ts';
import { compatCommands } from './compat.ts';
import { hostLacksCommands } from './host-lacks.ts';
import { dirtyCommands } from './dirty.ts';
import { allocNested, nestedCommands } from './nested.ts';
import { viommuCommands } from './viommu.ts';
import type { NestedHwpt, PagingHwpt } from './backend.ts';
import { eventqCommands, hwptFaultQueue } from './eventq-file.ts';
import { changeProcess, mapFile } from './map-file.ts';
import type { IommuGroup } from '../inventory.ts';
import { spaprCommands, SpaprIommu } from '../vfio/spapr.ts';
import { IommufdDevice } from './device.ts';
import { selftestCommands } from './selftest/test-cmd.ts';
import { TEST_OPS } from './selftest/index.ts';

/** Bytes of a GET_HW_INFO buffer tcefs zero-fills; far more than any hardware info struct. */
export const HW_INFO_FILL_MAX = 64 * 1024;

const MAP_FLAGS = IOMMUFD.IOMMU_IOAS_MAP_FIXED_IOVA | IOMMUFD.IOMMU_IOAS_MAP_WRITEABLE | IOMMUFD.IOMMU_IOAS_MAP_READABLE;
const RW = IOMMUFD.IOMMU_IOAS_MAP_WRITEABLE | IOMMUFD.IOMMU_IOAS_MAP_READABLE;
/** IOMMU_HWPT_ALLOC flags the core knows for a paging domain; the backend decides what it can do. */
const PAGING_FLAGS = IOMMUFD.IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMUFD.IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMUFD.IOMMU_HWPT_FAULT_ID_VALID | IOMMUFD.IOMMU_HWPT_ALLOC_PASID;

export class IommufdFile extends OpenFile {
  readonly kind = 'iommufd';
  readonly objects: IdTable;
  /** The IOAS the VFIO compat calls work on (IOMMU_VFIO_IOAS, or created by a group's SET_CONTAINER). */
  compatIoas?: Ioas;
  /** IOMMU_OPTION_RLIMIT_MODE: 0 accounts per user, 1 per process. */
  rlimitMode = 0;
  /** Devices bound to this context; each keeps it alive after its file is closed, as a file reference would. */
  bound = 0;
  /** Open event-queue files (fault queues, vEVENTQs); each keeps the context alive, as its file reference would. */
  private queueFiles = 0;
  /** Groups set to this context as their container (newest first); they keep it alive too. */
  readonly groups: IommuGroup[] = [];
  /** Extension (host.iommufdSpaprCompat): the SPAPR v2 driver, chosen with VFIO_SET_IOMMU. */
  spapr?: SpaprIommu;
  private closed = false;

  constructor(path: string, readonly daemon: Daemon) {
    super(path);
    this.objects = new IdTable(daemon.options.maxObjects, daemon.host.faults);
  }

  static readonly table = new CommandTable<IommufdFile>('iommufd', {
    IOMMU_DESTROY: (f, call) => f.destroy(call.get('id')),
    IOMMU_IOAS_ALLOC: (f, call) => {
      if (call.get('flags')) throw new Errno(EOPNOTSUPP, 'flags');
      call.set('out_ioas_id', f.objects.insert(new Ioas(f.daemon.host, () => f.rlimitMode === 1)).id);
      call.respond();
    },
    IOMMU_IOAS_IOVA_RANGES: (f, call) => f.iovaRanges(call),
    IOMMU_IOAS_ALLOW_IOVAS: (f, call) => {
      if (call.get('__reserved')) throw new Errno(EOPNOTSUPP, '__reserved');
      const ioas = f.ioas(call.get('ioas_id'));
      const n = call.get('num_iovas');
      ioas.allow(readRanges(call.readPointer('allowed_iovas'), n));
    },
    IOMMU_IOAS_MAP: (f, call) => f.map(call),
    IOMMU_IOAS_COPY: (f, call) => f.copy(call),
    IOMMU_IOAS_UNMAP: (f, call) => f.unmap(call),
    IOMMU_OPTION: (f, call) => f.option(call),
    IOMMU_VFIO_IOAS: (f, call) => f.vfioIoas(call),
    IOMMU_HWPT_ALLOC: (f, call) => f.hwptAlloc(call),
    IOMMU_GET_HW_INFO: (f, call) => f.hwInfo(call),
    IOMMU_IOAS_MAP_FILE: mapFile,
    IOMMU_IOAS_CHANGE_PROCESS: changeProcess,
    ...hostLacksCommands,
    ...eventqCommands,
    ...dirtyCommands,
    ...nestedCommands,
    ...viommuCommands,
  }).with(compatCommands);

  static readonly withSpapr = spaprCommands<IommufdFile>('iommufd').with(IommufdFile.table);

  commands(): CommandTable<IommufdFile> {
    const t = this.spapr ? IommufdFile.withSpapr : IommufdFile.table;
    return this.daemon.selftest ? selftestCommands(t, TEST_OPS) : t;
  }

  /** VFIO_GROUP_SET_CONTAINER with this iommufd: a compat IOAS is made if there is none. */
  addGroup(g: IommuGroup): void {
    this.compatIoas ??= this.objects.insert(new Ioas(this.daemon.host, () => this.rlimitMode === 1));
    if (this.spapr) this.claimForSpapr(g);
    this.groups.unshift(g);
  }

  removeGroup(g: IommuGroup): void {
    this.groups.splice(this.groups.indexOf(g), 1);
    if (this.spapr) {
      this.spapr.detachGroup(g);
      g.dmaOwner = undefined;
      g.pe.releaseOwnership();
      if (this.groups.length === 0) {
        this.spapr.release();
        this.spapr = undefined;
      }
    }
    this.maybeTeardown();
  }

  /** Serving the SPAPR calls, the context owns a group's DMA itself, as a legacy container does. */
  private claimForSpapr(g: IommuGroup): void {
    if (g.dmaOwner) throw new Errno(EBUSY, `group ${g.id} has devices bound through their cdevs`);
    g.pe.takeOwnership();
    try {
      this.spapr!.attachGroup(g);
    } catch (e) {
      g.pe.releaseOwnership();
      throw e;
    }
    g.dmaOwner = this;
  }

  /** VFIO_SET_IOMMU(VFIO_SPAPR_TCE_v2_IOMMU) on an iommufd (extension). */
  setSpapr(): void {
    if (this.spapr) throw new Errno(EINVAL, 'SPAPR already set');
    if (this.groups.length === 0) throw new Errno(EINVAL, 'no group is set to this iommufd');
    this.spapr = new SpaprIommu(this, true, this.daemon);
    const groups = this.groups.splice(0);
    const claimed: IommuGroup[] = [];
    try {
      for (const g of [...groups].reverse()) {
        this.claimForSpapr(g);
        this.groups.unshift(g);
        claimed.push(g);
      }
    } catch (e) {
      for (const g of claimed) {
        this.spapr.detachGroup(g);
        g.dmaOwner = undefined;
        g.pe.releaseOwnership();
      }
      this.spapr.release();
      this.spapr = undefined;
      this.groups.splice(0, this.groups.length, ...groups);
      throw e;
    }
  }

  ioas(id: number): Ioas {
    return this.objects.get<Ioas>(id, 'ioas');
  }

  private destroy(id: number): void {
    const o = this.objects.find(id);
    this.objects.destroy(id);
    if (o === this.compatIoas) this.compatIoas = undefined;
  }

  private iovaRanges(call: IoctlCall): void {
    if (call.get('__reserved')) throw new Errno(EOPNOTSUPP, '__reserved');
    const ioas = this.ioas(call.get('ioas_id'));
    const ranges = ioas.usableRanges();
    const capacity = call.get('num_iovas');
    const fit = ranges.slice(0, capacity);
    if (fit.length) call.writePointer('allowed_iovas', writeRanges(fit));
    call.set('num_iovas', ranges.length);
    call.set('out_iova_alignment', ioas.iovaAlignment);
    call.respond();
    // The struct is written back before the caller learns its array was too small.
    if (ranges.length > capacity) throw new Errno(EMSGSIZE, `${ranges.length} ranges, room for ${capacity}`);
  }

  private map(call: IoctlCall): void {
    const flags = call.get('flags');
    if (flags & ~MAP_FLAGS || call.get('__reserved')) throw new Errno(EOPNOTSUPP, 'flags or __reserved');
    const iova = call.get64('iova');
    const length = call.get64('length');
    if (iova >= U64_MAX || length >= U64_MAX) throw new Errno(EOVERFLOW, 'iova or length');
    if (!(flags & RW)) throw new Errno(EINVAL, 'neither READABLE nor WRITEABLE');
    const ioas = this.ioas(call.get('ioas_id'));
    const fixed = flags & IOMMUFD.IOMMU_IOAS_MAP_FIXED_IOVA ? iova : undefined;
    call.set('iova', ioas.map(call.get64('user_va'), length, fixed, flags, call.owner));
    call.respond();
  }

  private copy(call: IoctlCall): void {
    const flags = call.get('flags');
    if (flags & ~MAP_FLAGS) throw new Errno(EOPNOTSUPP, 'flags');
    const length = call.get64('length');
    const srcIova = call.get64('src_iova');
    const dstIova = call.get64('dst_iova');
    if (length >= U64_MAX || srcIova >= U64_MAX || dstIova >= U64_MAX) throw new Errno(EOVERFLOW, 'length or iova');
    if (!(flags & RW)) throw new Errno(EINVAL, 'neither READABLE nor WRITEABLE');
    const src = this.ioas(call.get('src_ioas_id'));
    if (length === 0n) throw new Errno(EINVAL, 'length 0');
    if (srcIova + length - 1n > U64_MAX) throw new Errno(EOVERFLOW, 'source range wraps');
    const pieces = src.slices(srcIova, length);
    const dst = this.ioas(call.get('dst_ioas_id'));
    if (flags & IOMMUFD.IOMMU_IOAS_MAP_WRITEABLE && pieces.some((p) => !p.writeable)) throw new Errno(EPERM, 'source is not writeable');
    const fixed = flags & IOMMUFD.IOMMU_IOAS_MAP_FIXED_IOVA ? dstIova : undefined;
    const at = dst.place(length, pieces[0].userVa, fixed);
    const inserted: bigint[] = [];
    try {
      for (const p of pieces) {
        const start = at + (p.start - srcIova);
        dst.insert({ ...p, start, last: start + (p.last - p.start), readable: !!(flags & IOMMUFD.IOMMU_IOAS_MAP_READABLE), writeable: !!(flags & IOMMUFD.IOMMU_IOAS_MAP_WRITEABLE) });
        inserted.push(start);
      }
    } catch (e) {
      for (const s of inserted) dst.unmap(s, 1n);
      throw e;
    }
    call.set('dst_iova', at);
    call.respond();
  }

  private unmap(call: IoctlCall): void {
    const ioas = this.ioas(call.get('ioas_id'));
    const iova = call.get64('iova');
    const length = call.get64('length');
    let removed: bigint;
    if (iova === 0n && length === U64_MAX) removed = ioas.unmapAll();
    else {
      if (iova >= U64_MAX || length >= U64_MAX) throw new Errno(EOVERFLOW, 'iova or length');
      if (length === 0n) throw new Errno(EINVAL, 'length 0');
      if (iova + length - 1n > U64_MAX) throw new Errno(EOVERFLOW, 'range wraps');
      removed = ioas.unmap(iova, length);
      if (removed === 0n) throw new Errno(2 /* ENOENT */, 'nothing mapped in the range');
    }
    call.set('length', removed);
    call.respond();
  }

  private option(call: IoctlCall): void {
    if (call.get('__reserved')) throw new Errno(EOPNOTSUPP, '__reserved');
    const op = call.get('op');
    const set = op === IOMMUFD.IOMMU_OPTION_OP_SET;
    if (!set && op !== IOMMUFD.IOMMU_OPTION_OP_GET) throw new Errno(EOPNOTSUPP, `op ${op}`);
    const val = call.get64('val64');
    switch (call.get('option_id')) {
      case IOMMUFD.IOMMU_OPTION_RLIMIT_MODE:
        if (call.get('object_id')) throw new Errno(EOPNOTSUPP, 'RLIMIT_MODE is global');
        if (set) {
          if (this.objects.size) throw new Errno(EBUSY, 'the context already holds objects');
          if (val > 1n) throw new Errno(EINVAL, `val64 ${val}`);
          this.rlimitMode = Number(val);
        } else call.set('val64', this.rlimitMode);
        break;
      case IOMMUFD.IOMMU_OPTION_HUGE_PAGES: {
        const ioas = this.ioas(call.get('object_id'));
        if (set) {
          if (val > 1n) throw new Errno(EINVAL, `val64 ${val}`);
          ioas.setHugePages(val === 1n);
        } else call.set('val64', ioas.hugePages ? 1 : 0);
        break;
      }
      default:
        throw new Errno(EOPNOTSUPP, `option ${call.get('option_id')}`);
    }
    call.copyOutField('val64');
  }

  private vfioIoas(call: IoctlCall): void {
    if (call.get('__reserved')) throw new Errno(EOPNOTSUPP, '__reserved');
    switch (call.get('op')) {
      case IOMMUFD.IOMMU_VFIO_IOAS_GET:
        if (!this.compatIoas) throw new Errno(ENODEV, 'no compat IOAS');
        call.set('ioas_id', this.compatIoas.id);
        call.respond();
        return;
      case IOMMUFD.IOMMU_VFIO_IOAS_SET:
        this.compatIoas = this.ioas(call.get('ioas_id'));
        return;
      case IOMMUFD.IOMMU_VFIO_IOAS_CLEAR:
        this.compatIoas = undefined;
        return;
      default:
        throw new Errno(EOPNOTSUPP, `op ${call.get('op')}`);
    }
  }

  /**
   * IOMMU_HWPT_ALLOC of a paging domain on an IOAS: the core's checks in the kernel's order, then the
   * device's backend makes the domain from the flags and driver data (backend.ts).
   */
  private hwptAlloc(call: IoctlCall): void {
    if (call.get('__reserved')) throw new Errno(EOPNOTSUPP, '__reserved');
    const type = call.get('data_type');
    const len = call.get('data_len');
    if ((type === IOMMUFD.IOMMU_HWPT_DATA_NONE) !== (len === 0)) throw new Errno(EINVAL, 'data_type and data_len disagree');
    const dev = this.objects.get<IommufdDevice>(call.get('dev_id'), 'device');
    const pt = this.objects.find(call.get('pt_id'));
    if (pt?.kind === 'hwpt_paging' || pt?.kind === 'viommu') return this.hwptFinish(call, this.objects.insert(allocNested(call, dev, pt)));
    if (!pt || pt.kind !== 'ioas') throw new Errno(EINVAL, `pt_id ${call.get('pt_id')} is not an IOAS`);
    const flags = call.get('flags');
    if (flags & ~PAGING_FLAGS) throw new Errno(EOPNOTSUPP, `flags 0x${flags.toString(16)}`);
    if (flags & IOMMUFD.IOMMU_HWPT_ALLOC_DIRTY_TRACKING && !dev.iommu.dirtyCapable) throw new Errno(EOPNOTSUPP, 'the device has no dirty tracking');
    if (flags & IOMMUFD.IOMMU_HWPT_FAULT_ID_VALID && flags & IOMMUFD.IOMMU_HWPT_ALLOC_NEST_PARENT) throw new Errno(EOPNOTSUPP, 'a nesting parent takes no fault queue');
    const data = len ? { type, read: () => call.readPointer('data_uptr'), length: len } : undefined;
    this.hwptFinish(call, this.objects.create(() => dev.iommu.allocPaging(pt as Ioas, flags, data, call.owner)));
  }

  /** The end of IOMMU_HWPT_ALLOC for paging and nested HWPTs alike: the fault queue, then the answer. */
  private hwptFinish(call: IoctlCall, hwpt: PagingHwpt | NestedHwpt): void {
    try {
      // The queue is looked up once the domain exists, as the kernel does; the HWPT holds it from here.
      if (call.get('flags') & IOMMUFD.IOMMU_HWPT_FAULT_ID_VALID) hwpt.fault = hwptFaultQueue(this, call.get('fault_id'));
      call.set('out_hwpt_id', hwpt.id);
      call.respond();
    } catch (e) {
      this.objects.remove(hwpt);
      throw e;
    }
  }

  /** IOMMU_GET_HW_INFO: what the device's IOMMU says of itself (a TCE IOMMU's windows, the mock's register). */
  private hwInfo(call: IoctlCall): void {
    const flags = call.get('flags');
    if (flags & ~IOMMUFD.IOMMU_HW_INFO_FLAG_INPUT_TYPE) throw new Errno(EOPNOTSUPP, 'flags');
    const reserved = call.struct.byName.get('__reserved')!;
    if (call.kbuf.subarray(reserved.offset, reserved.offset + reserved.size).some((b) => b !== 0)) throw new Errno(EOPNOTSUPP, '__reserved');
    const dev = this.objects.get<IommufdDevice>(call.get('dev_id'), 'device');
    const want = flags & IOMMUFD.IOMMU_HW_INFO_FLAG_INPUT_TYPE ? call.get('in_data_type') : IOMMUFD.IOMMU_HW_INFO_TYPE_DEFAULT;
    const info = dev.iommu.hwInfo(want);
    // The user's buffer gets what fits, zero-filled up to its own length (at most HW_INFO_FILL_MAX: the
    // zeroes travel in the reply, and a 4 GiB data_len must not cost the daemon 4 GiB); data_len then
    // says the real length.
    const userLen = Math.min(call.get('data_len'), HW_INFO_FILL_MAX);
    const out = Buffer.alloc(userLen);
    info.data.copy(out, 0, 0, Math.min(userLen, info.data.length));
    call.writePointer('data_uptr', out);
    call.set('data_len', info.data.length);
    call.set('out_data_type', info.type);
    call.set('out_capabilities', info.capabilities);
    call.set('out_max_pasid_log2', info.maxPasidLog2);
    call.respond();
  }

  /** A bound device's file went away. */
  deviceUnbound(): void {
    this.bound--;
    this.maybeTeardown();
  }

  holdForQueue(): void {
    this.queueFiles++;
  }

  queueFileClosed(): void {
    this.queueFiles--;
    this.maybeTeardown();
  }

  /** Closing the context destroys its objects, unless bound devices, groups or queue files still hold it. */
  release(): void {
    this.closed = true;
    this.maybeTeardown();
  }

  private maybeTeardown(): void {
    if (this.closed && this.bound === 0 && this.groups.length === 0 && this.queueFiles === 0) this.teardown();
  }

  /** Destroy every object, leaves first. */
  private teardown(): void {
    for (let left = this.objects.values(); left.length; ) {
      const leaves = left.filter((o) => o.users === 1);
      // One object's teardown may take others with it (a selftest device its idev).
      for (const o of leaves.length ? leaves : left) if (this.objects.find(o.id) === o) this.objects.remove(o);
      left = this.objects.values();
    }
    this.compatIoas = undefined;
  }
}
