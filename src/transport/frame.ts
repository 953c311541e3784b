// Request frame protocol v1 (docs/protocol.md): what a client writes to a node and reads back.
//
// A frame is a header and one or more 8-byte-aligned records. A request record carries an ioctl number,
// the argument struct bytes as the kernel would copy them in, and one blob per user pointer whose data
// the kernel would read. An answer record carries the result (value or -errno), the bytes the kernel
// would copy back into the argument, one blob per user pointer it would write, and a new handle for
// ioctls that return a file descriptor. All protocol integers are little-endian.
//
// The whole frame is validated before anything runs, so a malformed frame changes no state.
import { EBADMSG, E2BIG, EPROTONOSUPPORT, Errno } from '../errno.ts';
import { readField, s64, struct, u16, u32, u64, writeField } from '../uapi/layout.ts';

export const REQUEST_MAGIC = 0x46454354; // "TCEF" in memory
export const REPLY_MAGIC = 0x52454354; // "TCER"
export const PROTOCOL_VERSION = 1;

/** Largest frame a client may write; larger ones fail with E2BIG (the daemon's memory is not the client's to spend). */
export const MAX_FRAME = 16 << 20;

export const enum Op {
  /** Run an ioctl on the file the frame is written to. */
  IOCTL = 1,
  /** Return this open file's handle (to put in fd-valued fields of other requests); its kind comes in handle_field. */
  HANDLE = 2,
  /** Read `request` bytes of device region space at offset `arg` (pread on a device fd); data in one out blob. */
  REGION_READ = 3,
  /** Write the argument bytes to device region space at offset `arg` (pwrite on a device fd). */
  REGION_WRITE = 4,
}
const MAX_OP = Op.REGION_WRITE;

/** Handle value for a client fd that is not open: fd-valued fields that need a file then fail with EBADF. */
export const HANDLE_NONE = 0;
/** Handle value for a client fd that is open but is not a tcefs file (the kernel's EBADFD cases). */
export const HANDLE_FOREIGN = 0x7fffffff;
/** `handle_field` value meaning the new handle is the ioctl's return value (the fd it returns). */
export const HANDLE_IN_RESULT = 0xffffffff;

export const frameHeader = struct('tcefs_frame_header', [u32('magic'), u16('version'), u16('count'), u32('length'), u32('pid')]);
export const requestHeader = struct('tcefs_request', [
  u32('length'), u16('op'), u16('nblobs'), u32('request'), u32('arg_len'), u64('arg'),
]);
export const answerHeader = struct('tcefs_answer', [
  u32('length'), u16('op'), u16('nblobs'), u32('request'), u32('out_len'), s64('result'), u32('new_handle'), u32('handle_field'),
]);
export const blobHeader = struct('tcefs_blob', [u32('field_offset'), u32('length')]);

export interface Blob {
  /** Offset in the argument struct of the pointer field this data belongs to. */
  fieldOffset: number;
  data: Buffer;
}

export interface Request {
  op: Op;
  request: number;
  /** Scalar argument of value ioctls; region offset for region ops. */
  arg: bigint;
  /** The argument bytes as sent (a copy the handler may not modify). */
  argData: Buffer;
  blobs: Blob[];
}

export interface RequestFrame {
  pid: number;
  requests: Request[];
}

export interface Answer {
  op: Op;
  request: number;
  /** Return value, or -errno. */
  result: bigint;
  /** Bytes copied back into the argument from its start. */
  out: Buffer;
  blobs: Blob[];
  newHandle: number;
  handleField: number;
}

const pad8 = (n: number) => (n + 7) & ~7;

function bad(detail: string): never {
  throw new Errno(EBADMSG, detail);
}

/** Validate and decode a complete request frame. Throws Errno (EBADMSG, EPROTONOSUPPORT, E2BIG). */
export function parseRequestFrame(buf: Buffer): RequestFrame {
  if (buf.length < frameHeader.size) bad(`frame of ${buf.length} bytes is shorter than its header`);
  if (readField(buf, frameHeader, 'magic') !== REQUEST_MAGIC) bad('bad magic');
  const version = readField(buf, frameHeader, 'version');
  if (version !== PROTOCOL_VERSION) throw new Errno(EPROTONOSUPPORT, `protocol version ${version}`);
  const length = readField(buf, frameHeader, 'length') as number;
  if (length > MAX_FRAME) throw new Errno(E2BIG, `frame of ${length} bytes exceeds ${MAX_FRAME}`);
  if (length !== buf.length) bad(`header says ${length} bytes, ${buf.length} were written`);
  const count = readField(buf, frameHeader, 'count') as number;
  const requests: Request[] = [];
  let at = frameHeader.size;
  for (let i = 0; i < count; i++) {
    if (at + requestHeader.size > length) bad(`request ${i} starts past the frame end`);
    const recLen = readField(buf, requestHeader, 'length', at) as number;
    const end = at + recLen;
    if (recLen < requestHeader.size || recLen % 8 !== 0 || end > length) bad(`request ${i} has length ${recLen}`);
    const op = readField(buf, requestHeader, 'op', at) as number;
    if (op < Op.IOCTL || op > MAX_OP) bad(`request ${i} has unknown op ${op}`);
    const argLen = readField(buf, requestHeader, 'arg_len', at) as number;
    let p = at + requestHeader.size;
    if (p + pad8(argLen) > end) bad(`request ${i} argument of ${argLen} bytes overruns its record`);
    const argData = Buffer.from(buf.subarray(p, p + argLen));
    p += pad8(argLen);
    const nblobs = readField(buf, requestHeader, 'nblobs', at) as number;
    const blobs: Blob[] = [];
    for (let b = 0; b < nblobs; b++) {
      if (p + blobHeader.size > end) bad(`request ${i} blob ${b} header overruns its record`);
      const fieldOffset = readField(buf, blobHeader, 'field_offset', p) as number;
      const blen = readField(buf, blobHeader, 'length', p) as number;
      p += blobHeader.size;
      if (p + pad8(blen) > end) bad(`request ${i} blob ${b} of ${blen} bytes overruns its record`);
      blobs.push({ fieldOffset, data: Buffer.from(buf.subarray(p, p + blen)) });
      p += pad8(blen);
    }
    if (p !== end) bad(`request ${i} has ${end - p} unaccounted bytes`);
    requests.push({
      op,
      request: readField(buf, requestHeader, 'request', at) as number,
      arg: readField(buf, requestHeader, 'arg', at) as bigint,
      argData,
      blobs,
    });
    at = end;
  }
  if (at !== length) bad(`${length - at} bytes follow the last request`);
  return { pid: readField(buf, frameHeader, 'pid') as number, requests };
}

function recordsLength(blobs: Blob[]) {
  return blobs.reduce((n, b) => n + blobHeader.size + pad8(b.data.length), 0);
}

function writeBlobs(out: Buffer, at: number, blobs: Blob[]): number {
  for (const b of blobs) {
    writeField(out, blobHeader, 'field_offset', b.fieldOffset, at);
    writeField(out, blobHeader, 'length', b.data.length, at);
    at += blobHeader.size;
    b.data.copy(out, at);
    at += pad8(b.data.length);
  }
  return at;
}

function writeFrameHeader(out: Buffer, magic: number, count: number, pid: number) {
  writeField(out, frameHeader, 'magic', magic);
  writeField(out, frameHeader, 'version', PROTOCOL_VERSION);
  writeField(out, frameHeader, 'count', count);
  writeField(out, frameHeader, 'length', out.length);
  writeField(out, frameHeader, 'pid', pid);
}

export function encodeReplyFrame(answers: Answer[]): Buffer {
  const sizes = answers.map((a) => answerHeader.size + pad8(a.out.length) + recordsLength(a.blobs));
  const out = Buffer.alloc(frameHeader.size + sizes.reduce((x, y) => x + y, 0));
  writeFrameHeader(out, REPLY_MAGIC, answers.length, 0);
  let at = frameHeader.size;
  answers.forEach((a, i) => {
    writeField(out, answerHeader, 'length', sizes[i], at);
    writeField(out, answerHeader, 'op', a.op, at);
    writeField(out, answerHeader, 'nblobs', a.blobs.length, at);
    writeField(out, answerHeader, 'request', a.request, at);
    writeField(out, answerHeader, 'out_len', a.out.length, at);
    writeField(out, answerHeader, 'result', a.result, at);
    writeField(out, answerHeader, 'new_handle', a.newHandle, at);
    writeField(out, answerHeader, 'handle_field', a.handleField, at);
    a.out.copy(out, at + answerHeader.size);
    writeBlobs(out, at + answerHeader.size + pad8(a.out.length), a.blobs);
    at += sizes[i];
  });
  return out;
}

// ---- client side (CLI, tests, benchmarks; the C library has its own encoder generated from these layouts) ----

export interface ClientRequest {
  op?: Op;
  request?: number;
  arg?: bigint;
  argData?: Buffer;
  blobs?: Blob[];
}

export function encodeRequestFrame(requests: ClientRequest[], pid = process.pid): Buffer {
  const sizes = requests.map((r) => requestHeader.size + pad8(r.argData?.length ?? 0) + recordsLength(r.blobs ?? []));
  const out = Buffer.alloc(frameHeader.size + sizes.reduce((x, y) => x + y, 0));
  writeFrameHeader(out, REQUEST_MAGIC, requests.length, pid);
  let at = frameHeader.size;
  requests.forEach((r, i) => {
    const arg = r.argData ?? Buffer.alloc(0);
    writeField(out, requestHeader, 'length', sizes[i], at);
    writeField(out, requestHeader, 'op', r.op ?? Op.IOCTL, at);
    writeField(out, requestHeader, 'nblobs', r.blobs?.length ?? 0, at);
    writeField(out, requestHeader, 'request', r.request ?? 0, at);
    writeField(out, requestHeader, 'arg_len', arg.length, at);
    writeField(out, requestHeader, 'arg', r.arg ?? 0n, at);
    arg.copy(out, at + requestHeader.size);
    writeBlobs(out, at + requestHeader.size + pad8(arg.length), r.blobs ?? []);
    at += sizes[i];
  });
  return out;
}

export function parseReplyFrame(buf: Buffer): Answer[] {
  if (buf.length < frameHeader.size || readField(buf, frameHeader, 'magic') !== REPLY_MAGIC) bad('not a reply frame');
  const count = readField(buf, frameHeader, 'count') as number;
  const answers: Answer[] = [];
  let at = frameHeader.size;
  for (let i = 0; i < count; i++) {
    const len = readField(buf, answerHeader, 'length', at) as number;
    const outLen = readField(buf, answerHeader, 'out_len', at) as number;
    let p = at + answerHeader.size;
    const out = Buffer.from(buf.subarray(p, p + outLen));
    p += pad8(outLen);
    const blobs: Blob[] = [];
    for (let b = 0, n = readField(buf, answerHeader, 'nblobs', at) as number; b < n; b++) {
      const fieldOffset = readField(buf, blobHeader, 'field_offset', p) as number;
      const blen = readField(buf, blobHeader, 'length', p) as number;
      p += blobHeader.size;
      blobs.push({ fieldOffset, data: Buffer.from(buf.subarray(p, p + blen)) });
      p += pad8(blen);
    }
    answers.push({
      op: readField(buf, answerHeader, 'op', at) as number,
      request: readField(buf, answerHeader, 'request', at) as number,
      result: readField(buf, answerHeader, 'result', at) as bigint,
      out,
      blobs,
      newHandle: readField(buf, answerHeader, 'new_handle', at) as number,
      handleField: readField(buf, answerHeader, 'handle_field', at) as number,
    });
    at += len;
  }
  return answers;
}
