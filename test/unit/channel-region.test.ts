// The direct region window of a frame channel (REGION_DIRECT): one pread or pwrite is one region access,
// BAR0 included, and it leaves a frame that another thread has half written alone.
import { describe, expect, it } from 'vitest';
import type { FileKind } from '../../src/uapi/ioctls.ts';
import { OpenFile } from '../../src/dispatch/open-file.ts';
import { FrameChannel, REGION_BASE, REGION_DIRECT } from '../../src/transport/channel.ts';
import { Op, encodeRequestFrame, parseReplyFrame } from '../../src/transport/frame.ts';

class Regions extends OpenFile {
  readonly kind: FileKind = 'device';
  readonly writes: [bigint, string][] = [];
  readonly reads: [bigint, number][] = [];
  constructor() {
    super('/dev/vfio/devices/vfio9');
    this.handle = 7;
  }
  commands(): never {
    throw new Error('no ioctls here');
  }
  override regionRead(offset: bigint, length: number): Buffer | number {
    this.reads.push([offset, length]);
    return offset >> 40n === 9n ? -22 : Buffer.alloc(length, Number(offset & 0xffn));
  }
  override regionWrite(offset: bigint, data: Buffer): number {
    this.writes.push([offset, data.toString('hex')]);
    return data.length;
  }
}

describe('the direct region window', () => {
  it('reaches region 0 at REGION_DIRECT and region i at REGION_DIRECT + (i << 40), errors included', () => {
    const f = new Regions();
    const ch = new FrameChannel(f);
    expect(ch.write(Buffer.from([1, 0, 0, 0]), REGION_DIRECT + 0x1008)).toBe(4);
    expect(f.writes).toEqual([[0x1008n, '01000000']]);
    expect(ch.read(4, REGION_DIRECT + 0x14)).toEqual(Buffer.alloc(4, 0x14));
    expect(ch.read(2, REGION_DIRECT + 7 * 2 ** 40 + 0x40)).toEqual(Buffer.alloc(2, 0x40));
    expect(f.reads).toEqual([[0x14n, 4], [(7n << 40n) + 0x40n, 2]]);
    expect(ch.read(4, REGION_DIRECT + 9 * 2 ** 40)).toBe(-22);
    // The older window from 2^40 is unchanged: the offset is the region offset itself.
    expect(ch.read(1, REGION_BASE * 6 + 3)).toEqual(Buffer.alloc(1, 3));
    expect(f.reads.at(-1)).toEqual([(6n << 40n) + 3n, 1]);
  });

  it('serves a region write between the chunks of a frame without disturbing the frame', () => {
    const f = new Regions();
    const ch = new FrameChannel(f);
    const frame = encodeRequestFrame([{ op: Op.HANDLE, argData: Buffer.alloc(64) }]);
    expect(ch.write(frame.subarray(0, 40), 0)).toBe(40);
    expect(ch.write(Buffer.from('abcd'), REGION_DIRECT + 0x2000)).toBe(4);
    expect(ch.write(frame.subarray(40), 40)).toBe(frame.length - 40);
    expect(f.writes).toEqual([[0x2000n, Buffer.from('abcd').toString('hex')]]);
    const reply = ch.read(4096, 0);
    expect(Buffer.isBuffer(reply)).toBe(true);
    expect(parseReplyFrame(reply as Buffer)[0].result).toBe(7n);
  });
});
