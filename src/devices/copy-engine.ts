// A DMA copy engine: moves LEN bytes from the SRC IOVA to the DST IOVA through the function's DMA port
// and reports completion in STATUS and, when asked, with an MSI-X vector. Registers in BAR 0 (layout
// and semantics in docs/devices.md); every other BAR byte reads zero and ignores writes.
import createDebug from 'debug';
import { VFIO } from '../uapi/constants.ts';
import { DmaError, MAX_DMA_BYTES, type DeviceModel, type DmaFailure, type ModelContext } from './model.ts';

export const COPY_REG = {
  ID: 0x00,
  VERSION: 0x04,
  SRC: 0x08,
  DST: 0x10,
  LEN: 0x18,
  CTRL: 0x20,
  STATUS: 0x24,
  DOORBELL: 0x28,
  COMPLETED: 0x2c,
  MOVED: 0x30,
  END: 0x38,
} as const;

/** "TCPY" read as a little-endian u32. */
export const COPY_ID = 0x59504354;
export const COPY_VERSION = 1;

export const CTRL_GO = 1 << 0;
export const CTRL_IRQ = 1 << 1;
export const CTRL_VECTOR_SHIFT = 16;
export const CTRL_VECTOR_MASK = 0x7ff;

export const STATUS_BUSY = 1 << 0;
export const STATUS_DONE = 1 << 1;
export const STATUS_ERROR = 1 << 2;
export const STATUS_CODE_SHIFT = 8;

/** STATUS bits 8-15 after an error. */
export const COPY_ERR = {
  NONE: 0,
  /** LEN above COPY_MAX_LEN. */
  LENGTH: 1,
  /** Reading SRC faulted (no window, no TCE, no read permission, blocked). */
  READ_FAULT: 2,
  /** Writing DST faulted. */
  WRITE_FAULT: 3,
  /** The PE's DMA was already frozen. */
  FROZEN: 4,
  /** Started while a copy was running (the running copy goes on). */
  BUSY: 5,
} as const;

/** Longest copy: LEN is 32 bits, but one copy holds at most this much in flight. */
export const COPY_MAX_LEN = 64 << 20;
/** The engine moves this much per turn of the event loop, so a long copy does not stall the daemon. */
const CHUNK = Math.min(256 << 10, MAX_DMA_BYTES);

const warn = createDebug('tcefs:error');

/** How the engine runs work later; tests step it by hand. */
export type Scheduler = (work: () => void) => void;

export class CopyEngine implements DeviceModel {
  readonly name = 'copy-engine';
  /** SRC, DST, LEN and CTRL as the bus wrote them, byte for byte. */
  private readonly regs = Buffer.alloc(COPY_REG.END);
  private status = 0;
  private completed = 0;
  private moved = 0n;
  /** Bumped by reset so a chunk scheduled before it does nothing. */
  private generation = 0;
  /** One chunk in flight at a time, so one buffer serves every copy (allocated on the first). */
  private chunk?: Buffer;

  constructor(private readonly ctx: ModelContext, private readonly schedule: Scheduler = setImmediate) {}

  read(bar: number, offset: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    if (bar !== 0 || offset >= COPY_REG.END) return out;
    const view = Buffer.from(this.regs);
    view.writeUInt32LE(COPY_ID, COPY_REG.ID);
    view.writeUInt32LE(COPY_VERSION, COPY_REG.VERSION);
    view.writeUInt32LE(this.status >>> 0, COPY_REG.STATUS);
    view.writeUInt32LE(0, COPY_REG.DOORBELL);
    view.writeUInt32LE(this.completed >>> 0, COPY_REG.COMPLETED);
    view.writeBigUInt64LE(this.moved, COPY_REG.MOVED);
    view.copy(out, 0, offset, Math.min(COPY_REG.END, offset + length));
    return out;
  }

  write(bar: number, offset: number, data: Buffer): void {
    if (bar !== 0 || offset >= COPY_REG.END) return;
    const touched = (reg: number, size: number) => offset < reg + size && reg < offset + data.length;
    // The bytes a write puts into [reg, reg + 4), merged over the current value.
    const merged = (reg: number, current: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(current >>> 0);
      for (let i = 0; i < 4; i++) if (offset <= reg + i && reg + i < offset + data.length) b[i] = data[reg + i - offset];
      return b.readUInt32LE();
    };
    for (let i = 0; i < data.length && offset + i < COPY_REG.END; i++) {
      const at = offset + i;
      if (at >= COPY_REG.SRC && at < COPY_REG.LEN + 4) this.regs[at] = data[i];
      else if (at >= COPY_REG.CTRL && at < COPY_REG.CTRL + 4) this.regs[at] = data[i];
    }
    if (touched(COPY_REG.STATUS, 4)) {
      // DONE and ERROR are write-one-to-clear; clearing ERROR clears its code too.
      const w1c = merged(COPY_REG.STATUS, 0);
      if (w1c & STATUS_DONE) this.status &= ~STATUS_DONE;
      if (w1c & STATUS_ERROR) this.status &= ~(STATUS_ERROR | (0xff << STATUS_CODE_SHIFT));
    }
    let go = touched(COPY_REG.DOORBELL, 4);
    if (touched(COPY_REG.CTRL, 4)) {
      const ctrl = this.regs.readUInt32LE(COPY_REG.CTRL);
      if (ctrl & CTRL_GO) go = true;
      this.regs.writeUInt32LE((ctrl & ~CTRL_GO) >>> 0, COPY_REG.CTRL);
    }
    if (go) this.start();
  }

  reset(): void {
    this.generation++;
    this.regs.fill(0);
    this.status = 0;
    this.completed = 0;
    this.moved = 0n;
  }

  get busy(): boolean {
    return (this.status & STATUS_BUSY) !== 0;
  }

  private start(): void {
    if (this.busy) {
      this.status |= STATUS_ERROR | (COPY_ERR.BUSY << STATUS_CODE_SHIFT);
      return;
    }
    const src = this.regs.readBigUInt64LE(COPY_REG.SRC);
    const dst = this.regs.readBigUInt64LE(COPY_REG.DST);
    const len = this.regs.readUInt32LE(COPY_REG.LEN);
    this.status = STATUS_BUSY;
    this.moved = 0n;
    if (len > COPY_MAX_LEN) return this.finish(COPY_ERR.LENGTH);
    const gen = this.generation;
    const step = (done: number) => {
      if (gen !== this.generation) return;
      const n = Math.min(CHUNK, len - done);
      if (n > 0) {
        let data: Buffer;
        try {
          this.chunk ??= Buffer.allocUnsafe(CHUNK);
          data = this.ctx.dma.read(src + BigInt(done), n, this.chunk);
        } catch (e) {
          return this.failed(e, COPY_ERR.READ_FAULT);
        }
        try {
          this.ctx.dma.write(dst + BigInt(done), data);
        } catch (e) {
          return this.failed(e, COPY_ERR.WRITE_FAULT);
        }
        this.moved += BigInt(n);
      }
      if (done + n < len) this.schedule(() => step(done + n));
      else this.finish(COPY_ERR.NONE);
    };
    this.schedule(() => step(0));
  }

  /** A DMA of the copy failed: the copy ends with `code` (FROZEN when DMA was already stopped). */
  private failed(e: unknown, code: number): void {
    // Runs outside any request: even a bug must end as a device error, never as a daemon crash.
    if (!(e instanceof DmaError)) warn('%s: copy failed: %O', this.ctx.bdf, e);
    this.finish(e instanceof DmaError ? failureCode(e.reason, code) : code);
  }

  private finish(code: number): void {
    this.status = code === COPY_ERR.NONE ? STATUS_DONE : STATUS_ERROR | (code << STATUS_CODE_SHIFT);
    if (code === COPY_ERR.NONE) this.completed++;
    const ctrl = this.regs.readUInt32LE(COPY_REG.CTRL);
    if (!(ctrl & CTRL_IRQ)) return;
    const vector = (ctrl >>> CTRL_VECTOR_SHIFT) & CTRL_VECTOR_MASK;
    // A vector past the MSI-X table has no entry to signal through.
    if (vector < this.ctx.msixVectors) this.ctx.irq.raise(VFIO.VFIO_PCI_MSIX_IRQ_INDEX, vector);
  }
}

function failureCode(reason: DmaFailure, code: number): number {
  if (reason === 'frozen') return COPY_ERR.FROZEN;
  if (reason === 'too-long') return COPY_ERR.LENGTH;
  return code;
}
