// Where a device-heavy client's time goes in the daemon: counts and handler time of MMIO region accesses,
// device DMA through /proc/<pid>/mem, interrupts the models raise and the FUSE requests on frame channels,
// plus the last few DMA transfers of each PE and the TCE each one went through. Process-wide, like the
// debug module's loggers: these are observations of the daemon, not state any object depends on, and
// threading a meter through every layer would change every constructor for no behaviour. Served as
// sys/kernel/debug/tcefs/perf.json (`tcefs demo` and `npm run bench` read it).

/** A count and the time spent in it (ns; a bigint would cost more than the work on the hot path). */
export class Meter {
  count = 0;
  ns = 0;
  bytes = 0;
  /** Adds one event that started at `t0` (from now()) and moved `bytes`. */
  add(t0: number, bytes = 0): void {
    this.count++;
    this.ns += now() - t0;
    this.bytes += bytes;
  }
  describe() {
    return { count: this.count, ms: Math.round(this.ns / 1e3) / 1e3, bytes: this.bytes };
  }
}

/** Monotonic nanoseconds as a double (exact to well below a microsecond for days). */
export function now(): number {
  return performance.now() * 1e6;
}

export interface DmaRecord {
  /** ms since the daemon started */
  at: number;
  device: string;
  direction: 'read' | 'write';
  iova: bigint;
  bytes: number;
  /** The host address the first IOMMU page translated to. */
  hpa?: bigint;
}

const KEPT = 16;

export class PerfCounters {
  readonly mmioRead = new Meter();
  readonly mmioWrite = new Meter();
  readonly dmaRead = new Meter();
  readonly dmaWrite = new Meter();
  /** Interrupts raised by device models (delivery is the shim's irq stream read completing). */
  readonly irqs = new Meter();
  /** Of those, the ones that found no read of the client's delivery thread waiting (queued until it reads again). */
  readonly irqsQueued = new Meter();
  /** FUSE read and write requests on frame channels: ioctl frames, replies and region accesses. */
  readonly fuse = new Meter();
  /** Of the MMIO writes, those posted down a socket (src/transport/posted.ts) rather than a FUSE request each. */
  readonly posted = new Meter();
  private readonly recent = new Map<string, DmaRecord[]>();
  private readonly totals = new Map<string, { read: number; write: number }>();

  /** A device DMA transfer of a PE (by name), for the recent list. */
  dma(pe: string, r: DmaRecord): void {
    let list = this.recent.get(pe);
    if (!list) this.recent.set(pe, (list = []));
    list.push(r);
    if (list.length > KEPT) list.shift();
    let t = this.totals.get(pe);
    if (!t) this.totals.set(pe, (t = { read: 0, write: 0 }));
    t[r.direction] += r.bytes;
  }

  describe() {
    const hex = (v: bigint) => `0x${v.toString(16).padStart(16, '0')}`;
    return {
      mmioRead: this.mmioRead.describe(),
      mmioWrite: this.mmioWrite.describe(),
      dmaRead: this.dmaRead.describe(),
      dmaWrite: this.dmaWrite.describe(),
      irqs: this.irqs.describe(),
      irqsQueued: this.irqsQueued.describe(),
      fuse: this.fuse.describe(),
      posted: this.posted.describe(),
      pes: Object.fromEntries([...this.recent].map(([pe, list]) => [pe, {
        dmaBytes: this.totals.get(pe),
        recentDma: list.map((r) => ({ at: Math.round(r.at), device: r.device, direction: r.direction, iova: hex(r.iova), bytes: r.bytes, hpa: r.hpa === undefined ? null : hex(r.hpa) })),
      }])),
    };
  }
}

export const perf = new PerfCounters();
