// The byte stream of one open device-kind file: request frames written in, the reply read out.
//
// FUSE delivers one write() of a large frame as several chunks (128 KiB each with big_writes) at
// consecutive offsets, so a frame is assembled until its header's length is reached and only then
// parsed and run. Reads return the pending reply from its start, whatever the file offset, so both
// `pwrite(fd,f,n,0); pread(fd,r,m,0)` and sequential write()/read() work. Offsets at or above
// REGION_BASE are device region space (pread/pwrite at index << 40), not the frame stream; from
// REGION_DIRECT all of region space, BAR0 included, is reachable the same way.
import { EBADMSG, EOPNOTSUPP, Errno } from '../errno.ts';
import { answer, guard, runFrame } from '../dispatch/dispatch.ts';
import type { OpenFile } from '../dispatch/open-file.ts';
import type { FaultInjector } from '../tce/faults.ts';
import { encodeReplyFrame, frameLengthOf, Op, parseRequestFrame, type Answer, type Request } from './frame.ts';
import type { PostServer, PostTarget } from './posted.ts';
import { now, perf } from '../perf.ts';

/** vfio-pci region i lives at offset i << 40; region 0 (BAR0) overlaps the frame stream, so it is reached by frames or REGION_DIRECT. */
export const REGION_BASE = 2 ** 40;
/**
 * All of region space again, BAR0 included, from 2^52 (region offset + REGION_DIRECT): one pread or pwrite
 * is one access, a single FUSE request where a frame costs two (write, then read the reply). Below 2^53
 * so that every offset stays exact in the double fuse-native hands over; past every region index.
 */
export const REGION_DIRECT = 2 ** 52;

export class FrameChannel {
  private chunks: Buffer[] = [];
  private received = 0;
  private expected = 0;
  private nextOffset = 0;
  private reply: Buffer = Buffer.alloc(0);
  private replyPos = 0;

  /** @param faults the injector a frame's FAIL_NTH request sets the thread's counter of */
  constructor(readonly file: OpenFile, private readonly faults?: FaultInjector, private readonly posts?: PostServer) {}

  /** Returns bytes accepted, or -errno. A rejected frame leaves every file's state as it was. */
  write(data: Buffer, offset: number): number {
    try {
      // Before the frame logic: another thread's frame may be half assembled on this file.
      if (offset >= REGION_DIRECT) {
        const t0 = now();
        const n = this.file.regionWrite(BigInt(offset - REGION_DIRECT), Buffer.from(data));
        perf.mmioWrite.add(t0, data.length);
        return n;
      }
      if (offset >= REGION_BASE && this.expected === 0) {
        const t0 = now();
        const n = this.file.regionWrite(BigInt(offset), Buffer.from(data));
        perf.mmioWrite.add(t0, data.length);
        return n;
      }
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
    const parsed = parseRequestFrame(frame, owned);
    const [only] = parsed.requests;
    const answers = parsed.requests.length === 1 && only.op === Op.POST ? [this.post(only)] : runFrame(this.file, parsed, this.faults);
    this.reply = encodeReplyFrame(answers);
    this.replyPos = 0;
  }

  /**
   * POST belongs to the transport: it names a socket of this daemon, not anything the file does. Only a
   * POST alone in its frame is one; beside other requests dispatch answers it EINVAL.
   */
  private post(req: Request): Answer {
    if (!this.posts || this.file.kind !== 'device') return answer(req, BigInt(-EOPNOTSUPP));
    const posts = this.posts;
    const blob = guard(() => posts.grant(this.file as OpenFile & PostTarget, Number(req.arg)));
    return typeof blob === 'number' ? answer(req, BigInt(blob)) : answer(req, 0n, undefined, [blob]);
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
        const t0 = now();
        const r = this.file.regionRead(BigInt(offset >= REGION_DIRECT ? offset - REGION_DIRECT : offset), length);
        perf.mmioRead.add(t0, length);
        return r;
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
