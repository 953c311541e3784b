// The NVMe controller model against a stand-in DMA port (client memory as one Buffer): registers, the
// admin and I/O command sets, PRPs, completions and interrupts, asynchronous events, fairness, a file
// that outlives the controller, and random commands that must all end in a status, never a throw.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NvmeController, CAP, MQES } from '../../src/devices/nvme/controller.ts';
import { FileDisk, MemoryDisk } from '../../src/devices/nvme/disk.ts';
import { prpSegments } from '../../src/devices/nvme/prp.ts';
import { ADMIN, FEAT, IO, REG, SC } from '../../src/devices/nvme/spec.ts';
import { DmaError, RecordingIrqPort, type DmaPort } from '../../src/devices/model.ts';
import { MODELS } from '../../src/devices/index.ts';
import { DEFAULT_TOPOLOGY_JSON, parseTopology } from '../../src/topology/topology.ts';
import { VFIO } from '../../src/uapi/constants.ts';
import { seededRandom } from '../helpers/random.ts';
import { Harness } from '../helpers/direct.ts';
import { EEH_OP } from '../../src/tce/eeh.ts';

const BASE = 0x100000n;
const MEM = 8 << 20;

/** Client memory at IOVA [BASE, BASE + 8 MiB); everything else faults. */
class FakeBus implements DmaPort {
  readonly mem = Buffer.alloc(MEM);
  faults = 0;
  private at(iova: bigint, n: number): number {
    if (iova < BASE || iova + BigInt(n) > BASE + BigInt(MEM)) {
      this.faults++;
      throw new DmaError('no-tce', iova, 'unmapped');
    }
    return Number(iova - BASE);
  }
  read(iova: bigint, length: number): Buffer {
    const a = this.at(iova, length);
    return Buffer.from(this.mem.subarray(a, a + length));
  }
  write(iova: bigint, data: Buffer): void {
    data.copy(this.mem, this.at(iova, data.length));
  }
}

interface Cqe {
  result: number;
  sqhd: number;
  sqid: number;
  cid: number;
  phase: number;
  status: number;
  dnr: boolean;
}

interface Cmd {
  opcode: number;
  nsid?: number;
  prp1?: bigint;
  prp2?: bigint;
  cdw?: Partial<Record<10 | 11 | 12 | 13 | 14 | 15, number>>;
  flags?: number;
}

const ASQ = BASE;
const ACQ = BASE + 0x10000n;
/** I/O queue memory and a data area well inside the bus. */
const IOSQ = BASE + 0x200000n;
const IOCQ = BASE + 0x400000n;
const DATA = BASE + 0x100000n;
const CC_IO = (6 << 16) | (4 << 20);

/** A tiny host driver over the fake bus: rings doorbells, runs the scheduled work, reaps completions. */
class Host {
  readonly bus = new FakeBus();
  readonly irq = new RecordingIrqPort();
  readonly queue: (() => void)[] = [];
  readonly ctrl: NvmeController;
  private readonly q = new Map<number, { sq: bigint; cq: bigint; size: number; tail: number; head: number; phase: number }>();
  private cid = 1;

  constructor(options: { backing?: string; size?: number } = {}, vectors = 33) {
    this.ctrl = new NvmeController({ bdf: '0000:02:00.0', bars: [], msixVectors: vectors, irq: this.irq, dma: this.bus }, options, (w) => this.queue.push(w));
  }
  r32(off: number): number {
    return this.ctrl.read(0, off, 4).readUInt32LE();
  }
  w32(off: number, v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.ctrl.write(0, off, b);
  }
  w64(off: number, v: bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    this.ctrl.write(0, off, b);
  }
  enable(mps = 0, size = 16): void {
    this.w32(REG.AQA, ((size - 1) << 16) | (size - 1));
    this.w64(REG.ASQ, ASQ);
    this.w64(REG.ACQ, ACQ);
    this.w32(REG.CC, 1 | CC_IO | (mps << 7));
    this.q.set(0, { sq: ASQ, cq: ACQ, size, tail: 0, head: 0, phase: 1 });
  }
  run(): number {
    let n = 0;
    while (this.queue.length) {
      this.queue.shift()!();
      n++;
    }
    return n;
  }
  /** Puts a command in queue qid's SQ without ringing; returns its cid. */
  place(qid: number, c: Cmd): number {
    const q = this.q.get(qid)!;
    const e = Buffer.alloc(64);
    const cid = this.cid++ & 0xffff;
    e.writeUInt32LE(((cid << 16) | (c.flags ?? 0) | c.opcode) >>> 0, 0);
    e.writeUInt32LE((c.nsid ?? 0) >>> 0, 4);
    e.writeBigUInt64LE(c.prp1 ?? 0n, 24);
    e.writeBigUInt64LE(c.prp2 ?? 0n, 32);
    for (const [k, v] of Object.entries(c.cdw ?? {})) e.writeUInt32LE(v >>> 0, Number(k) * 4);
    this.bus.write(q.sq + BigInt(q.tail * 64), e);
    q.tail = (q.tail + 1) % q.size;
    return cid;
  }
  ring(qid: number): void {
    this.w32(REG.DOORBELLS + qid * 8, this.q.get(qid)!.tail);
  }
  /** The next completion of queue qid if its phase says it is new; with `shadow`, the head goes there instead of the doorbell. */
  reap(qid: number, shadow?: bigint): Cqe | undefined {
    const q = this.q.get(qid)!;
    const e = this.bus.read(q.cq + BigInt(q.head * 16), 16);
    const dw3 = e.readUInt32LE(12);
    if (((dw3 >>> 16) & 1) !== q.phase) return undefined;
    q.head = (q.head + 1) % q.size;
    if (q.head === 0) q.phase ^= 1;
    if (shadow === undefined) this.w32(REG.DOORBELLS + qid * 8 + 4, q.head);
    else this.bus.mem.writeUInt32LE(q.head, Number(shadow - BASE) + (2 * qid + 1) * 4);
    const dw2 = e.readUInt32LE(8);
    return { result: e.readUInt32LE(0), sqhd: dw2 & 0xffff, sqid: dw2 >>> 16, cid: dw3 & 0xffff, phase: (dw3 >>> 16) & 1, status: (dw3 >>> 17) & 0x7ff, dnr: (dw3 >>> 31) === 1 };
  }
  cmd(qid: number, c: Cmd): Cqe {
    const cid = this.place(qid, c);
    this.ring(qid);
    this.run();
    const r = this.reap(qid);
    expect(r?.cid).toBe(cid);
    return r!;
  }
  admin(c: Cmd): Cqe {
    return this.cmd(0, c);
  }
  ioPair(qid = 1, size = 64, vector = 1): void {
    expect(this.admin({ opcode: ADMIN.CREATE_CQ, prp1: IOCQ + BigInt(qid) * 0x10000n, cdw: { 10: ((size - 1) << 16) | qid, 11: (vector << 16) | 3 } }).status).toBe(0);
    expect(this.admin({ opcode: ADMIN.CREATE_SQ, prp1: IOSQ + BigInt(qid) * 0x10000n, cdw: { 10: ((size - 1) << 16) | qid, 11: (qid << 16) | 1 } }).status).toBe(0);
    this.q.set(qid, { sq: IOSQ + BigInt(qid) * 0x10000n, cq: IOCQ + BigInt(qid) * 0x10000n, size, tail: 0, head: 0, phase: 1 });
  }
  rw(opcode: number, slba: number, blocks: number, prp1: bigint, prp2 = 0n, qid = 1, nsid = 1): Cqe {
    return this.cmd(qid, { opcode, nsid, prp1, prp2, cdw: { 10: slba, 11: 0, 12: blocks - 1 } });
  }
}

let h: Host;
beforeEach(() => {
  h = new Host();
});

describe('registers', () => {
  it('CAP, VS and the doorbell stride read as 64-bit and as two 32-bit halves', () => {
    expect(h.ctrl.read(0, REG.CAP, 8).readBigUInt64LE()).toBe(CAP);
    expect(BigInt(h.r32(REG.CAP)) | (BigInt(h.r32(REG.CAP + 4)) << 32n)).toBe(CAP);
    expect(h.r32(REG.CAP) & 0xffff).toBe(MQES);
    expect((CAP >> 32n) & 0xfn).toBe(0n); // DSTRD
    expect((CAP >> 37n) & 1n).toBe(1n); // NVM command set
    expect(Number((CAP >> 52n) & 0xfn)).toBe(4); // MPSMAX 64K
    expect(h.r32(REG.VS)).toBe(0x00010400);
    expect(h.ctrl.read(0, 0x2000, 8)).toEqual(Buffer.alloc(8)); // past the registers: zero
    expect(h.ctrl.read(1, 0, 4)).toEqual(Buffer.alloc(4));
  });

  it('ASQ and ACQ take one 64-bit write or two 32-bit halves alike', () => {
    h.w64(REG.ASQ, 0x1234_5678_9abc_d000n);
    h.w32(REG.ACQ, 0x9abc_d000);
    h.w32(REG.ACQ + 4, 0x1234_5678);
    expect(h.ctrl.read(0, REG.ASQ, 16)).toEqual(Buffer.from('00d0bc9a7856341200d0bc9a78563412', 'hex'));
  });

  it('CC.EN brings RDY; a bad configuration is fatal; EN 1 -> 0 resets the queues; SHN completes shutdown', () => {
    expect(h.r32(REG.CSTS)).toBe(0);
    h.enable();
    expect(h.r32(REG.CSTS)).toBe(1);
    h.ioPair();
    expect(h.ctrl.describe().queues).toHaveLength(2);
    h.w32(REG.CC, CC_IO | (1 << 14));
    h.w32(REG.CC, 1 | CC_IO | (1 << 14));
    expect(h.r32(REG.CSTS) & 0xc).toBe(8); // SHST complete
    h.w32(REG.CC, 0);
    expect(h.r32(REG.CSTS)).toBe(0);
    expect(h.ctrl.describe().queues).toHaveLength(0);
    // MPS 128K is past MPSMAX: fatal, not ready.
    h.w32(REG.CC, 1 | CC_IO | (5 << 7));
    expect(h.r32(REG.CSTS)).toBe(2);
    h.w32(REG.CC, 0);
    expect(h.r32(REG.CSTS)).toBe(0);
  });

  it('INTMS sets and INTMC clears the mask; a function-level reset returns every register to power-on values', () => {
    h.w32(REG.INTMS, 0x5);
    h.w32(REG.INTMS, 0x2);
    expect(h.r32(REG.INTMS)).toBe(7);
    h.w32(REG.INTMC, 0x1);
    expect(h.r32(REG.INTMC)).toBe(6);
    h.enable();
    h.ctrl.reset();
    for (const r of [REG.INTMS, REG.CC, REG.CSTS, REG.AQA, REG.ASQ, REG.ACQ]) expect(h.r32(r)).toBe(0);
  });

  it('byte-sized register writes are merged into the register', () => {
    h.ctrl.write(0, REG.AQA, Buffer.from([0x0f]));
    h.ctrl.write(0, REG.AQA + 2, Buffer.from([0x0f]));
    expect(h.r32(REG.AQA)).toBe(0x000f000f);
  });
});

describe('admin commands', () => {
  beforeEach(() => h.enable());

  it('Identify controller, namespace, active list and descriptors; bad CNS and NSID get their statuses', () => {
    expect(h.admin({ opcode: ADMIN.IDENTIFY, prp1: DATA, cdw: { 10: 1 } }).status).toBe(0);
    const id = h.bus.read(DATA, 4096);
    expect(id.readUInt16LE(0)).toBe(0x144d);
    expect(id.subarray(24, 64).toString().trim()).toBe('tcefs NVMe controller');
    expect(id.readUInt32LE(80)).toBe(0x00010400);
    expect([id[512], id[513], id.readUInt32LE(516)]).toEqual([0x66, 0x44, 1]);
    expect(id.readUInt16LE(520) & 0xc).toBe(0xc); // DSM, Write Zeroes
    expect(h.admin({ opcode: ADMIN.IDENTIFY, nsid: 1, prp1: DATA, cdw: { 10: 0 } }).status).toBe(0);
    const ns = h.bus.read(DATA, 4096);
    expect(ns.readBigUInt64LE(0)).toBe(BigInt((64 << 20) / 512));
    expect((ns.readUInt32LE(128) >>> 16) & 0xff).toBe(9);
    expect(h.admin({ opcode: ADMIN.IDENTIFY, prp1: DATA, cdw: { 10: 2 } }).status).toBe(0);
    expect([h.bus.read(DATA, 8).readUInt32LE(0), h.bus.read(DATA, 8).readUInt32LE(4)]).toEqual([1, 0]);
    expect(h.admin({ opcode: ADMIN.IDENTIFY, nsid: 1, prp1: DATA, cdw: { 10: 2 } }).status).toBe(0);
    expect(h.bus.read(DATA, 4).readUInt32LE()).toBe(0);
    expect(h.admin({ opcode: ADMIN.IDENTIFY, nsid: 1, prp1: DATA, cdw: { 10: 3 } }).status).toBe(0);
    const d = h.bus.read(DATA, 64);
    expect([d[0], d[1], d[12], d[13], d[32], d[33]]).toEqual([1, 8, 2, 16, 3, 16]);
    expect(d.subarray(16, 32)).toEqual(ns.subarray(104, 120)); // the NGUID agrees with Identify Namespace
    const bad = h.admin({ opcode: ADMIN.IDENTIFY, prp1: DATA, cdw: { 10: 0x1f } });
    expect([bad.status, bad.dnr]).toEqual([SC.INVALID_FIELD, true]);
    expect(h.admin({ opcode: ADMIN.IDENTIFY, nsid: 2, prp1: DATA, cdw: { 10: 0 } }).status).toBe(SC.INVALID_NS);
    expect(h.admin({ opcode: ADMIN.IDENTIFY, nsid: 0, prp1: DATA, cdw: { 10: 3 } }).status).toBe(SC.INVALID_NS);
    expect(h.admin({ opcode: ADMIN.IDENTIFY, prp1: DATA, cdw: { 10: 6, 11: 0 } }).status).toBe(0);
    expect(h.admin({ opcode: ADMIN.IDENTIFY, prp1: DATA, cdw: { 10: 6, 11: 2 << 24 } }).status).toBe(SC.INVALID_FIELD);
    expect(h.admin({ opcode: 0x7f }).status).toBe(SC.INVALID_OPCODE);
    expect(h.admin({ opcode: ADMIN.IDENTIFY, prp1: DATA + 2n, cdw: { 10: 1 } }).status).toBe(SC.PRP_OFFSET_INVALID);
    expect(h.admin({ opcode: ADMIN.IDENTIFY, prp1: 0x10n, cdw: { 10: 1 } }).status).toBe(SC.DATA_XFER_ERROR);
  });

  it('Get/Set Features: queues, what Linux sets, selectors, and what is absent', () => {
    const nq = h.admin({ opcode: ADMIN.SET_FEATURES, cdw: { 10: FEAT.NUM_QUEUES, 11: (63 << 16) | 3 } });
    expect([nq.status, nq.result]).toEqual([0, (31 << 16) | 3]);
    expect(h.admin({ opcode: ADMIN.GET_FEATURES, cdw: { 10: FEAT.NUM_QUEUES } }).result).toBe((31 << 16) | 3);
    expect(h.admin({ opcode: ADMIN.SET_FEATURES, cdw: { 10: FEAT.NUM_QUEUES, 11: 0xffff } }).status).toBe(SC.INVALID_FIELD);
    expect(h.admin({ opcode: ADMIN.GET_FEATURES, cdw: { 10: FEAT.VOLATILE_WC } }).result).toBe(1);
    expect(h.admin({ opcode: ADMIN.SET_FEATURES, cdw: { 10: FEAT.VOLATILE_WC, 11: 0 } }).status).toBe(0);
    expect(h.admin({ opcode: ADMIN.GET_FEATURES, cdw: { 10: FEAT.VOLATILE_WC } }).result).toBe(0);
    expect(h.admin({ opcode: ADMIN.GET_FEATURES, cdw: { 10: FEAT.VOLATILE_WC | (1 << 8) } }).result).toBe(1); // default
    expect(h.admin({ opcode: ADMIN.GET_FEATURES, cdw: { 10: FEAT.VOLATILE_WC | (3 << 8) } }).result).toBe(4); // changeable
    for (const fid of [FEAT.ARBITRATION, FEAT.IRQ_COALESCE, FEAT.ASYNC_EVENT, FEAT.KATO, FEAT.WRITE_ATOMIC]) {
      expect(h.admin({ opcode: ADMIN.SET_FEATURES, cdw: { 10: fid, 11: 0x0302 } }).status).toBe(0);
      expect(h.admin({ opcode: ADMIN.GET_FEATURES, cdw: { 10: fid } }).result).toBe(0x0302);
    }
    expect(h.admin({ opcode: ADMIN.GET_FEATURES, cdw: { 10: FEAT.TEMP_THRESH } }).result).toBe(343);
    expect(h.admin({ opcode: ADMIN.SET_FEATURES, cdw: { 10: FEAT.TEMP_THRESH, 11: 350 } }).status).toBe(0);
    expect(h.admin({ opcode: ADMIN.GET_FEATURES, cdw: { 10: FEAT.TEMP_THRESH } }).result).toBe(350);
    expect(h.admin({ opcode: ADMIN.SET_FEATURES, cdw: { 10: FEAT.TEMP_THRESH, 11: 3 << 16 } }).status).toBe(SC.INVALID_FIELD);
    expect(h.admin({ opcode: ADMIN.SET_FEATURES, cdw: { 10: FEAT.IRQ_CONFIG, 11: 5 | 0x10000 } }).status).toBe(0);
    expect(h.admin({ opcode: ADMIN.GET_FEATURES, cdw: { 10: FEAT.IRQ_CONFIG, 11: 5 } }).result).toBe(5 | 0x10000);
    expect(h.admin({ opcode: ADMIN.SET_FEATURES, cdw: { 10: FEAT.IRQ_CONFIG, 11: 33 } }).status).toBe(SC.INVALID_FIELD);
    expect(h.admin({ opcode: ADMIN.SET_FEATURES, cdw: { 10: FEAT.POWER_MGMT, 11: 1 } }).status).toBe(SC.INVALID_FIELD);
    expect(h.admin({ opcode: ADMIN.SET_FEATURES, cdw: { 10: FEAT.HOST_MEM_BUF, 11: 1 } }).status).toBe(SC.INVALID_FIELD);
    expect(h.admin({ opcode: ADMIN.SET_FEATURES, cdw: { 10: FEAT.AUTO_PST, 11: 1 } }).status).toBe(SC.INVALID_FIELD);
    expect(h.admin({ opcode: ADMIN.SET_FEATURES, cdw: { 10: FEAT.ARBITRATION | (1 << 31) } }).status).toBe(SC.FEAT_NOT_SAVEABLE);
    expect(h.admin({ opcode: ADMIN.GET_FEATURES, cdw: { 10: FEAT.ARBITRATION | (4 << 8) } }).status).toBe(SC.INVALID_FIELD);
    expect(h.admin({ opcode: ADMIN.GET_FEATURES, cdw: { 10: 0x7e } }).status).toBe(SC.INVALID_FIELD);
  });

  it('Create and Delete I/O queues check their fields as the spec says', () => {
    const cq = (qid: number, size: number, c11: number, prp1 = IOCQ) => h.admin({ opcode: ADMIN.CREATE_CQ, prp1, cdw: { 10: ((size - 1) << 16) | qid, 11: c11 } }).status;
    const sq = (qid: number, size: number, c11: number, prp1 = IOSQ) => h.admin({ opcode: ADMIN.CREATE_SQ, prp1, cdw: { 10: ((size - 1) << 16) | qid, 11: c11 } }).status;
    expect(cq(0, 16, 3)).toBe(SC.QID_INVALID);
    expect(cq(33, 16, 3)).toBe(SC.QID_INVALID);
    expect(cq(1, 1, 3)).toBe(SC.QUEUE_SIZE);
    expect(cq(1, MQES + 2, 3)).toBe(SC.QUEUE_SIZE);
    expect(cq(1, 16, 2)).toBe(SC.INVALID_FIELD); // not contiguous
    expect(cq(1, 16, (33 << 16) | 3)).toBe(SC.INVALID_VECTOR);
    expect(cq(1, 16, 3, IOCQ + 0x100n)).toBe(SC.PRP_OFFSET_INVALID);
    expect(cq(1, 16, 3)).toBe(0);
    expect(cq(1, 16, 3)).toBe(SC.QID_INVALID); // exists
    expect(sq(1, 16, (2 << 16) | 1)).toBe(SC.CQ_INVALID);
    expect(sq(1, 16, (0 << 16) | 1)).toBe(SC.CQ_INVALID);
    expect(sq(0, 16, (1 << 16) | 1)).toBe(SC.QID_INVALID);
    expect(sq(1, 16, 1 << 16)).toBe(SC.INVALID_FIELD);
    expect(sq(1, 16, (1 << 16) | 1)).toBe(0);
    expect(h.admin({ opcode: ADMIN.DELETE_CQ, cdw: { 10: 1 } }).status).toBe(SC.INVALID_QUEUE_DELETION);
    expect(h.admin({ opcode: ADMIN.DELETE_SQ, cdw: { 10: 0 } }).status).toBe(SC.QID_INVALID);
    expect(h.admin({ opcode: ADMIN.DELETE_SQ, cdw: { 10: 1 } }).status).toBe(0);
    expect(h.admin({ opcode: ADMIN.DELETE_SQ, cdw: { 10: 1 } }).status).toBe(SC.QID_INVALID);
    expect(h.admin({ opcode: ADMIN.DELETE_CQ, cdw: { 10: 1 } }).status).toBe(0);
    expect(h.admin({ opcode: ADMIN.DELETE_CQ, cdw: { 10: 0 } }).status).toBe(SC.QID_INVALID);
    // Number of Queues limits the ids that can be created.
    h.admin({ opcode: ADMIN.SET_FEATURES, cdw: { 10: FEAT.NUM_QUEUES, 11: (1 << 16) | 1 } });
    expect(cq(3, 16, 3)).toBe(SC.QID_INVALID);
    expect(cq(2, 16, 3)).toBe(0);
  });

  it('Get Log Page: error, SMART and firmware slot; an unknown page and a bad offset are refused', () => {
    h.admin({ opcode: 0x7f }); // one error for the log
    expect(h.admin({ opcode: ADMIN.GET_LOG_PAGE, nsid: 0xffffffff, prp1: DATA, cdw: { 10: (127 << 16) | 2 } }).status).toBe(0);
    const smart = h.bus.read(DATA, 512);
    expect(smart[3]).toBe(100);
    expect(smart.readBigUInt64LE(176)).toBe(1n);
    expect(h.admin({ opcode: ADMIN.GET_LOG_PAGE, prp1: DATA, cdw: { 10: (15 << 16) | 1 } }).status).toBe(0);
    const err = h.bus.read(DATA, 64);
    expect(err.readBigUInt64LE(0)).toBe(1n);
    expect((err.readUInt16LE(12) >>> 1) & 0x7ff).toBe(SC.INVALID_OPCODE);
    expect(h.admin({ opcode: ADMIN.GET_LOG_PAGE, prp1: DATA, cdw: { 10: (127 << 16) | 3 } }).status).toBe(0);
    expect(h.bus.read(DATA, 16).subarray(8, 11).toString()).toBe('1.0');
    expect(h.admin({ opcode: ADMIN.GET_LOG_PAGE, prp1: DATA, cdw: { 10: (127 << 16) | 0x42 } }).status).toBe(SC.INVALID_LOG_PAGE);
    expect(h.admin({ opcode: ADMIN.GET_LOG_PAGE, prp1: DATA, cdw: { 10: (127 << 16) | 2, 12: 4096 } }).status).toBe(SC.INVALID_FIELD);
  });

  it('an event that finds the admin CQ full is posted once the host frees a slot', () => {
    h.w32(REG.CC, 0);
    h.enable(0, 4); // holds 3 completions
    const aer = h.place(0, { opcode: ADMIN.ASYNC_EVENT });
    // An SQ of 4 holds 3 commands at once: two rounds fill the CQ with three Keep Alive completions.
    for (let i = 0; i < 2; i++) h.place(0, { opcode: ADMIN.KEEP_ALIVE });
    h.ring(0);
    h.run();
    h.place(0, { opcode: ADMIN.KEEP_ALIVE });
    h.ring(0);
    h.run();
    h.w32(REG.DOORBELLS + 9 * 8, 1); // an event, with no room for it
    h.run();
    expect(h.ctrl.describe()).toMatchObject({ heldEvents: 1, pendingEvents: 1 });
    expect(h.reap(0)?.status).toBe(0); // frees a slot: the event goes out
    expect(h.ctrl.describe()).toMatchObject({ heldEvents: 0, pendingEvents: 0 });
    h.reap(0);
    h.reap(0);
    expect(h.reap(0)?.cid).toBe(aer);
  });

  it('Asynchronous Event Requests are held until an event, up to the limit; Abort takes one back; Keep Alive succeeds', () => {
    const cids = [0, 1, 2, 3].map(() => h.place(0, { opcode: ADMIN.ASYNC_EVENT }));
    h.ring(0);
    h.run();
    expect(h.reap(0)).toBeUndefined();
    expect(h.ctrl.describe().heldEvents).toBe(4);
    expect(h.admin({ opcode: ADMIN.ASYNC_EVENT }).status).toBe(SC.AER_LIMIT);
    // A doorbell of a queue that does not exist: an error event on the first held request.
    h.w32(REG.DOORBELLS + 9 * 8, 1);
    h.run();
    const ev = h.reap(0)!;
    expect([ev.cid, ev.status, ev.result & 7, (ev.result >>> 8) & 0xff, (ev.result >>> 16) & 0xff]).toEqual([cids[0], 0, 0, 0, 1]);
    // Masked until the error log is read.
    h.w32(REG.DOORBELLS, 999);
    h.run();
    expect(h.reap(0)).toBeUndefined();
    expect(h.admin({ opcode: ADMIN.GET_LOG_PAGE, prp1: DATA, cdw: { 10: (15 << 16) | 1 } }).status).toBe(0);
    h.run();
    // The out-of-range tail written before is reported now.
    const ev2 = h.reap(0)!;
    expect([ev2.cid, (ev2.result >>> 8) & 0xff]).toEqual([cids[1], 1]);
    const abortCid = h.place(0, { opcode: ADMIN.ABORT, cdw: { 10: cids[2] << 16 } });
    h.ring(0);
    h.run();
    // The aborted request completes too, before or after the Abort (the spec leaves the order open).
    const both = [h.reap(0)!, h.reap(0)!];
    const ab = both.find((c) => c.cid === abortCid)!;
    const aborted = both.find((c) => c.cid === cids[2])!;
    expect([ab.status, ab.result]).toEqual([0, 0]);
    expect(aborted.status).toBe(SC.ABORT_REQ);
    expect(h.admin({ opcode: ADMIN.ABORT, cdw: { 10: (0x777 << 16) | 1 } }).result).toBe(1);
    expect(h.admin({ opcode: ADMIN.KEEP_ALIVE }).status).toBe(0);
    expect(h.ctrl.describe().heldEvents).toBe(1);
  });
});

describe('I/O', () => {
  beforeEach(() => {
    h.enable();
    h.ioPair();
  });

  const pattern = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff));

  it('Write then Read through PRP1 + PRP2, a PRP list that chains across list pages, and an offset start', () => {
    const data = pattern(0x3000, 1);
    // Three pages: PRP1 at an offset into page A, then a list naming pages B, C, D.
    const list = DATA + 0x40000n;
    h.bus.write(DATA + 0x10200n, data.subarray(0, 0xe00));
    const pages = [DATA + 0x20000n, DATA + 0x22000n, DATA + 0x21000n];
    pages.forEach((p, i) => h.bus.write(p, data.subarray(0xe00 + i * 0x1000, 0xe00 + (i + 1) * 0x1000)));
    const entries = Buffer.alloc(24);
    pages.forEach((p, i) => entries.writeBigUInt64LE(p, i * 8));
    h.bus.write(list, entries);
    expect(h.rw(IO.WRITE, 8, 0x18, DATA + 0x10200n, list).status).toBe(0);
    expect(h.ctrl.disk.size).toBe(64 << 20);
    const back = Buffer.alloc(0x3000);
    h.ctrl.disk.read(8 * 512, 0x3000, back);
    expect(back).toEqual(data);
    // Two pages back through PRP1 + PRP2.
    expect(h.rw(IO.READ, 8, 16, DATA + 0x50000n, DATA + 0x60000n).status).toBe(0);
    expect(Buffer.concat([h.bus.read(DATA + 0x50000n, 0x1000), h.bus.read(DATA + 0x60000n, 0x1000)])).toEqual(data.subarray(0, 0x2000));
    // A list whose page is full chains to the next list page through its last entry.
    h.bus.write(DATA + 0x70ff8n, Buffer.from(new BigUint64Array([DATA + 0x72000n]).buffer));
    const chain = Buffer.alloc(16);
    chain.writeBigUInt64LE(DATA + 0x80000n, 0);
    chain.writeBigUInt64LE(DATA + 0x81000n, 8);
    h.bus.write(DATA + 0x72000n, chain);
    expect(prpSegments(h.bus, DATA, DATA + 0x70ff8n, 0x3000, 0x1000)).toEqual([{ iova: DATA, length: 0x1000 }, { iova: DATA + 0x80000n, length: 0x2000 }]);
  });

  it('64 KiB pages (CC.MPS 4): one PRP covers what took sixteen', () => {
    h.w32(REG.CC, 0);
    h.enable(4);
    h.ioPair();
    const data = pattern(0x10000, 3);
    h.bus.write(DATA, data);
    expect(h.rw(IO.WRITE, 0, 128, DATA).status).toBe(0);
    expect(h.rw(IO.READ, 0, 128, DATA + 0x20000n).status).toBe(0);
    expect(h.bus.read(DATA + 0x20000n, 0x10000)).toEqual(data);
    // With 64K pages a second page pointer must be 64K aligned.
    expect(h.rw(IO.READ, 0, 256, DATA, DATA + 0x11000n).status).toBe(SC.PRP_OFFSET_INVALID);
  });

  it('malformed I/O gets its status: LBA range, namespace, opcode, PRP offset, transfer size, DMA fault', () => {
    const blocks = (64 << 20) / 512;
    expect(h.rw(IO.READ, blocks - 1, 2, DATA).status).toBe(SC.LBA_RANGE);
    expect(h.cmd(1, { opcode: IO.READ, nsid: 1, prp1: DATA, cdw: { 10: 0, 11: 1, 12: 0 } }).status).toBe(SC.LBA_RANGE);
    expect(h.rw(IO.READ, 0, 1, DATA, 0n, 1, 2).status).toBe(SC.INVALID_NS);
    expect(h.rw(IO.READ, 0, 1, DATA, 0n, 1, 0).status).toBe(SC.INVALID_NS);
    expect(h.cmd(1, { opcode: 0x05, nsid: 1 }).status).toBe(SC.INVALID_OPCODE);
    expect(h.cmd(1, { opcode: ADMIN.IDENTIFY, nsid: 1 }).status).toBe(SC.INVALID_OPCODE); // admin opcodes are not I/O
    expect(h.rw(IO.READ, 0, 16, DATA, DATA + 0x1008n).status).toBe(SC.PRP_OFFSET_INVALID);
    expect(h.rw(IO.READ, 0, 1, DATA + 1n).status).toBe(SC.PRP_OFFSET_INVALID);
    expect(h.rw(IO.READ, 0, 24, DATA, DATA + 0x4004n).status).toBe(SC.PRP_OFFSET_INVALID); // list pointer not qword aligned
    expect(h.rw(IO.READ, 0, 2048, DATA).status).toBe(SC.INVALID_FIELD); // 1 MiB is past MDTS
    expect(h.cmd(1, { opcode: IO.READ, nsid: 1, prp1: DATA, flags: 1 << 14 }).status).toBe(SC.INVALID_FIELD); // SGL
    expect(h.cmd(1, { opcode: IO.READ, nsid: 1, prp1: DATA, flags: 1 << 8 }).status).toBe(SC.INVALID_FIELD); // fused
    const before = Buffer.alloc(512);
    h.ctrl.disk.read(0, 512, before);
    const fault = h.rw(IO.WRITE, 0, 1, 0x20n);
    expect([fault.status, fault.dnr]).toEqual([SC.DATA_XFER_ERROR, true]);
    const after = Buffer.alloc(512);
    h.ctrl.disk.read(0, 512, after);
    expect(after).toEqual(before);
    expect(h.rw(IO.READ, 0, 16, DATA, 0x1000n).status).toBe(SC.DATA_XFER_ERROR);
    // The queue goes on.
    expect(h.rw(IO.READ, 0, 1, DATA).status).toBe(0);
  });

  it('Flush, Write Zeroes and Dataset Management deallocate', () => {
    h.bus.write(DATA, pattern(0x2000, 5));
    expect(h.rw(IO.WRITE, 100, 16, DATA, DATA + 0x1000n).status).toBe(0);
    expect(h.cmd(1, { opcode: IO.FLUSH, nsid: 1 }).status).toBe(0);
    expect(h.cmd(1, { opcode: IO.FLUSH, nsid: 0xffffffff }).status).toBe(0);
    expect(h.cmd(1, { opcode: IO.FLUSH, nsid: 3 }).status).toBe(SC.INVALID_NS);
    expect(h.cmd(1, { opcode: IO.WRITE_ZEROES, nsid: 1, cdw: { 10: 101, 12: 0 } }).status).toBe(0);
    const got = Buffer.alloc(0x2000);
    h.ctrl.disk.read(100 * 512, 0x2000, got);
    expect(got.subarray(512, 1024)).toEqual(Buffer.alloc(512));
    expect(got.subarray(0, 512)).toEqual(pattern(0x2000, 5).subarray(0, 512));
    const ranges = Buffer.alloc(32);
    ranges.writeUInt32LE(2, 4);
    ranges.writeBigUInt64LE(102n, 8);
    ranges.writeUInt32LE(1, 16 + 4);
    ranges.writeBigUInt64LE(BigInt((64 << 20) / 512), 16 + 8); // past the end
    h.bus.write(DATA + 0x8000n, ranges);
    expect(h.cmd(1, { opcode: IO.DSM, nsid: 1, prp1: DATA + 0x8000n, cdw: { 10: 1, 11: 4 } }).status).toBe(SC.LBA_RANGE);
    expect(h.cmd(1, { opcode: IO.DSM, nsid: 1, prp1: DATA + 0x8000n, cdw: { 10: 0, 11: 4 } }).status).toBe(0);
    h.ctrl.disk.read(100 * 512, 0x2000, got);
    expect(got.subarray(1024, 2048)).toEqual(Buffer.alloc(1024));
    expect(got.subarray(2048, 2560)).toEqual(pattern(0x2000, 5).subarray(2048, 2560));
  });

  it('completions carry the SQ head and flip their phase when the queue wraps; MSI-X is raised with the queue vector', () => {
    h.irq.raised.length = 0;
    const phases: number[] = [];
    for (let i = 0; i < 70; i++) {
      const c = h.cmd(1, { opcode: IO.FLUSH, nsid: 1 });
      expect([c.sqid, c.sqhd]).toEqual([1, (i + 1) % 64]);
      phases.push(c.phase);
    }
    expect(phases.slice(62, 66)).toEqual([1, 1, 0, 0]);
    expect(h.irq.raised.filter((r) => r.index === VFIO.VFIO_PCI_MSIX_IRQ_INDEX).every((r) => r.vector === 1)).toBe(true);
    expect(h.irq.raised.some((r) => r.index === VFIO.VFIO_PCI_INTX_IRQ_INDEX)).toBe(true);
    // INTMS masks INTx and MSI, not MSI-X (whose masking is the table's).
    h.w32(REG.INTMS, 0xffffffff);
    h.irq.raised.length = 0;
    h.cmd(1, { opcode: IO.FLUSH, nsid: 1 });
    expect(h.irq.raised.map((r) => r.index)).toEqual([VFIO.VFIO_PCI_MSIX_IRQ_INDEX]);
  });

  it('INTMC raises again a masked vector whose queue still holds entries', () => {
    h.w32(REG.INTMS, 1 << 1);
    h.place(1, { opcode: IO.FLUSH, nsid: 1 });
    h.ring(1);
    h.run();
    h.irq.raised.length = 0;
    h.w32(REG.INTMC, 1 << 1);
    expect(h.irq.raised.map((r) => r.index).sort()).toEqual([VFIO.VFIO_PCI_INTX_IRQ_INDEX, VFIO.VFIO_PCI_MSI_IRQ_INDEX, VFIO.VFIO_PCI_MSIX_IRQ_INDEX].sort());
    expect(h.reap(1)?.status).toBe(0);
  });

  it('a CQ without IEN raises nothing; a full CQ holds the SQ until its head moves', () => {
    h.admin({ opcode: ADMIN.CREATE_CQ, prp1: IOCQ + 0x20000n, cdw: { 10: (3 << 16) | 2, 11: 1 } });
    h.admin({ opcode: ADMIN.CREATE_SQ, prp1: IOSQ + 0x20000n, cdw: { 10: (3 << 16) | 2, 11: (2 << 16) | 1 } });
    const q = (h as any).q as Map<number, object>;
    q.set(2, { sq: IOSQ + 0x20000n, cq: IOCQ + 0x20000n, size: 4, tail: 0, head: 0, phase: 1 });
    h.irq.total = 0;
    for (let i = 0; i < 3; i++) h.place(2, { opcode: IO.FLUSH, nsid: 1 });
    h.ring(2);
    h.run();
    expect(h.irq.total).toBe(0);
    // A CQ of 4 holds 3: all done. Three more wait for the head.
    for (let i = 0; i < 3; i++) h.place(2, { opcode: IO.FLUSH, nsid: 1 });
    h.ring(2);
    h.run();
    expect(h.ctrl.describe().queues.find((x) => x.sq === 2)!.head).toBe(3);
    expect(h.reap(2)).toBeDefined();
    h.run();
    expect(h.ctrl.describe().queues.find((x) => x.sq === 2)!.head).toBe(0);
  });

  it('work is bounded per turn and shared: a deep queue does not starve another', () => {
    h.ioPair(2, 256, 2);
    h.ioPair(3, 256, 3);
    for (let i = 0; i < 200; i++) h.place(2, { opcode: IO.FLUSH, nsid: 1 });
    for (let i = 0; i < 4; i++) h.place(3, { opcode: IO.FLUSH, nsid: 1 });
    h.ring(2);
    h.ring(3);
    h.queue.shift()!(); // one turn
    const qs = h.ctrl.describe().queues;
    expect(qs.find((x) => x.sq === 3)!.head).toBe(4);
    expect(qs.find((x) => x.sq === 2)!.head).toBeLessThanOrEqual(64);
    expect(h.queue.length).toBe(1); // it scheduled itself again
    h.run();
    expect(h.ctrl.describe().queues.find((x) => x.sq === 2)!.head).toBe(200);
  });

  it('doorbells past a queue, of no queue, or moving a CQ head over unposted entries are ignored', () => {
    const before = h.ctrl.describe().queues;
    h.w32(REG.DOORBELLS + 8, 64); // SQ 1 tail = size
    h.w32(REG.DOORBELLS + 12, 5); // CQ 1 head past its tail
    h.w32(REG.DOORBELLS + 32 * 8, 1);
    h.w32(REG.DOORBELLS + 0xf00, 1);
    h.run();
    expect(h.ctrl.describe().queues).toEqual(before);
    // Past the doorbell page (the PBA, the MSI-X table) nothing is a doorbell: no error is logged.
    const errors = () => (h.admin({ opcode: ADMIN.GET_LOG_PAGE, prp1: DATA, cdw: { 10: (1 << 15) | (15 << 16) | 1 } }), h.bus.read(DATA, 8).readBigUInt64LE());
    const n = errors();
    h.ctrl.write(0, 0x2000, Buffer.alloc(0x2000, 0xff));
    expect(errors()).toBe(n);
    expect(h.rw(IO.READ, 0, 1, DATA).status).toBe(0);
  });

  it('EN 1 -> 0 with commands scheduled abandons them; the controller comes back clean', () => {
    h.place(1, { opcode: IO.FLUSH, nsid: 1 });
    h.ring(1);
    h.w32(REG.CC, 0);
    h.run();
    expect(h.bus.read(IOCQ + 0x10000n, 16)).toEqual(Buffer.alloc(16));
    h.enable();
    expect(h.admin({ opcode: ADMIN.KEEP_ALIVE }).status).toBe(0);
  });
});

describe('random commands and doorbells', () => {
  it('every command completes with a status; nothing throws; other queues and the namespace keep working', () => {
    for (const seed of [1, 7, 42, 1234]) {
      const r = seededRandom(seed);
      const host = new Host();
      host.enable();
      host.ioPair(1, 64, 1);
      host.ioPair(2, 64, 2);
      // Part of the data area holds random qwords, so PRP lists point anywhere, aligned or not.
      for (let i = 0; i < 0x8000; i += 4) host.bus.mem.writeUInt32LE(r(2) ? r(0x1_0000_0000) >>> 0 : r(0x100) << 12, Number(DATA - BASE) + 0x80000 + i);
      const statuses = new Set<number>();
      for (let round = 0; round < 60; round++) {
        const qid = r(3);
        const raw = Buffer.alloc(64);
        for (let i = 0; i < 64; i += 4) raw.writeUInt32LE(r(2) ? r(0x1_0000_0000) >>> 0 : r(16), i);
        const pick = r(4);
        // Bogus PRPs: inside memory, outside, at odd offsets; opcodes both known and not.
        const prp = [DATA + BigInt(r(0x100000)), BigInt(r(0x100000)), DATA + BigInt(r(64) * 0x1000), 0n][pick];
        const lists = DATA + 0x80000n + BigInt(r(8) * 0x1000 + r(512) * 8);
        const opcode = qid === 0 ? [0, 1, 2, 4, 5, 6, 8, 9, 10, 0x18, r(256)][r(11)] : [0, 1, 2, 8, 9, r(256)][r(6)];
        // Neither Create nor Delete may touch the queues the test reaps from.
        const c10 = qid === 0 && [0, 1, 4, 5].includes(opcode) ? ((r(64) << 16) | (3 + r(40))) : raw.readUInt32LE(40);
        const cid = host.place(qid, {
          opcode, nsid: [1, 0, 2, 0xffffffff, r(8)][r(5)], prp1: prp, prp2: r(2) ? lists : prp + BigInt(r(3) * 0x1000 + r(2) * 4),
          cdw: { 10: qid === 0 && opcode === 0x0c ? 0 : c10, 11: raw.readUInt32LE(44), 12: r(2) ? r(64) : raw.readUInt32LE(48), 13: raw.readUInt32LE(52) },
          flags: r(8) === 0 ? 1 << 14 : 0,
        });
        host.ring(qid);
        if (r(5) === 0) host.w32(REG.DOORBELLS + r(80) * 4, r(2000));
        host.run();
        if (qid === 0 && opcode === 0x0c) continue; // held, maybe
        const c = host.reap(qid);
        if (!c) continue; // a held AER, or the CQE of one completed before
        if (c.cid !== cid) continue;
        statuses.add(c.status);
        expect(c.sqid).toBe(qid);
      }
      expect(host.r32(REG.CSTS)).toBe(1); // ready, never fatal
      expect(statuses.size).toBeGreaterThan(3);
      // Known-good I/O still works on both queues.
      host.bus.write(DATA, Buffer.alloc(512, 0xab));
      for (const q of [1, 2]) {
        let c: Cqe | undefined;
        // Drain what an earlier round left (an AER or a late completion).
        while (host.reap(q)) void 0;
        c = host.rw(IO.WRITE, 7, 1, DATA, 0n, q);
        expect(c.status).toBe(0);
      }
      // Nothing outlives a controller reset: no queue, no held request, no event.
      host.w32(REG.CC, 0);
      expect(host.ctrl.describe()).toMatchObject({ ready: false, fatal: false, queues: [], heldEvents: 0, pendingEvents: 0 });
    }
  });
});

describe('doorbell buffer (shadow doorbells)', () => {
  const DB = DATA + 0x40000n;
  const EI = DATA + 0x41000n;
  const ei = (slot: number) => h.bus.mem.readUInt32LE(Number(EI - BASE) + slot * 4);

  it('is offered and configured; each SQ doorbell leaves its event index at the tail, so the next submission rings', () => {
    h.enable();
    expect(h.admin({ opcode: ADMIN.IDENTIFY, prp1: DATA, cdw: { 10: 1 } }).status).toBe(0);
    expect(h.bus.read(DATA + 256n, 2).readUInt16LE() & 0x100).toBe(0x100); // OACS
    for (const [prp1, prp2] of [[DB + 8n, EI], [DB, EI + 0x800n], [0n, EI], [DB, 0n]]) {
      expect(h.admin({ opcode: ADMIN.DOORBELL_BUFFER_CONFIG, prp1, prp2 }).status).toBe(SC.INVALID_FIELD);
    }
    expect(h.ctrl.describe().shadowDoorbells).toBe(false);
    h.ioPair(1, 8, 1);
    // A command the host put in the SQ and recorded in the shadow only (as Linux may after a reset,
    // before it configures the buffer again) runs once the buffer is configured.
    const early = h.place(1, { opcode: IO.FLUSH, nsid: 1 });
    h.bus.mem.writeUInt32LE(1, Number(DB - BASE) + 8);
    expect(h.admin({ opcode: ADMIN.DOORBELL_BUFFER_CONFIG, prp1: DB, prp2: EI }).status).toBe(0);
    h.run();
    expect(h.reap(1, DB)?.cid).toBe(early);
    expect(ei(2)).toBe(1);
    expect(h.ctrl.describe().shadowDoorbells).toBe(true);
    h.bus.write(DATA, Buffer.alloc(512, 0x5a));
    for (let i = 2; i <= 4; i++) {
      expect(h.rw(IO.WRITE, i, 1, DATA).status).toBe(0);
      expect(ei(2)).toBe(i); // SQ 1's event index: the tail the controller saw
    }
    h.w32(REG.CC, 0);
    expect(h.ctrl.describe().shadowDoorbells).toBe(false);
  });

  it('takes a CQ head the host kept in memory when the CQ looks full, and asks for a doorbell if it has not moved', () => {
    h.enable();
    h.ioPair(1, 4, 1); // room for 3 completions
    expect(h.admin({ opcode: ADMIN.DOORBELL_BUFFER_CONFIG, prp1: DB, prp2: EI }).status).toBe(0);
    const read = (lba: number) => ({ opcode: IO.READ, nsid: 1, prp1: DATA, cdw: { 10: lba, 12: 0 } });
    // Ten reads, each reaped with the head written to the shadow only: the controller finds the room.
    for (let i = 0; i < 10; i++) {
      const cid = h.place(1, read(i));
      h.ring(1);
      h.run();
      expect(h.reap(1, DB)?.cid).toBe(cid);
    }
    // Three completions fill the CQ, unreaped; a fourth command then waits, and the controller asks for
    // the head by doorbell: the CQ's event index is the head it knows.
    const cids = [0, 1, 2].map((i) => h.place(1, read(i)));
    h.ring(1);
    h.run();
    cids.push(h.place(1, read(3)));
    h.ring(1);
    h.run();
    const head = ei(3);
    expect(head).toBe(10 % 4);
    expect([0, 1, 2].map(() => h.reap(1, DB)?.cid)).toEqual(cids.slice(0, 3));
    expect(h.reap(1, DB)).toBeUndefined();
    // The host's update passed the index, so it rings the head doorbell too: the fourth completes.
    h.w32(REG.DOORBELLS + 12, (head + 3) % 4);
    h.run();
    expect(h.reap(1, DB)?.cid).toBe(cids[3]);
    expect(h.r32(REG.CSTS)).toBe(1);
  });
});

describe('backing file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tcefs-nvme-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is created sparse at its size, holds what was written once Flush completes, and serves it to a new controller', () => {
    const file = join(dir, 'disk.img');
    const a = new Host({ backing: file, size: 1 << 20 });
    a.enable();
    a.ioPair();
    a.bus.write(DATA, Buffer.from('persisted through tcefs'.padEnd(512, '.')));
    expect(a.rw(IO.WRITE, 9, 1, DATA).status).toBe(0);
    expect(a.cmd(1, { opcode: IO.FLUSH, nsid: 1 }).status).toBe(0);
    expect(statSync(file).size).toBe(1 << 20);
    expect(readFileSync(file).subarray(9 * 512, 9 * 512 + 23).toString()).toBe('persisted through tcefs');
    a.ctrl.disk.close();
    const b = new Host({ backing: file });
    expect(b.ctrl.disk.size).toBe(1 << 20);
    b.enable();
    b.ioPair();
    expect(b.rw(IO.READ, 9, 1, DATA + 0x10000n).status).toBe(0);
    expect(b.bus.read(DATA + 0x10000n, 23).toString()).toBe('persisted through tcefs');
    expect(b.admin({ opcode: ADMIN.IDENTIFY, nsid: 1, prp1: DATA, cdw: { 10: 0 } }).status).toBe(0);
    expect(b.bus.read(DATA, 8).readBigUInt64LE()).toBe(2048n);
    b.ctrl.disk.close();
  });

  it('an empty file without a size is refused; a size smaller than the file limits the namespace', () => {
    const file = join(dir, 'empty.img');
    writeFileSync(file, '');
    expect(() => new FileDisk(file)).toThrow(/too small for a namespace/);
    writeFileSync(file, Buffer.alloc(1 << 20));
    const d = new FileDisk(file, 64 << 10);
    expect(d.size).toBe(64 << 10);
    expect(statSync(file).size).toBe(1 << 20);
    d.close();
  });

  it('the memory disk stays sparse and deallocation gives memory back', () => {
    const d = new MemoryDisk(1 << 30);
    d.write(5 << 20, Buffer.alloc(100, 1));
    expect(d.resident).toBe(64 << 10);
    d.deallocate(0, 1 << 30);
    expect(d.resident).toBe(0);
  });
});

describe('in the daemon', () => {
  it('an EEH hot reset of the PE resets the controller (queues gone, not ready), as hardware behind a reset', () => {
    const fn = new Harness().daemon.inventory.functions.get('0000:02:00.0')!;
    expect(fn.model.name).toBe('nvme');
    const w32 = (off: number, v: number) => fn.model.write(0, off, Buffer.from(new Uint32Array([v]).buffer));
    w32(REG.AQA, 0x000f000f);
    w32(REG.ASQ, 0x10000);
    w32(REG.ACQ, 0x20000);
    w32(REG.CC, 1 | CC_IO);
    expect(fn.model.read(0, REG.CSTS, 4).readUInt32LE()).toBe(1);
    fn.group.pe.eeh.op(EEH_OP.RESET_HOT);
    fn.group.pe.eeh.op(EEH_OP.RESET_DEACTIVATE);
    expect(fn.model.read(0, REG.CSTS, 4).readUInt32LE()).toBe(0);
    expect(fn.model.read(0, REG.CC, 4).readUInt32LE()).toBe(0);
  });
});

describe('topology', () => {
  it('the default NVMe function is the nvme model; backing and size are checked', () => {
    expect(parseTopology(DEFAULT_TOPOLOGY_JSON).phbs[0].pes[1].devices[0].model).toBe('nvme');
    expect(MODELS.nvme).toBeTypeOf('function');
    const t = structuredClone(DEFAULT_TOPOLOGY_JSON) as any;
    t.phbs[0].pes[1].devices[0].backing = '/tmp/x.img';
    t.phbs[0].pes[1].devices[0].size = '1M';
    expect(parseTopology(t).phbs[0].pes[1].devices[0].storage).toEqual({ backing: '/tmp/x.img', size: 1 << 20 });
    t.phbs[0].pes[1].devices[0].size = 1000;
    expect(() => parseTopology(t)).toThrow(/size: a namespace is a whole number of 512-byte blocks/);
    t.phbs[0].pes[1].devices[0].size = '1M';
    t.phbs[0].pes[1].devices[0].model = 'memory';
    expect(() => parseTopology(t)).toThrow(/"backing" and "size" belong to a storage model/);
  });
});
