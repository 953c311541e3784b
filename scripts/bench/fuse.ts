// Benchmarks through real FUSE mounts, timed by a C client (scripts/bench/fuse_bench.c):
//
//   - the floor: a bare fuse-native write+read round trip on the null node of scripts/bench/null-fs.ts;
//   - the same frame written raw to tcefs's /dev/vfio/vfio (the floor plus tcefs's own daemon work);
//   - VFIO_CHECK_EXTENSION by plain ioctl() under `tcefs run --mount` (plus the preload shim's work);
//   - one-page MAP/UNMAP through the shim on a SPAPR v2 container and on an iommufd with a device, and
//     the same maps 1000 to a frame;
//   - throughput with 1, 2 and 8 client processes at once, each on its own iommufd and device, and the
//     null node with as many clients for comparison.
//
// The machine is shared and has few CPUs, so each latency is measured in several interleaved rounds and
// the median of the round medians is reported: a round that a neighbour's burst hit cannot carry it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BATCH } from './dispatch.ts';
import { BENCH_TOPOLOGY, bdf } from './setup.ts';

const exec = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TCEFS = join(ROOT, 'bin', 'tcefs');
const CLIENT = join(ROOT, 'build', 'bench', 'fuse_bench');
const SOURCE = join(ROOT, 'scripts', 'bench', 'fuse_bench.c');

/** One latency measurement as fuse_bench prints it (ns). */
export interface Sample {
  name: string;
  n: number;
  per: number;
  median: number;
  mean: number;
  sd: number;
  p10: number;
  p90: number;
  min: number;
  max: number;
}

/** Several rounds of one measurement: the median round, and the spread of round medians. */
export interface Measured {
  /** Median of the round medians, ns per operation. */
  median: number;
  /** p10 and p90 of the samples in the median round, ns per operation. */
  p10: number;
  p90: number;
  /** Lowest and highest round median, ns per operation. */
  lo: number;
  hi: number;
  rounds: number;
  /** Samples per round. */
  n: number;
}

export interface Throughput {
  clients: number;
  seconds: number;
  total: number;
  perClient: number[];
  /** CPU time of the daemon's JS thread (its main thread) over the run, as a fraction of the wall time. */
  jsBusy?: number;
  /** CPU time of all the daemon's threads over the run, as a fraction of the wall time. */
  processBusy?: number;
}

export interface FuseNumbers {
  bare: Measured;
  rawTcefs: Measured;
  check: Measured;
  spaprMap: Measured;
  spaprUnmap: Measured;
  spaprBatchMap: Measured;
  spaprBatchUnmap: Measured;
  iommufdMap: Measured;
  iommufdUnmap: Measured;
  iommufdBatchMap: Measured;
  iommufdBatchUnmap: Measured;
  throughput: Throughput[];
  nullThroughput: Throughput[];
}

export interface FuseOptions {
  rounds: number;
  /** Iterations per round of the cheap round trips. */
  n: number;
  /** MAP/UNMAP pairs per round. */
  pairs: number;
  /** Batch frames per round. */
  batches: number;
  /** Seconds each throughput run lasts. */
  seconds: number;
  clients: number[];
  log?: (line: string) => void;
}

export const DEFAULT_FUSE_OPTIONS: FuseOptions = { rounds: 5, n: 10_000, pairs: 3_000, batches: 20, seconds: 3, clients: [1, 2, 8] };

async function buildClient(): Promise<void> {
  await exec('bash', [join(ROOT, 'scripts', 'build-c.sh')]);
  if (existsSync(CLIENT) && statSync(CLIENT).mtimeMs >= statSync(SOURCE).mtimeMs) return;
  await mkdir(join(ROOT, 'build', 'bench'), { recursive: true });
  await exec(process.env.CC ?? 'gcc', ['-O2', '-Wall', '-Werror', `-I${join(ROOT, 'include')}`, SOURCE, '-o', CLIENT, '-lm']);
}

interface Server {
  proc: ChildProcess;
  dir: string;
  stop(): Promise<void>;
}

/** Start a mount server and wait until `probe` exists under its mount point. */
async function serve(args: string[], dir: string, probe: string, banner: string): Promise<Server> {
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBUG: '' } });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((res) => proc.once('exit', () => res()));
  const deadline = Date.now() + 30_000;
  while (!out.includes(banner) || !(await stat(join(dir, probe)).then(() => true, () => false))) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGTERM');
      throw new Error(`${args.join(' ')} did not mount:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    proc,
    dir,
    stop: async () => {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** Run fuse_bench (under `tcefs run --mount` when `mount` is given) and collect its JSON lines. */
async function client(args: string[], mount?: string): Promise<Sample[]> {
  const argv = mount ? [TCEFS, 'run', '--mount', mount, '--', CLIENT, ...args] : [CLIENT, ...args];
  const { stdout } = mount ? await exec(process.execPath, argv, { maxBuffer: 1 << 20 }) : await exec(CLIENT, args, { maxBuffer: 1 << 20 });
  return stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Sample);
}

function combine(samples: Sample[]): Measured {
  const per = (x: number, s: Sample) => x / s.per;
  const sorted = [...samples].sort((a, b) => per(a.median, a) - per(b.median, b));
  const mid = sorted[Math.floor(sorted.length / 2)];
  return {
    median: per(mid.median, mid),
    p10: per(mid.p10, mid),
    p90: per(mid.p90, mid),
    lo: per(sorted[0].median, sorted[0]),
    hi: per(sorted[sorted.length - 1].median, sorted[sorted.length - 1]),
    rounds: samples.length,
    n: mid.n,
  };
}

/** utime + stime of one thread, in seconds. */
async function threadCpu(pid: number, tid = pid): Promise<number> {
  const s = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // fields 14 and 15, in USER_HZ (100 on Linux)
}

async function processCpu(pid: number): Promise<number> {
  const s = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** `count` clients at once, released together once all have set up; ops/s each. */
async function concurrent(count: number, argsOf: (i: number) => string[], mount: string | undefined, seconds: number, daemonPid?: number): Promise<Throughput> {
  const procs = Array.from({ length: count }, (_, i) => {
    const args = argsOf(i);
    const p = mount ? spawn(process.execPath, [TCEFS, 'run', '--mount', mount, '--', CLIENT, ...args], { stdio: ['pipe', 'pipe', 'inherit'] }) : spawn(CLIENT, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    const ready = new Promise<void>((res, rej) => {
      p.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('"ready"')) res();
      });
      p.once('close', (code) => rej(new Error(`client ${i} exited with ${code} before it was ready`)));
    });
    const done = new Promise<Sample & { ops: number; ns: number }>((res, rej) =>
      // 'close', not 'exit': the last line may still be in the pipe when the process has exited.
      p.once('close', (code) => {
        const line = out.split('\n').find((l) => l.includes('"loop"'));
        if (code !== 0 || !line) rej(new Error(`client ${i} exited with ${code}: ${out}`));
        else res(JSON.parse(line));
      }),
    );
    done.catch(() => undefined);
    return { p, ready, done };
  });
  await Promise.all(procs.map((x) => x.ready));
  const cpu0 = daemonPid ? [await threadCpu(daemonPid), await processCpu(daemonPid)] : undefined;
  const t0 = process.hrtime.bigint();
  for (const x of procs) x.p.stdin!.end('g');
  const results = await Promise.all(procs.map((x) => x.done));
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu1 = daemonPid ? [await threadCpu(daemonPid), await processCpu(daemonPid)] : undefined;
  const perClient = results.map((r) => r.ops / (r.ns / 1e9));
  return {
    clients: count,
    seconds,
    total: perClient.reduce((a, b) => a + b, 0),
    perClient,
    jsBusy: cpu0 && cpu1 ? (cpu1[0] - cpu0[0]) / wall : undefined,
    processBusy: cpu0 && cpu1 ? (cpu1[1] - cpu0[1]) / wall : undefined,
  };
}

export async function measureFuse(o: FuseOptions = DEFAULT_FUSE_OPTIONS): Promise<FuseNumbers> {
  const log = o.log ?? (() => undefined);
  await buildClient();
  const work = await mkdtemp(join(tmpdir(), 'tcefs-bench-'));
  const topology = join(work, 'topology.json');
  await writeFile(topology, JSON.stringify(BENCH_TOPOLOGY));
  const servers: Server[] = [];
  try {
    const nullDir = join(work, 'null');
    servers.push(await serve(['--import', 'tsx', join(ROOT, 'scripts', 'bench', 'null-fs.ts'), nullDir], nullDir, 'null', 'mounted'));
    const mnt = join(work, 'tcefs');
    const tcefs = await serve([TCEFS, 'mount', mnt, '--topology', topology], mnt, 'dev/iommu', 'mounted on');
    servers.push(tcefs);

    const s: Record<string, Sample[]> = {};
    const add = (xs: Sample[], prefix = '') => xs.forEach((x) => (s[prefix + x.name] ??= []).push(x));
    for (let r = 0; r < o.rounds; r++) {
      log(`fuse round ${r + 1}/${o.rounds}`);
      add(await client(['rt', join(nullDir, 'null'), String(o.n)]), 'bare.');
      add(await client(['rt', join(mnt, 'dev/vfio/vfio'), String(o.n)]), 'raw.');
      add(await client(['check', String(o.n)], mnt));
      add(await client(['spapr', '0', String(o.pairs), String(BATCH), String(o.batches)], mnt));
      add(await client(['iommufd', bdf(1), String(o.pairs), String(BATCH), String(o.batches)], mnt));
    }

    const throughput: Throughput[] = [];
    const nullThroughput: Throughput[] = [];
    for (const c of o.clients) {
      log(`throughput, ${c} client${c > 1 ? 's' : ''}`);
      throughput.push(await concurrent(c, (i) => ['loop', bdf(i % 8), String(o.seconds)], mnt, o.seconds, tcefs.proc.pid));
      nullThroughput.push(await concurrent(c, () => ['rtloop', join(nullDir, 'null'), String(o.seconds)], undefined, o.seconds, servers[0].proc.pid));
    }

    return {
      bare: combine(s['bare.rt']),
      rawTcefs: combine(s['raw.rt']),
      check: combine(s.check),
      spaprMap: combine(s['spapr.map']),
      spaprUnmap: combine(s['spapr.unmap']),
      spaprBatchMap: combine(s['spapr.batch_map']),
      spaprBatchUnmap: combine(s['spapr.batch_unmap']),
      iommufdMap: combine(s['iommufd.map']),
      iommufdUnmap: combine(s['iommufd.unmap']),
      iommufdBatchMap: combine(s['iommufd.batch_map']),
      iommufdBatchUnmap: combine(s['iommufd.batch_unmap']),
      throughput,
      nullThroughput,
    };
  } finally {
    for (const x of servers.reverse()) await x.stop();
    await rm(work, { recursive: true, force: true }).catch(() => undefined);
  }
}
