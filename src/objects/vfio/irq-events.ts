// The interrupt event stream of one device file: what the client library's thread reads from
// <mount>/.tcefs/irq/<handle> to learn which of its eventfds to signal.
//
// A read blocks until there are records. A FUSE read the daemon has taken cannot be interrupted, not
// even by SIGKILL, so every waiting read is also answered by a heartbeat (no interrupt, one record with
// index IRQ_HEARTBEAT) within HEARTBEAT_MS: a killed client then exits and its files are released.
// Once the device file is released, reads return 0 (end of file), which tells the thread to stop.
import { irqRecord } from '../../transport/frame.ts';
import type { IrqSink } from './irqs.ts';
import { perf } from '../../perf.ts';

export const IRQ_HEARTBEAT = 0xffffffff;
export const HEARTBEAT_MS = 200;
const RECORD = irqRecord.size;

type Waiter = { len: number; done: (data: Buffer | number) => void };

/** Where records go as they happen instead of to reads (a socket of src/transport/posted.ts). */
export interface EventSink {
  push(records: Buffer): void;
  /** The stream ended (the device file was released). */
  end(): void;
}

/** Interrupts of one device file not yet read, coalesced per vector (an eventfd adds the counts up). */
export class IrqEvents implements IrqSink {
  private readonly queued = new Map<number, { index: number; vector: number; count: number }>();
  private readonly waiters: Waiter[] = [];
  private ended = false;
  private sink?: EventSink;
  /** Open event files reading this stream. */
  streams = 0;

  /** From now on records go down `sink` as they happen, those queued first: no read waits in between. */
  stream(sink: EventSink): void {
    if (this.ended) return sink.end();
    this.sink?.end();
    this.sink = sink;
    if (this.queued.size) sink.push(encode(this.take(Infinity)));
  }

  /** The sink is gone (its connection closed): records queue for reads again. */
  unstream(sink: EventSink): void {
    if (this.sink === sink) this.sink = undefined;
  }

  signal(index: number, vector: number): void {
    if (this.ended) return;
    if (this.sink) return this.sink.push(encode([{ index, vector, count: 1 }]));
    const key = index * 0x10000 + vector;
    const q = this.queued.get(key);
    if (q) q.count++;
    else this.queued.set(key, { index, vector, count: 1 });
    const w = this.waiters.shift();
    if (w) this.answer(w);
    else perf.irqsQueued.count++;
    if (!this.waiters.length) heartbeat.delete(this);
  }

  /** A read of the event file: answered now if there is something to say, else when there is. */
  read(len: number, done: (data: Buffer | number) => void): void {
    if (len < RECORD) return done(-22); // EINVAL: too small for one record
    const w = { len, done };
    if (this.ended || this.queued.size) return this.answer(w);
    this.waiters.push(w);
    heartbeat.add(this);
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** The device file is released: waiting and later reads get end of file. */
  end(): void {
    this.ended = true;
    this.queued.clear();
    this.sink?.end();
    this.sink = undefined;
    for (const w of this.waiters.splice(0)) w.done(0);
    heartbeat.delete(this);
  }

  /** Answer every waiting read with a heartbeat record. */
  beat(): void {
    for (const w of this.waiters.splice(0)) w.done(encode([{ index: IRQ_HEARTBEAT, vector: 0, count: 0 }]));
  }

  private answer(w: Waiter): void {
    if (this.ended) return w.done(0);
    w.done(encode(this.take(Math.floor(w.len / RECORD))));
  }

  private take(max: number): { index: number; vector: number; count: number }[] {
    const out: { index: number; vector: number; count: number }[] = [];
    for (const [key, r] of this.queued) {
      if (out.length >= max) break;
      out.push(r);
      this.queued.delete(key);
    }
    return out;
  }
}

function encode(records: { index: number; vector: number; count: number }[]): Buffer {
  const b = Buffer.alloc(records.length * RECORD);
  records.forEach((r, i) => {
    b.writeUInt32LE(r.index, i * RECORD);
    b.writeUInt32LE(r.vector, i * RECORD + 4);
    b.writeBigUInt64LE(BigInt(r.count), i * RECORD + 8);
  });
  return b;
}

/** One timer for every stream with a waiting read, running only while there is one. */
const heartbeat = new (class {
  private readonly streams = new Set<IrqEvents>();
  private timer?: NodeJS.Timeout;
  add(s: IrqEvents): void {
    this.streams.add(s);
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), HEARTBEAT_MS);
      this.timer.unref();
    }
  }
  delete(s: IrqEvents): void {
    this.streams.delete(s);
    if (!this.streams.size && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
  private tick(): void {
    for (const s of [...this.streams]) {
      s.beat();
      this.delete(s);
    }
  }
})();
