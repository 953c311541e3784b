// PRP data pointers (NVMe 1.4, 4.3): PRP1 is the first page (with an offset), PRP2 the second page when
// the data ends there, else a PRP list (entries of page addresses; the last entry of a full list page
// chains to the next list page). The result is the transfer as IOVA segments, neighbours merged.
import type { DmaPort } from '../model.ts';
import { SC } from './spec.ts';

export interface Segment {
  iova: bigint;
  length: number;
}

/** Segments covering `length` bytes, or a status code (PRP offset invalid). DMA faults reading a list throw. */
export function prpSegments(dma: DmaPort, prp1: bigint, prp2: bigint, length: number, pageSize: number): Segment[] | number {
  const page = BigInt(pageSize);
  const mask = page - 1n;
  const out: Segment[] = [];
  const add = (iova: bigint, n: number) => {
    const last = out[out.length - 1];
    if (last && last.iova + BigInt(last.length) === iova) last.length += n;
    else out.push({ iova, length: n });
  };
  if (length === 0) return out;
  // Data pointers are dword aligned.
  if (prp1 & 3n) return SC.PRP_OFFSET_INVALID;
  const first = Math.min(length, Number(page - (prp1 & mask)));
  add(prp1, first);
  let left = length - first;
  if (left === 0) return out;
  if (left <= pageSize) {
    if (prp2 & mask) return SC.PRP_OFFSET_INVALID;
    add(prp2, left);
    return out;
  }
  // A list: entries are qwords, so its pointer is qword aligned; it may start inside a page.
  if (prp2 & 7n) return SC.PRP_OFFSET_INVALID;
  let list = prp2;
  while (left > 0) {
    const inPage = Number((page - (list & mask)) / 8n);
    const pagesLeft = Math.ceil(left / pageSize);
    // The last slot of a list page chains on when more pages remain than the slots hold.
    const chains = pagesLeft > inPage;
    const take = chains ? inPage - 1 : pagesLeft;
    const entries = dma.read(list, (chains ? inPage : take) * 8);
    for (let i = 0; i < take; i++) {
      const e = entries.readBigUInt64LE(i * 8);
      if (e & mask) return SC.PRP_OFFSET_INVALID;
      const n = Math.min(left, pageSize);
      add(e, n);
      left -= n;
    }
    if (chains) {
      list = entries.readBigUInt64LE((inPage - 1) * 8);
      // A chained list page starts at its page's beginning.
      if (list & mask) return SC.PRP_OFFSET_INVALID;
    }
  }
  return out;
}
