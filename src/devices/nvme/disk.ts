// The storage behind the NVMe namespace: a sparse in-memory disk, or a file written through (so what a
// write put there is in the file when the command completes, and on disk once a Flush completes).
import { closeSync, existsSync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';

export interface Disk {
  readonly size: number;
  /** Whether a deallocated range reads back zeroes (Identify Namespace DLFEAT). */
  readonly deallocateZeroes: boolean;
  read(offset: number, length: number, into: Buffer): void;
  write(offset: number, data: Buffer): void;
  zero(offset: number, length: number): void;
  /** Advisory: the range's contents no longer matter. */
  deallocate(offset: number, length: number): void;
  flush(): void;
  close(): void;
}

const CHUNK = 64 << 10;

/** Sparse by 64 KiB chunk: an untouched or deallocated chunk costs nothing and reads zero. */
export class MemoryDisk implements Disk {
  readonly deallocateZeroes = true;
  private readonly chunks = new Map<number, Buffer>();
  constructor(readonly size: number) {}

  read(offset: number, length: number, into: Buffer): void {
    this.each(offset, length, (c, within, n, done) => {
      const b = this.chunks.get(c);
      if (b) b.copy(into, done, within, within + n);
      else into.fill(0, done, done + n);
    });
  }

  write(offset: number, data: Buffer): void {
    this.each(offset, data.length, (c, within, n, done) => {
      let b = this.chunks.get(c);
      if (!b) this.chunks.set(c, (b = Buffer.alloc(CHUNK)));
      data.copy(b, within, done, done + n);
    });
  }

  zero(offset: number, length: number): void {
    const end = offset + length;
    // A range much larger than what is stored: visit the stored chunks, not every chunk of the range.
    if (length / CHUNK > this.chunks.size) {
      for (const c of [...this.chunks.keys()]) {
        const s = Math.max(offset, c * CHUNK);
        const e = Math.min(end, (c + 1) * CHUNK);
        if (s < e) this.zeroIn(c, s - c * CHUNK, e - s);
      }
      return;
    }
    this.each(offset, length, (c, within, n) => this.zeroIn(c, within, n));
  }

  deallocate(offset: number, length: number): void {
    this.zero(offset, length);
  }

  flush(): void {}
  close(): void {}

  /** Bytes held in memory (tests check that the disk stays sparse). */
  get resident(): number {
    return this.chunks.size * CHUNK;
  }

  private zeroIn(c: number, within: number, n: number): void {
    if (n === CHUNK) this.chunks.delete(c);
    else this.chunks.get(c)?.fill(0, within, within + n);
  }

  private each(offset: number, length: number, f: (chunk: number, within: number, n: number, done: number) => void): void {
    for (let done = 0; done < length; ) {
      const at = offset + done;
      const within = at % CHUNK;
      const n = Math.min(length - done, CHUNK - within);
      f(Math.floor(at / CHUNK), within, n, done);
      done += n;
    }
  }
}

/**
 * A file: created sparse at `size` when missing, grown to `size` when shorter, else its own size.
 * Deallocation is advisory here (the bytes stay; DLFEAT says reads are unspecified).
 */
export class FileDisk implements Disk {
  readonly deallocateZeroes = false;
  readonly size: number;
  private fd: number;
  private zeroes?: Buffer;

  constructor(readonly path: string, size?: number) {
    const fresh = !existsSync(path);
    try {
      this.fd = openSync(path, fresh ? 'w+' : 'r+');
    } catch (e) {
      throw new Error(`backing file ${path}: ${(e as Error).message}`);
    }
    const have = fstatSync(this.fd).size;
    const want = size ?? (fresh ? DEFAULT_DISK_SIZE : have);
    this.size = want - (want % 512);
    if (this.size < 4096) {
      closeSync(this.fd);
      throw new Error(`backing file ${path}: ${want} bytes is too small for a namespace (at least 4K; name a "size")`);
    }
    if (have < want) ftruncateSync(this.fd, want);
  }

  read(offset: number, length: number, into: Buffer): void {
    for (let done = 0; done < length; ) {
      const n = readSync(this.fd, into, done, length - done, offset + done);
      if (n === 0) {
        into.fill(0, done, length);
        return;
      }
      done += n;
    }
  }

  write(offset: number, data: Buffer): void {
    for (let done = 0; done < data.length; ) done += writeSync(this.fd, data, done, data.length - done, offset + done);
  }

  zero(offset: number, length: number): void {
    this.zeroes ??= Buffer.alloc(CHUNK);
    for (let done = 0; done < length; ) {
      const n = Math.min(CHUNK, length - done);
      this.write(offset + done, this.zeroes.subarray(0, n));
      done += n;
    }
  }

  deallocate(): void {}

  flush(): void {
    fdatasyncSync(this.fd);
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }
}

export const DEFAULT_DISK_SIZE = 64 << 20;
