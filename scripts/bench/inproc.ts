// Drive a daemon in this process, without FUSE, the way test/helpers/direct.ts does: open nodes and run
// ioctls by name. `call` goes straight to the dispatcher (what the scale benchmark times: the objects and
// the dispatch, nothing of the transport); `Wire` pushes whole request frames through a FrameChannel,
// byte for byte what the FUSE adapter hands it, to time tcefs's own per-frame work.
import { Daemon } from '../../src/daemon.ts';
import { runRequest } from '../../src/dispatch/dispatch.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import { parseTopology, type Topology } from '../../src/topology/topology.ts';
import { FrameChannel } from '../../src/transport/channel.ts';
import { encodeRequestFrame, Op, type Blob, type ClientRequest } from '../../src/transport/frame.ts';
import { lookup } from '../../src/transport/tree.ts';
import { ioctl, requestValue } from '../../src/uapi/ioctls.ts';
import { decode, encode, type Value } from '../../src/uapi/layout.ts';

/** The pid the in-process client claims to be (frames carry one; SPAPR binds to it). */
export const PID = 4242;

export interface Opts {
  arg?: bigint | number;
  raw?: Buffer;
  blobs?: Blob[];
}

export function newDaemon(topology: object): Daemon {
  return new Daemon(parseTopology(topology) as Topology);
}

export function open(d: Daemon, path: string): OpenFile {
  const n = lookup(d.tree, path);
  if (!n || n.type !== 'device') throw new Error(`${path} is not a device node`);
  const f = n.open(path);
  d.files.add(f);
  return f;
}

/** The argument bytes of an ioctl, its leading argsz/size filled in. */
export function argOf(name: string, fields: Record<string, Value>): Buffer {
  const decl = ioctl(name);
  if (!decl.struct) return Buffer.alloc(0);
  return encode(decl.struct, { [decl.arg === 'size' ? 'size' : 'argsz']: decl.struct.size, ...fields });
}

export function request(name: string, fields: Record<string, Value> = {}, o: Opts = {}): ClientRequest {
  return { op: Op.IOCTL, request: requestValue(ioctl(name).nr), arg: BigInt(o.arg ?? 0), argData: o.raw ?? argOf(name, fields), blobs: o.blobs ?? [] };
}

/** Run one ioctl through the dispatcher; throws unless it returns `expect` (0 by default). */
export function call(f: OpenFile, name: string, fields: Record<string, Value> = {}, o: Opts & { expect?: number } = {}) {
  const r = request(name, fields, o);
  const a = runRequest(f, { op: Op.IOCTL, request: r.request!, arg: r.arg!, argData: r.argData!, blobs: r.blobs! }, PID);
  const result = Number(a.result);
  if (result !== (o.expect ?? 0)) throw new Error(`${name} returned ${result}`);
  const decl = ioctl(name);
  const image = Buffer.concat([a.out, r.argData!.subarray(a.out.length)]);
  return { result, out: decl.struct && image.length >= decl.struct.size ? decode(decl.struct, image) : {}, answer: a };
}

/** A file's frame stream, as FUSE writes and reads it. */
export class Wire {
  readonly channel: FrameChannel;
  constructor(readonly file: OpenFile) {
    this.channel = new FrameChannel(file);
  }

  /** Write a frame, read its reply; returns the reply bytes. */
  exchange(frame: Buffer): Buffer {
    const w = this.channel.write(frame, 0);
    if (w !== frame.length) throw new Error(`frame write returned ${w}`);
    const r = this.channel.read(1 << 24, 0);
    if (typeof r === 'number') throw new Error(`reply read returned ${r}`);
    return r;
  }

  frame(requests: ClientRequest[]): Buffer {
    return encodeRequestFrame(requests, PID);
  }
}

/** Time `fn` over `n` iterations after `warm` untimed ones; returns ns per iteration. */
export function timeLoop(n: number, fn: (i: number) => void, warm = Math.min(2000, n)): number {
  for (let i = 0; i < warm; i++) fn(i);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  return Number(process.hrtime.bigint() - t0) / n;
}

/** Median of `rounds` measurements, and their spread (min, max). */
export function rounds(k: number, measure: () => number): { median: number; min: number; max: number; all: number[] } {
  const all = Array.from({ length: k }, measure);
  const s = [...all].sort((a, b) => a - b);
  return { median: s[Math.floor(k / 2)], min: s[0], max: s[k - 1], all };
}
