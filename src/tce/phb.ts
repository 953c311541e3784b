// A PCI host bridge: a PCI domain holding PEs. On PowerNV its model fixes the TCE page sizes and its
// 32-bit MMIO base fixes the size of every PE's default DMA window.

import type { Pe } from './pe.ts';
import { PHB_PGSIZES } from './powernv.ts';

export type PhbModel = keyof typeof PHB_PGSIZES;

/** skiboot puts the 32-bit MMIO window at 2 GiB, leaving 0..2 GiB for DMA. */
export const DEFAULT_M32_PCI_BASE = 0x8000_0000;

export class Phb {
  readonly pes: Pe[] = [];

  constructor(
    readonly domain: number,
    readonly model: PhbModel = 'PHB4',
    readonly m32PciBase: number = DEFAULT_M32_PCI_BASE,
  ) {}

  /** ibm,supported-tce-sizes as a byte mask (PowerNV). */
  get pgsizes(): bigint {
    return PHB_PGSIZES[this.model];
  }
}
