// An NVMe controller (NVMe base spec 1.4 subset, NVM command set) with one namespace of 512-byte blocks.
// BAR 0 holds the registers and the doorbells (CAP.DSTRD = 0: doorbells from 0x1000); queues and data
// live in the client's memory and are reached only through the DMA port. A doorbell schedules work for
// a later turn of the event loop; each turn does a bounded amount, round-robin over the submission
// queues, so no queue starves another or the daemon. Layout and answers: docs/devices.md.
import createDebug from 'debug';
import { VFIO } from '../../uapi/constants.ts';
import { DmaError, type DeviceModel, type ModelContext } from '../model.ts';
import { DEFAULT_DISK_SIZE, FileDisk, MemoryDisk, type Disk } from './disk.ts';
import {
  AERL, ERROR_LOG_ENTRIES, LBA_SHIFT, MAX_IO_QUEUES, MDTS, WCTEMP, firmwareLog, identifyController, identifyNamespace, identity,
  namespaceDescriptors, namespaceList, smartLog, type HealthCounters,
} from './identify.ts';
import { prpSegments, type Segment } from './prp.ts';
import { ADMIN, AEN, CC, CQE_BYTES, CSTS, DNR, FEAT, IO, LOG, REG, SC, SQE_BYTES } from './spec.ts';

const warn = createDebug('tcefs:error');

/** 0-based maximum queue entries (CAP.MQES). */
export const MQES = 1023;
/** CAP: MQES, CQR (contiguous queues required), TO 7.5 s, DSTRD 0, CSS NVM, MPSMIN 4 KiB, MPSMAX 64 KiB. */
export const CAP = BigInt(MQES) | (1n << 16n) | (15n << 24n) | (1n << 37n) | (0n << 48n) | (4n << 52n);
export const VERSION = 0x00010400;
const MPS_MAX = 4;
/** Commands one turn of the event loop runs, in bursts of BURST per submission queue. */
const TURN_COMMANDS = 64;
const BURST = 8;
/** Data one turn moves before it yields. */
const TURN_BYTES = 4 << 20;
const MAX_TRANSFER = 4096 << MDTS;
const MAX_EVENTS = 16;

export type Scheduler = (work: () => void) => void;

export interface NvmeOptions {
  /** A file behind the namespace; without it, a sparse disk in memory. */
  backing?: string;
  /** Namespace size in bytes (default 64 MiB, or the backing file's size). */
  size?: number;
}

interface Sq {
  id: number;
  base: bigint;
  size: number;
  head: number;
  tail: number;
  cq: Cq;
}

interface Cq {
  id: number;
  base: bigint;
  size: number;
  head: number;
  tail: number;
  phase: number;
  ien: boolean;
  iv: number;
  sqs: Set<number>;
}

interface Done {
  status: number;
  result?: number;
}

/** A decoded submission queue entry. */
interface Sqe {
  opcode: number;
  fuse: number;
  psdt: number;
  cid: number;
  nsid: number;
  prp1: bigint;
  prp2: bigint;
  cdw: Uint32Array; // cdw[10..15]
}

const HELD = Symbol('held');

function ok(result = 0): Done {
  return { status: SC.SUCCESS, result };
}
function fail(status: number, result = 0): Done {
  return { status, result };
}

export class NvmeController implements DeviceModel {
  readonly name = 'nvme';
  readonly disk: Disk;
  private readonly blocks: bigint;
  private readonly ids: ReturnType<typeof identity>;
  private readonly vectors: number;

  private cc = 0;
  private csts = 0;
  private aqa = 0;
  private asq = 0n;
  private acq = 0n;
  private intms = 0;
  private readonly sqs = new Map<number, Sq>();
  private readonly cqs = new Map<number, Cq>();
  /** Queue ids allowed by Set Features (Number of Queues), 1-based counts. */
  private sqAllowed = MAX_IO_QUEUES;
  private cqAllowed = MAX_IO_QUEUES;
  private features = new Map<number, number>();
  private readonly aers: number[] = [];
  private readonly events: number[] = [];
  /** Event types reported and not yet acknowledged by reading their log page. */
  private readonly maskedEvents = new Set<number>();
  private readonly errorLog: Buffer[] = [];
  private errorCount = 0n;
  private readonly health: HealthCounters = { unitsRead: 0n, unitsWritten: 0n, reads: 0n, writes: 0n, errors: 0n };
  /** Bumped by every reset so work scheduled before it does nothing. */
  private generation = 0;
  private scheduled = false;
  private scratch?: Buffer;
  /**
   * Doorbell Buffer Config (shadow doorbells, NVMe 1.3): the host's copy of each I/O queue's doorbell
   * and the controller's event index for it, one page each in host memory. A host rings an MMIO doorbell
   * only when its new value passes the event index. Every MMIO doorbell is a FUSE request here, so the
   * controller keeps each SQ's index at the tail it last saw (every submission still rings, as the
   * controller learns of work no other way) and leaves the CQs' alone: the host then updates CQ heads in
   * memory only, and the controller reads them there when a CQ looks full.
   */
  private dbbuf?: { db: bigint; ei: bigint };

  constructor(private readonly ctx: ModelContext, options: NvmeOptions = {}, private readonly schedule: Scheduler = setImmediate) {
    this.disk = options.backing ? new FileDisk(options.backing, options.size) : new MemoryDisk(options.size ?? DEFAULT_DISK_SIZE);
    this.blocks = BigInt(this.disk.size) >> BigInt(LBA_SHIFT);
    this.ids = identity(ctx.bdf, options.backing);
    this.vectors = Math.max(1, ctx.msixVectors);
    this.defaults();
  }

  // ---- registers ----

  read(bar: number, offset: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    if (bar !== 0 || offset >= REG.END) return out;
    const r = Buffer.alloc(REG.END);
    r.writeBigUInt64LE(CAP, REG.CAP);
    r.writeUInt32LE(VERSION, REG.VS);
    r.writeUInt32LE(this.intms >>> 0, REG.INTMS);
    r.writeUInt32LE(this.intms >>> 0, REG.INTMC);
    r.writeUInt32LE(this.cc >>> 0, REG.CC);
    r.writeUInt32LE(this.csts >>> 0, REG.CSTS);
    r.writeUInt32LE(this.aqa >>> 0, REG.AQA);
    r.writeBigUInt64LE(this.asq, REG.ASQ);
    r.writeBigUInt64LE(this.acq, REG.ACQ);
    r.copy(out, 0, offset, Math.min(REG.END, offset + length));
    return out;
  }

  write(bar: number, offset: number, data: Buffer): void {
    if (bar !== 0) return;
    try {
      this.writeRegs(offset, data);
    } catch (e) {
      // The bus never sees an exception: a bug becomes the controller's fatal status.
      this.fatal(e);
    }
  }

  private writeRegs(offset: number, data: Buffer): void {
    const end = offset + data.length;
    const touched = (reg: number, size: number) => offset < reg + size && reg < end;
    // The value a write leaves in [reg, reg + size): its bytes over `current`.
    const merged = (reg: number, size: number, current: bigint) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(current);
      for (let i = 0; i < size; i++) if (offset <= reg + i && reg + i < end) b[i] = data[reg + i - offset];
      return size === 8 ? b.readBigUInt64LE() : BigInt(b.readUInt32LE());
    };
    if (offset < REG.END) {
      if (touched(REG.INTMS, 4)) this.intms = (this.intms | Number(merged(REG.INTMS, 4, 0n))) >>> 0;
      if (touched(REG.INTMC, 4)) {
        this.intms = (this.intms & ~Number(merged(REG.INTMC, 4, 0n))) >>> 0;
        // Entries still waiting on a now unmasked vector assert it again.
        for (const cq of this.cqs.values()) {
          if (this.dbbuf && cq.id !== 0) this.shadowHead(cq);
          if (cq.ien && cq.head !== cq.tail) this.interrupt(cq);
        }
      }
      if (touched(REG.AQA, 4)) this.aqa = Number(merged(REG.AQA, 4, BigInt(this.aqa))) & 0x0fff0fff;
      if (touched(REG.ASQ, 8)) this.asq = merged(REG.ASQ, 8, this.asq) & ~0xfffn;
      if (touched(REG.ACQ, 8)) this.acq = merged(REG.ACQ, 8, this.acq) & ~0xfffn;
      if (touched(REG.CC, 4)) this.writeCc(Number(merged(REG.CC, 4, BigInt(this.cc))) >>> 0);
    }
    if (end > REG.DOORBELLS && offset < REG.DOORBELLS_END) {
      const first = Math.max(0, Math.floor((offset - REG.DOORBELLS) / 4));
      const last = Math.ceil((Math.min(end, REG.DOORBELLS_END) - REG.DOORBELLS) / 4);
      for (let d = first; d < last; d++) this.doorbell(d, Number(merged(REG.DOORBELLS + d * 4, 4, 0n)));
    }
  }

  private writeCc(value: number): void {
    const old = this.cc;
    this.cc = value & 0x00fffff1;
    if (old & CC.EN && !(value & CC.EN)) {
      this.controllerReset();
      this.cc = value & 0x00fffff1;
    } else if (!(old & CC.EN) && value & CC.EN) this.enable();
    const shn = (value >>> CC.SHN_SHIFT) & 3;
    if (shn && !((old >>> CC.SHN_SHIFT) & 3)) this.shutdown();
    else if (!shn) this.csts &= ~(3 << CSTS.SHST_SHIFT);
  }

  private enable(): void {
    const css = (this.cc >>> CC.CSS_SHIFT) & 7;
    const mps = (this.cc >>> CC.MPS_SHIFT) & 0xf;
    const ams = (this.cc >>> CC.AMS_SHIFT) & 7;
    const sqSize = (this.aqa & 0xfff) + 1;
    const cqSize = ((this.aqa >>> 16) & 0xfff) + 1;
    if (css !== 0 || mps > MPS_MAX || ams !== 0 || sqSize < 2 || cqSize < 2 || this.asq === 0n || this.acq === 0n) {
      // A configuration the controller cannot run: it reports a fatal status and never becomes ready.
      this.csts |= CSTS.CFS;
      return;
    }
    const cq: Cq = { id: 0, base: this.acq, size: cqSize, head: 0, tail: 0, phase: 1, ien: true, iv: 0, sqs: new Set([0]) };
    this.cqs.set(0, cq);
    this.sqs.set(0, { id: 0, base: this.asq, size: sqSize, head: 0, tail: 0, cq });
    this.csts |= CSTS.RDY;
  }

  private shutdown(): void {
    try {
      this.disk.flush();
    } catch (e) {
      warn('%s: nvme flush at shutdown: %O', this.ctx.bdf, e);
    }
    this.csts = (this.csts & ~(3 << CSTS.SHST_SHIFT)) | CSTS.SHST_COMPLETE;
  }

  /** CC.EN 1 -> 0: queues deleted, commands held (AERs) dropped, features at their defaults. */
  private controllerReset(): void {
    this.generation++;
    this.scheduled = false;
    this.sqs.clear();
    this.cqs.clear();
    this.aers.length = 0;
    this.events.length = 0;
    this.maskedEvents.clear();
    this.dbbuf = undefined;
    this.csts = 0;
    this.defaults();
  }

  /** Function-level reset: every register at its power-on value. The namespace's data stays. */
  reset(): void {
    this.controllerReset();
    this.cc = 0;
    this.aqa = 0;
    this.asq = this.acq = 0n;
    this.intms = 0;
  }

  private defaults(): void {
    this.features = new Map([
      [FEAT.ARBITRATION, 0],
      [FEAT.POWER_MGMT, 0],
      [FEAT.ERR_RECOVERY, 0],
      [FEAT.VOLATILE_WC, 1],
      [FEAT.NUM_QUEUES, ((MAX_IO_QUEUES - 1) << 16) | (MAX_IO_QUEUES - 1)],
      [FEAT.IRQ_COALESCE, 0],
      [FEAT.WRITE_ATOMIC, 0],
      [FEAT.ASYNC_EVENT, 0],
      [FEAT.KATO, 0],
    ]);
    this.sqAllowed = this.cqAllowed = MAX_IO_QUEUES;
  }

  private get ready(): boolean {
    return (this.csts & (CSTS.RDY | CSTS.CFS)) === CSTS.RDY;
  }

  private get pageSize(): number {
    return 4096 << ((this.cc >>> CC.MPS_SHIFT) & 0xf);
  }

  private fatal(e: unknown): void {
    warn('%s: nvme controller fault: %O', this.ctx.bdf, e);
    this.csts |= CSTS.CFS;
  }

  // ---- doorbells and the work loop ----

  private doorbell(index: number, value: number): void {
    if (!this.ready) return;
    const qid = index >> 1;
    if (index & 1) {
      const cq = this.cqs.get(qid);
      if (!cq) return this.asyncError(AEN.INVALID_DOORBELL);
      const pending = (cq.tail - cq.head + cq.size) % cq.size;
      const consumed = (value - cq.head + cq.size) % cq.size;
      // The head may only move over entries the controller posted.
      if (value >= cq.size || consumed > pending) return this.asyncError(AEN.INVALID_DOORBELL_VALUE);
      cq.head = value;
      // An event that found the admin CQ full goes out now that there is room.
      if (qid === 0 && this.events.length) this.deliverEvents();
    } else {
      const sq = this.sqs.get(qid);
      if (!sq) return this.asyncError(AEN.INVALID_DOORBELL);
      if (value >= sq.size) return this.asyncError(AEN.INVALID_DOORBELL_VALUE);
      sq.tail = value;
      // Before the write completes, so the host's next submission sees it and rings again.
      if (qid !== 0) this.setEventIndex(2 * qid, value);
    }
    this.kick();
  }

  private kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    const gen = this.generation;
    this.schedule(() => {
      if (gen !== this.generation) return;
      this.scheduled = false;
      try {
        this.turn();
      } catch (e) {
        this.fatal(e);
      }
    });
  }

  /** One turn: bursts round-robin over the submission queues until the budget is spent or all are idle. */
  private turn(): void {
    const gen = this.generation;
    const raised = new Set<Cq>();
    let commands = 0;
    let bytes = 0;
    let more = false;
    for (let progress = true; progress && this.ready && gen === this.generation; ) {
      progress = false;
      for (const sq of [...this.sqs.values()]) {
        for (let n = 0; n < BURST && sq.head !== sq.tail; n++) {
          if (commands >= TURN_COMMANDS || bytes >= TURN_BYTES) {
            more = true;
            break;
          }
          if (this.full(sq.cq) || this.sqs.get(sq.id) !== sq || !this.ready) break;
          const moved = this.step(sq, raised);
          if (moved < 0) break;
          commands++;
          bytes += moved;
          progress = true;
        }
      }
      if (more) break;
    }
    if (gen !== this.generation) return;
    for (const cq of raised) this.interrupt(cq);
    if (more) this.kick();
  }

  private full(cq: Cq): boolean {
    if ((cq.tail + 1) % cq.size !== cq.head) return false;
    if (!this.dbbuf || cq.id === 0) return true;
    // The head may have moved in the shadow only. If it has not, ask for an MMIO doorbell when it does,
    // and look once more in case the host moved it before it could see the request.
    if (this.shadowHead(cq)) return false;
    this.setEventIndex(2 * cq.id + 1, cq.head);
    return !this.shadowHead(cq);
  }

  /** Takes a CQ's head from the shadow doorbell if it moved validly; true when it moved. */
  private shadowHead(cq: Cq): boolean {
    const value = this.readShadow(2 * cq.id + 1);
    if (value === undefined) return false;
    const pending = (cq.tail - cq.head + cq.size) % cq.size;
    const consumed = (value - cq.head + cq.size) % cq.size;
    if (value >= cq.size || consumed === 0 || consumed > pending) return false;
    cq.head = value;
    return true;
  }

  /** A doorbell's value in the shadow page (slot 2y: SQ y tail, 2y + 1: CQ y head); undefined if the DMA faults. */
  private readShadow(slot: number): number | undefined {
    try {
      return this.ctx.dma.read(this.dbbuf!.db + BigInt(slot * 4), 4).readUInt32LE();
    } catch (e) {
      if (!(e instanceof DmaError)) throw e;
      return undefined;
    }
  }

  private setEventIndex(slot: number, value: number): void {
    if (!this.dbbuf) return;
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value);
    try {
      this.ctx.dma.write(this.dbbuf.ei + BigInt(slot * 4), b);
    } catch (e) {
      if (!(e instanceof DmaError)) throw e;
      // The PE froze: the host's recovery resets the controller, which forgets the buffers.
    }
  }

  /** Fetches, runs and completes one command: the bytes it moved, or -1 when the fetch faulted. */
  private step(sq: Sq, raised: Set<Cq>): number {
    let raw: Buffer;
    try {
      raw = this.ctx.dma.read(sq.base + BigInt(sq.head * SQE_BYTES), SQE_BYTES);
    } catch (e) {
      if (!(e instanceof DmaError)) throw e;
      // The PE froze (or was frozen): the queue stays where it is until the driver recovers.
      return -1;
    }
    sq.head = (sq.head + 1) % sq.size;
    const sqe = decode(raw);
    let moved = 0;
    let done: Done | typeof HELD;
    try {
      if (sqe.fuse !== 0 || sqe.psdt !== 0) done = fail(SC.INVALID_FIELD);
      else if (sq.id === 0) done = this.admin(sqe);
      else ({ done, moved } = this.io(sqe));
    } catch (e) {
      if (!(e instanceof DmaError)) {
        warn('%s: nvme command 0x%s failed: %O', this.ctx.bdf, sqe.opcode.toString(16), e);
        done = fail(SC.INTERNAL);
      } else done = fail(SC.DATA_XFER_ERROR);
    }
    if (done === HELD) return moved;
    if (done.status !== SC.SUCCESS) this.logError(sq.id, sqe.cid, done.status);
    this.post(sq.cq, sq.id, sq.head, sqe.cid, done);
    raised.add(sq.cq);
    return moved;
  }

  private post(cq: Cq, sqid: number, sqhd: number, cid: number, done: Done): void {
    const e = Buffer.alloc(CQE_BYTES);
    e.writeUInt32LE((done.result ?? 0) >>> 0, 0);
    e.writeUInt32LE(((sqid << 16) | sqhd) >>> 0, 8);
    const status = done.status === SC.SUCCESS ? 0 : done.status | (DNR >>> 17);
    e.writeUInt32LE((cid | (cq.phase << 16) | (status << 17)) >>> 0, 12);
    try {
      this.ctx.dma.write(cq.base + BigInt(cq.tail * CQE_BYTES), e);
    } catch (err) {
      if (!(err instanceof DmaError)) throw err;
      // The completion is lost with the frozen PE; the driver's recovery resets the controller.
    }
    cq.tail = (cq.tail + 1) % cq.size;
    if (cq.tail === 0) cq.phase ^= 1;
  }

  /** Signals a completion queue's vector in whichever interrupt mode config space has enabled. */
  private interrupt(cq: Cq): void {
    if (!cq.ien) return;
    // The function's interrupt state delivers only the mode that is on; INTMS masks pin and MSI only.
    this.ctx.irq.raise(VFIO.VFIO_PCI_MSIX_IRQ_INDEX, cq.iv);
    if (this.intms & (1 << cq.iv)) return;
    this.ctx.irq.raise(VFIO.VFIO_PCI_MSI_IRQ_INDEX, cq.iv);
    if (!(this.intms & 1)) this.ctx.irq.raise(VFIO.VFIO_PCI_INTX_IRQ_INDEX, 0);
  }

  // ---- asynchronous events and the error log ----

  private asyncError(info: number): void {
    this.logError(0xffff, 0xffff, SC.INVALID_FIELD);
    const ev = AEN.TYPE_ERROR | (info << 8) | (AEN.LOG_ERROR << 16);
    // Kept (once each, a few at most) while their type is masked; reported when it is acknowledged.
    if (!this.events.includes(ev) && this.events.length < MAX_EVENTS) this.events.push(ev);
    this.deliverEvents();
  }

  private deliverEvents(): void {
    const cq = this.cqs.get(0);
    let posted = false;
    while (cq && this.aers.length && !this.full(cq)) {
      const i = this.events.findIndex((e) => !this.maskedEvents.has(e & 7));
      if (i < 0) break;
      const [ev] = this.events.splice(i, 1);
      this.maskedEvents.add(ev & 7);
      this.post(cq, 0, this.sqs.get(0)!.head, this.aers.shift()!, ok(ev));
      posted = true;
    }
    if (posted && cq) this.interrupt(cq);
  }

  private logError(sqid: number, cid: number, status: number): void {
    this.errorCount++;
    this.health.errors++;
    const e = Buffer.alloc(64);
    e.writeBigUInt64LE(this.errorCount, 0);
    e.writeUInt16LE(sqid, 8);
    e.writeUInt16LE(cid, 10);
    e.writeUInt16LE((status << 1) & 0xffff, 12);
    e.writeUInt16LE(0xffff, 14);
    this.errorLog.unshift(e);
    if (this.errorLog.length > ERROR_LOG_ENTRIES) this.errorLog.pop();
  }

  // ---- data transfers ----

  private segments(sqe: Sqe, length: number): Segment[] | number {
    return prpSegments(this.ctx.dma, sqe.prp1, sqe.prp2, length, this.pageSize);
  }

  /** Controller to host. */
  private toHost(sqe: Sqe, data: Buffer): Done {
    const segs = this.segments(sqe, data.length);
    if (typeof segs === 'number') return fail(segs);
    let at = 0;
    for (const s of segs) {
      this.ctx.dma.write(s.iova, data.subarray(at, at + s.length));
      at += s.length;
    }
    return ok();
  }

  /** Host to controller. */
  private fromHost(sqe: Sqe, into: Buffer): Done {
    const segs = this.segments(sqe, into.length);
    if (typeof segs === 'number') return fail(segs);
    let at = 0;
    for (const s of segs) {
      const got = this.ctx.dma.read(s.iova, s.length, into.subarray(at, at + s.length));
      if (got.buffer !== into.buffer || got.byteOffset !== into.byteOffset + at) got.copy(into, at);
      at += s.length;
    }
    return ok();
  }

  // ---- admin commands ----

  private admin(sqe: Sqe): Done | typeof HELD {
    const [c10, c11] = [sqe.cdw[10], sqe.cdw[11]];
    switch (sqe.opcode) {
      case ADMIN.IDENTIFY:
        return this.identify(sqe);
      case ADMIN.GET_LOG_PAGE:
        return this.getLogPage(sqe);
      case ADMIN.SET_FEATURES:
        return this.setFeature(c10, c11);
      case ADMIN.GET_FEATURES:
        return this.getFeature(c10, c11);
      case ADMIN.CREATE_CQ:
        return this.createCq(sqe);
      case ADMIN.CREATE_SQ:
        return this.createSq(sqe);
      case ADMIN.DELETE_SQ: {
        const sq = this.sqs.get(c10 & 0xffff);
        if (!sq || sq.id === 0) return fail(SC.QID_INVALID);
        this.sqs.delete(sq.id);
        sq.cq.sqs.delete(sq.id);
        return ok();
      }
      case ADMIN.DELETE_CQ: {
        const cq = this.cqs.get(c10 & 0xffff);
        if (!cq || cq.id === 0) return fail(SC.QID_INVALID);
        if (cq.sqs.size) return fail(SC.INVALID_QUEUE_DELETION);
        this.cqs.delete(cq.id);
        return ok();
      }
      case ADMIN.ASYNC_EVENT:
        if (this.aers.length > AERL) return fail(SC.AER_LIMIT);
        this.aers.push(sqe.cid);
        // Delivered after this turn so the request's own slot is accounted first.
        this.schedule(() => this.safely(() => this.deliverEvents()));
        return HELD;
      case ADMIN.ABORT: {
        // Commands run to completion within a turn: only a held event request can still be aborted.
        const sqid = c10 & 0xffff;
        const cid = c10 >>> 16;
        const i = sqid === 0 ? this.aers.indexOf(cid) : -1;
        if (i < 0) return ok(1);
        const cq = this.cqs.get(0)!;
        // The aborted request's completion needs a slot of its own besides the Abort's.
        if ((cq.tail + 2) % cq.size === cq.head) return ok(1);
        this.aers.splice(i, 1);
        this.post(cq, 0, this.sqs.get(0)!.head, cid, fail(SC.ABORT_REQ));
        return ok(0);
      }
      case ADMIN.KEEP_ALIVE:
        return ok();
      case ADMIN.DOORBELL_BUFFER_CONFIG: {
        const mask = BigInt(this.pageSize - 1);
        if (sqe.prp1 === 0n || sqe.prp2 === 0n || sqe.prp1 & mask || sqe.prp2 & mask) return fail(SC.INVALID_FIELD);
        this.dbbuf = { db: sqe.prp1, ei: sqe.prp2 };
        // A host may already keep tails there that it did not ring (Linux after a reset submits before it
        // configures the buffer again): take them, so nothing waits for a doorbell that never comes.
        for (const sq of this.sqs.values()) {
          if (sq.id === 0) continue;
          const shadow = this.readShadow(2 * sq.id);
          if (shadow !== undefined && shadow < sq.size && shadow !== sq.tail) {
            sq.tail = shadow;
            this.kick();
          }
          this.setEventIndex(2 * sq.id, sq.tail);
        }
        return ok();
      }
      default:
        return fail(SC.INVALID_OPCODE);
    }
  }

  private safely(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.fatal(e);
    }
  }

  private identify(sqe: Sqe): Done {
    const cns = sqe.cdw[10] & 0xff;
    const csi = sqe.cdw[11] >>> 24;
    const nsid = sqe.nsid;
    let data: Buffer;
    switch (cns) {
      case 0x00:
        if (nsid === 0xffffffff) data = identifyNamespace(0n, { nguid: Buffer.alloc(16), eui64: Buffer.alloc(8) }, this.disk.deallocateZeroes);
        else if (nsid === 1) data = identifyNamespace(this.blocks, this.ids, this.disk.deallocateZeroes);
        else return fail(SC.INVALID_NS);
        break;
      case 0x01:
        data = identifyController({
          vendor: 0x144d, subsystemVendor: 0x144d, serial: this.ids.serial,
          subnqn: `nqn.2026-12.dev.tcefs:nvme:${this.ctx.bdf}`, vectors: this.vectors,
        });
        break;
      case 0x02:
        if (nsid >= 0xfffffffe) return fail(SC.INVALID_NS);
        data = namespaceList(nsid);
        break;
      case 0x03:
        if (nsid !== 1) return fail(SC.INVALID_NS);
        data = namespaceDescriptors(this.ids);
        break;
      case 0x05: // NVM command set specific namespace: nothing beyond the base structure
      case 0x06: // NVM command set specific controller: no limits of its own
        if (csi !== 0) return fail(SC.INVALID_FIELD);
        if (cns === 0x05 && nsid !== 1) return fail(SC.INVALID_NS);
        data = Buffer.alloc(4096);
        break;
      default:
        return fail(SC.INVALID_FIELD);
    }
    return this.toHost(sqe, data);
  }

  private getLogPage(sqe: Sqe): Done {
    const [c10, c11, c12, c13] = [sqe.cdw[10], sqe.cdw[11], sqe.cdw[12], sqe.cdw[13]];
    const lid = c10 & 0xff;
    const rae = (c10 >>> 15) & 1;
    const length = ((((c11 & 0xffff) << 16) | (c10 >>> 16)) >>> 0) * 4 + 4;
    const offset = c12 + c13 * 2 ** 32;
    let log: Buffer;
    switch (lid) {
      case LOG.ERROR:
        log = Buffer.concat([...this.errorLog, Buffer.alloc((ERROR_LOG_ENTRIES - this.errorLog.length) * 64)]);
        break;
      case LOG.SMART:
        if (sqe.nsid !== 0 && sqe.nsid !== 1 && sqe.nsid !== 0xffffffff) return fail(SC.INVALID_NS);
        log = smartLog(this.health);
        break;
      case LOG.FW_SLOT:
        log = firmwareLog();
        break;
      default:
        return fail(SC.INVALID_LOG_PAGE);
    }
    if (offset % 4 || offset >= log.length || length > MAX_TRANSFER) return fail(SC.INVALID_FIELD);
    const out = Buffer.alloc(length);
    log.copy(out, 0, offset, Math.min(log.length, offset + length));
    const done = this.toHost(sqe, out);
    if (done.status === SC.SUCCESS && !rae && lid === LOG.ERROR) {
      this.maskedEvents.delete(AEN.TYPE_ERROR);
      this.schedule(() => this.safely(() => this.deliverEvents()));
    }
    return done;
  }

  private setFeature(c10: number, c11: number): Done {
    const fid = c10 & 0xff;
    if (c10 >>> 31) return fail(SC.FEAT_NOT_SAVEABLE);
    switch (fid) {
      case FEAT.NUM_QUEUES: {
        const nsq = c11 & 0xffff;
        const ncq = c11 >>> 16;
        if (nsq === 0xffff || ncq === 0xffff) return fail(SC.INVALID_FIELD);
        this.sqAllowed = Math.min(nsq, MAX_IO_QUEUES - 1) + 1;
        this.cqAllowed = Math.min(ncq, MAX_IO_QUEUES - 1) + 1;
        const value = ((this.cqAllowed - 1) << 16) | (this.sqAllowed - 1);
        this.features.set(fid, value);
        return ok(value);
      }
      case FEAT.POWER_MGMT:
        if ((c11 & 0x1f) !== 0) return fail(SC.INVALID_FIELD); // one power state
        this.features.set(fid, c11 & 0xff);
        return ok();
      case FEAT.TEMP_THRESH: {
        const key = this.thresholdKey(c11);
        if (key === undefined) return fail(SC.INVALID_FIELD);
        this.features.set(key, c11 & 0xffff);
        return ok();
      }
      case FEAT.IRQ_CONFIG: {
        const iv = c11 & 0xffff;
        if (iv >= this.vectors || (iv === 0 && c11 & 0x10000)) return fail(SC.INVALID_FIELD);
        this.features.set(0x10000 | iv, c11 & 0x1ffff);
        return ok();
      }
      case FEAT.ARBITRATION:
      case FEAT.ERR_RECOVERY:
      case FEAT.VOLATILE_WC:
      case FEAT.IRQ_COALESCE:
      case FEAT.WRITE_ATOMIC:
      case FEAT.ASYNC_EVENT:
      case FEAT.KATO:
        this.features.set(fid, c11 >>> 0);
        if (fid === FEAT.VOLATILE_WC && !(c11 & 1)) this.safeFlush();
        return ok();
      default:
        // Autonomous power state transitions and the host memory buffer are absent (APSTA, HMPRE 0).
        return fail(SC.INVALID_FIELD);
    }
  }

  private getFeature(c10: number, c11: number): Done {
    const fid = c10 & 0xff;
    const sel = (c10 >>> 8) & 7;
    if (sel > 3) return fail(SC.INVALID_FIELD);
    let key: number | undefined = fid;
    if (fid === FEAT.TEMP_THRESH) key = this.thresholdKey(c11);
    else if (fid === FEAT.IRQ_CONFIG) key = (c11 & 0xffff) < this.vectors ? 0x10000 | (c11 & 0xffff) : undefined;
    else if (!this.features.has(fid)) key = undefined;
    if (key === undefined) return fail(SC.INVALID_FIELD);
    // Capabilities: changeable, neither saveable nor namespace specific.
    if (sel === 3) return ok(0x4);
    if (sel !== 0) return ok(this.defaultFeature(fid, c11));
    return ok(this.features.get(key) ?? this.defaultFeature(fid, c11));
  }

  private defaultFeature(fid: number, c11: number): number {
    if (fid === FEAT.TEMP_THRESH) return ((c11 >>> 20) & 3) === 0 ? WCTEMP : 0;
    if (fid === FEAT.IRQ_CONFIG) return c11 & 0xffff;
    if (fid === FEAT.NUM_QUEUES) return ((MAX_IO_QUEUES - 1) << 16) | (MAX_IO_QUEUES - 1);
    if (fid === FEAT.VOLATILE_WC) return 1;
    return 0;
  }

  /** Temperature thresholds are kept per sensor (only the composite, 0 or all) and over/under. */
  private thresholdKey(c11: number): number | undefined {
    const sel = (c11 >>> 16) & 0xf;
    const kind = (c11 >>> 20) & 3;
    if ((sel !== 0 && sel !== 0xf) || kind > 1) return undefined;
    return 0x20000 | kind;
  }

  private createCq(sqe: Sqe): Done {
    const [c10, c11] = [sqe.cdw[10], sqe.cdw[11]];
    const qid = c10 & 0xffff;
    const size = (c10 >>> 16) + 1;
    const iv = c11 >>> 16;
    if (qid === 0 || qid > this.cqAllowed || this.cqs.has(qid)) return fail(SC.QID_INVALID);
    if (size < 2 || size > MQES + 1) return fail(SC.QUEUE_SIZE);
    if (!(c11 & 1)) return fail(SC.INVALID_FIELD); // CAP.CQR: contiguous queues only
    if (iv >= this.vectors) return fail(SC.INVALID_VECTOR);
    if (sqe.prp1 === 0n || sqe.prp1 & BigInt(this.pageSize - 1)) return fail(SC.PRP_OFFSET_INVALID);
    if (((this.cc >>> CC.IOCQES_SHIFT) & 0xf) !== 4) return fail(SC.INVALID_FIELD);
    this.cqs.set(qid, { id: qid, base: sqe.prp1, size, head: 0, tail: 0, phase: 1, ien: (c11 & 2) !== 0, iv, sqs: new Set() });
    return ok();
  }

  private createSq(sqe: Sqe): Done {
    const [c10, c11] = [sqe.cdw[10], sqe.cdw[11]];
    const qid = c10 & 0xffff;
    const size = (c10 >>> 16) + 1;
    const cq = this.cqs.get(c11 >>> 16);
    if (qid === 0 || qid > this.sqAllowed || this.sqs.has(qid)) return fail(SC.QID_INVALID);
    if (!cq || cq.id === 0) return fail(SC.CQ_INVALID);
    if (size < 2 || size > MQES + 1) return fail(SC.QUEUE_SIZE);
    if (!(c11 & 1)) return fail(SC.INVALID_FIELD);
    if (sqe.prp1 === 0n || sqe.prp1 & BigInt(this.pageSize - 1)) return fail(SC.PRP_OFFSET_INVALID);
    if (((this.cc >>> CC.IOSQES_SHIFT) & 0xf) !== 6) return fail(SC.INVALID_FIELD);
    this.sqs.set(qid, { id: qid, base: sqe.prp1, size, head: 0, tail: 0, cq });
    // A host that reused its buffers must not see an old queue's index here (Linux clears them on reset).
    this.setEventIndex(2 * qid, 0);
    cq.sqs.add(qid);
    return ok();
  }

  // ---- I/O commands ----

  private io(sqe: Sqe): { done: Done; moved: number } {
    const none = (done: Done) => ({ done, moved: 0 });
    if (sqe.opcode === IO.FLUSH) {
      if (sqe.nsid !== 1 && sqe.nsid !== 0xffffffff) return none(fail(SC.INVALID_NS));
      return none(this.safeFlush() ? ok() : fail(SC.INTERNAL));
    }
    if (sqe.opcode !== IO.READ && sqe.opcode !== IO.WRITE && sqe.opcode !== IO.WRITE_ZEROES && sqe.opcode !== IO.DSM) return none(fail(SC.INVALID_OPCODE));
    if (sqe.nsid !== 1) return none(fail(SC.INVALID_NS));
    if (sqe.opcode === IO.DSM) return none(this.dsm(sqe));
    const slba = BigInt(sqe.cdw[10]) | (BigInt(sqe.cdw[11]) << 32n);
    const nlb = (sqe.cdw[12] & 0xffff) + 1;
    if (slba + BigInt(nlb) > this.blocks) return none(fail(SC.LBA_RANGE));
    const offset = Number(slba) << LBA_SHIFT;
    const length = nlb << LBA_SHIFT;
    if (sqe.opcode === IO.WRITE_ZEROES) {
      this.disk.zero(offset, length);
      return { done: ok(), moved: length };
    }
    if (length > MAX_TRANSFER) return none(fail(SC.INVALID_FIELD));
    this.scratch ??= Buffer.alloc(MAX_TRANSFER);
    const buf = this.scratch.subarray(0, length);
    const fua = (sqe.cdw[12] >>> 30) & 1;
    let done: Done;
    if (sqe.opcode === IO.READ) {
      this.disk.read(offset, length, buf);
      done = this.toHost(sqe, buf);
      if (done.status === SC.SUCCESS) {
        this.health.reads++;
        this.health.unitsRead += BigInt(nlb);
      }
    } else {
      done = this.fromHost(sqe, buf);
      if (done.status === SC.SUCCESS) {
        this.disk.write(offset, buf);
        if (fua && !this.safeFlush()) done = fail(SC.INTERNAL);
        this.health.writes++;
        this.health.unitsWritten += BigInt(nlb);
      }
    }
    return { done, moved: length };
  }

  private dsm(sqe: Sqe): Done {
    const count = (sqe.cdw[10] & 0xff) + 1;
    const ranges = Buffer.alloc(count * 16);
    const got = this.fromHost(sqe, ranges);
    if (got.status !== SC.SUCCESS) return got;
    // Attribute hints (integral read/write) need nothing; only deallocate changes what is stored.
    if (!(sqe.cdw[11] & 4)) return ok();
    const todo: [number, number][] = [];
    for (let i = 0; i < count; i++) {
      const nlb = BigInt(ranges.readUInt32LE(i * 16 + 4));
      const slba = ranges.readBigUInt64LE(i * 16 + 8);
      if (slba + nlb > this.blocks) return fail(SC.LBA_RANGE);
      todo.push([Number(slba) << LBA_SHIFT, Number(nlb) << LBA_SHIFT]);
    }
    for (const [off, len] of todo) this.disk.deallocate(off, len);
    return ok();
  }

  private safeFlush(): boolean {
    try {
      this.disk.flush();
      return true;
    } catch (e) {
      warn('%s: nvme flush: %O', this.ctx.bdf, e);
      return false;
    }
  }

  /** What a view or test may want to know without touching the bus. */
  describe() {
    return {
      enabled: (this.cc & CC.EN) !== 0,
      ready: this.ready,
      fatal: (this.csts & CSTS.CFS) !== 0,
      queues: [...this.sqs.values()].map((s) => ({ sq: s.id, cq: s.cq.id, size: s.size, head: s.head, tail: s.tail })),
      heldEvents: this.aers.length,
      pendingEvents: this.events.length,
      shadowDoorbells: this.dbbuf !== undefined,
    };
  }
}

function decode(b: Buffer): Sqe {
  const dw0 = b.readUInt32LE(0);
  const cdw = new Uint32Array(16);
  for (let i = 10; i < 16; i++) cdw[i] = b.readUInt32LE(i * 4);
  return {
    opcode: dw0 & 0xff,
    fuse: (dw0 >>> 8) & 3,
    psdt: (dw0 >>> 14) & 3,
    cid: dw0 >>> 16,
    nsid: b.readUInt32LE(4),
    prp1: b.readBigUInt64LE(24),
    prp2: b.readBigUInt64LE(32),
    cdw,
  };
}
