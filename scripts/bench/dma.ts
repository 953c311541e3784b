// Device DMA bandwidth: the copy engine moving bytes inside a live process (test/c/dma_target.c) through
// a SPAPR v2 container, every IOMMU page translated through the TCE table, against a raw copy of the same
// bytes through /proc/<pid>/mem (one read, one write). In-process daemon, no FUSE: register writes go
// straight to the device file, as a region pwrite would deliver them.
import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { COPY_REG, CTRL_GO, STATUS_BUSY, STATUS_DONE } from '../../src/devices/copy-engine.ts';
import { Daemon } from '../../src/daemon.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import { runRequest } from '../../src/dispatch/dispatch.ts';
import { parseTopology } from '../../src/topology/topology.ts';
import { Op } from '../../src/transport/frame.ts';
import { lookup } from '../../src/transport/tree.ts';
import { VFIO } from '../../src/uapi/constants.ts';
import { ioctl, requestValue } from '../../src/uapi/ioctls.ts';
import { argOf } from './inproc.ts';
import type { Value } from '../../src/uapi/layout.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TARGET = join(ROOT, 'build', 'bench', 'dma_target');
const BDF = '0000:03:00.0';

export interface DmaNumbers {
  bytes: number;
  rounds: number;
  /** MB/s, median over rounds, per IOMMU page size. */
  engine: { pageShift: number; mbps: number }[];
  raw: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function measureDma(bytes = 16 << 20, rounds = 9): Promise<DmaNumbers> {
  await mkdir(join(ROOT, 'build', 'bench'), { recursive: true });
  await promisify(execFile)(process.env.CC ?? 'gcc', ['-O2', '-Wall', '-Werror', join(ROOT, 'test', 'c', 'dma_target.c'), '-o', TARGET]);
  // Source and destination for each page size: 4 buffers of `bytes`.
  const child = spawn(TARGET, [String(4 * bytes)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((res) => child.stdout!.once('data', (d) => res(String(d))));
  const m = /pid=(\d+) addr=(0x[0-9a-f]+)/.exec(line)!;
  const pid = Number(m[1]);
  const addr = BigInt(m[2]);
  const daemon = new Daemon(parseTopology(JSON.parse(readFileSync(join(ROOT, 'topologies', 'copy-engine.json'), 'utf8'))));
  try {
    const open = (p: string) => {
      const n = lookup(daemon.tree, p);
      if (!n || n.type !== 'device') throw new Error(p);
      const f = n.open(p);
      daemon.files.add(f);
      return f;
    };
    const call = (f: OpenFile, name: string, fields: Record<string, Value> = {}, o: { arg?: number; raw?: Buffer } = {}) => {
      const a = runRequest(f, { op: Op.IOCTL, request: requestValue(ioctl(name).nr), arg: BigInt(o.arg ?? 0), argData: o.raw ?? argOf(name, fields), blobs: [] }, pid);
      if (Number(a.result) < 0) throw new Error(`${name}: ${a.result}`);
      return a;
    };
    const c = open('/dev/vfio/vfio');
    const g = open('/dev/vfio/2');
    const fd = Buffer.alloc(4);
    fd.writeInt32LE(c.handle);
    call(g, 'VFIO_GROUP_SET_CONTAINER', {}, { raw: fd });
    call(c, 'VFIO_SET_IOMMU', {}, { arg: VFIO.VFIO_SPAPR_TCE_v2_IOMMU });
    call(c, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', { vaddr: addr, size: BigInt(4 * bytes) });
    call(c, 'VFIO_IOMMU_SPAPR_TCE_REMOVE', { start_addr: 0n });
    const rw = VFIO.VFIO_DMA_MAP_FLAG_READ | VFIO.VFIO_DMA_MAP_FLAG_WRITE;
    // Slot 0: 4K pages at IOVA 0; slot 1: 64K pages at its own base.
    const windows: { pageShift: number; base: bigint }[] = [];
    for (const pageShift of [12, 16]) {
      const cr = call(c, 'VFIO_IOMMU_SPAPR_TCE_CREATE', { page_shift: pageShift, window_size: 1n << 30n, levels: 1 });
      windows.push({ pageShift, base: cr.out.readBigUInt64LE(32) }); // start_addr
    }
    windows.forEach((w, k) => call(c, 'VFIO_IOMMU_MAP_DMA', { flags: rw, vaddr: addr + BigInt(2 * k * bytes), iova: w.base, size: BigInt(2 * bytes) }));
    const dev = daemon.files.claim(call(g, 'VFIO_GROUP_GET_DEVICE_FD', {}, { raw: Buffer.from(BDF + '\0') }).newHandle)!;
    // Memory decoding and bus mastering on, as a driver turns them on before it touches the BARs.
    dev.regionWrite((7n << 40n) + 4n, Buffer.from([0x06, 0x00]));
    const u32 = (v: number) => Buffer.from(new Uint32Array([v]).buffer);
    const u64 = (v: bigint) => Buffer.from(new BigUint64Array([v]).buffer);
    const engineCopy = async (src: bigint, dst: bigint) => {
      dev.regionWrite(BigInt(COPY_REG.SRC), u64(src));
      dev.regionWrite(BigInt(COPY_REG.DST), u64(dst));
      dev.regionWrite(BigInt(COPY_REG.LEN), u32(bytes));
      const t0 = process.hrtime.bigint();
      dev.regionWrite(BigInt(COPY_REG.CTRL), u32(CTRL_GO));
      let s: number;
      while ((s = (dev.regionRead(BigInt(COPY_REG.STATUS), 4) as Buffer).readUInt32LE()) & STATUS_BUSY) await new Promise((r) => setImmediate(r));
      const t = Number(process.hrtime.bigint() - t0);
      if (s !== STATUS_DONE) throw new Error(`copy ended with status 0x${s.toString(16)}`);
      return t;
    };
    const mem = openSync(`/proc/${pid}/mem`, 'r+');
    const buf = Buffer.allocUnsafe(bytes);
    const rawCopy = (src: bigint, dst: bigint) => {
      const t0 = process.hrtime.bigint();
      readSync(mem, buf, 0, bytes, Number(src));
      writeSync(mem, buf, 0, bytes, Number(dst));
      return Number(process.hrtime.bigint() - t0);
    };
    const engineNs: number[][] = windows.map(() => []);
    const rawNs: number[] = [];
    for (let r = 0; r <= rounds; r++) {
      // Round 0 warms up: first touches, JIT.
      for (const [k, w] of windows.entries()) {
        const t = await engineCopy(w.base, w.base + BigInt(bytes));
        if (r) engineNs[k].push(t);
      }
      const t = rawCopy(addr, addr + BigInt(bytes));
      if (r) rawNs.push(t);
    }
    closeSync(mem);
    const mbps = (ns: number) => bytes / 1e6 / (ns / 1e9);
    return { bytes, rounds, engine: windows.map((w, k) => ({ pageShift: w.pageShift, mbps: mbps(median(engineNs[k])) })), raw: mbps(median(rawNs)) };
  } finally {
    daemon.shutdown();
    child.stdin!.end();
  }
}
