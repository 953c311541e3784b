// The byte stream of one open device-kind file: request frames written in, the reply read out.
//
// FUSE delivers one write() of a large frame as several chunks (128 KiB each with big_writes) at
// consecutive offsets, so a frame is assembled until its header's length is reached and only then
// parsed and run. Reads return the pending reply from its start, whatever the file offset, so both
// `pwrite(fd,f,n,0); pread(fd,r,m,0)` and sequential write()/read() work. Offsets at or above
// REGION_BASE are device region space (pread/pwrite at index << 40), not the frame stream.
import { EBADMSG, Errno } from '../errno.ts';
import { runFrame } from '../dispatch/dispatch.ts';
import type { OpenFile } from '../dispatch/open-file.ts';
import type { FaultInjector } from '../tce/faults.ts';
import { encodeReplyFrame, frameLengthOf, parseRequestFrame } from './frame.ts';

/** vfio-pci region i lives at offset i << 40; region 0 (BAR0) overlaps the frame stream, so it is reached by frames only. */
export const REGION_BASE = 2 ** 40;

export class FrameChannel {
  private chunks: Buffer[] = [];
  private received = 0;
  private expected = 0;
  private nextOffset = 0;
  private reply: Buffer = Buffer.alloc(0);
  private replyPos = 0;

  /** @param faults the injector a frame's FAIL_NTH request sets the thread's counter of */
  constructor(readonly file: OpenFile, private readonly faults?: FaultInjector) {}

  /** Returns bytes accepted, or -errno. A rejected frame leaves every file's state as it was. */
  write(data: Buffer, offset: number): number {
    try {
      if (offset >= REGION_BASE && this.expected === 0) return this.file.regionWrite(BigInt(offset), Buffer.from(data));
      if (this.expected === 0) {
        this.start(data, offset);
        // The usual case: the whole frame came in one write, parsed from fuse-native's buffer (the parser
        // makes its own copy) instead of being copied here first.
        if (data.length === this.expected) {
          this.expected = 0;
          this.run(data, false);
          return data.length;
        }
      } else if (offset !== this.nextOffset) {
        this.reset();
        throw new Errno(EBADMSG, `frame continuation at offset ${offset}, expected ${this.nextOffset}`);
      }
      this.chunks.push(Buffer.from(data)); // fuse-native reuses its buffer after the callback
      this.received += data.length;
      this.nextOffset = offset + data.length;
      if (this.received > this.expected) {
        this.reset();
        throw new Errno(EBADMSG, 'more bytes written than the frame header says');
      }
      if (this.received === this.expected) {
        const frame = Buffer.concat(this.chunks, this.received);
        this.reset();
        this.run(frame, true);
      }
      return data.length;
    } catch (e) {
      if (e instanceof Errno) return -e.errno;
      throw e;
    }
  }

  /** Parse, run and encode; a frame that fails to parse leaves the previous reply in place. */
  private run(frame: Buffer, owned: boolean) {
    const answers = runFrame(this.file, parseRequestFrame(frame, owned), this.faults);
    this.reply = encodeReplyFrame(answers);
    this.replyPos = 0;
  }

  private start(data: Buffer, offset: number) {
    this.expected = frameLengthOf(data);
    this.nextOffset = offset;
  }

  private reset() {
    this.chunks = [];
    this.received = 0;
    this.expected = 0;
  }

  read(length: number, offset: number): Buffer | number {
    if (offset >= REGION_BASE) {
      try {
        return this.file.regionRead(BigInt(offset), length);
      } catch (e) {
        if (e instanceof Errno) return -e.errno;
        throw e;
      }
    }
    // Reading the whole reply at once is the usual case: hand it over without making a view of it.
    if (this.replyPos === 0 && length >= this.reply.length) {
      this.replyPos = this.reply.length;
      return this.reply;
    }
    const out = this.reply.subarray(this.replyPos, this.replyPos + length);
    this.replyPos += out.length;
    return out;
  }
}
