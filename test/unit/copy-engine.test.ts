// The copy engine's register state machine against a stand-in DMA port: no IOMMU, no client.
import { beforeEach, describe, expect, it } from 'vitest';
import {
  COPY_ERR, COPY_ID, COPY_MAX_LEN, COPY_REG, CTRL_GO, CTRL_IRQ, CTRL_VECTOR_SHIFT, CopyEngine,
  STATUS_BUSY, STATUS_CODE_SHIFT, STATUS_DONE, STATUS_ERROR,
} from '../../src/devices/copy-engine.ts';
import { DmaError, RecordingIrqPort, type DmaPort } from '../../src/devices/model.ts';
import { seededRandom } from '../helpers/random.ts';

/** A bus where [0x1000, 0x9000) is memory and everything else faults (writes also fault below 0x2000). */
class FakeBus implements DmaPort {
  readonly mem = Buffer.alloc(0x8000);
  frozen = false;
  reads = 0;
  private check(iova: bigint, n: number, write: boolean): number {
    if (this.frozen) throw new DmaError('frozen', iova, 'frozen');
    if (iova < 0x1000n || iova + BigInt(n) > 0x9000n) throw new DmaError('no-tce', iova, 'unmapped');
    if (write && iova < 0x2000n) throw new DmaError('permission', iova, 'read-only');
    return Number(iova - 0x1000n);
  }
  read(iova: bigint, length: number): Buffer {
    this.reads++;
    const at = this.check(iova, length, false);
    return Buffer.from(this.mem.subarray(at, at + length));
  }
  write(iova: bigint, data: Buffer): void {
    data.copy(this.mem, this.check(iova, data.length, true));
  }
}

let bus: FakeBus;
let irq: RecordingIrqPort;
let queue: (() => void)[];
let eng: CopyEngine;

beforeEach(() => {
  bus = new FakeBus();
  irq = new RecordingIrqPort();
  queue = [];
  eng = new CopyEngine({ bdf: 'test', bars: [], msixVectors: 4, irq, dma: bus }, (w) => queue.push(w));
});

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const u64 = (v: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};
const reg32 = (off: number) => eng.read(0, off, 4).readUInt32LE();
const run = () => {
  while (queue.length) queue.shift()!();
};
function program(src: bigint, dst: bigint, len: number, ctrl = CTRL_IRQ | (2 << CTRL_VECTOR_SHIFT)) {
  eng.write(0, COPY_REG.SRC, u64(src));
  eng.write(0, COPY_REG.DST, u64(dst));
  eng.write(0, COPY_REG.LEN, u32(len));
  eng.write(0, COPY_REG.CTRL, u32(ctrl));
}

describe('the copy engine', () => {
  it('identifies itself and reads registers back at any width', () => {
    expect(reg32(COPY_REG.ID)).toBe(COPY_ID);
    expect(eng.read(0, 0, 4).toString()).toBe('TCPY');
    program(0x1122_3344_5566_7788n, 0x2000n, 16, CTRL_IRQ);
    expect(eng.read(0, COPY_REG.SRC, 8).readBigUInt64LE()).toBe(0x1122_3344_5566_7788n);
    expect(reg32(COPY_REG.SRC + 4)).toBe(0x1122_3344);
    expect(eng.read(0, COPY_REG.SRC + 1, 1)[0]).toBe(0x77);
    // Two 32-bit halves make the same 64-bit register; a byte write changes one byte.
    eng.write(0, COPY_REG.DST, u32(0xdead_beef));
    eng.write(0, COPY_REG.DST + 4, u32(0x1));
    eng.write(0, COPY_REG.DST + 7, Buffer.from([0x80]));
    expect(eng.read(0, COPY_REG.DST, 8).readBigUInt64LE()).toBe(0x8000_0001_dead_beefn);
    // Past the registers, and other BARs, read zero and ignore writes.
    eng.write(0, 0x100, u32(7));
    expect(eng.read(0, 0x100, 4)).toEqual(Buffer.alloc(4));
    expect(eng.read(2, 0, 8)).toEqual(Buffer.alloc(8));
  });

  it('copies on the doorbell: BUSY, then DONE with an MSI-X vector, DONE cleared by writing one', () => {
    bus.mem.write('hello, device', 0);
    program(0x1000n, 0x3000n, 13);
    eng.write(0, COPY_REG.DOORBELL, u32(1));
    expect(reg32(COPY_REG.STATUS)).toBe(STATUS_BUSY);
    expect(queue.length).toBe(1);
    run();
    expect(reg32(COPY_REG.STATUS)).toBe(STATUS_DONE);
    expect(bus.mem.subarray(0x2000, 0x2000 + 13).toString()).toBe('hello, device');
    expect(reg32(COPY_REG.COMPLETED)).toBe(1);
    expect(eng.read(0, COPY_REG.MOVED, 8).readBigUInt64LE()).toBe(13n);
    expect(irq.raised).toEqual([{ index: 2, vector: 2 }]);
    eng.write(0, COPY_REG.STATUS, u32(STATUS_DONE));
    expect(reg32(COPY_REG.STATUS)).toBe(0);
  });

  it('starts with CTRL.GO too, and GO reads back clear; without IRQ enable nothing is raised', () => {
    program(0x1000n, 0x3000n, 8, 0);
    eng.write(0, COPY_REG.CTRL, u32(CTRL_GO));
    expect(reg32(COPY_REG.CTRL)).toBe(0);
    run();
    expect(reg32(COPY_REG.STATUS)).toBe(STATUS_DONE);
    expect(irq.total).toBe(0);
  });

  it('moves a long copy in chunks, one per turn, and an empty one at once', () => {
    program(0x1000n, 0x3000n, 0);
    eng.write(0, COPY_REG.DOORBELL, u32(1));
    run();
    expect(reg32(COPY_REG.STATUS)).toBe(STATUS_DONE);
    bus.mem.fill(0xab, 0, 0x2000);
    program(0x1000n, 0x5000n, 0x2000);
    eng.write(0, COPY_REG.DOORBELL, u32(1));
    run();
    expect(bus.mem.subarray(0x4000, 0x6000).every((b) => b === 0xab)).toBe(true);
  });

  it('ends a faulting copy with ERROR and the reason, and still raises the vector', () => {
    const code = () => (reg32(COPY_REG.STATUS) >> STATUS_CODE_SHIFT) & 0xff;
    program(0x100n, 0x3000n, 8);
    eng.write(0, COPY_REG.DOORBELL, u32(1));
    run();
    expect(reg32(COPY_REG.STATUS) & (STATUS_ERROR | STATUS_BUSY)).toBe(STATUS_ERROR);
    expect(code()).toBe(COPY_ERR.READ_FAULT);
    expect(irq.total).toBe(1);
    eng.write(0, COPY_REG.STATUS, u32(STATUS_ERROR));
    expect(reg32(COPY_REG.STATUS)).toBe(0);

    program(0x3000n, 0x1800n, 8); // the destination is read-only
    eng.write(0, COPY_REG.DOORBELL, u32(1));
    run();
    expect(code()).toBe(COPY_ERR.WRITE_FAULT);
    expect(bus.mem.subarray(0x800, 0x808)).toEqual(Buffer.alloc(8));

    program(0x3000n, 0x4000n, COPY_MAX_LEN + 1);
    eng.write(0, COPY_REG.DOORBELL, u32(1));
    expect(code()).toBe(COPY_ERR.LENGTH);
    expect(bus.reads).toBe(2);

    bus.frozen = true;
    program(0x3000n, 0x4000n, 8);
    eng.write(0, COPY_REG.DOORBELL, u32(1));
    run();
    expect(code()).toBe(COPY_ERR.FROZEN);
    expect(reg32(COPY_REG.COMPLETED)).toBe(0);
  });

  it('flags a doorbell while busy and lets the running copy finish; a vector past the table raises nothing', () => {
    program(0x1000n, 0x3000n, 8, CTRL_IRQ | (9 << CTRL_VECTOR_SHIFT));
    eng.write(0, COPY_REG.DOORBELL, u32(1));
    eng.write(0, COPY_REG.DOORBELL, u32(1));
    expect(reg32(COPY_REG.STATUS) & (STATUS_ERROR | STATUS_BUSY)).toBe(STATUS_ERROR | STATUS_BUSY);
    expect(queue.length).toBe(1);
    run();
    expect(reg32(COPY_REG.STATUS)).toBe(STATUS_DONE);
    expect(irq.total).toBe(0);
  });

  it('reset abandons a copy in flight and clears every register', () => {
    bus.mem.fill(1, 0, 16);
    program(0x1000n, 0x3000n, 16);
    eng.write(0, COPY_REG.DOORBELL, u32(1));
    eng.reset();
    run();
    expect(bus.mem.subarray(0x2000, 0x2010)).toEqual(Buffer.alloc(16));
    expect(eng.read(0, COPY_REG.SRC, COPY_REG.END - COPY_REG.SRC)).toEqual(Buffer.alloc(COPY_REG.END - COPY_REG.SRC));
    expect(irq.total).toBe(0);
  });

  it('takes writes and reads of any size at any offset without throwing', () => {
    const rnd = seededRandom(14);
    for (let k = 0; k < 2000; k++) {
      const off = rnd(0x48);
      const len = 1 + rnd(24);
      const data = Buffer.from(Array.from({ length: len }, () => rnd(256)));
      eng.write(0, off, data);
      expect(eng.read(0, off, len).length).toBe(len);
      if (rnd(4) === 0) run();
    }
    run();
    expect(reg32(COPY_REG.STATUS) & STATUS_BUSY).toBe(0);
  });
});
