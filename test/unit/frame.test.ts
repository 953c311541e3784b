// Frame protocol v1 codec: round trips and every way a frame can be malformed.
import { describe, expect, it } from 'vitest';
import { E2BIG, EBADMSG, EPROTONOSUPPORT, Errno } from '../../src/errno.ts';
import {
  encodeReplyFrame, encodeRequestFrame, frameHeader, MAX_FRAME, Op, parseReplyFrame, parseRequestFrame, requestHeader,
} from '../../src/transport/frame.ts';

function errnoOf(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    if (e instanceof Errno) return e.errno;
    throw e;
  }
  return 0;
}

const sample = () =>
  encodeRequestFrame(
    [
      { request: 0x3b65, arg: 7n },
      { request: 0x3b84, argData: Buffer.alloc(32, 1), blobs: [{ fieldOffset: 16, data: Buffer.from('abcdefghijklmnopq') }] },
      { op: Op.HANDLE },
    ],
    1234,
  );

describe('request frames', () => {
  it('round-trip a batch with arguments and blobs', () => {
    const f = parseRequestFrame(sample());
    expect(f.pid).toBe(1234);
    expect(f.requests).toHaveLength(3);
    expect(f.requests[0]).toMatchObject({ op: Op.IOCTL, request: 0x3b65, arg: 7n });
    expect(f.requests[1].argData).toEqual(Buffer.alloc(32, 1));
    expect(f.requests[1].blobs).toEqual([{ fieldOffset: 16, data: Buffer.from('abcdefghijklmnopq') }]);
    expect(f.requests[2].op).toBe(Op.HANDLE);
  });

  it('every record is 8-byte aligned', () => {
    const b = sample();
    expect(b.length % 8).toBe(0);
    expect(b.readUInt32LE(frameHeader.size) % 8).toBe(0);
  });

  it('rejects a frame shorter than its header', () => {
    expect(errnoOf(() => parseRequestFrame(Buffer.alloc(15)))).toBe(EBADMSG);
  });
  it('rejects a bad magic', () => {
    const b = sample();
    b.writeUInt32LE(0x12345678, 0);
    expect(errnoOf(() => parseRequestFrame(b))).toBe(EBADMSG);
  });
  it('rejects an unknown version with EPROTONOSUPPORT', () => {
    const b = sample();
    b.writeUInt16LE(2, 4);
    expect(errnoOf(() => parseRequestFrame(b))).toBe(EPROTONOSUPPORT);
  });
  it('rejects a frame whose length lies', () => {
    const b = sample();
    b.writeUInt32LE(b.length + 8, 8);
    expect(errnoOf(() => parseRequestFrame(b))).toBe(EBADMSG);
    expect(errnoOf(() => parseRequestFrame(Buffer.concat([sample(), Buffer.alloc(8)])))).toBe(EBADMSG);
  });
  it('rejects an oversized frame with E2BIG', () => {
    const b = sample();
    b.writeUInt32LE(MAX_FRAME + 8, 8);
    expect(errnoOf(() => parseRequestFrame(b))).toBe(E2BIG);
  });
  it('rejects a count larger than the records present', () => {
    const b = sample();
    b.writeUInt16LE(4, 6);
    expect(errnoOf(() => parseRequestFrame(b))).toBe(EBADMSG);
  });
  it('rejects records whose lengths lie', () => {
    for (const bad of [8, 20, 25, 1 << 20]) {
      const b = sample();
      b.writeUInt32LE(bad, frameHeader.size);
      expect(errnoOf(() => parseRequestFrame(b)), `record length ${bad}`).toBe(EBADMSG);
    }
  });
  it('rejects an argument or blob that overruns its record', () => {
    const b = sample();
    const second = frameHeader.size + b.readUInt32LE(frameHeader.size);
    b.writeUInt32LE(4096, second + 12); // arg_len
    expect(errnoOf(() => parseRequestFrame(b))).toBe(EBADMSG);
    const c = sample();
    c.writeUInt32LE(4096, second + requestHeader.size + 32 + 4); // blob length
    expect(errnoOf(() => parseRequestFrame(c))).toBe(EBADMSG);
  });
  it('rejects an unknown op', () => {
    const b = sample();
    b.writeUInt16LE(9, frameHeader.size + 4);
    expect(errnoOf(() => parseRequestFrame(b))).toBe(EBADMSG);
  });
});

describe('reply frames', () => {
  it('round-trip answers with copy-back bytes, blobs, negative results and handles', () => {
    const answers = [
      { op: Op.IOCTL, request: 0x3b84, result: -90n, out: Buffer.from([1, 2, 3]), blobs: [{ fieldOffset: 16, data: Buffer.alloc(32, 7) }], newHandle: 0, handleField: 0 },
      { op: Op.IOCTL, request: 0x3b6a, result: 0n, out: Buffer.alloc(0), blobs: [], newHandle: 0x1234, handleField: 0xffffffff },
    ];
    expect(parseReplyFrame(encodeReplyFrame(answers))).toEqual(answers);
  });
});
