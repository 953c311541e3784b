// `npm run fuzz [-- --frames N --seconds S --seed X --lanes L --flavour powernv|pseries --faults --selftest]`
//
// Starts a daemon in its own process (a synchronous call from the process serving a mount into that
// mount would deadlock, and a separate process is what clients see anyway) and throws frames at every
// file kind through the real mount: /dev/iommu, /dev/vfio/vfio, the groups, the device cdevs and the
// device files claimed from .tcefs/fd. The frames are random bytes, valid frames with flipped bits and
// wrong lengths, counts and ops, every declared ioctl with random and boundary values built from the
// declared structs, batches, region I/O, and handles of the fuzzer's own files in fd fields. Now and then
// a lane runs a well-formed setup sequence (a SPAPR container with windows and maps, an iommufd with a
// bound device and maps, a group in an iommufd) so that the random frames land on deep state, and files
// are closed at random moments so that releases run with that state in place.
//
// Every answer is checked: a failed write() must carry an errno the protocol lists, and must be the one
// an independent reading of docs/protocol.md predicts (a model of the byte stream, below); an accepted
// frame must produce a well-formed reply (strict walk, and parseReplyFrame) with one answer per request,
// echoed op and request, results >= 0 or a known -errno, copy-backs and out blobs that fit the caller's
// buffers, zero padding (no bytes of earlier replies), new files only from fd-returning ioctls.
// Internal errors the daemon logs fail the run too.
// At the end every file is closed and the state views must show the machine as it booted, with nothing
// left open, pending, pinned, locked or mapped (test/helpers/leaks.ts).
//
// Lanes run concurrently, each on its own groups and devices, its own files and its own frame pids, with
// its own random stream derived from the seed: what a lane sends depends only on the seed and on the
// answers to its own frames, so a run is reproducible lane by lane (handle values excepted: the daemon
// draws them at random, by design). With --faults the host-wide fail_nth injector is armed at random
// moments, which couples the lanes.
import { open, readdir, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { E2BIG, EBADF, EBADMSG, EFAULT, EINVAL, ENOENT, ENOMEM, EOPNOTSUPP, EOVERFLOW, EPROTONOSUPPORT, errnoName } from '../src/errno.ts';
import {
  answerHeader, blobHeader, encodeRequestFrame, frameHeader, HANDLE_FOREIGN, HANDLE_IN_RESULT, HANDLE_NONE, MAX_FRAME, Op,
  parseReplyFrame, PROTOCOL_VERSION, REPLY_MAGIC, REQUEST_MAGIC, requestHeader, type Blob, type ClientRequest,
} from '../src/transport/frame.ts';
import { canonicalNr, FILE_KIND_BIT, ioctl, IOCTLS, ioctlsFor, pointerLength, requestValue, type FileKind, type IoctlDecl } from '../src/uapi/ioctls.ts';
import { decode, encode, readScalar, writeScalar, type Field, type Scalar, type StructLayout } from '../src/uapi/layout.ts';
import { iommu_hwpt_spapr_tce, iommu_iova_range } from '../src/uapi/structs.ts';
import { startDaemon, type RunningDaemon } from '../test/helpers/daemon.ts';
import { leakProblems, readViews, waitForClean, type Views } from '../test/helpers/leaks.ts';

// ---- options and report ---------------------------------------------------------------------------

export interface FuzzOptions {
  /** Frames to send in all (split evenly between lanes). */
  frames: number;
  /** Wall-clock bound: the lanes stop sending when it passes, whatever the count. */
  seconds: number;
  seed: number;
  lanes?: number;
  flavour?: 'powernv' | 'pseries';
  /** The emulated host's page size (docs/page-size.md); 64K by default. */
  pageShift?: 12 | 16;
  /** Arm the host-wide fail_nth injector at random moments (couples the lanes, so less reproducible). */
  faults?: boolean;
  /** Start the daemon with --selftest, so IOMMU_TEST_CMD and the mock IOMMU are fuzzed too. */
  selftest?: boolean;
  /**
   * Also send the triggers of known daemon bugs that are reported but not fixed yet (KNOWN_BUGS below).
   * Off by default, so that a run finds what is new.
   */
  knownBugs?: boolean;
  /** Progress lines (stderr for the CLI); silent when absent. */
  log?: (line: string) => void;
}

export interface FuzzReport {
  seed: number;
  lanes: number;
  frames: number;
  seconds: number;
  /** Requests inside accepted frames, answered. */
  answers: number;
  /** Frames written, by the kind of file they went to (devices claimed from .tcefs/fd counted apart). */
  byFile: Record<string, number>;
  /** Answer results: "ok" or the errno name. */
  results: Record<string, number>;
  /** write() failures by errno name (frames the protocol rejected as a whole). */
  writeErrors: Record<string, number>;
  /** Per declared ioctl: answers that succeeded and that failed. */
  ioctls: Record<string, { ok: number; err: number }>;
  /** Opens, claims, closes, region I/O calls and control commands, with their failures. */
  events: Record<string, number>;
  /** Broken promises of the protocol: each one is a bug (in the daemon or in this model of it). */
  violations: string[];
  /** Internal errors the daemon logged (handler exceptions other than an errno). */
  internalErrors: string[];
  /** Left behind after every file was closed (empty: nothing leaked). */
  leaks: string[];
  /** Differences from boot that are not leaks (PEs left frozen by injected errors). */
  notes: string[];
  alive: boolean;
}

/**
 * Reported daemon bugs whose triggers a default run leaves out (--known-bugs sends them). None is open:
 * the last one (IOMMU_GET_HW_INFO with a data_len near 4 GiB built a 4 GiB reply and two in a frame killed
 * the daemon) is fixed by capping the zero-fill and bounding every frame's replies.
 */
export const KNOWN_BUGS: readonly string[] = [];

const MAX_WRITE = 128 * 1024;
/** Open files per lane: enough for a container, an iommufd, both groups, their cdevs and claimed devices. */
const MAX_FILES = 12;
/** Writes up to this size reach the daemon as one FUSE write whatever the buffer's alignment, so the stream model is exact for them. */
const EXACT_WRITE = 64 * 1024;
const REGION_BASE = 2 ** 40;
const FRAME_ERRNOS = new Set([EBADMSG, EPROTONOSUPPORT, E2BIG]);
const KNOWN_ERRNO = (e: number) => !errnoName(e).startsWith('E#');

/** Offsets near the ends of the default functions' regions: config space (4K), BAR 0 (16K, 32M), the ROM (1M), MSI-X tables. */
function regionEdge(rng: Rng): bigint {
  const [index, end] = rng.pick<[bigint, number]>([[7n, 4096], [7n, 256], [0n, 16 << 10], [0n, 32 << 20], [6n, 1 << 20], [0n, 0x2000], [0n, 0x3000], [1n, 0]]);
  return (index << 40n) + BigInt(Math.max(0, end - 9 + rng.int(18)));
}
// Plain arithmetic: lengths are u32 and a bitwise mask would wrap the large ones negative.
/**
 * iommufd commands whose feature a TCE host lacks (src/objects/iommufd/host-lacks.ts): they never
 * succeed, and fail only with the errnos of their size, field, object and feature checks.
 */
const HOST_LACKS = new Set([
  'IOMMU_HWPT_SET_DIRTY_TRACKING', 'IOMMU_HWPT_GET_DIRTY_BITMAP', 'IOMMU_HWPT_INVALIDATE',
  'IOMMU_VIOMMU_ALLOC', 'IOMMU_VDEVICE_ALLOC', 'IOMMU_VEVENTQ_ALLOC', 'IOMMU_HW_QUEUE_ALLOC',
  'IOMMU_IOAS_NOIOMMU_GET_PA',
]);
const HOST_LACKS_ERRNOS = new Set([EINVAL, E2BIG, EFAULT, EOPNOTSUPP, ENOENT, EOVERFLOW, EBADF, ENOMEM]);
const pad8 = (n: number) => Math.ceil(n / 8) * 8;
const U64 = (1n << 64n) - 1n;

// ---- a seeded random stream (xoshiro128**, seeded by splitmix32) --------------------------------------

export class Rng {
  private s = new Uint32Array(4);
  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }
  u32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }
  /** [0, n) */
  int(n: number): number {
    return Math.floor((this.u32() / 2 ** 32) * n);
  }
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
  /** Choose by weight: [[weight, value], ...]. */
  weighted<T>(choices: readonly (readonly [number, T])[]): T {
    let r = this.int(choices.reduce((n, c) => n + c[0], 0));
    for (const [w, v] of choices) if ((r -= w) < 0) return v;
    return choices[choices.length - 1][1];
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

// ---- the machine fuzzed: every lane gets a PHB with a two-function PE and a one-function PE --------------

export function fuzzTopology(lanes: number, flavour: 'powernv' | 'pseries', pageShift: 12 | 16 = 16) {
  const dev = (bdf: string, msix: number) => ({ bdf, vendor: '0x1af4', device: '0x1041', class: '0x020000', bars: [{ index: 0, size: '64K', type: 'mem64', prefetchable: false }, { index: 2, size: '4K', type: 'mem32', prefetchable: false }], msi: 1, msix });
  return {
    // Both extensions on: more of the daemon is reachable, and the plain paths stay reachable too.
    host: { flavour, pageShift, memlockLimit: '16G', eeh: true, type1Compat: true, iommufdSpaprCompat: true },
    phbs: Array.from({ length: lanes }, (_, l) => {
      const dom = l.toString(16).padStart(4, '0');
      return {
        domain: l,
        model: l % 2 ? 'PHB3' : 'PHB4',
        pes: [
          { pe: 1, group: 2 * l, devices: [dev(`${dom}:01:00.0`, 8), dev(`${dom}:01:00.1`, 8)] },
          { pe: 2, group: 2 * l + 1, devices: [dev(`${dom}:02:00.0`, 4)] },
        ],
      };
    }),
  };
}

interface GroupInfo {
  id: number;
  bdfs: string[];
  /** cdev node names (vfioN) of the group's functions, by BDF. */
  cdevs: Map<string, string>;
}

async function discoverGroups(mnt: string): Promise<GroupInfo[]> {
  const out: GroupInfo[] = [];
  for (const g of await readdir(join(mnt, 'sys/kernel/iommu_groups'))) {
    const bdfs = (await readdir(join(mnt, 'sys/kernel/iommu_groups', g, 'devices'))).sort();
    const cdevs = new Map<string, string>();
    for (const b of bdfs) cdevs.set(b, (await readdir(join(mnt, 'sys/bus/pci/devices', b, 'vfio-dev')))[0]);
    out.push({ id: Number(g), bdfs, cdevs });
  }
  return out.sort((a, b) => a.id - b.id);
}

// ---- an independent reading of the request frame rules (docs/protocol.md) ------------------------------

interface SentRecord {
  op: number;
  request: number;
  arg: bigint;
  argData: Buffer;
}

type Walk = { ok: true; records: SentRecord[] } | { ok: false; errno: number; why: string };

/** Validate a complete frame as the protocol document describes it, without the daemon's parser. */
export function walkFrame(b: Buffer): Walk {
  const no = (errno: number, why: string): Walk => ({ ok: false, errno, why });
  if (b.length < 16) return no(EBADMSG, 'short');
  if (b.readUInt32LE(0) !== REQUEST_MAGIC) return no(EBADMSG, 'magic');
  if (b.readUInt16LE(4) !== PROTOCOL_VERSION) return no(EPROTONOSUPPORT, 'version');
  const length = b.readUInt32LE(8);
  if (length > MAX_FRAME) return no(E2BIG, 'length');
  if (length !== b.length) return no(EBADMSG, 'length != bytes');
  const count = b.readUInt16LE(6);
  const records: SentRecord[] = [];
  let at = 16;
  for (let i = 0; i < count; i++) {
    if (at + 24 > length) return no(EBADMSG, `record ${i} header`);
    const len = b.readUInt32LE(at);
    const end = at + len;
    if (len < 24 || len % 8 || end > length) return no(EBADMSG, `record ${i} length`);
    const op = b.readUInt16LE(at + 4);
    if (op < Op.IOCTL || op > Op.POLL) return no(EBADMSG, `record ${i} op`);
    const argLen = b.readUInt32LE(at + 12);
    let p = at + 24;
    if (p + pad8(argLen) > end) return no(EBADMSG, `record ${i} arg`);
    const argData = b.subarray(p, p + argLen);
    p += pad8(argLen);
    for (let k = 0, n = b.readUInt16LE(at + 6); k < n; k++) {
      if (p + 8 > end) return no(EBADMSG, `record ${i} blob ${k} header`);
      const blen = b.readUInt32LE(p + 4);
      p += 8;
      if (p + pad8(blen) > end) return no(EBADMSG, `record ${i} blob ${k}`);
      p += pad8(blen);
    }
    if (p !== end) return no(EBADMSG, `record ${i} unaccounted bytes`);
    records.push({ op, request: b.readUInt32LE(at + 8), arg: b.readBigUInt64LE(at + 16), argData });
    at = end;
  }
  if (at !== length) return no(EBADMSG, 'trailing bytes');
  return { ok: true, records };
}

/** What the byte stream of one open file holds between writes: a frame being assembled, or nothing. */
interface Assembling {
  bytes: Buffer[];
  received: number;
  expected: number;
  nextOffset: number;
}

interface Stream {
  partial?: Assembling;
  /** After a write too large to model exactly, the daemon's side of the stream is not known until it resets. */
  unknown?: boolean;
}

type Predicted =
  | { kind: 'error'; errno: number }
  | { kind: 'accepted-partial' }
  | { kind: 'frame'; frame: Buffer; walk: Walk }
  | { kind: 'region' };

/** What one write (at most EXACT_WRITE bytes, so one FUSE write) does to the stream, per the protocol. */
function predictWrite(state: Stream, data: Buffer, offset: number): Predicted {
  const p = state.partial;
  if (!p) {
    if (offset >= REGION_BASE) return { kind: 'region' };
    if (data.length < 16 || data.readUInt32LE(0) !== REQUEST_MAGIC) return { kind: 'error', errno: EBADMSG };
    if (data.readUInt16LE(4) !== PROTOCOL_VERSION) return { kind: 'error', errno: EPROTONOSUPPORT };
    const length = data.readUInt32LE(8);
    if (length > MAX_FRAME) return { kind: 'error', errno: E2BIG };
    if (length < 16 || data.length > length) return { kind: 'error', errno: EBADMSG };
    if (data.length < length) {
      state.partial = { bytes: [Buffer.from(data)], received: data.length, expected: length, nextOffset: offset + data.length };
      return { kind: 'accepted-partial' };
    }
    return { kind: 'frame', frame: data, walk: walkFrame(data) };
  }
  state.partial = undefined;
  if (offset !== p.nextOffset || p.received + data.length > p.expected) return { kind: 'error', errno: EBADMSG };
  const frame = Buffer.concat([...p.bytes, data]);
  if (frame.length < p.expected) {
    state.partial = { bytes: [frame], received: frame.length, expected: p.expected, nextOffset: offset + data.length };
    return { kind: 'accepted-partial' };
  }
  return { kind: 'frame', frame, walk: walkFrame(frame) };
}

// ---- what an accepted frame's reply must look like -------------------------------------------------------

interface ReplyContext {
  kind: FileKind;
  handle: number;
}

/** The out pointers a request may write through, with the caller's buffer size for each, by field offset. */
function outPointerLimits(kind: FileKind, rec: SentRecord): Map<number, number>[] {
  const nr = canonicalNr(rec.request);
  if (nr === undefined) return [];
  return ioctlsFor(kind, nr).map((d) => {
    const m = new Map<number, number>();
    if (!d.struct) return m;
    const image = Buffer.concat([rec.argData, Buffer.alloc(Math.max(0, d.struct.size - rec.argData.length))]);
    for (const p of d.pointers ?? []) {
      if (p.dir !== 'out') continue;
      const off = d.struct.byName.get(p.field)!.offset;
      m.set(off, pointerLength(p, (f) => readScalar(image, d.struct!.byName.get(f)!.type as Scalar, d.struct!.byName.get(f)!.offset) as number | bigint));
    }
    return m;
  });
}

interface Answered {
  result: bigint;
  op: number;
  request: number;
  out: Buffer;
  newHandle: number;
}

/** Check a reply against the frame that caused it; returns the answers, pushing violations as found. */
function checkReply(reply: Buffer, records: SentRecord[], ctx: ReplyContext, bad: (s: string) => void): Answered[] {
  const fail = (s: string): Answered[] => (bad(s), []);
  if (reply.length < 16) return fail(`reply of ${reply.length} bytes`);
  if (reply.readUInt32LE(0) !== REPLY_MAGIC || reply.readUInt16LE(4) !== PROTOCOL_VERSION) return fail('reply magic/version');
  if (reply.readUInt32LE(8) !== reply.length) return fail(`reply header length ${reply.readUInt32LE(8)} != ${reply.length} read`);
  if (reply.readUInt32LE(12) !== 0) return fail('reply pid not 0');
  if (reply.readUInt16LE(6) !== records.length) return fail(`reply has ${reply.readUInt16LE(6)} answers for ${records.length} requests`);
  const out: Answered[] = [];
  let at = 16;
  for (let i = 0; i < records.length; i++) {
    const rec = records[i];
    const where = `answer ${i} (op ${rec.op} req 0x${(rec.request >>> 0).toString(16)} on ${ctx.kind})`;
    if (at + answerHeader.size > reply.length) return fail(`${where}: past the reply end`);
    const len = reply.readUInt32LE(at);
    if (len < answerHeader.size || len % 8 || at + len > reply.length) return fail(`${where}: length ${len}`);
    const op = reply.readUInt16LE(at + 4);
    const nblobs = reply.readUInt16LE(at + 6);
    const request = reply.readUInt32LE(at + 8);
    const outLen = reply.readUInt32LE(at + 12);
    const result = reply.readBigInt64LE(at + 16);
    const newHandle = reply.readUInt32LE(at + 24);
    const handleField = reply.readUInt32LE(at + 28);
    if (op !== rec.op || request !== rec.request >>> 0) bad(`${where}: echoes op ${op} request 0x${request.toString(16)}`);
    if (result < 0n && !KNOWN_ERRNO(Number(-result))) bad(`${where}: result ${result} is not a known -errno`);
    let p = at + answerHeader.size;
    if (p + pad8(outLen) > at + len) return fail(`${where}: out_len ${outLen} overruns the answer`);
    const outBytes = reply.subarray(p, p + outLen);
    // Padding is zero: a reply built in a reused buffer must not carry bytes of an earlier one.
    const zero = (from: number, to: number, what: string) => reply.subarray(from, to).some((x) => x !== 0) && bad(`${where}: non-zero padding after ${what}`);
    zero(p + outLen, p + pad8(outLen), 'the copy-back');
    p += pad8(outLen);
    const blobs: Blob[] = [];
    for (let k = 0; k < nblobs; k++) {
      if (p + blobHeader.size > at + len) return fail(`${where}: blob ${k} header overruns`);
      const fo = reply.readUInt32LE(p);
      const bl = reply.readUInt32LE(p + 4);
      p += blobHeader.size;
      if (p + pad8(bl) > at + len) return fail(`${where}: blob ${k} overruns`);
      blobs.push({ fieldOffset: fo, data: reply.subarray(p, p + bl) });
      zero(p + bl, p + pad8(bl), `blob ${k}`);
      p += pad8(bl);
    }
    if (p !== at + len) bad(`${where}: ${at + len - p} unaccounted bytes`);
    switch (rec.op) {
      case Op.HANDLE:
        if ((ctx.handle ? result !== BigInt(ctx.handle) : result <= 0n) || handleField !== FILE_KIND_BIT[ctx.kind]) bad(`${where}: HANDLE answered ${result}/${handleField}, file is ${ctx.handle}/${ctx.kind}`);
        if (outLen || nblobs || newHandle) bad(`${where}: HANDLE carries data`);
        break;
      case Op.REGION_READ:
        if (outLen || newHandle) bad(`${where}: REGION_READ carries out bytes or a handle`);
        if (result >= 0n && (nblobs !== 1 || blobs[0].fieldOffset !== 0 || BigInt(blobs[0].data.length) !== result || result > BigInt(rec.request >>> 0))) bad(`${where}: REGION_READ of ${rec.request >>> 0} returned ${result} with ${nblobs} blobs`);
        if (result < 0n && nblobs) bad(`${where}: failed REGION_READ carries data`);
        break;
      case Op.REGION_WRITE:
        if (outLen || nblobs || newHandle) bad(`${where}: REGION_WRITE carries data`);
        if (result > BigInt(rec.argData.length)) bad(`${where}: REGION_WRITE of ${rec.argData.length} bytes wrote ${result}`);
        break;
      case Op.POLL:
        if (outLen || nblobs || newHandle) bad(`${where}: POLL carries data`);
        // POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM are all a file reports.
        if (result < 0n || result & ~0x145n) bad(`${where}: POLL answered ${result}`);
        break;
      case Op.IOCTL: {
        // The client copies out_len bytes into its argument and each blob into its buffer: both must fit.
        if (outLen > rec.argData.length) bad(`${where}: copies back ${outLen} bytes into a ${rec.argData.length}-byte argument`);
        const nr = canonicalNr(rec.request);
        const decls = nr === undefined ? [] : ioctlsFor(ctx.kind, nr);
        if (newHandle) {
          if (result < 0n) bad(`${where}: failed but created file ${newHandle}`);
          if (!decls.some((d) => d.returnsFd)) bad(`${where}: created a file from an ioctl that returns none`);
          if (handleField !== HANDLE_IN_RESULT && handleField + 4 > rec.argData.length) bad(`${where}: handle_field ${handleField} outside the argument`);
        }
        if (blobs.length) {
          const limits = outPointerLimits(ctx.kind, rec);
          const fits = limits.some((m) => blobs.every((b) => m.has(b.fieldOffset) && b.data.length <= m.get(b.fieldOffset)!));
          if (!fits) bad(`${where}: out blobs ${blobs.map((b) => `${b.data.length}@${b.fieldOffset}`).join(',')} do not fit the caller's pointers`);
        }
        break;
      }
    }
    out.push({ result, op, request, out: Buffer.from(outBytes), newHandle });
    at += len;
  }
  if (at !== reply.length) bad(`reply has ${reply.length - at} trailing bytes`);
  try {
    if (parseReplyFrame(reply).length !== records.length) bad('parseReplyFrame disagrees on the answer count');
  } catch (e) {
    bad(`parseReplyFrame throws: ${(e as Error).message}`);
  }
  return out;
}

// ---- a lane: its files, what it has learned, and its steps -----------------------------------------------

interface Range {
  kind: 'iova' | 'va' | 'window';
  addr: bigint;
  size: bigint;
  /** The IOAS an iommufd mapping is in. */
  ioas?: number;
}

interface Pending {
  handle: number;
  group?: number;
  kind?: FileKind;
}

/** What an fd-returning ioctl hands out. */
const NEW_FILE_KIND: Record<string, FileKind> = { VFIO_GROUP_GET_DEVICE_FD: 'device', IOMMU_FAULT_QUEUE_ALLOC: 'fault', IOMMU_VEVENTQ_ALLOC: 'veventq' };

interface LaneFile {
  fh: FileHandle;
  path: string;
  kind: FileKind;
  handle: number;
  group?: number;
  viaCdev?: boolean;
  stream: Stream;
}

const fileKindOf = (path: string): FileKind =>
  path === 'dev/iommu' ? 'iommufd' : path === 'dev/vfio/vfio' ? 'container' : path.startsWith('dev/vfio/devices/') || path.startsWith('.tcefs/') ? 'device' : 'group';

class Stats {
  frames = 0;
  byFile: Record<string, number> = {};
  answers = 0;
  results: Record<string, number> = {};
  writeErrors: Record<string, number> = {};
  ioctls: Record<string, { ok: number; err: number }> = {};
  events: Record<string, number> = {};
  violations: string[] = [];
  count(map: Record<string, number>, key: string) {
    map[key] = (map[key] ?? 0) + 1;
  }
}

class Lane {
  readonly rng: Rng;
  readonly files: LaneFile[] = [];
  /** Handles this lane saw created and has not claimed yet, with the kind of file the ioctl makes when known. */
  readonly pending: Pending[] = [];
  /** Handles of files this lane closed: stale capabilities to throw back. */
  readonly stale: number[] = [];
  /** Object IDs, IOVAs and window starts seen in answers: plausible values for later requests. */
  readonly ids: number[] = [1, 2, 3];
  readonly iovas: bigint[] = [0n, 0x1000n, 0x10000n, 1n << 59n];
  /** Ranges that exist now or did: mappings, registered memory, windows, to unmap and remove exactly. */
  readonly ranges: Range[] = [];
  readonly pids: number[];
  readonly vaBase: bigint;
  readonly removed: string[] = [];
  frames = 0;

  constructor(
    readonly index: number,
    seed: number,
    readonly mnt: string,
    readonly groups: GroupInfo[],
    readonly quota: number,
    readonly deadline: number,
    readonly stats: Stats,
    readonly opts: FuzzOptions,
  ) {
    this.rng = new Rng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
    // Frame pids are the lane's own, so per-process state (address spaces, locked memory) stays in the lane.
    this.pids = [200_000 + index * 16, 200_000 + index * 16 + 1];
    this.vaBase = 0x7f00_0000_0000n + (BigInt(index) << 36n);
  }

  private bad(s: string) {
    if (this.stats.violations.length < 200) this.stats.violations.push(`lane ${this.index} frame ${this.frames}: ${s}`);
  }

  private get done() {
    return this.frames >= this.quota || Date.now() >= this.deadline;
  }

  async run(): Promise<void> {
    while (!this.done) {
      const r = this.rng.int(1000);
      if (this.files.length === 0 || r < 25) await this.openSomething();
      else if (r < 45) await this.closeSomething();
      else if (r < 60 && this.pending.length && this.files.length < MAX_FILES) await this.claim(this.pending.splice(this.rng.int(this.pending.length), 1)[0]);
      else if (r < 100) await this.macro();
      else if (r < 110) await this.control();
      else if (r < 130) await this.regionIo();
      else await this.frameStep();
    }
  }

  // -- files --

  private nodesOpenable(): string[] {
    const out = ['dev/iommu', 'dev/vfio/vfio'];
    for (const g of this.groups) {
      const cdevOpen = this.files.some((f) => f.group === g.id && f.viaCdev);
      const groupOpen = this.files.some((f) => f.group === g.id && f.kind === 'group');
      // A group opened while it is open, or while one of its cdevs may be bound, is EBUSY after a wait.
      if (!cdevOpen && !groupOpen) out.push(`dev/vfio/${g.id}`);
      if (!groupOpen) for (const c of g.cdevs.values()) out.push(`dev/vfio/devices/${c}`);
    }
    return out;
  }

  private async openPath(path: string, extra: Partial<LaneFile> = {}): Promise<LaneFile | undefined> {
    if (this.files.length >= MAX_FILES) return undefined;
    let fh: FileHandle;
    try {
      fh = await open(join(this.mnt, path), 'r+');
    } catch (e) {
      const errno = Math.abs((e as NodeJS.ErrnoException).errno ?? 0);
      this.stats.count(this.stats.events, `open ${errnoName(errno)}`);
      if (!KNOWN_ERRNO(errno)) this.bad(`open ${path}: ${(e as Error).message}`);
      return undefined;
    }
    this.stats.count(this.stats.events, path.startsWith('.tcefs/') ? 'claim' : 'open');
    const f: LaneFile = { fh, path, kind: fileKindOf(path), handle: 0, stream: {}, ...extra };
    const g = /^dev\/vfio\/(\d+)$/.exec(path);
    if (g) f.group = Number(g[1]);
    const c = /^dev\/vfio\/devices\/(vfio\d+)$/.exec(path);
    if (c) {
      f.group = this.groups.find((x) => [...x.cdevs.values()].includes(c[1]))?.id;
      f.viaCdev = true;
    }
    this.files.push(f);
    // Learn the file's handle (and check its kind) with a HANDLE request, like libtcefs does.
    const a = await this.exchange(f, [{ op: Op.HANDLE }]);
    if (a?.[0] && a[0].result > 0n) f.handle = Number(a[0].result);
    return f;
  }

  private async openSomething() {
    const nodes = this.nodesOpenable();
    await this.openPath(this.rng.pick(nodes));
  }

  private async closeFile(f: LaneFile) {
    this.files.splice(this.files.indexOf(f), 1);
    if (f.handle) this.stale.push(f.handle);
    await f.fh.close().then(
      () => this.stats.count(this.stats.events, 'close'),
      (e) => this.bad(`close ${f.path}: ${(e as Error).message}`),
    );
  }

  private async closeSomething() {
    if (this.files.length) await this.closeFile(this.rng.pick(this.files));
  }

  /**
   * Open a pending file; it belongs to the group whose file created it. One whose kind the lane could not
   * tell (made inside a frame too large to check answer by answer) is claimed and closed at once.
   */
  private async claim(p: Pending): Promise<LaneFile | undefined> {
    const path = `.tcefs/fd/${p.handle.toString(16)}`;
    if (!p.kind) {
      await open(join(this.mnt, path), 'r+').then(
        (fh) => fh.close(),
        (e) => this.stats.count(this.stats.events, `claim ${errnoName(Math.abs((e as NodeJS.ErrnoException).errno ?? 0))}`),
      );
      return undefined;
    }
    return this.openPath(path, { group: p.group, kind: p.kind });
  }

  async closeAll() {
    for (const f of [...this.files]) await this.closeFile(f);
    // Claim whatever is still pending, so that nothing waits for the claim timeout, and close it.
    for (const p of this.pending.splice(0)) {
      const f = await this.claim(p);
      if (f) await this.closeFile(f);
    }
  }

  // -- frames --

  /** Write a frame the generator built (so it is well-formed) and read the answers; undefined if not run. */
  private async exchange(f: LaneFile, reqs: ClientRequest[]): Promise<Answered[] | undefined> {
    const frame = encodeRequestFrame(reqs, this.rng.chance(0.9) ? this.pids[0] : this.rng.pick([this.pids[1], 0]));
    return this.send(f, frame, this.rng.chance(0.8) ? 0 : this.rng.int(2 ** 20));
  }

  /**
   * One write and the reads after it, checked against the stream model. Returns the answers of a frame
   * that ran, undefined otherwise.
   */
  private async send(f: LaneFile, data: Buffer, offset: number, splitAt?: number): Promise<Answered[] | undefined> {
    this.frames++;
    this.stats.frames++;
    this.stats.count(this.stats.byFile, f.path.startsWith('.tcefs/') ? `claimed ${f.kind}` : f.kind);
    const pieces = splitAt !== undefined && splitAt > 0 && splitAt < data.length ? [data.subarray(0, splitAt), data.subarray(splitAt)] : [data];
    let at = offset;
    for (const piece of pieces) {
      const exact = piece.length <= EXACT_WRITE && !f.stream.unknown;
      const p = exact ? predictWrite(f.stream, piece, at) : undefined;
      let written = 0;
      let errno = 0;
      try {
        written = (await f.fh.write(piece, 0, piece.length, at)).bytesWritten;
      } catch (e) {
        errno = Math.abs((e as NodeJS.ErrnoException).errno ?? 0);
      }
      if (errno) this.stats.count(this.stats.writeErrors, errnoName(errno));
      if (!p) {
        // A large write reaches the daemon in chunks whose size depends on page alignment, so only
        // check that a failure is a frame error; the stream is known again once it resets or answers.
        f.stream.partial = undefined;
        f.stream.unknown = true;
        if (errno && !FRAME_ERRNOS.has(errno) && at < REGION_BASE) this.bad(`write of ${piece.length} bytes failed ${errnoName(errno)}`);
        if (errno) f.stream.unknown = false;
        if (errno || written < piece.length) return this.readAfter(f, 'any');
        at += piece.length;
        continue;
      }
      if (p.kind === 'region') {
        if (errno && !KNOWN_ERRNO(errno)) this.bad(`region write failed with unknown errno ${errno}`);
        return undefined;
      }
      if (p.kind === 'error') {
        if (errno !== p.errno) this.bad(`write of ${piece.length} bytes at ${at}: expected ${errnoName(p.errno)}, got ${errno ? errnoName(errno) : `${written} written`}`);
        return this.readAfter(f, undefined);
      }
      if (p.kind === 'frame' && !p.walk.ok) {
        if (errno !== p.walk.errno) this.bad(`frame of ${p.frame.length} bytes (${p.walk.why}): expected ${errnoName(p.walk.errno)}, got ${errno ? errnoName(errno) : 'accepted'}`);
        return this.readAfter(f, errno ? undefined : 'any');
      }
      if (errno) {
        this.bad(`write of ${piece.length} bytes at ${at} (${p.kind}) failed ${errnoName(errno)}`);
        f.stream.partial = undefined;
        return this.readAfter(f, undefined);
      }
      if (written !== piece.length) this.bad(`short write ${written} of ${piece.length}`);
      if (p.kind === 'frame' && p.walk.ok) return this.readAfter(f, p.walk.records);
      at += piece.length;
    }
    return this.readAfter(f, f.stream.unknown ? 'any' : undefined);
  }

  /** Read what the file holds now: the reply to `records`, nothing (undefined), or either ('any'). */
  private async readAfter(f: LaneFile, records: SentRecord[] | undefined | 'any'): Promise<Answered[] | undefined> {
    const chunks: Buffer[] = [];
    const pos = this.rng.chance(0.9) ? 0 : this.rng.int(2 ** 30);
    for (;;) {
      const b = Buffer.alloc(MAX_WRITE);
      let n: number;
      try {
        n = (await f.fh.read(b, 0, b.length, pos)).bytesRead;
      } catch (e) {
        this.bad(`reply read failed: ${(e as Error).message}`);
        return undefined;
      }
      chunks.push(b.subarray(0, n));
      if (n < b.length) break;
    }
    const reply = Buffer.concat(chunks);
    if (records === undefined) {
      if (reply.length) this.bad(`${reply.length} reply bytes where no frame ran`);
      return undefined;
    }
    if (records === 'any') {
      if (!reply.length) return undefined;
      f.stream.unknown = false;
      // The frame ran (a large one): check the reply against the frame as a whole is not possible here,
      // so check the reply on its own.
      try {
        for (const a of parseReplyFrame(reply)) {
          this.stats.answers++;
          this.stats.count(this.stats.results, a.result >= 0n ? 'ok' : errnoName(Number(-a.result)));
          if (a.result < 0n && !KNOWN_ERRNO(Number(-a.result))) this.bad(`large frame: result ${a.result} is not a known -errno`);
          if (a.newHandle) this.pending.push({ handle: a.newHandle, group: f.group });
        }
      } catch (e) {
        this.bad(`large frame's reply does not parse: ${(e as Error).message}`);
      }
      return undefined;
    }
    if (!reply.length) {
      this.bad(`no reply to an accepted frame of ${records.length} requests`);
      return undefined;
    }
    const answers = checkReply(reply, records, { kind: f.kind, handle: f.handle }, (s) => this.bad(`${f.path}: ${s}`));
    answers.forEach((a, i) => this.learn(f, records[i], a));
    return answers;
  }

  /** Tally an answer and keep what later requests can use: new files, object IDs, addresses. */
  private learn(f: LaneFile, rec: SentRecord, a: Answered) {
    this.stats.answers++;
    this.stats.count(this.stats.results, a.result >= 0n ? 'ok' : errnoName(Number(-a.result)));
    if (rec.op !== Op.IOCTL) return;
    const nr = canonicalNr(rec.request);
    const decls = nr === undefined ? [] : ioctlsFor(f.kind, nr);
    if (a.newHandle) this.pending.push({ handle: a.newHandle, group: f.group, kind: NEW_FILE_KIND[decls.find((d) => d.returnsFd)?.name ?? ''] });
    const name = decls.length === 1 ? decls[0].name : decls.length ? decls.map((d) => d.name).join('|') : 'unknown number';
    const t = (this.stats.ioctls[name] ??= { ok: 0, err: 0 });
    if (a.result >= 0n) t.ok++;
    else t.err++;
    if (decls.length === 1 && HOST_LACKS.has(name)) {
      if (a.result >= 0n) this.bad(`${name} succeeded (${a.result}): a TCE host has no such feature`);
      else if (!HOST_LACKS_ERRNOS.has(Number(-a.result))) this.bad(`${name} failed ${errnoName(Number(-a.result))}, not one of its checks' errnos`);
    }
    if (a.result < 0n) return;
    // A number with several meanings on a container (one per IOMMU backend) teaches what each would.
    for (const decl of decls) if (decl.struct) this.learnRanges(decl, decl.struct, rec, a);
    if (decls.length !== 1 || !decls[0].struct) return;
    const s = decls[0].struct;
    const v = decode(s, Buffer.concat([a.out, rec.argData.subarray(a.out.length), Buffer.alloc(s.size)]).subarray(0, s.size));
    for (const k of ['out_ioas_id', 'out_hwpt_id', 'out_devid', 'pt_id', 'ioas_id']) {
      const x = v[k];
      if (typeof x === 'number' && x && !this.ids.includes(x)) this.ids.push(x);
    }
    for (const k of ['start_addr', 'iova', 'dma32_window_start']) {
      const x = v[k];
      if (x !== undefined && !Array.isArray(x) && !this.iovas.includes(BigInt(x))) this.iovas.push(BigInt(x));
    }
    if (this.ids.length > 48) this.ids.splice(3, this.ids.length - 48);
    if (this.iovas.length > 48) this.iovas.splice(4, this.iovas.length - 48);
  }

  /** Ranges a successful call created: what later calls can unmap, unregister or remove exactly. */
  private learnRanges(decl: IoctlDecl, s: StructLayout, rec: SentRecord, a: Answered) {
    // What the caller holds after the call: the copy-back over its own argument.
    const v = decode(s, Buffer.concat([a.out, rec.argData.subarray(a.out.length), Buffer.alloc(s.size)]).subarray(0, s.size));
    const range = (addr: string, size: string, kind: Range['kind'], ioas?: string) => {
      this.ranges.push({ kind, addr: BigInt(v[addr] as bigint), size: BigInt(v[size] as bigint), ioas: ioas ? Number(v[ioas]) : undefined });
      if (this.ranges.length > 64) this.ranges.splice(0, this.ranges.length - 64);
    };
    switch (decl.name) {
      case 'VFIO_IOMMU_MAP_DMA': return range('iova', 'size', 'iova');
      case 'IOMMU_IOAS_MAP': return range('iova', 'length', 'iova', 'ioas_id');
      case 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY': return range('vaddr', 'size', 'va');
      case 'VFIO_IOMMU_SPAPR_TCE_CREATE': return range('start_addr', 'window_size', 'window');
    }
  }

  // -- values --

  private handleValue(): number {
    const r = this.rng.int(100);
    if (r < 60 && this.files.length) {
      // Containers and iommufds are what fd fields usually name; any file is fair game.
      const want = this.files.filter((f) => f.kind === 'container' || f.kind === 'iommufd');
      return (want.length && this.rng.chance(0.8) ? this.rng.pick(want) : this.rng.pick(this.files)).handle;
    }
    if (r < 68) return HANDLE_NONE;
    if (r < 76) return HANDLE_FOREIGN;
    if (r < 82) return -1;
    if (r < 90 && this.stale.length) return this.rng.pick(this.stale);
    return this.rng.int(0x7fffffff);
  }

  private boundary(t: Scalar): bigint {
    const bits = { u8: 8n, u16: 16n, u32: 32n, s32: 32n, u64: 64n, s64: 64n }[t];
    const max = (1n << bits) - 1n;
    return this.rng.pick([0n, 1n, 2n, max, max - 1n, max >> 1n, (max >> 1n) + 1n, BigInt(this.rng.u32()), this.rng.u64() & max]);
  }

  private pageish(): bigint {
    const shift = BigInt(this.rng.pick([12, 12, 16, 16, 16, 20, 21, 24, 30]));
    return BigInt(this.rng.int(64)) << shift;
  }

  private lengthValue(): bigint {
    return this.rng.weighted<bigint>([
      [6, 1n << BigInt(this.rng.pick([12, 16, 16, 20, 21, 24]))],
      [3, BigInt(1 + this.rng.int(16)) << 16n],
      [2, 1n << BigInt(this.rng.pick([28, 30, 31, 32, 36, 40, 48]))],
      [1, 0n],
      [1, BigInt(1 + this.rng.int(0x2000))],
      [1, U64],
      [1, this.rng.u64()],
    ]);
  }

  private iovaValue(): bigint {
    return this.rng.weighted<bigint>([
      [6, this.rng.pick(this.iovas) + this.pageish()],
      [2, this.rng.pick(this.iovas)],
      [1, this.rng.pick(this.iovas) + BigInt(1 + this.rng.int(0xfff))],
      [1, this.boundary('u64')],
    ]);
  }

  private vaValue(): bigint {
    return this.rng.weighted<bigint>([
      [8, this.vaBase + (BigInt(this.rng.int(4096)) << 16n)],
      [1, this.vaBase + BigInt(this.rng.int(1 << 20))],
      [1, this.boundary('u64')],
    ]);
  }

  /** A value for one struct field, chosen by what its name says it is. */
  private fieldValue(decl: IoctlDecl, f: Field): bigint {
    const t = f.type as Scalar;
    const n = f.name.split('.').pop()!;
    const r = this.rng.int(100);
    if (r < 6) return this.boundary(t);
    if (decl.fdFields?.includes(f.name)) return BigInt(this.handleValue());
    // The client's own fd number, looked up in /proc by the daemon: small numbers name the fuzzer's own files.
    if (decl.clientFds?.includes(f.name)) return BigInt(this.rng.pick([-1, 0, 1, 2, 3, 7, 1000, this.rng.int(64)]));
    if (/^(__reserved|__resv|__reserved2|pad|reserved)/.test(n)) return r < 85 ? 0n : this.boundary(t);
    if (/(^|_)id$/.test(n) || /devid$/.test(n)) return BigInt(r < 80 ? this.rng.pick(this.ids) : this.rng.pick([0, 1, 0xffffffff, this.rng.int(64)]));
    if (n === 'user_va' || n === 'vaddr') return this.vaValue();
    if (/iova|start_addr|^start$|^addr$/.test(n)) return this.iovaValue();
    if (n === 'length' || n === 'window_size' || (n === 'size' && f.size === 8) || n === 'mask') return this.lengthValue();
    if (n === 'page_shift') return BigInt(r < 85 ? this.rng.pick([12, 16, 16, 21, 24, 28, 30]) : this.rng.int(70));
    if (n === 'levels') return BigInt(this.rng.int(7));
    if (n === 'flags') return BigInt(this.rng.weighted([[5, 0], [6, 1 + this.rng.int(7)], [2, 1 << this.rng.int(32)], [1, this.rng.u32()]]));
    if (n === 'num_iovas' || n === 'count' || n === 'nr_iovas') return BigInt(this.rng.weighted([[8, this.rng.int(4)], [1, 16 + this.rng.int(300)], [1, this.rng.u32()]]));
    if (n === 'entry_len') return BigInt(this.rng.weighted([[6, 16 + 8 * this.rng.int(4)], [1, 0], [1, (1 << 16) + 1], [1, this.rng.u32()]]));
    if (n === 'entry_num' || n === 'veventq_depth') return BigInt(this.rng.weighted([[6, this.rng.int(8)], [1, (1 << 19) + 1], [1, this.rng.u32()]]));
    if (n === 'page_size') return this.rng.weighted<bigint>([[6, 1n << BigInt(this.rng.pick([12, 16, 21]))], [1, 0n], [1, BigInt(this.rng.u32())]]);
    if (n === 'data_len') return BigInt(this.rng.weighted([[6, 40], [2, this.rng.int(64)], [1, 0], [1, this.rng.u32()]]));
    if (n === 'data_type' || n === 'in_data_type' || n === 'out_data_type') return BigInt(this.rng.weighted([[5, 0x7ce00001], [4, 0], [1, this.rng.u32()]]));
    if (n === 'data_uptr' || n === 'allowed_iovas' || n === 'token_uuid_ptr') return r < 85 ? this.vaBase + 0x1000n : 0n;
    if (n === 'op') return BigInt(this.rng.int(r < 90 ? 11 : 65536));
    if (n === 'option_id') return BigInt(this.rng.int(4));
    if (n === 'index') return BigInt(this.rng.int(r < 90 ? 10 : 1 << 16));
    if (n === 'val64') return BigInt(this.rng.pick([0, 1, 2, this.rng.u32()]));
    if (n === 'type' || n === 'func') return BigInt(this.rng.int(8));
    return this.boundary(t);
  }

  /**
   * Calls that name an existing range (unmap what was mapped, unregister what was registered, remove a
   * window, map registered memory into a window) rarely get one by chance: give them one.
   */
  private coherent(decl: IoctlDecl, s: StructLayout, buf: Buffer) {
    const of = (kind: Range['kind']) => {
      const c = this.ranges.filter((r) => r.kind === kind);
      return c.length ? this.rng.pick(c) : undefined;
    };
    const put = (field: string, v: bigint) => {
      const f = s.byName.get(field);
      if (f) writeScalar(buf, f.type as Scalar, f.offset, v);
    };
    const whole = this.rng.chance(0.7);
    switch (decl.name) {
      case 'VFIO_IOMMU_UNMAP_DMA':
      case 'IOMMU_IOAS_UNMAP':
      case 'IOMMU_IOAS_COPY': {
        const r = of('iova');
        if (!r) return;
        const [a, l] = decl.name === 'VFIO_IOMMU_UNMAP_DMA' ? ['iova', 'size'] : decl.name === 'IOMMU_IOAS_UNMAP' ? ['iova', 'length'] : ['src_iova', 'length'];
        put(a, r.addr);
        put(l, whole ? r.size : r.size / 2n);
        if (r.ioas !== undefined) put(decl.name === 'IOMMU_IOAS_COPY' ? 'src_ioas_id' : 'ioas_id', BigInt(r.ioas));
        if (decl.name === 'IOMMU_IOAS_COPY') put('dst_iova', this.iovaValue());
        return;
      }
      case 'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY':
      case 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY': {
        const r = of('va');
        if (!r) return;
        put('vaddr', r.addr);
        put('size', whole ? r.size : r.size * 2n);
        return;
      }
      case 'VFIO_IOMMU_SPAPR_TCE_REMOVE': {
        const r = of('window');
        if (r) put('start_addr', r.addr);
        return;
      }
      case 'VFIO_IOMMU_MAP_DMA':
      case 'IOMMU_IOAS_MAP': {
        const w = of('window');
        const va = of('va');
        const page = 1n << BigInt(this.rng.pick([12, 16]));
        const n = BigInt(1 + this.rng.int(16));
        if (va) put(decl.name === 'IOMMU_IOAS_MAP' ? 'user_va' : 'vaddr', va.addr + page * BigInt(this.rng.int(64)));
        if (w) put('iova', w.addr + page * BigInt(this.rng.int(1024)));
        put(decl.name === 'IOMMU_IOAS_MAP' ? 'length' : 'size', page * n);
        if (decl.name === 'IOMMU_IOAS_MAP') put('flags', BigInt(this.rng.pick([7, 5, 3, 6])));
        else put('flags', BigInt(this.rng.pick([3, 1, 2])));
        return;
      }
    }
  }

  /** The data behind an 'in' pointer: what the kernel would read there. */
  private pointerData(decl: IoctlDecl, field: string, want: number): Buffer {
    if (want > 1 << 16) want = this.rng.int(1 << 16);
    if (field === 'allowed_iovas') {
      const b = Buffer.alloc(want);
      for (let o = 0; o + 16 <= want; o += 16) {
        const start = this.iovaValue() & ~0xfffn;
        const last = this.rng.chance(0.9) ? start + this.lengthValue() - 1n : this.rng.u64();
        writeScalar(b, 'u64', o, start);
        writeScalar(b, 'u64', o + 8, last & U64);
      }
      return b;
    }
    if (field === 'data_uptr' && decl.name === 'IOMMU_HWPT_ALLOC' && this.rng.chance(0.8)) {
      const w = (slot: number) => (this.rng.chance(slot ? 0.5 : 0.9)
        ? { page_shift: this.rng.pick([12, 16, 16, 21, 24]), levels: 1 + this.rng.int(3), window_size: 1n << BigInt(this.rng.pick([24, 28, 30, 31, 32, 40])) }
        : { page_shift: 0, levels: 0, window_size: 0n });
      const a = w(0);
      const b = w(1);
      const data = encode(iommu_hwpt_spapr_tce, {
        flags: this.rng.chance(0.95) ? 0 : 1,
        'window0.page_shift': a.page_shift, 'window0.levels': a.levels, 'window0.window_size': a.window_size,
        'window1.page_shift': b.page_shift, 'window1.levels': b.levels, 'window1.window_size': b.window_size,
      });
      return want <= data.length ? data.subarray(0, want) : Buffer.concat([data, Buffer.alloc(want - data.length)]);
    }
    return this.rng.bytes(want);
  }

  /** One request for an ioctl: the argument built from its declared struct, its blobs and fd fields. */
  private ioctlRequest(decl: IoctlDecl): ClientRequest {
    const request = requestValue(decl.nr, this.rng.chance(0.15) ? 'powerpc' : 'generic');
    switch (decl.arg) {
      case 'none':
        return { request, argData: this.rng.chance(0.05) ? this.rng.bytes(this.rng.int(16)) : Buffer.alloc(0) };
      case 'value':
        return { request, arg: this.rng.weighted<bigint>([[5, BigInt(this.rng.pick([7, 7, 2, 3, 1, 5, 9]))], [3, BigInt(this.rng.int(12))], [1, BigInt(this.rng.u32())], [1, this.rng.u64()]]) };
      case 'fdptr': {
        const b = Buffer.alloc(this.rng.chance(0.9) ? 4 : this.rng.int(8));
        if (b.length >= 4) b.writeInt32LE(this.handleValue());
        return { request, argData: b };
      }
      case 'u32ptr':
        return { request, argData: this.rng.bytes(this.rng.chance(0.9) ? 4 : this.rng.int(8)) };
      case 'string': {
        const bdfs = this.groups.flatMap((g) => g.bdfs);
        const name = this.rng.weighted<string>([[8, this.rng.pick(bdfs)], [1, `${this.rng.pick(bdfs)} vf_token=00000000-0000-0000-0000-000000000000`], [1, 'ffff:ff:1f.7'], [1, this.rng.bytes(this.rng.int(40)).toString('latin1')]]);
        const r = this.rng.int(100);
        const argData = r < 90 ? Buffer.from(name + '\0', 'latin1') : r < 95 ? Buffer.from(name, 'latin1') : Buffer.alloc(4097 + this.rng.int(100), 0x41);
        return { request, argData };
      }
      case 'argsz':
      case 'size':
        return { request, ...this.structArg(decl) };
    }
  }

  private structArg(decl: IoctlDecl): { argData: Buffer; blobs: Blob[] } {
    const s: StructLayout | undefined = decl.struct;
    const minsz = decl.minsz ?? s?.size ?? 8;
    const full = s?.size ?? minsz;
    const buf = s ? Buffer.alloc(s.size) : this.rng.bytes(minsz);
    if (s) for (const f of s.fields) if (typeof f.type === 'string' && f.count === 1 && f.offset > 0) writeScalar(buf, f.type, f.offset, this.fieldValue(decl, f));
    if (s && this.rng.chance(0.4)) this.coherent(decl, s, buf);
    const size = this.rng.weighted<number>([[14, full], [2, minsz], [1, Math.max(0, minsz - 1 - this.rng.int(4))], [2, full + 8 * (1 + this.rng.int(4))], [1, 0], [1, this.rng.u32()]]);
    const lead = Buffer.alloc(4);
    lead.writeUInt32LE(size >>> 0);
    const r = this.rng.int(100);
    // What the caller makes readable: the declared size (as libtcefs sends), the struct whatever size says, or anything.
    let len = r < 75 ? Math.min(size, full + 64) : r < 90 ? full : this.rng.int(full + 17);
    const tailJunk = this.rng.chance(0.15);
    let argData = Buffer.concat([buf, tailJunk ? this.rng.bytes(Math.max(0, len - full)) : Buffer.alloc(Math.max(0, len - full))]).subarray(0, len);
    if (len >= 4) lead.copy(argData, 0);
    // Flexible arrays: hot reset takes group fds (handles) after the struct; the others take bytes.
    if (s && s.fields.some((f) => f.count === 0) && this.rng.chance(0.5)) {
      const n = this.rng.int(4);
      const extra = Buffer.alloc(n * 4);
      for (let i = 0; i < n; i++) extra.writeInt32LE(decl.name === 'VFIO_DEVICE_PCI_HOT_RESET' ? this.handleValue() : this.rng.u32() | 0, i * 4);
      argData = Buffer.concat([argData, extra]);
      len = argData.length;
      if (len >= 4 && this.rng.chance(0.7)) argData.writeUInt32LE(len, 0);
    }
    const blobs: Blob[] = [];
    for (const p of decl.pointers ?? []) {
      if (p.dir !== 'in' || !s) continue;
      const off = s.byName.get(p.field)!.offset;
      const image = Buffer.concat([argData, Buffer.alloc(Math.max(0, full - argData.length))]);
      const want = pointerLength(p, (fname) => readScalar(image, s.byName.get(fname)!.type as Scalar, s.byName.get(fname)!.offset) as number | bigint);
      const r2 = this.rng.int(100);
      if (r2 < 80) blobs.push({ fieldOffset: off, data: this.pointerData(decl, p.field, Math.max(0, Math.min(want, 1 << 20))) });
      else if (r2 < 88) blobs.push({ fieldOffset: off, data: this.pointerData(decl, p.field, Math.max(0, Math.min(want, 1 << 20) - 1 - this.rng.int(8))) });
      else if (r2 < 94) blobs.push({ fieldOffset: this.rng.int(full + 8), data: this.rng.bytes(this.rng.int(64)) });
    }
    return { argData, blobs };
  }

  /** A request of any op for this file: mostly the ioctls its kind declares. */
  private anyRequest(f: LaneFile): ClientRequest {
    const r = this.rng.int(100);
    if (r < 4) return { op: Op.HANDLE };
    if (r < 8) return { op: Op.REGION_READ, request: this.rng.pick([0, 1, 2, 4, 8, 64, 256, 4096, 1 << 16, this.rng.u32()]), arg: this.regionOffset() };
    if (r < 12) return { op: Op.REGION_WRITE, arg: this.regionOffset(), argData: this.rng.bytes(this.rng.pick([1, 2, 4, 8, this.rng.int(300)])) };
    if (r < 16) return { request: this.rng.chance(0.5) ? this.rng.u32() : (0x3b00 | this.rng.int(256)) | (this.rng.chance(0.3) ? 0xc0080000 : 0), argData: this.rng.bytes(this.rng.int(48)) };
    if (r < 18) return { op: Op.POLL };
    // An event queue's read and write: mostly at offset 0, in whole records or not, responses to cookies it may have handed out.
    if ((f.kind === 'fault' || f.kind === 'veventq') && r < 50) {
      const arg = this.rng.chance(0.9) ? 0n : BigInt(this.rng.int(64));
      if (this.rng.chance(0.5)) return { op: Op.REGION_READ, request: this.rng.pick([0, 8, 39, 40, 80, 400, 4096, this.rng.int(200)]), arg };
      const n = this.rng.pick([0, 1, 2, 5]);
      const responses = Buffer.alloc(n * 8 + (this.rng.chance(0.1) ? 3 : 0));
      for (let k = 0; k < n; k++) responses.writeUInt32LE(this.rng.int(4), k * 8), responses.writeUInt32LE(this.rng.pick([0, 1, 2, this.rng.u32()]), k * 8 + 4);
      return { op: Op.REGION_WRITE, arg, argData: responses };
    }
    const own = IOCTLS.filter((d) => d.kinds.includes(f.kind));
    return this.ioctlRequest(r < 90 && own.length ? this.rng.pick(own) : this.rng.pick(IOCTLS));
  }

  private regionOffset(): bigint {
    return this.rng.weighted<bigint>([
      [4, (7n << 40n) + BigInt(this.rng.int(300))],
      [2, regionEdge(this.rng)],
      [3, (BigInt(this.rng.int(10)) << 40n) + BigInt(this.rng.int(0x11000))],
      [2, BigInt(this.rng.int(0x1000))],
      [1, this.rng.u64()],
    ]);
  }

  private batch(f: LaneFile): ClientRequest[] {
    const n = this.rng.weighted([[70, 1], [25, 2 + this.rng.int(7)], [4, 10 + this.rng.int(100)], [1, 1000 + this.rng.int(5000)]]);
    return Array.from({ length: n }, () => this.anyRequest(f));
  }

  private async frameStep() {
    const f = this.rng.pick(this.files);
    const r = this.rng.int(100);
    // A frame being assembled: finish it (continuation at the right offset) or break it.
    if (f.stream.partial && r < 50) {
      const p = f.stream.partial;
      const rest = p.expected - p.received;
      const data = this.rng.chance(0.7) ? this.rng.bytes(Math.min(rest, EXACT_WRITE)) : this.rng.bytes(1 + this.rng.int(64));
      await this.send(f, data, this.rng.chance(0.9) ? p.nextOffset : 0);
      return;
    }
    if (r < 8) {
      // Random bytes, sometimes behind a plausible header.
      let data = this.rng.bytes(this.rng.pick([0, 1, 8, 15, 16, 24, 40, 64, 200, 1000]));
      if (data.length >= 16 && this.rng.chance(0.5)) {
        data.writeUInt32LE(REQUEST_MAGIC, 0);
        data.writeUInt16LE(this.rng.chance(0.8) ? 1 : this.rng.int(4), 4);
        if (this.rng.chance(0.6)) data.writeUInt32LE(this.rng.chance(0.7) ? data.length : this.rng.int(data.length * 2 + 17), 8);
      }
      if (data.length === 0) data = Buffer.alloc(16);
      await this.send(f, data, this.rng.chance(0.8) ? 0 : this.rng.int(4096));
      return;
    }
    const frame = encodeRequestFrame(this.batch(f), this.rng.chance(0.9) ? this.pids[0] : this.rng.pick([this.pids[1], 0]));
    if (r < 45) {
      await this.send(f, this.mutate(frame), this.rng.chance(0.8) ? 0 : this.rng.int(2 ** 20));
      return;
    }
    if (r < 50 && frame.length > 16) {
      // One frame in two writes at consecutive offsets, as FUSE delivers a large write.
      await this.send(f, frame, 0, 1 + this.rng.int(frame.length - 1));
      return;
    }
    await this.send(f, frame, this.rng.chance(0.8) ? 0 : this.rng.int(2 ** 30));
  }

  /** Damage a well-formed frame: bits, header fields, record fields, truncation, extension, duplication. */
  mutate(frame: Buffer): Buffer {
    let b = Buffer.from(frame);
    const records: number[] = [];
    for (let at = 16; at + 24 <= b.length && b.readUInt32LE(at) >= 24; at += b.readUInt32LE(at)) records.push(at);
    for (let m = 1 + this.rng.int(3); m > 0; m--) {
      const rec = records.length ? this.rng.pick(records) : 16;
      const what = this.rng.int(12);
      // After a truncation some fields are gone: such a mutation is skipped.
      if (b.length < 16 && what >= 2) continue;
      try {
      switch (what) {
        case 0: {
          const i = this.rng.int(b.length);
          b[i] ^= 1 << this.rng.int(8);
          break;
        }
        case 1:
          b[this.rng.int(b.length)] = this.rng.u32() & 0xff;
          break;
        case 2:
          b.writeUInt16LE(this.rng.pick([0, b.readUInt16LE(6) + 1, Math.max(0, b.readUInt16LE(6) - 1), this.rng.int(65536)]), 6);
          break;
        case 3:
          b.writeUInt32LE(this.rng.pick([b.length + 8, b.length - 8, b.length + 1, 0, 15, MAX_FRAME + 1, this.rng.u32()]) >>> 0, 8);
          break;
        case 4:
          b.writeUInt16LE(this.rng.pick([0, 2, 0x100]), 4);
          break;
        case 5:
          if (rec + 4 <= b.length) b.writeUInt32LE(this.rng.pick([0, 8, 16, 24, b.readUInt32LE(rec) + 8, b.readUInt32LE(rec) - 8, b.readUInt32LE(rec) + 4, this.rng.u32()]) >>> 0, rec);
          break;
        case 6:
          if (rec + 6 <= b.length) b.writeUInt16LE(this.rng.pick([0, 5, 6, 0xffff, this.rng.int(8)]), rec + 4);
          break;
        case 7:
          if (rec + 8 <= b.length) b.writeUInt16LE(this.rng.pick([b.readUInt16LE(rec + 6) + 1, 0, this.rng.int(65536)]), rec + 6);
          break;
        case 8:
          if (rec + 16 <= b.length) b.writeUInt32LE(this.rng.pick([b.readUInt32LE(rec + 12) + 1, b.readUInt32LE(rec + 12) + 8, 0, 0xffffffff, this.rng.u32()]) >>> 0, rec + 12);
          break;
        case 9:
          b = Buffer.from(b.subarray(0, this.rng.int(b.length)));
          if (this.rng.chance(0.5) && b.length >= 12) b.writeUInt32LE(b.length, 8);
          break;
        case 10:
          b = Buffer.concat([b, this.rng.bytes(8 * (1 + this.rng.int(4)))]);
          if (this.rng.chance(0.5)) b.writeUInt32LE(b.length, 8);
          break;
        case 11: {
          // Duplicate a whole record and account for it: structurally valid, semantically a batch.
          if (!records.length) break;
          const len = b.readUInt32LE(rec);
          if (rec + len > b.length || len < 24) break;
          b = Buffer.concat([b, b.subarray(rec, rec + len)]);
          b.writeUInt16LE((b.readUInt16LE(6) + 1) & 0xffff, 6);
          b.writeUInt32LE(b.length, 8);
          break;
        }
      }
      } catch (e) {
        // A field the earlier mutations cut off: skip this one.
        if (!(e instanceof RangeError)) throw e;
      }
    }
    return b.length ? b : Buffer.alloc(1);
  }

  // -- region I/O outside frames: pread/pwrite at index << 40 on device files --

  private async regionIo() {
    const devs = this.files.filter((f) => f.kind === 'device');
    if (!devs.length || this.rng.chance(0.3)) return this.frameStep();
    const f = this.rng.pick(devs);
    const pos = Number(this.rng.weighted<bigint>([[5, (7n << 40n) + BigInt(this.rng.int(300))], [3, regionEdge(this.rng)], [3, (BigInt(this.rng.int(10)) << 40n) + BigInt(this.rng.int(0x11000))], [1, BigInt(2 ** 52)]]));
    const len = this.rng.pick([1, 2, 3, 4, 5, 7, 8, 64, 4096]);
    // A frame in progress takes any write, so region I/O waits until the stream is clean.
    if (f.stream.partial) return this.frameStep();
    try {
      if (this.rng.chance(0.5)) await f.fh.read(Buffer.alloc(len), 0, len, pos);
      else await f.fh.write(this.rng.bytes(len), 0, len, pos);
      this.stats.count(this.stats.events, 'region io');
    } catch (e) {
      const errno = Math.abs((e as NodeJS.ErrnoException).errno ?? 0);
      this.stats.count(this.stats.events, `region io ${errnoName(errno)}`);
      if (!KNOWN_ERRNO(errno)) this.bad(`region I/O failed: ${(e as Error).message}`);
    }
  }

  // -- control node: unplug/plug of the lane's own devices, EEH freezes, fault injection --

  private async control() {
    const bdfs = this.groups.flatMap((g) => g.bdfs);
    const r = this.rng.int(100);
    let line: string;
    if (this.removed.length && r < 60) line = `device add ${this.removed.splice(this.rng.int(this.removed.length), 1)[0]}`;
    else if (r < 70) {
      const bdf = this.rng.pick(bdfs);
      if (!this.removed.includes(bdf)) this.removed.push(bdf);
      line = `device remove ${bdf}`;
    } else if (r < 80 || !this.opts.faults) line = `eeh freeze ${this.rng.pick(this.groups).id}`;
    else line = this.rng.chance(0.2) ? 'fail off' : `fail ${this.rng.pick(['alloc', 'pin', 'any'])} ${1 + this.rng.int(30)}`;
    try {
      await writeFile(join(this.mnt, '.tcefs/control'), line + '\n');
      this.stats.count(this.stats.events, `control ${line.split(' ')[0]} ${line.split(' ')[1]}`);
    } catch (e) {
      const errno = Math.abs((e as NodeJS.ErrnoException).errno ?? 0);
      this.stats.count(this.stats.events, `control ${line.split(' ').slice(0, 2).join(' ')} ${errnoName(errno)}`);
    }
  }

  /** Put back every device this lane unplugged. */
  async replug() {
    for (const bdf of this.removed.splice(0)) await writeFile(join(this.mnt, '.tcefs/control'), `device add ${bdf}\n`).catch(() => undefined);
  }

  // -- well-formed setup sequences, so random frames meet windows, maps and bound devices --

  /** An open file of this node: one the lane has (a fresh one now and then for containers), or a new open. */
  private async ensure(path: string): Promise<LaneFile | undefined> {
    const shared = path === 'dev/iommu' || path === 'dev/vfio/vfio';
    const existing = this.files.filter((f) => f.path === path);
    if (existing.length && (!shared || this.rng.chance(0.7))) return this.rng.pick(existing);
    if (!this.nodesOpenable().includes(path)) return undefined;
    return this.openPath(path);
  }

  private req(name: string, fields: Record<string, bigint | number> = {}, blobs: Blob[] = []): ClientRequest {
    const d = IOCTLS.find((x) => x.name === name)!;
    const s = d.struct!;
    return { request: requestValue(d.nr), argData: encode(s, { [d.arg === 'size' ? 'size' : 'argsz']: s.size, ...fields }), blobs };
  }

  private async call(f: LaneFile, reqs: ClientRequest[]): Promise<Answered[]> {
    return (await this.exchange(f, reqs)) ?? [];
  }

  private async macro() {
    const g = this.rng.pick(this.groups);
    const which = this.rng.int(3);
    const va = this.vaBase + (BigInt(this.rng.int(64)) << 24n);
    // Room for the files a sequence opens, and its group free of the other path's files: the setup
    // sequences are there to succeed.
    while (this.files.length > MAX_FILES - 3) await this.closeFile(this.rng.pick(this.files));
    for (const f of this.files.filter((x) => x.group === g.id && (which === 1 ? x.kind === 'group' || x.kind === 'device' : x.kind === 'device'))) await this.closeFile(f);
    // Device files from the group path (claimed or not) keep the group in its container.
    for (const p of this.pending.filter((x) => x.group === g.id)) {
      this.pending.splice(this.pending.indexOf(p), 1);
      const f = await this.claim(p);
      if (f) await this.closeFile(f);
    }
    if (which === 0) {
      // The legacy SPAPR container: SET_CONTAINER, SET_IOMMU, REGISTER, CREATE, MAP, GET_DEVICE_FD.
      const group = await this.ensure(`dev/vfio/${g.id}`);
      const c = this.files.length < MAX_FILES ? await this.openPath('dev/vfio/vfio') : undefined;
      this.stats.count(this.stats.events, `macro spapr ${!group ? 'no group' : !c ? 'no container' : 'ran'}`);
      if (!group || !c) return;
      const set = Buffer.alloc(4);
      set.writeInt32LE(c.handle);
      // A group still in an earlier container leaves it first (this fails while its devices are open).
      if ((await this.call(group, [{ request: requestValue(104), argData: set }]))[0]?.result !== 0n) {
        await this.call(group, [{ request: requestValue(105) }, { request: requestValue(104), argData: set }]);
      }
      const v2 = this.rng.chance(0.7);
      await this.call(c, [{ request: requestValue(102), arg: v2 ? 7n : 2n }]);
      if (v2) await this.call(c, [this.req('VFIO_IOMMU_SPAPR_REGISTER_MEMORY', { vaddr: va, size: 1n << 24n })]);
      else await this.call(c, [{ request: requestValue(115) }]);
      const created = await this.call(c, [this.req('VFIO_IOMMU_SPAPR_TCE_CREATE', { page_shift: this.rng.pick([12, 16]), window_size: 1n << BigInt(this.rng.pick([28, 30, 32])), levels: 1 + this.rng.int(2) })]);
      const out = created[0]?.result === 0n && created[0].out.length >= 40 ? created[0].out.readBigUInt64LE(32) : 0n;
      if (out && !this.iovas.includes(out)) this.iovas.push(out);
      const maps = Array.from({ length: 1 + this.rng.int(6) }, (_, i) =>
        this.req('VFIO_IOMMU_MAP_DMA', { flags: 3, vaddr: va + BigInt(i) * 0x10000n, iova: (out || this.rng.pick([0n, 1n << 59n])) + BigInt(i) * 0x10000n, size: 0x10000n }));
      await this.call(c, maps);
      if (this.rng.chance(0.6)) await this.call(group, [{ request: requestValue(106), argData: Buffer.from(this.rng.pick(g.bdfs) + '\0') }]);
    } else if (which === 1) {
      // iommufd and a cdev: BIND, IOAS_ALLOC, ATTACH, MAP (sometimes a domain with two windows first).
      const bdf = this.rng.pick(g.bdfs);
      const dev = await this.ensure(`dev/vfio/devices/${g.cdevs.get(bdf)}`);
      const i = await this.ensure('dev/iommu');
      if (!dev || !i) return;
      const bound = await this.call(dev, [this.req('VFIO_DEVICE_BIND_IOMMUFD', { iommufd: i.handle })]);
      const devid = bound[0]?.result === 0n && bound[0].out.length >= 16 ? bound[0].out.readUInt32LE(12) : this.rng.pick(this.ids);
      const alloc = await this.call(i, [this.req('IOMMU_IOAS_ALLOC')]);
      const ioas = alloc[0]?.result === 0n && alloc[0].out.length >= 12 ? alloc[0].out.readUInt32LE(8) : this.rng.pick(this.ids);
      let pt = ioas;
      if (this.rng.chance(0.4)) {
        const data = encode(iommu_hwpt_spapr_tce, { 'window0.page_shift': 12, 'window0.levels': 1, 'window0.window_size': 1n << 30n, 'window1.page_shift': 16, 'window1.levels': 2, 'window1.window_size': 1n << 32n });
        const h = await this.call(i, [this.req('IOMMU_HWPT_ALLOC', { dev_id: devid, pt_id: ioas, data_type: 0x7ce00001, data_len: data.length, data_uptr: va }, [{ fieldOffset: 32, data }])]);
        if (h[0]?.result === 0n && h[0].out.length >= 20) pt = h[0].out.readUInt32LE(16);
      }
      await this.call(dev, [this.req('VFIO_DEVICE_ATTACH_IOMMUFD_PT', { pt_id: pt })]);
      const maps = Array.from({ length: 1 + this.rng.int(6) }, (_, k) =>
        this.req('IOMMU_IOAS_MAP', { flags: this.rng.pick([7, 5, 6, 4]), ioas_id: ioas, user_va: va + BigInt(k) * 0x10000n, length: 0x10000n, iova: BigInt(k) * 0x10000n + this.pageish() }));
      await this.call(i, maps);
    } else {
      // A group in an iommufd: compat type1v2 or type1 (which cuts mappings on unmap) over the compat
      // IOAS, or the SPAPR v2 extension.
      const group = await this.ensure(`dev/vfio/${g.id}`);
      const i = await this.ensure('dev/iommu');
      if (!group || !i) return;
      const set = Buffer.alloc(4);
      set.writeInt32LE(i.handle);
      await this.call(group, [{ request: requestValue(104), argData: set }]);
      const spapr = this.rng.chance(0.5);
      await this.call(i, [{ request: requestValue(102), arg: spapr ? 7n : this.rng.pick([3n, 1n]) }]);
      if (spapr) {
        await this.call(i, [this.req('VFIO_IOMMU_SPAPR_REGISTER_MEMORY', { vaddr: va, size: 1n << 24n })]);
        await this.call(i, [this.req('VFIO_IOMMU_MAP_DMA', { flags: 3, vaddr: va, iova: 0x10000n * BigInt(this.rng.int(16)), size: 0x10000n })]);
      } else {
        const iova = 0x10000n * BigInt(this.rng.int(16));
        await this.call(i, [this.req('VFIO_IOMMU_MAP_DMA', { flags: 3, vaddr: va, iova, size: 0x40000n })]);
        if (this.rng.chance(0.5)) await this.call(i, [this.req('VFIO_IOMMU_UNMAP_DMA', { iova: iova + 0x10000n, size: this.rng.pick([0x10000n, 0x1000n, 0x20000n]) })]);
      }
      if (this.rng.chance(0.7)) await this.call(group, [{ request: requestValue(106), argData: Buffer.from(this.rng.pick(g.bdfs) + '\0') }]);
    }
  }
}

// ---- the run ---------------------------------------------------------------------------------------

/** Internal errors the daemon logged (DEBUG=tcefs:error), one entry per report. */
function internalErrors(stderr: string): string[] {
  return stderr.split(/\n(?=\S)/).filter((s) => /tcefs:error/.test(s)).map((s) => s.trim().slice(0, 2000));
}

/** A daemon is alive if it still runs and a fresh open answers a frame. */
async function alive(d: RunningDaemon): Promise<boolean> {
  if (d.proc.exitCode !== null || d.proc.signalCode !== null) return false;
  try {
    const fh = await open(join(d.mnt, 'dev/vfio/vfio'), 'r+');
    try {
      const frame = encodeRequestFrame([{ request: 0x3b64 }]);
      await fh.write(frame, 0, frame.length, 0);
      const b = Buffer.alloc(4096);
      const { bytesRead } = await fh.read(b, 0, b.length, 0);
      return parseReplyFrame(b.subarray(0, bytesRead))[0]?.result === 0n;
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const lanes = opts.lanes ?? 4;
  const log = opts.log ?? (() => undefined);
  const d = await startDaemon({ topology: fuzzTopology(lanes, opts.flavour ?? 'powernv', opts.pageShift), env: { DEBUG: 'tcefs:error' }, args: opts.selftest ? ['--selftest'] : [] });
  const stats = new Stats();
  const t0 = Date.now();
  let report: FuzzReport;
  try {
    const boot: Views = await readViews(d.mnt);
    const groups = await discoverGroups(d.mnt);
    const deadline = t0 + opts.seconds * 1000;
    const quota = Math.ceil(opts.frames / lanes);
    const ls = Array.from({ length: lanes }, (_, i) => new Lane(i, opts.seed, d.mnt, groups.filter((g) => g.id === 2 * i || g.id === 2 * i + 1), quota, deadline, stats, opts));
    const progress = setInterval(() => log(`fuzz: ${stats.frames} frames, ${stats.answers} answers, ${stats.violations.length} violations, ${((Date.now() - t0) / 1000).toFixed(0)} s`), 5000);
    try {
      await Promise.all(ls.map((l) => l.run()));
    } finally {
      clearInterval(progress);
    }
    const seconds = (Date.now() - t0) / 1000;
    const isAlive = await alive(d);
    // Close everything, undo the machine changes, then the views must match boot.
    for (const l of ls) await l.closeAll();
    for (const l of ls) await l.replug();
    if (opts.faults) await writeFile(join(d.mnt, '.tcefs/control'), 'fail off\n').catch(() => undefined);
    // Frozen PEs are the machine's state (the lanes inject errors and freeze PEs on purpose), not a
    // client's leftovers: they are reported as notes, and everything else must be as it booted.
    const leaks = await waitForClean(d.mnt, boot, 10_000, { ignoreEeh: true });
    const notes = leakProblems(boot, await readViews(d.mnt)).filter((s) => !leaks.includes(s));
    report = {
      seed: opts.seed, lanes, frames: stats.frames, byFile: stats.byFile, seconds,
      answers: stats.answers, results: stats.results, writeErrors: stats.writeErrors, ioctls: stats.ioctls, events: stats.events,
      violations: stats.violations, internalErrors: internalErrors(d.stderr()), leaks, notes, alive: isAlive && (await alive(d)),
    };
  } catch (e) {
    // Whatever broke the run, the daemon's last words are the first thing to read.
    const tail = d.stderr().slice(-4000);
    throw new Error(`${(e as Error).stack}\n--- daemon stderr (exit ${d.proc.exitCode ?? d.proc.signalCode ?? 'none'}) ---\n${tail}`);
  } finally {
    await d.stop();
  }
  return report;
}

export function formatReport(r: FuzzReport): string {
  const sorted = (m: Record<string, number>) => Object.entries(m).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
  const lines = [
    `tcefs fuzz: seed ${r.seed}, ${r.lanes} lanes: ${r.frames} frames in ${r.seconds.toFixed(1)} s (${Math.round(r.frames / r.seconds)}/s), ${r.answers} answers`,
    `  frames by file: ${sorted(r.byFile)}`,
    `  results: ${sorted(r.results)}`,
    `  write() errors: ${sorted(r.writeErrors) || 'none'}`,
    `  events: ${sorted(r.events)}`,
    '  ioctls (ok/failed):',
    ...Object.entries(r.ioctls).sort().map(([k, v]) => `    ${k.padEnd(40)} ${String(v.ok).padStart(7)} ${String(v.err).padStart(7)}`),
    `  daemon alive: ${r.alive ? 'yes' : 'NO'}`,
    `  leaks after close: ${r.leaks.length ? '\n    ' + r.leaks.join('\n    ') : 'none'}`,
    `  notes: ${r.notes.length ? '\n    ' + r.notes.join('\n    ') : 'none'}`,
    `  internal errors: ${r.internalErrors.length ? '\n    ' + r.internalErrors.slice(0, 10).join('\n    ') : 'none'}`,
    `  violations: ${r.violations.length ? '\n    ' + r.violations.slice(0, 50).join('\n    ') : 'none'}`,
  ];
  return lines.join('\n');
}

export function fuzzPassed(r: FuzzReport): boolean {
  return r.alive && r.violations.length === 0 && r.internalErrors.length === 0 && r.leaks.length === 0;
}

async function main() {
  const { values } = parseArgs({
    options: {
      frames: { type: 'string', default: '100000' },
      seconds: { type: 'string', default: '600' },
      seed: { type: 'string', default: '1' },
      lanes: { type: 'string', default: '4' },
      flavour: { type: 'string', default: 'powernv' },
      'page-size': { type: 'string', default: '64K' },
      faults: { type: 'boolean', default: false },
      selftest: { type: 'boolean', default: false },
      'known-bugs': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const flavour = values.flavour === 'pseries' ? 'pseries' : 'powernv';
  const r = await runFuzz({
    frames: Number(values.frames), seconds: Number(values.seconds), seed: Number(values.seed), lanes: Number(values.lanes),
    flavour, pageShift: values['page-size'] === '4K' ? 12 : 16, faults: values.faults, selftest: values.selftest, knownBugs: values['known-bugs'], log: (s) => process.stderr.write(s + '\n'),
  });
  console.log(values.json ? JSON.stringify(r, null, 2) : formatReport(r));
  process.exitCode = fuzzPassed(r) ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
