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
import { readField, readU16, readU32, readU64, s64, struct, u16, u32, u64, writeField, type Scalar, type StructLayout } from '../uapi/layout.ts';

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
  /**
   * IOCTL, and where the answer lets the client answer identical calls itself until something changes,
   * a lease saying so (an answer blob at LEASE_FIELD, docs/protocol.md "Unmap leases").
   */
  IOCTL_LEASE = 5,
  /** The file's poll() events now (EPOLLIN and friends, Linux values) in result: event queues say when they hold records. */
  POLL = 6,
  /**
   * The sending thread's fail-nth counter is `arg` for the requests that follow in the frame; the answer's
   * result is what is left of it after the last of them (docs/protocol.md, "Fault injection").
   */
  FAIL_NTH = 7,
  /**
   * Ask for a connection to this daemon's socket (docs/protocol.md, "Posted writes"), for what `arg` says
   * (PostRole): the answer's blob at POST_FIELD is a tcefs_post; result -errno when this file has none
   * (EOPNOTSUPP: not a device; EINVAL: no such role) or the daemon cannot serve them. Alone in its frame.
   */
  POST = 8,
}

/** What a POST asks for (its request's arg). */
export const enum PostRole {
  /** A connection to post region writes down. */
  WRITES = 0,
  /** A connection the file's interrupt records come down, instead of reads of .tcefs/irq/<handle>. */
  EVENTS = 1,
}
const MAX_OP = Op.POST;

/** The field_offset of an answer blob that holds a tcefs_lease rather than data for a pointer field. */
export const LEASE_FIELD = 0xfffffffe;

/** The field_offset of the answer blob that holds a tcefs_post. */
export const POST_FIELD = 0xfffffffd;
/** Most data one posted write carries; larger writes go the usual way. */
export const POST_MAX_DATA = 64;
/** How many windows a tcefs_post can name (BARs 0-5). */
export const POST_WINDOWS = 6;

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
/**
 * An unmap lease: VFIO_IOMMU_UNMAP_DMA of any page-aligned range inside [start, end) of this container
 * (argsz 24, flags 0, the same request number) is 0 with nothing to do, for as long as the word at the
 * start of the mount's lease file (.tcefs/lease) still reads `epoch`, the client made no other call, and
 * the daemon lives.
 */
export const leaseRecord = struct('tcefs_lease', [u64('start'), u64('end'), u64('epoch'), u32('page_shift'), u32('daemon_pid')]);
/**
 * A grant to post region writes: connect a stream socket to the abstract name
 * "\0tcefs-post-<daemon_pid>-<nonce as 16 hex digits>" and send `token` first, or, when token is all zero,
 * keep the connection this file already has. A write that fits in one of the `nwin` windows
 * [win_start, win_end) and carries at most POST_MAX_DATA bytes may then go down that connection as a
 * tcefs_post_write, its answer taken to be its length, for as long as word 1 of the lease file reads `epoch`.
 */
export const postGrant = struct('tcefs_post', [
  u64('token', 2), u64('nonce'), u64('epoch'), u32('daemon_pid'), u32('nwin'), u64('win_start', POST_WINDOWS), u64('win_end', POST_WINDOWS),
]);
/** One posted write: `length` data bytes follow, padded to 8. */
export const postWrite = struct('tcefs_post_write', [u64('offset'), u32('length'), u32('flags')]);
/** What a read of a device's interrupt event file returns, one per vector that fired (count times). */
export const irqRecord = struct('tcefs_irq_record', [u32('index'), u32('vector'), u64('count')]);

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
  /** The argument bytes as sent (a view of the frame's private copy; the handler may not modify it). */
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

// Lengths come from the wire as u32: a bitwise round-up would turn one of 2^31 or more negative, and a
// negative step would pass the overrun checks below and walk the parser backwards out of the buffer.
const pad8 = (n: number) => Math.ceil(n / 8) * 8;

// The daemon parses and encodes every frame, so its side reads and writes the protocol fields at fixed
// offsets instead of looking each field up by name. The offsets still come from the layouts above (the
// single declaration the C header is generated from), and the scalar type each access assumes is checked
// once, here, against the declaration.
function at(layout: StructLayout, field: string, type: Scalar): number {
  const f = layout.byName.get(field);
  if (!f || f.type !== type) throw new Error(`${layout.name}.${field} is not a ${type}`);
  return f.offset;
}
const H_MAGIC = at(frameHeader, 'magic', 'u32');
const H_VERSION = at(frameHeader, 'version', 'u16');
const H_COUNT = at(frameHeader, 'count', 'u16');
const H_LENGTH = at(frameHeader, 'length', 'u32');
const H_PID = at(frameHeader, 'pid', 'u32');
const R_LENGTH = at(requestHeader, 'length', 'u32');
const R_OP = at(requestHeader, 'op', 'u16');
const R_NBLOBS = at(requestHeader, 'nblobs', 'u16');
const R_REQUEST = at(requestHeader, 'request', 'u32');
const R_ARG_LEN = at(requestHeader, 'arg_len', 'u32');
const R_ARG = at(requestHeader, 'arg', 'u64');
const A_LENGTH = at(answerHeader, 'length', 'u32');
const A_OP = at(answerHeader, 'op', 'u16');
const A_NBLOBS = at(answerHeader, 'nblobs', 'u16');
const A_REQUEST = at(answerHeader, 'request', 'u32');
const A_OUT_LEN = at(answerHeader, 'out_len', 'u32');
const A_RESULT = at(answerHeader, 'result', 's64');
const A_NEW_HANDLE = at(answerHeader, 'new_handle', 'u32');
const A_HANDLE_FIELD = at(answerHeader, 'handle_field', 'u32');
const B_FIELD_OFFSET = at(blobHeader, 'field_offset', 'u32');
const B_LENGTH = at(blobHeader, 'length', 'u32');

/** Argument of a request that sent none: nothing can be written into a zero-length buffer, so one serves all. */
const NO_BYTES = Buffer.alloc(0);

/** Blobs of a request that sent none; frozen, as every request without blobs shares it. */
const NO_BLOBS = Object.freeze([]) as unknown as Blob[];

function bad(detail: string): never {
  throw new Errno(EBADMSG, detail);
}

/**
 * What the first write of a frame must show before any more of it is taken (the channel reassembles
 * frames larger than one FUSE write): a header with the right magic, version and a plausible length.
 * Returns that length. Throws Errno (EBADMSG, EPROTONOSUPPORT, E2BIG).
 */
export function frameLengthOf(first: Buffer): number {
  if (first.length < frameHeader.size) bad(`first write of ${first.length} bytes is shorter than a frame header`);
  if (first.readUInt32LE(H_MAGIC) !== REQUEST_MAGIC) bad('bad magic');
  if (first.readUInt16LE(H_VERSION) !== PROTOCOL_VERSION) throw new Errno(EPROTONOSUPPORT, 'protocol version');
  const length = first.readUInt32LE(H_LENGTH);
  if (length > MAX_FRAME) throw new Errno(E2BIG, `frame of ${length} bytes`);
  if (length < frameHeader.size) bad(`frame length ${length}`);
  return length;
}

/**
 * Validate and decode a complete request frame. Throws Errno (EBADMSG, EPROTONOSUPPORT, E2BIG).
 * Arguments and blobs are views of one private copy of the frame, made here unless the caller says
 * `buf` is its own already (fuse-native recycles its write buffer; one copy of the frame costs less
 * than a copy per request).
 */
export function parseRequestFrame(buf: Buffer, owned = false): RequestFrame {
  // Made when the first view is: frames of value ioctls (no argument bytes) need no copy at all.
  // (Not in a closure: a captured buf would be read through a context on every access below.)
  let own: Buffer | undefined = owned ? buf : undefined;
  if (buf.length < frameHeader.size) bad(`frame of ${buf.length} bytes is shorter than its header`);
  if (buf.readUInt32LE(H_MAGIC) !== REQUEST_MAGIC) bad('bad magic');
  const version = buf.readUInt16LE(H_VERSION);
  if (version !== PROTOCOL_VERSION) throw new Errno(EPROTONOSUPPORT, `protocol version ${version}`);
  const length = buf.readUInt32LE(H_LENGTH);
  if (length > MAX_FRAME) throw new Errno(E2BIG, `frame of ${length} bytes exceeds ${MAX_FRAME}`);
  if (length !== buf.length) bad(`header says ${length} bytes, ${buf.length} were written`);
  const count = buf.readUInt16LE(H_COUNT);
  const requests: Request[] = [];
  let rec = frameHeader.size;
  for (let i = 0; i < count; i++) {
    if (rec + requestHeader.size > length) bad(`request ${i} starts past the frame end`);
    const recLen = readU32(buf, rec + R_LENGTH);
    const end = rec + recLen;
    if (recLen < requestHeader.size || recLen % 8 !== 0 || end > length) bad(`request ${i} has length ${recLen}`);
    const op = readU16(buf, rec + R_OP);
    if (op < Op.IOCTL || op > MAX_OP) bad(`request ${i} has unknown op ${op}`);
    const argLen = readU32(buf, rec + R_ARG_LEN);
    let p = rec + requestHeader.size;
    if (p + pad8(argLen) > end) bad(`request ${i} argument of ${argLen} bytes overruns its record`);
    let argData: Buffer = NO_BYTES;
    if (argLen) argData = (own ??= Buffer.from(buf)).subarray(p, p + argLen);
    p += pad8(argLen);
    const nblobs = readU16(buf, rec + R_NBLOBS);
    const blobs: Blob[] = nblobs ? [] : NO_BLOBS;
    for (let b = 0; b < nblobs; b++) {
      if (p + blobHeader.size > end) bad(`request ${i} blob ${b} header overruns its record`);
      const fieldOffset = readU32(buf, p + B_FIELD_OFFSET);
      const blen = readU32(buf, p + B_LENGTH);
      p += blobHeader.size;
      if (p + pad8(blen) > end) bad(`request ${i} blob ${b} of ${blen} bytes overruns its record`);
      blobs.push({ fieldOffset, data: (own ??= Buffer.from(buf)).subarray(p, p + blen) });
      p += pad8(blen);
    }
    if (p !== end) bad(`request ${i} has ${end - p} unaccounted bytes`);
    requests.push({ op, request: readU32(buf, rec + R_REQUEST), arg: readU64(buf, rec + R_ARG), argData, blobs });
    rec = end;
  }
  if (rec !== length) bad(`${length - rec} bytes follow the last request`);
  return { pid: buf.readUInt32LE(H_PID), requests };
}

function recordsLength(blobs: Blob[]) {
  let n = 0;
  for (const b of blobs) n += blobHeader.size + pad8(b.data.length);
  return n;
}

// Little-endian stores for the encoder, which sizes its buffer itself: Buffer's write methods validate
// the value and the range on every call, which costs more than the store. Values wrap as a C cast would.
function put16(b: Buffer, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
}

function put32(b: Buffer, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
  b[at + 2] = v >>> 16;
  b[at + 3] = v >>> 24;
}

/** An s64 result: almost always a small value or -errno, written without converting through 64 bits. */
function putS64(b: Buffer, at: number, v: bigint): void {
  if (v >= -0x8000_0000n && v <= 0x7fff_ffffn) {
    const n = Number(v);
    put32(b, at, n);
    put32(b, at + 4, n < 0 ? -1 : 0);
  } else b.writeBigInt64LE(BigInt.asIntN(64, v), at);
}

/** Zero the padding after `len` bytes written at `at` (an unzeroed buffer must not leak old bytes). */
function zeroPad(out: Buffer, at: number, len: number): void {
  if (len & 7) out.fill(0, at + len, at + pad8(len));
}

function writeBlobs(out: Buffer, at: number, blobs: Blob[]): number {
  for (const b of blobs) {
    put32(out, at + B_FIELD_OFFSET, b.fieldOffset);
    put32(out, at + B_LENGTH, b.data.length);
    at += blobHeader.size;
    b.data.copy(out, at);
    zeroPad(out, at, b.data.length);
    at += pad8(b.data.length);
  }
  return at;
}

function writeFrameHeader(out: Buffer, magic: number, count: number, pid: number) {
  put32(out, H_MAGIC, magic);
  put16(out, H_VERSION, PROTOCOL_VERSION);
  put16(out, H_COUNT, count);
  put32(out, H_LENGTH, out.length);
  put32(out, H_PID, pid);
}

/** Bytes of one answer record: lengths here are of the daemon's own buffers, far below 2^31. */
function answerSize(a: Answer): number {
  let n = answerHeader.size + ((a.out.length + 7) & ~7);
  if (a.blobs.length) n += recordsLength(a.blobs);
  return n;
}

export function encodeReplyFrame(answers: Answer[]): Buffer {
  let total = frameHeader.size;
  for (let i = 0; i < answers.length; i++) total += answerSize(answers[i]);
  // From Buffer's pool for small replies and not zeroed: every header byte is written below, and the
  // only other bytes, the padding after copy-backs and blobs, are zeroed where they occur.
  const out = Buffer.allocUnsafe(total);
  writeFrameHeader(out, REPLY_MAGIC, answers.length, 0);
  let rec = frameHeader.size;
  for (let i = 0; i < answers.length; i++) {
    const a = answers[i];
    const size = answerSize(a);
    put32(out, rec + A_LENGTH, size);
    put16(out, rec + A_OP, a.op);
    put16(out, rec + A_NBLOBS, a.blobs.length);
    put32(out, rec + A_REQUEST, a.request);
    put32(out, rec + A_OUT_LEN, a.out.length);
    putS64(out, rec + A_RESULT, a.result);
    put32(out, rec + A_NEW_HANDLE, a.newHandle);
    put32(out, rec + A_HANDLE_FIELD, a.handleField);
    if (a.out.length) {
      out.set(a.out, rec + answerHeader.size);
      zeroPad(out, rec + answerHeader.size, a.out.length);
    }
    if (a.blobs.length) writeBlobs(out, rec + answerHeader.size + pad8(a.out.length), a.blobs);
    rec += size;
  }
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
