// A live process for device DMA to land in (test/c/dma_target.c): its pid, a 64K-aligned buffer whose
// byte i is i * 7 + 3, and direct access to that memory for checking what a DMA did.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { buildC } from './c.ts';

export interface DmaTarget {
  pid: number;
  addr: bigint;
  size: number;
  peek(ua: bigint, length: number): Buffer;
  poke(ua: bigint, data: Buffer): void;
  /** Ends the process (its stdin closes) and waits for it. */
  stop(): Promise<void>;
}

export const pattern = (offset: number, length: number) => Buffer.from(Array.from({ length }, (_, i) => ((offset + i) * 7 + 3) & 0xff));

export async function startDmaTarget(size = 1 << 20): Promise<DmaTarget> {
  const exe = await buildC('dma_target');
  const p = spawn(exe, [String(size)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((res) => p.once('exit', () => res()));
  const line = await new Promise<string>((res, rej) => {
    let out = '';
    p.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) res(out);
    });
    p.once('exit', () => rej(new Error(`dma_target exited: ${out}`)));
  });
  const m = /pid=(\d+) addr=(0x[0-9a-f]+) size=(\d+)/.exec(line)!;
  const pid = Number(m[1]);
  const fd = openSync(`/proc/${pid}/mem`, 'r+');
  return {
    pid,
    addr: BigInt(m[2]),
    size: Number(m[3]),
    peek: (ua, length) => {
      const b = Buffer.alloc(length);
      readSync(fd, b, 0, length, Number(ua));
      return b;
    },
    poke: (ua, data) => void writeSync(fd, data, 0, data.length, Number(ua)),
    stop: async () => {
      closeSync(fd);
      p.stdin!.end();
      await exited;
    },
  };
}
