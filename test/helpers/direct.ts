// Drive the daemon in-process, without FUSE: open nodes, run ioctls by name with struct fields, and get
// the result and the decoded copy-back. For exhaustive errno tests; the integration tests use real mounts.
import { Daemon, type DaemonOptions } from '../../src/daemon.ts';
import { runRequest } from '../../src/dispatch/dispatch.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import { defaultTopology, parseTopology, type Topology } from '../../src/topology/topology.ts';
import { Op, type Blob } from '../../src/transport/frame.ts';
import { lookup } from '../../src/transport/tree.ts';
import { ioctl, requestValue } from '../../src/uapi/ioctls.ts';
import { decode, encode, type Value } from '../../src/uapi/layout.ts';

export interface CallOptions {
  pid?: number;
  /** Scalar argument (value ioctls). */
  arg?: bigint | number;
  /** Raw argument bytes instead of an encoded struct. */
  raw?: Buffer;
  blobs?: Blob[];
}

export interface CallResult {
  result: number;
  /** The struct as copied back (input bytes where nothing was written). */
  out: Record<string, Value | Value[]>;
  outBytes: Buffer;
  newHandle: number;
  blobs: Blob[];
}

export class Harness {
  readonly daemon: Daemon;

  constructor(topology: Topology | object = defaultTopology(), options: DaemonOptions = {}) {
    const t = 'phbs' in topology && Array.isArray((topology as Topology).phbs) && 'flavour' in topology ? (topology as Topology) : parseTopology(topology);
    this.daemon = new Daemon(t, options);
  }

  open(path: string): OpenFile {
    const n = lookup(this.daemon.tree, path);
    if (!n || n.type !== 'device') throw new Error(`${path} is not a device node`);
    const f = n.open(path);
    this.daemon.files.add(f);
    return f;
  }

  /** Turn memory decoding and bus mastering on in a device's command register (BAR access needs them). */
  enableMemory(dev: OpenFile): void {
    dev.regionWrite((7n << 40n) + 4n, Buffer.from([0x06, 0x00]));
  }

  close(f: OpenFile): void {
    this.daemon.files.remove(f.handle);
  }

  claim(handle: number): OpenFile {
    const f = this.daemon.files.claim(handle);
    if (!f) throw new Error(`handle ${handle} is not pending`);
    return f;
  }

  call(f: OpenFile, name: string, fields: Record<string, Value> = {}, o: CallOptions = {}): CallResult {
    const d = ioctl(name);
    let argData = o.raw ?? Buffer.alloc(0);
    if (!o.raw && d.struct) {
      const sizeField = d.arg === 'size' ? 'size' : 'argsz';
      argData = encode(d.struct, { [sizeField]: d.struct.size, ...fields });
    }
    const a = runRequest(f, { op: Op.IOCTL, request: requestValue(d.nr), arg: BigInt(o.arg ?? 0), argData, blobs: o.blobs ?? [] }, o.pid ?? 100);
    const image = Buffer.concat([a.out, argData.subarray(a.out.length)]);
    const padded = d.struct ? Buffer.concat([image, Buffer.alloc(Math.max(0, d.struct.size - image.length))]) : image;
    return {
      result: Number(a.result),
      out: d.struct ? decode(d.struct, padded) : {},
      outBytes: a.out,
      newHandle: a.newHandle,
      blobs: a.blobs,
    };
  }

  /** ioctl(group, VFIO_GROUP_SET_CONTAINER, &container_fd) with the container's handle. */
  setContainer(group: OpenFile, container: OpenFile, pid?: number): number {
    const raw = Buffer.alloc(4);
    raw.writeInt32LE(container.handle);
    return this.call(group, 'VFIO_GROUP_SET_CONTAINER', {}, { raw, pid }).result;
  }

  getDeviceFd(group: OpenFile, name: string): { result: number; file?: OpenFile } {
    const r = this.call(group, 'VFIO_GROUP_GET_DEVICE_FD', {}, { raw: Buffer.from(name + '\0') });
    return { result: r.result, file: r.newHandle ? this.claim(r.newHandle) : undefined };
  }
}
