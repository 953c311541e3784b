// Routing a BAR access: ranges claimed by someone other than the model (vfio-pci keeps the MSI-X table
// and PBA away from the device; the config helper claims them here) go to their owner, the rest to the
// model. While EEH has the PE's MMIO frozen, reads return all ones and writes are dropped, as on POWER.
import type { DeviceModel } from './model.ts';

/** A BAR range that is not the model's: accesses overlapping it are served by these handlers instead. */
export interface BarOverlay {
  bar: number;
  offset: number;
  size: number;
  read(offset: number, length: number): Buffer;
  write(offset: number, data: Buffer): void;
}

export interface BarTarget {
  model: DeviceModel;
  overlays: readonly BarOverlay[];
  mmioFrozen: boolean;
}

/** Splits [offset, offset + length) of `bar` at overlay edges: [start, end, overlay or undefined]. */
function pieces(t: BarTarget, bar: number, offset: number, length: number): [number, number, BarOverlay | undefined][] {
  const end = offset + length;
  const out: [number, number, BarOverlay | undefined][] = [];
  const mine = t.overlays.filter((o) => o.bar === bar && o.offset < end && offset < o.offset + o.size).sort((a, b) => a.offset - b.offset);
  let at = offset;
  for (const o of mine) {
    const s = Math.max(at, o.offset);
    if (s > at) out.push([at, s, undefined]);
    const e = Math.min(end, o.offset + o.size);
    if (e > s) out.push([s, e, o]);
    at = Math.max(at, e);
  }
  if (at < end) out.push([at, end, undefined]);
  return out;
}

export function barRead(t: BarTarget, bar: number, offset: number, length: number): Buffer {
  if (t.mmioFrozen) return Buffer.alloc(length, 0xff);
  if (t.overlays.length === 0) return t.model.read(bar, offset, length);
  const out = Buffer.alloc(length);
  for (const [s, e, o] of pieces(t, bar, offset, length)) {
    const part = o ? o.read(s - o.offset, e - s) : t.model.read(bar, s, e - s);
    part.copy(out, s - offset, 0, e - s);
  }
  return out;
}

export function barWrite(t: BarTarget, bar: number, offset: number, data: Buffer): void {
  if (t.mmioFrozen) return;
  if (t.overlays.length === 0) return t.model.write(bar, offset, data);
  for (const [s, e, o] of pieces(t, bar, offset, data.length)) {
    const part = data.subarray(s - offset, e - offset);
    if (o) o.write(s - o.offset, part);
    else t.model.write(bar, s, part);
  }
}
