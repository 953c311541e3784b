// The plain model: every BAR is memory. What is written reads back; nothing else happens. Sparse by
// 4 KiB page so a 32 MiB BAR costs nothing until it is written.
import type { DeviceModel } from './model.ts';

const PAGE = 4096;

export class MemoryModel implements DeviceModel {
  readonly name = 'memory';
  private readonly pages = new Map<string, Buffer>();

  read(bar: number, offset: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let done = 0; done < length; ) {
      const page = Math.floor((offset + done) / PAGE);
      const within = (offset + done) % PAGE;
      const n = Math.min(length - done, PAGE - within);
      this.pages.get(`${bar}:${page}`)?.copy(out, done, within, within + n);
      done += n;
    }
    return out;
  }

  write(bar: number, offset: number, data: Buffer): void {
    for (let done = 0; done < data.length; ) {
      const page = Math.floor((offset + done) / PAGE);
      const within = (offset + done) % PAGE;
      const n = Math.min(data.length - done, PAGE - within);
      const key = `${bar}:${page}`;
      let buf = this.pages.get(key);
      if (!buf) this.pages.set(key, (buf = Buffer.alloc(PAGE)));
      data.copy(buf, within, done, done + n);
      done += n;
    }
  }

  reset(): void {
    this.pages.clear();
  }
}
