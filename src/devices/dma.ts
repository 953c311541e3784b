// A function's DMA port. The function's PE is the one place that knows what the function is attached
// to right now: a SPAPR container and an iommufd paging domain both program their tables into its
// windows, BLOCKED leaves it without windows or bypass, and the PowerNV bypass is a PE flag. So every
// IOMMU page of a transfer is translated by Pe.translate, and a refusal freezes the PE as the PHB would.
import { EACCES, EIO, Errno } from '../errno.ts';
import type { DmaAccess, Pe } from '../tce/pe.ts';
import type { ClientSpan, DmaMemory } from './client-memory.ts';
import { DmaError, MAX_DMA_BYTES, type DmaFailure, type DmaPort } from './model.ts';
import { perf } from '../perf.ts';

const ADDRESS_END = 1n << 64n;
/** Step through the (linear) bypass window: any size translates correctly, this keeps steps few. */
const BYPASS_STEP = 1n << 16n;

export class FunctionDma implements DmaPort {
  /** Where the last translation's first page went (for the recent-DMA view). */
  private firstHpa?: bigint;

  constructor(
    private readonly pe: Pe,
    private readonly memory: DmaMemory,
    private readonly device: string,
  ) {}

  read(iova: bigint, length: number, into?: Buffer): Buffer {
    const spans = this.translate(iova, length, 'read');
    const out = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    let off = 0;
    for (const s of spans) {
      if (!this.memory.read(s, out, off)) this.fault(iova + BigInt(off), 'read', 'no-memory', `pid ${s.pid} has no page at 0x${s.ua.toString(16)}`);
      off += s.length;
    }
    this.record('read', iova, length);
    return out;
  }

  write(iova: bigint, data: Buffer): void {
    const spans = this.translate(iova, data.length, 'write');
    let off = 0;
    for (const s of spans) {
      if (!this.memory.write(s, data, off)) this.fault(iova + BigInt(off), 'write', 'no-memory', `pid ${s.pid} has no page at 0x${s.ua.toString(16)}`);
      off += s.length;
    }
    this.record('write', iova, data.length);
  }

  private record(direction: 'read' | 'write', iova: bigint, bytes: number): void {
    perf.dma(this.pe.name, { at: performance.now(), device: this.device, direction, iova, bytes, hpa: this.firstHpa });
  }

  /**
   * The client spans behind [iova, iova + length), split at IOMMU page boundaries, each page translated
   * with `access`; neighbours that are contiguous in one process are merged into one span.
   */
  translate(iova: bigint, length: number, access: DmaAccess): ClientSpan[] {
    if (!Number.isSafeInteger(length) || length < 0 || length > MAX_DMA_BYTES) {
      throw new DmaError('too-long', iova, `${length} bytes (at most ${MAX_DMA_BYTES} per transfer)`);
    }
    if (this.pe.eeh.takeArmedDmaFault()) this.fault(iova, access, 'injected', 'the DMA fault `eeh dma-fault` armed');
    const spans: ClientSpan[] = [];
    const end = iova + BigInt(length);
    for (let at = iova; at < end; ) {
      if (at < 0n || at >= ADDRESS_END) this.fault(at, access, 'no-window', 'the transfer wraps past the end of the 64-bit bus');
      const hpa = this.translatePage(at, access);
      if (at === iova) this.firstHpa = hpa;
      const page = this.pe.findWindow(at)?.table.pageSize ?? BYPASS_STEP;
      const next = (at | (page - 1n)) + 1n;
      const n = Number((next < end ? next : end) - at);
      const where = this.memory.resolve(hpa);
      if (!where) this.fault(at, access, 'no-memory', `nothing pinned behind host address 0x${hpa.toString(16)}`);
      const last = spans[spans.length - 1];
      if (last && last.pid === where.pid && last.ua + BigInt(last.length) === where.ua) last.length += n;
      else spans.push({ pid: where.pid, ua: where.ua, length: n });
      at += BigInt(n);
    }
    return spans;
  }

  private translatePage(iova: bigint, access: DmaAccess): bigint {
    try {
      return this.pe.translate(iova, access);
    } catch (e) {
      if (!(e instanceof Errno)) throw e;
      // DMA is already stopped: the transfer is refused, the freeze that stopped it is the one on record.
      if (e.errno === EIO) throw new DmaError('frozen', iova, e.message);
      const reason: DmaFailure = this.pe.blocked ? 'blocked' : e.errno === EACCES ? 'permission' : this.pe.findWindow(iova) ? 'no-tce' : 'no-window';
      this.fault(iova, access, reason, e.message);
    }
  }

  private fault(iova: bigint, direction: DmaAccess, reason: Exclude<DmaFailure, 'frozen' | 'too-long'>, detail: string): never {
    this.pe.eeh.dmaFault({ iova, direction, reason, device: this.device, detail });
    throw new DmaError(reason, iova, detail);
  }
}
