// Run the requests of a frame against the file it was written to, in order, one answer each.
// Dispatch is by file kind: the file's command table decides what a number means.
import createDebug from 'debug';
import { EINVAL, EIO, ENOMEM, ENOTTY, EOPNOTSUPP, ERANGE, Errno, errnoName } from '../errno.ts';
import type { FaultInjector } from '../tce/faults.ts';
import { canonicalNr, FILE_KIND_BIT } from '../uapi/ioctls.ts';
import { decode } from '../uapi/layout.ts';
import { Op, type Answer, type Blob, type Request, type RequestFrame, MAX_FRAME } from '../transport/frame.ts';
import { IoctlCall } from './call.ts';
import type { OpenFile } from './open-file.ts';
import { now, perf } from '../perf.ts';

const trace = createDebug('tcefs:ioctl');
const warn = createDebug('tcefs:error');

const EMPTY: Buffer = Buffer.alloc(0);

// Built field by field rather than by spreading a partial answer: this runs once per request.
export function answer(req: Request, result: bigint, out: Buffer = EMPTY, blobs: Blob[] = [], newHandle = 0, handleField = 0): Answer {
  return { op: req.op, request: req.request, result, out, blobs, newHandle, handleField };
}

/**
 * Most reply bytes one frame may produce. A batch of requests that each copy out a lot would otherwise
 * make the daemon build an unbounded reply; answers past the budget fail ENOMEM with nothing copied out.
 */
export const MAX_REPLY = 2 * MAX_FRAME;

/**
 * Run a frame's requests in order. `faults` is the injector whose fail-nth a FAIL_NTH request sets for
 * the requests after it; without one (or for a counter past 32 bits) that request fails and the others
 * run without injection.
 */
export function runFrame(file: OpenFile, frame: RequestFrame, faults?: FaultInjector): Answer[] {
  let budget = MAX_REPLY;
  const answers: Answer[] = [];
  const run = (r: Request): Answer => {
    const a = runRequest(file, r, frame.pid);
    let bytes = a.out.length;
    for (const b of a.blobs) bytes += b.data.length;
    budget -= bytes;
    if (budget >= 0) return a;
    warn('reply budget of %d bytes exceeded by %s', MAX_REPLY, file);
    return { ...a, result: BigInt(-ENOMEM), out: Buffer.alloc(0), blobs: [], newHandle: 0, handleField: 0 };
  };
  const requests = frame.requests;
  if (!faults || !requests.some((r) => r.op === Op.FAIL_NTH)) {
    // Without an injector FAIL_NTH is refused where it stands (runRequest) and the rest run as usual.
    for (const r of requests) answers.push(run(r));
    return answers;
  }
  // The last FAIL_NTH answers what is left of the counter once the frame has run.
  let nthAnswer: Answer | undefined;
  const left = faults.withNth(0, () => {
    for (const r of requests) {
      if (r.op !== Op.FAIL_NTH) answers.push(run(r));
      else if (r.arg > 0xffff_ffffn) answers.push(answer(r, BigInt(-ERANGE)));
      else {
        faults.nth = Number(r.arg);
        answers.push((nthAnswer = answer(r, 0n)));
      }
    }
  });
  if (nthAnswer) nthAnswer.result = BigInt(left);
  return answers;
}

export function runRequest(file: OpenFile, req: Request, pid: number): Answer {
  switch (req.op) {
    case Op.HANDLE:
      // The kind rides in handle_field so a client can marshal for a file it got from a claim.
      return answer(req, BigInt(file.handle), EMPTY, [], 0, FILE_KIND_BIT[file.kind]);
    case Op.IOCTL:
    case Op.IOCTL_LEASE:
      return runIoctl(file, req, pid);
    case Op.REGION_READ: {
      const t0 = now();
      const r = guard(() => file.regionRead(req.arg, req.request));
      perf.mmioRead.add(t0, req.request);
      return typeof r === 'number' ? answer(req, BigInt(r)) : answer(req, BigInt(r.length), EMPTY, [{ fieldOffset: 0, data: r }]);
    }
    case Op.REGION_WRITE: {
      const t0 = now();
      const r = guard(() => file.regionWrite(req.arg, req.argData));
      perf.mmioWrite.add(t0, req.argData.length);
      return answer(req, BigInt(r));
    }
    case Op.POLL:
      return answer(req, BigInt(guard(() => file.pollEvents())));
    case Op.FAIL_NTH:
      // A thread's counter is set by runFrame, for a daemon with fault injection; here there is none.
      return answer(req, BigInt(-EOPNOTSUPP));
    case Op.POST:
      // The transport answers a POST alone in its frame (FrameChannel); in company it is not one.
      return answer(req, BigInt(-EINVAL));
  }
}

/** fn's value, or -errno for an Errno it throws (-EIO, logged, for anything else). */
export function guard<T>(fn: () => T | number): T | number {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Errno) return -e.errno;
    warn('internal error: %O', e);
    return -EIO;
  }
}

function runIoctl(file: OpenFile, req: Request, pid: number): Answer {
  const nr = canonicalNr(req.request);
  const table = file.commands();
  const cmd = nr === undefined ? undefined : table.get(nr);
  if (!cmd) {
    // Guarded like every trace here: the arguments would be formatted even with tracing off.
    if (trace.enabled) trace('%s ioctl 0x%s -> %s', file, (req.request >>> 0).toString(16), errnoName(table.fallback));
    return answer(req, BigInt(-table.fallback));
  }
  const call = new IoctlCall(cmd.decl, req, pid);
  let result: bigint;
  try {
    // iommufd copies its extensible structs in before any handler looks at them (main.c order).
    if (cmd.decl.arg === 'size') {
      if (!cmd.decl.struct) throw new Errno(ENOTTY, 'not implemented');
      call.extensibleCopyIn();
    }
    const r = cmd.handler(file, call);
    result = r === undefined ? 0n : BigInt(r);
  } catch (e) {
    if (!(e instanceof Errno)) warn('internal error in %s: %O', cmd.decl.name, e);
    result = BigInt(-(e instanceof Errno ? e.errno : EIO));
    if (trace.enabled) trace('%s %s %s -> %s%s', file, cmd.decl.name, fields(call), errnoName(Number(-result)), e instanceof Errno && e.message !== errnoName(e.errno) ? ` (${e.message})` : '');
    return answer(req, result, call.userOut(), call.outBlobs);
  }
  if (trace.enabled) trace('%s %s %s -> %d', file, cmd.decl.name, fields(call), result);
  // userOut() is the call's own copy (the call ends here), so the answer takes it without another copy.
  return answer(req, result, call.userOut(), call.outBlobs, call.newHandle, call.handleField);
}

function fields(call: IoctlCall): string {
  const d = call.decl;
  if (d.arg === 'value') return `arg=${call.arg}`;
  if (!d.struct || call.kbuf.length < d.struct.size) return '';
  const v = decode(d.struct, call.kbuf);
  return '{' + Object.entries(v).map(([k, x]) => `${k}=${typeof x === 'bigint' ? '0x' + x.toString(16) : x}`).join(' ') + '}';
}

