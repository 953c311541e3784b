// A sparse array of big-endian u64 words, stored in fixed chunks that exist only while they hold a
// non-zero word. This is what keeps a 1 TiB window cheap until it is used: cost follows the live
// entries, never the declared size. The last chunk to empty is kept (all zero) for the next one needed,
// so a map and unmap of one page in a loop does not allocate and free a chunk each time.

export const CHUNK_ENTRIES = 512;
// Low-bit masking stays exact for indices up to 2^53: ToInt32 keeps the low 32 bits.
const CHUNK_MASK = CHUNK_ENTRIES - 1;
export const CHUNK_BYTES = CHUNK_ENTRIES * 8;

interface Chunk {
  view: DataView;
  nonZero: number;
}

export class SparseU64 {
  private readonly chunks = new Map<number, Chunk>();
  private nonZero = 0;
  // The chunk last looked up: maps and unmaps walk entries in order, mostly within one chunk.
  private lastKey = -1;
  private lastChunk: Chunk | undefined;
  /** An emptied chunk, every word zero, waiting to be used again. */
  private spare: Chunk | undefined;

  private chunkAt(key: number): Chunk | undefined {
    if (key !== this.lastKey) {
      this.lastChunk = this.chunks.get(key);
      this.lastKey = key;
    }
    return this.lastChunk;
  }

  private addChunk(key: number): Chunk {
    const c = this.spare ?? { view: new DataView(new ArrayBuffer(CHUNK_BYTES)), nonZero: 0 };
    this.spare = undefined;
    this.chunks.set(key, c);
    this.lastKey = key;
    this.lastChunk = c;
    return c;
  }

  private dropChunk(key: number): void {
    this.spare = this.chunks.get(key);
    this.chunks.delete(key);
    if (key === this.lastKey) this.lastChunk = undefined;
  }

  get count(): number {
    return this.nonZero;
  }

  /** Bytes of chunk storage held right now. */
  get bytes(): number {
    return (this.chunks.size + (this.spare ? 1 : 0)) * CHUNK_BYTES;
  }

  get chunkCount(): number {
    return this.chunks.size;
  }

  get(idx: number): bigint {
    const c = this.chunkAt(chunkKey(idx));
    return c ? c.view.getBigUint64((idx & CHUNK_MASK) * 8, false) : 0n;
  }

  /** Stores `value` and returns the previous word. */
  set(idx: number, value: bigint): bigint {
    const old = this.get(idx);
    if (old !== value) this.put(idx, value);
    return old;
  }

  /** Stores `value` (set without reading the old word back as a bigint, which allocates one). */
  put(idx: number, value: bigint): void {
    const key = chunkKey(idx);
    let c = this.chunkAt(key);
    if (!c) {
      if (value === 0n) return;
      c = this.addChunk(key);
    }
    const off = (idx & CHUNK_MASK) * 8;
    const wasZero = isZero(c.view, off);
    c.view.setBigUint64(off, value, false);
    if (wasZero) {
      if (value !== 0n) {
        c.nonZero++;
        this.nonZero++;
      }
    } else if (value === 0n) {
      c.nonZero--;
      this.nonZero--;
      if (c.nonZero === 0) this.dropChunk(key);
    }
  }

  /** Non-zero words with from <= idx < to, in index order. */
  *range(from: number, to: number): Generator<[number, bigint]> {
    for (const key of this.keysIn(from, to)) {
      const c = this.chunks.get(key);
      if (!c) continue;
      const base = key * CHUNK_ENTRIES;
      const hi = Math.min(to - base, CHUNK_ENTRIES);
      for (let i = Math.max(from - base, 0); i < hi; i++) {
        const v = c.view.getBigUint64(i * 8, false);
        if (v !== 0n) yield [base + i, v];
      }
    }
  }

  /** Zeroes every word with from <= idx < to, first showing each non-zero one to `visit`, in index order. */
  take(from: number, to: number, visit?: (idx: number, value: bigint) => void): void {
    if (to <= from) return;
    const first = chunkKey(from);
    const last = chunkKey(to - 1);
    // Unmaps are mostly a page or a few: walking the spanned keys directly allocates nothing.
    if (last - first + 1 <= this.chunks.size) {
      for (let key = first; key <= last; key++) this.takeIn(key, from, to, visit);
    } else {
      for (const key of this.keysIn(from, to)) this.takeIn(key, from, to, visit);
    }
  }

  private takeIn(key: number, from: number, to: number, visit?: (idx: number, value: bigint) => void): void {
    const c = this.chunkAt(key);
    if (!c) return;
    const base = key * CHUNK_ENTRIES;
    const lo = Math.max(from - base, 0);
    const hi = Math.min(to - base, CHUNK_ENTRIES);
    for (let i = lo; i < hi && c.nonZero > 0; i++) {
      if (isZero(c.view, i * 8)) continue;
      visit?.(base + i, c.view.getBigUint64(i * 8, false));
      c.view.setUint32(i * 8, 0);
      c.view.setUint32(i * 8 + 4, 0);
      c.nonZero--;
      this.nonZero--;
    }
    if (c.nonZero === 0) this.dropChunk(key);
  }

  /** The lowest idx with from <= idx < to whose word is non-zero, or -1. */
  firstNonZero(from: number, to: number): number {
    if (to <= from) return -1;
    const first = chunkKey(from);
    let best = -1;
    // Only chunks holding a live word exist: the one `from` falls in is searched from there, the others
    // whole, and the lowest hit wins.
    for (const [key, c] of this.chunks) {
      if (key < first || key * CHUNK_ENTRIES >= to || (best >= 0 && key * CHUNK_ENTRIES > best)) continue;
      const base = key * CHUNK_ENTRIES;
      const hi = Math.min(to - base, CHUNK_ENTRIES);
      for (let i = Math.max(from - base, 0); i < hi; i++) {
        if (isZero(c.view, i * 8)) continue;
        if (best < 0 || base + i < best) best = base + i;
        break;
      }
    }
    return best;
  }

  /** Keys of existing chunks overlapping [from, to), ascending. */
  private keysIn(from: number, to: number): number[] {
    if (to <= from) return [];
    const first = chunkKey(from);
    const last = chunkKey(to - 1);
    // Walk whichever is smaller: the chunk keys the range spans, or the chunks that exist.
    if (last - first + 1 <= this.chunks.size) return spanKeys(first, last).filter((k) => this.chunks.has(k));
    return [...this.chunks.keys()].filter((k) => k >= first && k <= last).sort((a, b) => a - b);
  }

  /** A copy of the raw chunk bytes holding `idx`, exactly as stored (big-endian), or null if never written. */
  rawChunk(idx: number): Uint8Array | null {
    const c = this.chunks.get(chunkKey(idx));
    return c ? new Uint8Array(c.view.buffer.slice(0)) : null;
  }

  clear(): void {
    this.chunks.clear();
    this.spare = undefined;
    this.lastKey = -1;
    this.lastChunk = undefined;
    this.nonZero = 0;
  }
}

/** Whether the word at byte `off` is 0, tested without making a bigint of it. */
function isZero(view: DataView, off: number): boolean {
  return (view.getUint32(off) | view.getUint32(off + 4)) === 0;
}

function chunkKey(idx: number): number {
  return Math.floor(idx / CHUNK_ENTRIES);
}

function spanKeys(first: number, last: number): number[] {
  const out: number[] = [];
  for (let k = first; k <= last; k++) out.push(k);
  return out;
}
