// VFIO_DEVICE_SET_IRQS: vfio-pci's validation order and errnos, its per-index state machine (INTx
// automask and pending, MSI/MSI-X enable, vectors and unwinding, the ERR/REQ notifiers), the config
// space enable bits, and the event stream the client library reads.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EBADF, EFAULT, EINVAL, ENOTTY, Errno } from '../../src/errno.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import { DeviceFile } from '../../src/objects/vfio/device.ts';
import { HEARTBEAT_MS, IRQ_HEARTBEAT, IrqEvents } from '../../src/objects/vfio/irq-events.ts';
import {
  ACTION_MASK, ACTION_TRIGGER, ACTION_UNMASK, DATA_BOOL, DATA_EVENTFD, DATA_NONE, FunctionIrqs, IRQ_EVENTFD,
  type IrqConfig, type IrqSink, type IrqSet,
} from '../../src/objects/vfio/irqs.ts';
import { HANDLE_FOREIGN, HANDLE_NONE } from '../../src/transport/frame.ts';
import { VFIO } from '../../src/uapi/constants.ts';
import { Harness } from '../helpers/direct.ts';

const { VFIO_PCI_INTX_IRQ_INDEX: INTX, VFIO_PCI_MSI_IRQ_INDEX: MSI, VFIO_PCI_MSIX_IRQ_INDEX: MSIX } = VFIO;
const { VFIO_PCI_ERR_IRQ_INDEX: ERR, VFIO_PCI_REQ_IRQ_INDEX: REQ } = VFIO;

/** The SET_IRQS argument bytes: header then data[]. */
function irqSet(flags: number, index: number, start: number, count: number, data: number[] = [], argsz?: number): Buffer {
  const elem = flags & DATA_EVENTFD ? 4 : flags & DATA_BOOL ? 1 : 0;
  const b = Buffer.alloc(20 + data.length * elem);
  b.writeUInt32LE(argsz ?? b.length, 0);
  b.writeUInt32LE(flags, 4);
  b.writeUInt32LE(index, 8);
  b.writeUInt32LE(start, 12);
  b.writeUInt32LE(count, 16);
  data.forEach((v, i) => (elem === 4 ? b.writeInt32LE(v, 20 + 4 * i) : b.writeUInt8(v, 20 + i)));
  return b;
}

describe('SET_IRQS through the device file (validation order and errnos)', () => {
  let h: Harness;
  let dev: OpenFile;
  beforeEach(() => {
    h = new Harness();
    const c = h.open('/dev/vfio/vfio');
    const g = h.open('/dev/vfio/1');
    h.setContainer(g, c);
    h.call(c, 'VFIO_SET_IOMMU', {}, { arg: 7 });
    dev = h.getDeviceFd(g, '0000:02:00.0').file!; // MSI 1, MSI-X 33, INTx, not PCIe
  });
  const set = (raw: Buffer) => h.call(dev, 'VFIO_DEVICE_SET_IRQS', {}, { raw }).result;

  it('EFAULT when the header is not readable, EINVAL for each bad header field', () => {
    expect(set(Buffer.alloc(19))).toBe(-EFAULT);
    expect(set(irqSet(DATA_NONE | ACTION_TRIGGER, MSIX, 0, 1, [], 19))).toBe(-EINVAL);
    expect(set(irqSet(DATA_NONE | ACTION_TRIGGER, 5, 0, 1))).toBe(-EINVAL);
    expect(set(irqSet(DATA_NONE | ACTION_TRIGGER, MSIX, 1, 0xfffffffe))).toBe(-EINVAL);
    expect(set(irqSet(DATA_NONE | ACTION_TRIGGER | 0x40, MSIX, 0, 1))).toBe(-EINVAL);
    expect(set(irqSet(DATA_NONE | ACTION_TRIGGER, MSIX, 33, 0))).toBe(-EINVAL); // start past the count
    expect(set(irqSet(DATA_NONE | ACTION_TRIGGER, MSIX, 30, 4))).toBe(-EINVAL);
    expect(set(irqSet(DATA_NONE | DATA_BOOL | ACTION_TRIGGER, MSIX, 0, 1))).toBe(-EINVAL);
    expect(set(irqSet(ACTION_TRIGGER, MSIX, 0, 1))).toBe(-EINVAL); // no data type
  });

  it('validation comes before the action: two actions are ENOTTY only on an otherwise valid call', () => {
    expect(set(irqSet(DATA_NONE | ACTION_MASK | ACTION_UNMASK, 5, 0, 1))).toBe(-EINVAL);
    expect(set(irqSet(DATA_NONE | ACTION_MASK | ACTION_UNMASK, INTX, 0, 1))).toBe(-ENOTTY);
    expect(set(irqSet(DATA_NONE | ACTION_MASK, MSIX, 0, 1))).toBe(-ENOTTY);
  });

  it('data[] must fit argsz (EINVAL) and be readable (EFAULT)', () => {
    expect(set(irqSet(DATA_EVENTFD | ACTION_TRIGGER, MSIX, 0, 2, [IRQ_EVENTFD], 24))).toBe(-EINVAL);
    expect(set(irqSet(DATA_EVENTFD | ACTION_TRIGGER, MSIX, 0, 2, [IRQ_EVENTFD], 28))).toBe(-EFAULT);
    expect(set(irqSet(DATA_BOOL | ACTION_TRIGGER, MSIX, 0, 2, [1], 21))).toBe(-EINVAL);
  });

  it('ERR does not exist on a conventional PCI function; an eventfd entry that is no eventfd is EINVAL, a closed one EBADF', () => {
    expect(set(irqSet(DATA_NONE | ACTION_TRIGGER, ERR, 0, 1))).toBe(-EINVAL);
    expect(set(irqSet(DATA_EVENTFD | ACTION_TRIGGER, MSIX, 0, 1, [HANDLE_FOREIGN]))).toBe(-EINVAL);
    expect(set(irqSet(DATA_EVENTFD | ACTION_TRIGGER, MSIX, 0, 1, [HANDLE_NONE]))).toBe(-EBADF);
    // Both failed a fresh enable, which is undone: MSI-X is still off.
    expect(set(irqSet(DATA_NONE | ACTION_TRIGGER, MSIX, 0, 1))).toBe(-EINVAL);
  });

  it('signals reach the file\'s event stream; reset and close turn everything off', () => {
    const events = (dev as DeviceFile).events;
    expect(set(irqSet(DATA_EVENTFD | ACTION_TRIGGER, MSIX, 0, 1, [IRQ_EVENTFD]))).toBe(0);
    expect(set(irqSet(DATA_NONE | ACTION_TRIGGER, MSIX, 0, 1))).toBe(0);
    let got: Buffer | number | undefined;
    events.read(4096, (r) => (got = r));
    expect((got as Buffer).readUInt32LE(0)).toBe(MSIX);
    expect(h.call(dev, 'VFIO_DEVICE_RESET').result).toBe(0);
    expect(set(irqSet(DATA_NONE | ACTION_TRIGGER, MSIX, 0, 1))).toBe(-EINVAL);
    expect(set(irqSet(DATA_EVENTFD | ACTION_TRIGGER, INTX, 0, 1, [IRQ_EVENTFD]))).toBe(0);
    h.close(dev);
    events.read(4096, (r) => (got = r));
    expect(got).toBe(0);
    expect((dev as DeviceFile).fn.irqs.describe().mode).toBe('none');
  });
});

/** Config space reduced to what interrupts read: INTx pin A, and MSI, MSI-X and PCIe capabilities as asked. */
class FakeConfig implements IrqConfig {
  msi: [boolean, number] = [false, 0];
  msix = false;
  constructor(private readonly o: { msiLog2?: number; msix?: number; pcie?: boolean } = {}) {}
  irqCount(index: number): number {
    const o = this.o;
    return [1, o.msiLog2 === undefined ? 0 : 1 << o.msiLog2, o.msix ?? 0, o.pcie ? 1 : 0, 1][index] ?? 0;
  }
  setMsiEnabled(enabled: boolean, vectors: number) {
    this.msi = [enabled, vectors];
  }
  setMsixEnabled(enabled: boolean) {
    this.msix = enabled;
  }
}

/** A sink that records what it was signalled with. */
class Recorder implements IrqSink {
  readonly got: string[] = [];
  signal(index: number, vector: number) {
    this.got.push(`${index}:${vector}`);
  }
  take(): string[] {
    return this.got.splice(0);
  }
}

const hdr = (flags: number, index: number, start: number, count: number): IrqSet => ({ argsz: 20, flags, index, start, count });
const fds = (...v: number[]) => {
  const b = Buffer.alloc(4 * v.length);
  v.forEach((x, i) => b.writeInt32LE(x, 4 * i));
  return b;
};
const errno = (f: () => void) => {
  try {
    f();
  } catch (e) {
    if (e instanceof Errno) return e.errno;
    throw e;
  }
  return 0;
};

describe('FunctionIrqs', () => {
  let cfg: FakeConfig;
  let irqs: FunctionIrqs;
  let s: Recorder;
  beforeEach(() => {
    cfg = new FakeConfig({ msiLog2: 2, msix: 16, pcie: true });
    irqs = new FunctionIrqs(cfg);
    s = new Recorder();
  });
  const trigger = (index: number, start: number, count: number, entries: number[]) =>
    errno(() => irqs.set(hdr(DATA_EVENTFD | ACTION_TRIGGER, index, start, count), fds(...entries), s));
  const none = (action: number, index: number, start: number, count: number) => errno(() => irqs.set(hdr(DATA_NONE | action, index, start, count), Buffer.alloc(0), s));
  const bool = (action: number, index: number, start: number, values: number[]) =>
    errno(() => irqs.set(hdr(DATA_BOOL | action, index, start, values.length), Buffer.from(values), s));

  it('counts vectors from config space and reports NORESIZE unless MSI-X can grow', () => {
    expect([INTX, MSI, MSIX, ERR, REQ].map((i) => irqs.count(i))).toEqual([1, 4, 16, 1, 1]);
    expect(irqs.info(MSIX)!.flags & VFIO.VFIO_IRQ_INFO_NORESIZE).toBe(0);
    expect(new FunctionIrqs(cfg, false).info(MSIX)!.flags & VFIO.VFIO_IRQ_INFO_NORESIZE).toBe(VFIO.VFIO_IRQ_INFO_NORESIZE);
    expect(new FunctionIrqs(new FakeConfig()).info(ERR)).toBeUndefined();
  });

  it('MSI-X: enable with some vectors, add more while enabled, -1 detaches, count 0 disables', () => {
    expect(trigger(MSIX, 0, 2, [IRQ_EVENTFD, -1])).toBe(0);
    expect(cfg.msix).toBe(true);
    irqs.raise(MSIX, 0);
    irqs.raise(MSIX, 1);
    expect(s.take()).toEqual(['2:0']);
    expect(trigger(MSIX, 9, 1, [IRQ_EVENTFD])).toBe(0);
    expect(bool(ACTION_TRIGGER, MSIX, 8, [1, 1])).toBe(0);
    expect(s.take()).toEqual(['2:9']);
    expect(trigger(MSIX, 9, 1, [-1])).toBe(0);
    expect(none(ACTION_TRIGGER, MSIX, 0, 16)).toBe(0);
    expect(s.take()).toEqual(['2:0']);
    expect(none(ACTION_TRIGGER, MSIX, 0, 0)).toBe(0);
    expect(cfg.msix).toBe(false);
    expect(irqs.describe().mode).toBe('none');
  });

  it('without dynamic MSI-X, and always for MSI, vectors past those first enabled are EINVAL', () => {
    const fixed = new FunctionIrqs(cfg, false);
    expect(errno(() => fixed.set(hdr(DATA_EVENTFD | ACTION_TRIGGER, MSIX, 0, 2), fds(1, 1), s))).toBe(0);
    expect(errno(() => fixed.set(hdr(DATA_EVENTFD | ACTION_TRIGGER, MSIX, 2, 1), fds(1), s))).toBe(EINVAL);
    expect(trigger(MSI, 0, 2, [IRQ_EVENTFD, IRQ_EVENTFD])).toBe(0);
    expect(cfg.msi).toEqual([true, 2]);
    expect(trigger(MSI, 2, 1, [IRQ_EVENTFD])).toBe(EINVAL);
    expect(trigger(MSI, 1, 1, [-1])).toBe(0); // detaching stays possible
  });

  it('a failing vector undoes the vectors this call reached; a failing enable leaves the mode off', () => {
    expect(trigger(MSIX, 0, 3, [IRQ_EVENTFD, IRQ_EVENTFD, IRQ_EVENTFD])).toBe(0);
    expect(trigger(MSIX, 0, 3, [IRQ_EVENTFD, HANDLE_NONE, IRQ_EVENTFD])).toBe(EBADF);
    expect(none(ACTION_TRIGGER, MSIX, 0, 3)).toBe(0);
    expect(s.take()).toEqual(['2:2']); // 0 and 1 were detached, 2 never reached
    expect(none(ACTION_TRIGGER, MSIX, 0, 0)).toBe(0);
    expect(trigger(MSI, 0, 1, [HANDLE_FOREIGN])).toBe(EINVAL);
    expect(irqs.describe().mode).toBe('none');
    expect(cfg.msi[0]).toBe(false);
  });

  it('one mode at a time: MSI, MSI-X and INTx exclude each other', () => {
    expect(trigger(MSI, 0, 1, [IRQ_EVENTFD])).toBe(0);
    expect(trigger(MSIX, 0, 1, [IRQ_EVENTFD])).toBe(EINVAL);
    expect(trigger(INTX, 0, 1, [IRQ_EVENTFD])).toBe(EINVAL);
    expect(none(ACTION_TRIGGER, MSIX, 0, 0)).toBe(EINVAL); // disabling a mode that is not on
    expect(none(ACTION_TRIGGER, MSI, 0, 0)).toBe(0);
    expect(trigger(INTX, 0, 1, [IRQ_EVENTFD])).toBe(0);
  });

  it('INTx: a raise fires and automasks; while masked it is pending and fires on unmask, staying masked', () => {
    expect(none(ACTION_UNMASK, INTX, 0, 1)).toBe(EINVAL); // not enabled
    expect(trigger(INTX, 0, 1, [IRQ_EVENTFD])).toBe(0);
    irqs.raise(INTX);
    irqs.raise(INTX);
    expect(s.take()).toEqual(['0:0']);
    expect(irqs.describe().intx).toEqual({ masked: true, pending: true, trigger: true });
    expect(none(ACTION_UNMASK, INTX, 0, 1)).toBe(0);
    expect(s.take()).toEqual(['0:0']);
    expect(irqs.describe().intx).toMatchObject({ masked: true, pending: false });
    expect(none(ACTION_UNMASK, INTX, 0, 1)).toBe(0);
    irqs.raise(INTX);
    expect(s.take()).toEqual(['0:0']);
    // The loopback trigger ignores the mask; BOOL 0 masks or unmasks nothing.
    expect(none(ACTION_TRIGGER, INTX, 0, 1)).toBe(0);
    expect(s.take()).toEqual(['0:0']);
    expect(bool(ACTION_UNMASK, INTX, 0, [0])).toBe(0);
    expect(irqs.describe().intx).toMatchObject({ masked: true });
    expect(bool(ACTION_UNMASK, INTX, 0, [1])).toBe(0);
    expect(bool(ACTION_MASK, INTX, 0, [1])).toBe(0);
    expect(irqs.describe().intx).toMatchObject({ masked: true });
    expect(trigger(INTX, 0, 1, [-1])).toBe(0); // detached, still enabled
    irqs.raise(INTX);
    expect(s.take()).toEqual([]);
    expect(errno(() => irqs.set(hdr(DATA_EVENTFD | ACTION_MASK, INTX, 0, 1), fds(1), s))).toBe(ENOTTY);
    expect(errno(() => irqs.set(hdr(DATA_EVENTFD | ACTION_UNMASK, INTX, 0, 1), fds(1), s))).toBe(ENOTTY);
    expect(none(ACTION_TRIGGER, INTX, 0, 0)).toBe(0);
    expect(none(ACTION_TRIGGER, INTX, 0, 1)).toBe(EINVAL);
  });

  it('ERR and REQ: one eventfd each, loopback by NONE and BOOL, entries below -1 keep it', () => {
    expect(none(ACTION_TRIGGER, ERR, 0, 1)).toBe(EINVAL); // nothing attached
    expect(trigger(ERR, 0, 1, [IRQ_EVENTFD])).toBe(0);
    expect(trigger(ERR, 0, 1, [-2])).toBe(0);
    expect(none(ACTION_TRIGGER, ERR, 0, 1)).toBe(0);
    irqs.raise(ERR);
    expect(s.take()).toEqual(['3:0', '3:0']);
    expect(bool(ACTION_TRIGGER, ERR, 0, [])).toBe(EINVAL); // BOOL with count 0
    expect(trigger(REQ, 0, 1, [IRQ_EVENTFD])).toBe(0);
    expect(none(ACTION_TRIGGER, REQ, 0, 0)).toBe(0); // count 0 detaches
    expect(none(ACTION_TRIGGER, REQ, 0, 1)).toBe(EINVAL);
    expect(none(ACTION_UNMASK, REQ, 0, 1)).toBe(ENOTTY);
  });

  it('a closed file\'s eventfds go, the others stay; disableAll turns everything off', () => {
    const other = new Recorder();
    expect(trigger(MSIX, 0, 1, [IRQ_EVENTFD])).toBe(0);
    expect(errno(() => irqs.set(hdr(DATA_EVENTFD | ACTION_TRIGGER, MSIX, 1, 1), fds(IRQ_EVENTFD), other))).toBe(0);
    irqs.detach(s);
    irqs.raise(MSIX, 0);
    irqs.raise(MSIX, 1);
    expect([s.take(), other.take()]).toEqual([[], ['2:1']]);
    irqs.disableAll();
    expect(cfg.msix).toBe(false);
    expect(irqs.describe()).toMatchObject({ mode: 'none', err: false, req: false });
  });
});

describe('IrqEvents', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const records = (b: Buffer | number) => {
    if (typeof b === 'number') return b;
    const out: [number, number, number][] = [];
    for (let i = 0; i < b.length; i += 16) out.push([b.readUInt32LE(i), b.readUInt32LE(i + 4), Number(b.readBigUInt64LE(i + 8))]);
    return out;
  };

  it('queues signals per vector with a count, answers a read at once or when one comes', () => {
    const e = new IrqEvents();
    e.signal(MSIX, 3);
    e.signal(MSIX, 3);
    e.signal(INTX, 0);
    const got: unknown[] = [];
    e.read(4096, (r) => got.push(records(r)));
    expect(got).toEqual([[[MSIX, 3, 2], [INTX, 0, 1]]]);
    e.read(4096, (r) => got.push(records(r)));
    expect(e.waiting).toBe(1);
    e.signal(MSI, 0);
    expect(got[1]).toEqual([[MSI, 0, 1]]);
    expect(e.waiting).toBe(0);
  });

  it('a read smaller than the queue takes what fits; smaller than a record is EINVAL', () => {
    const e = new IrqEvents();
    for (let v = 0; v < 3; v++) e.signal(MSIX, v);
    const got: unknown[] = [];
    e.read(32, (r) => got.push(records(r)));
    e.read(8, (r) => got.push(r));
    e.read(4096, (r) => got.push(records(r)));
    expect(got).toEqual([[[MSIX, 0, 1], [MSIX, 1, 1]], -EINVAL, [[MSIX, 2, 1]]]);
  });

  it('answers a waiting read with a heartbeat, so the reader is never held indefinitely', () => {
    vi.useFakeTimers();
    const e = new IrqEvents();
    const got: unknown[] = [];
    e.read(4096, (r) => got.push(records(r)));
    vi.advanceTimersByTime(HEARTBEAT_MS);
    expect(got).toEqual([[[IRQ_HEARTBEAT, 0, 0]]]);
    expect(e.waiting).toBe(0);
  });

  it('after end, waiting and later reads get end of file and signals are dropped', () => {
    const e = new IrqEvents();
    const got: unknown[] = [];
    e.read(4096, (r) => got.push(r));
    e.end();
    e.signal(MSIX, 0);
    e.read(4096, (r) => got.push(r));
    expect(got).toEqual([0, 0]);
  });
});
