// The device-model interface: what a PCI function does behind its BARs. A model sees only its BARs, the
// ports it is given (interrupts and DMA) and reset; it knows nothing of containers, iommufd or clients.
// docs/devices.md says how to write one.
import type { BarSpec } from '../topology/topology.ts';

/** Interrupts a model raises: `index` is the vfio-pci IRQ index (MSI-X is 2), `vector` the entry in it. */
export interface IrqPort {
  raise(index: number, vector: number): void;
}

/** Why a DMA did not happen. The first six are translation faults, which also freeze the PE. */
export type DmaFailure = 'no-window' | 'no-tce' | 'permission' | 'blocked' | 'no-memory' | 'injected' | 'frozen' | 'too-long';

export class DmaError extends Error {
  constructor(readonly reason: DmaFailure, readonly iova: bigint, detail: string) {
    super(`${reason} at 0x${iova.toString(16)}: ${detail}`);
  }
}

/**
 * Device DMA through the IOMMU the function sits behind at that moment. Each call is one transfer:
 * every IOMMU page of it is translated before any byte moves, so a faulting transfer moves nothing.
 * Failures throw DmaError; length is at most MAX_DMA_BYTES.
 */
export interface DmaPort {
  /** The bytes, in `into` when it is given and long enough (a reused buffer: fresh memory per transfer costs more than the copy). */
  read(iova: bigint, length: number, into?: Buffer): Buffer;
  write(iova: bigint, data: Buffer): void;
}

/** Largest single transfer a DmaPort accepts; models split longer work. */
export const MAX_DMA_BYTES = 16 << 20;

/** What a model is built from. */
export interface ModelContext {
  bdf: string;
  bars: readonly BarSpec[];
  /** MSI-X table size from the topology. */
  msixVectors: number;
  irq: IrqPort;
  dma: DmaPort;
  /** A storage model's namespace: backing file and size from the topology. */
  storage?: { backing?: string; size?: number };
}

/**
 * A function's behaviour. BAR accesses arrive already checked against the BAR's size, at any offset and
 * any length (1, 2, 4, 8 or longer), little-endian as on the bus; they must not throw for any of them.
 * read returns exactly `length` bytes.
 */
export interface DeviceModel {
  readonly name: string;
  read(bar: number, offset: number, length: number): Buffer;
  write(bar: number, offset: number, data: Buffer): void;
  /** Function-level reset: registers to power-on values, DMA in flight abandoned, no interrupt. */
  reset(): void;
}

export type ModelFactory = (ctx: ModelContext) => DeviceModel;

/** The default IRQ port until delivery is wired: it only records what was raised (tests read it). */
export class RecordingIrqPort implements IrqPort {
  static readonly KEPT = 64;
  readonly raised: { index: number; vector: number }[] = [];
  total = 0;
  raise(index: number, vector: number): void {
    this.total++;
    this.raised.push({ index, vector });
    if (this.raised.length > RecordingIrqPort.KEPT) this.raised.shift();
  }
}
