// A lone unmap: what QEMU does 262,144 times while a guest clears its 1 GiB default window at boot,
// one VFIO_IOMMU_UNMAP_DMA of an empty 4K page each. test/c/unmap_lease.c runs under `tcefs run` (shim,
// FUSE, a private daemon) and times the clearing loop, and lone unmaps of an empty page answered by the
// daemon (right after another call) and from the unmap lease (right after that one).
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const exec = promisify(execFile);
/** The guest's 1 GiB default window in 4K pages. */
export const WINDOW_PAGES = 262144;

export interface LeaseNumbers {
  rounds: number;
  /** Per round: µs per unmap of the clearing loop, and the medians of lone unmaps asked and leased. */
  clear: number[];
  asked: number[];
  leased: number[];
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function measureLease(rounds = 3, samples = 1000): Promise<LeaseNumbers> {
  const dir = join(ROOT, 'build', 'bench');
  await mkdir(dir, { recursive: true });
  const exe = join(dir, 'unmap_lease');
  const c = (f: string) => join(ROOT, 'c', f);
  await exec(process.env.CC ?? 'gcc', ['-O2', '-Wall', '-Werror', `-I${join(ROOT, 'include')}`, join(ROOT, 'test', 'c', 'unmap_lease.c'), c('libtcefs.c'), c('libtcefs-irq.c'), c('libtcefs-lease.c'), '-o', exe]);
  const out: LeaseNumbers = { rounds, clear: [], asked: [], leased: [] };
  for (let r = 0; r < rounds; r++) {
    const { stdout } = await exec(process.execPath, [join(ROOT, 'bin', 'tcefs'), 'run', '--', exe, '0000:02:00.0', String(WINDOW_PAGES), String(samples)], { timeout: 300_000 });
    const v = (k: string) => Number(new RegExp(`^${k}=([\\d.]+)$`, 'm').exec(stdout)?.[1]);
    out.clear.push(v('us_per_unmap'));
    out.asked.push(v('us_lone_asked'));
    out.leased.push(v('us_lone_leased'));
  }
  return out;
}
