// Interrupt latency through the whole path (scripts/bench/irq_bench.c under `tcefs run`): a vector the
// device raises, or the user triggers with SET_IRQS, until the client's eventfd is readable, against one
// ioctl round trip (VFIO_DEVICE_GET_IRQ_INFO) timed alternately in the same process. The daemon answers
// the delivery thread's waiting read, the thread writes the eventfd.
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLIENT = join(ROOT, 'build', 'bench', 'irq_bench');
const SOURCE = join(ROOT, 'scripts', 'bench', 'irq_bench.c');
/** The default topology's NVMe function (MSI-X, 33 vectors). */
const BDF = '0000:02:00.0';

export interface IrqBlock {
  pacedRt: number;
  pacedIrq: number;
  pacedRaise: number;
  rt: number;
  irq: number;
}

export interface IrqNumbers {
  blocks: IrqBlock[];
  perBlock: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median over blocks of a per-block ratio (both sides measured within the same block). */
export function irqRatio(n: IrqNumbers, num: keyof IrqBlock, den: keyof IrqBlock): number {
  return median(n.blocks.map((b) => b[num] / b[den]));
}

export function irqMedian(n: IrqNumbers, k: keyof IrqBlock): number {
  return median(n.blocks.map((b) => b[k]));
}

export async function measureIrq(quick: boolean): Promise<IrqNumbers> {
  await mkdir(join(ROOT, 'build', 'bench'), { recursive: true });
  await exec(process.env.CC ?? 'gcc', ['-O2', '-Wall', '-Werror', `-I${join(ROOT, 'include')}`, SOURCE, '-o', CLIENT]);
  await exec('bash', [join(ROOT, 'scripts', 'build-c.sh')]);
  const blocks = quick ? 3 : 9;
  const perBlock = quick ? 100 : 400;
  const { stdout } = await exec(process.execPath, [join(ROOT, 'bin', 'tcefs'), 'run', '--', CLIENT, BDF, String(blocks), String(perBlock)], {
    maxBuffer: 1 << 20,
  });
  const out: IrqBlock[] = [];
  for (const line of stdout.trim().split('\n')) {
    const kv = Object.fromEntries(line.split(' ').map((w) => w.split('=')).map(([k, v]) => [k, Number(v)]));
    out.push({ pacedRt: kv.paced_rt, pacedIrq: kv.paced_irq, pacedRaise: kv.paced_raise, rt: kv.rt, irq: kv.irq });
  }
  return { blocks: out, perBlock };
}
