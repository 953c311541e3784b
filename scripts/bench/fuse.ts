// Benchmarks through real FUSE mounts, timed by a C client (scripts/bench/fuse_bench.c):
//
//   - the floor: a bare fuse-native write+read round trip on the null node of scripts/bench/null-fs.ts;
//   - the same frame written raw to tcefs's /dev/vfio/vfio (the floor plus tcefs's own daemon work);
//   - VFIO_CHECK_EXTENSION by plain ioctl() under `tcefs run --mount` (plus the preload shim's work);
//   - the three alternated call by call in one process;
//   - one-page MAP/UNMAP through the shim on a SPAPR v2 container and on an iommufd with a device, and
//     the same maps 1000 to a frame;
//   - throughput with 1, 2 and 8 client processes at once, each on its own iommufd and device, and the
//     null node with as many clients for comparison.
//
// Where the processes run matters more than anything tcefs does. On the VM these numbers were first
// taken on, a round trip costs ~25 us when the client and the daemon share a CPU and ~165 us when they
// are on different CPUs (every hand-off between the client, libfuse's thread and the JS thread is then a
// cross-CPU wake-up, which this hypervisor makes slow); unpinned, the scheduler flips between the two
// for seconds at a time. So latency is measured with the servers pinned to CPU 0 and the client pinned
// first to CPU 0 ("same CPU"), then to CPU 1 ("across CPUs"), each in several rounds that run every
// measurement once. The median of the round medians is reported, and ratios are taken within a round
// and then their median. The cheap ioctl is also compared with the floor in alternating blocks of calls
// in one process, which keeps the machine's changing load out of the comparison; that is the ratio
// held against the target. Throughput runs unpinned servers and clients, as a deployment would.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
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
const NULL_FS = join(ROOT, 'scripts', 'bench', 'null-fs.ts');

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

/** Several rounds of one measurement. */
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
  /** Each round's median, ns per operation, in the order the rounds ran. */
  each: number[];
}

/** Every latency, with the client on one CPU (the servers are on CPU 0). */
export interface Placement {
  name: string;
  clientCpu: number;
  bare: Measured;
  /** The bare round trip on a null node mounted with tcefs's own options (fuse-mount.ts). */
  bareTuned: Measured;
  rawTcefs: Measured;
  check: Measured;
  /** The three again, alternated call by call in one process. */
  interleaved: { bare: Measured; raw: Measured; check: Measured };
  /** The four alternated in blocks of calls in one process: each block's median, ns, every round's blocks. */
  blocks: { bare: number[]; tuned: number[]; raw: number[]; check: number[] };
  spaprMap: Measured;
  spaprUnmap: Measured;
  spaprBatchMap: Measured;
  spaprBatchUnmap: Measured;
  iommufdMap: Measured;
  iommufdUnmap: Measured;
  iommufdBatchMap: Measured;
  iommufdBatchUnmap: Measured;
}

export interface Throughput {
  /** What ran: how many clients, on which nodes. */
  label: string;
  clients: number;
  /** True when the clients' frames go to different nodes (so the kernel does not serialize their writes). */
  twoNodes: boolean;
  seconds: number;
  total: number;
  perClient: number[];
  /** CPU time of the daemon's JS thread (its main thread) over the run, as a fraction of the wall time. */
  jsBusy?: number;
  /** CPU time of all the daemon's threads over the run, as a fraction of the wall time. */
  processBusy?: number;
}

export interface FuseNumbers {
  placements: Placement[];
  /** The syscalls the shim adds to an ioctl, timed alone (ns, median). */
  syscalls: { sigmaskPair: number; statx: number; readlinkProcFd: number; processVmReadv: number };
  /** open + close under the shim (ns, median): a last close (waits for the release), a raw close, a dup's close. */
  close?: { last: number; raw: number; dup: number };
  throughput: Throughput[];
  nullThroughput: Throughput[];
}

export interface PlacementOptions {
  name: string;
  clientCpu: number;
  rounds: number;
  /** Iterations per round of the cheap round trips. */
  n: number;
  /** MAP/UNMAP pairs per round. */
  pairs: number;
  /** Batch frames per round. */
  batches: number;
  /** Block sets per round, and calls per block, for the blocked comparison. */
  blockSets: number;
  blockCalls: number;
}

export interface FuseOptions {
  placements: PlacementOptions[];
  /** Seconds each throughput run lasts. */
  seconds: number;
  clients: number[];
  log?: (line: string) => void;
}

export function fuseOptions(quick: boolean): FuseOptions {
  const placements: PlacementOptions[] = [
    quick
      ? { name: 'same CPU', clientCpu: 0, rounds: 2, n: 2000, pairs: 500, batches: 5, blockSets: 4, blockCalls: 500 }
      : { name: 'same CPU', clientCpu: 0, rounds: 7, n: 5000, pairs: 2000, batches: 50, blockSets: 10, blockCalls: 1000 },
  ];
  // Cross-CPU round trips are several times slower: fewer iterations keep the run short.
  if (!HAVE_TASKSET) placements[0].name = 'unpinned (no taskset)';
  else if (availableParallelism() > 1) {
    placements.push(
      quick
        ? { name: 'across CPUs', clientCpu: 1, rounds: 1, n: 500, pairs: 200, batches: 3, blockSets: 2, blockCalls: 200 }
        : { name: 'across CPUs', clientCpu: 1, rounds: 3, n: 1500, pairs: 600, batches: 20, blockSets: 5, blockCalls: 300 },
    );
  }
  return { placements, seconds: quick ? 1 : 3, clients: [1, 2, 8] };
}

async function buildClient(): Promise<void> {
  await exec('bash', [join(ROOT, 'scripts', 'build-c.sh')]);
  if (existsSync(CLIENT) && statSync(CLIENT).mtimeMs >= statSync(SOURCE).mtimeMs) return;
  await mkdir(join(ROOT, 'build', 'bench'), { recursive: true });
  await exec(process.env.CC ?? 'gcc', ['-O2', '-Wall', '-Werror', `-I${join(ROOT, 'include')}`, SOURCE, '-o', CLIENT, '-lm', '-pthread']);
}

/** argv run on `cpu` (every thread it starts inherits the affinity), or anywhere. */
const on = (cpu: number | undefined, argv: string[]): string[] => (cpu === undefined || !HAVE_TASKSET ? argv : ['taskset', '-c', String(cpu), ...argv]);

/** taskset (util-linux) pins the processes; without it everything runs where the scheduler puts it. */
const HAVE_TASKSET = spawnSync('taskset', ['-V']).status === 0;

export interface Server {
  proc: ChildProcess;
  dir: string;
  stop(): Promise<void>;
}

/** Start a mount server (on `cpu` if given) and wait until `probe` exists under its mount point. */
export async function serve(args: string[], dir: string, probe: string, banner: string, cpu?: number): Promise<Server> {
  const [cmd, ...rest] = on(cpu, [process.execPath, ...args]);
  const proc = spawn(cmd, rest, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBUG: '' } });
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

/** The null mount and a tcefs mount with the bench topology, both on `cpu` if given. */
async function servers(work: string, tag: string, cpu?: number): Promise<{ nullNode: string; tunedNode: string; mnt: string; list: Server[] }> {
  const topology = join(work, 'topology.json');
  await writeFile(topology, JSON.stringify(BENCH_TOPOLOGY));
  const list: Server[] = [];
  const nullDir = join(work, `null-${tag}`);
  list.push(await serve(['--import', 'tsx', NULL_FS, nullDir], nullDir, 'null', 'mounted', cpu));
  const tunedDir = join(work, `null-tuned-${tag}`);
  list.push(await serve(['--import', 'tsx', NULL_FS, tunedDir, '--tuned'], tunedDir, 'null', 'mounted', cpu));
  const mnt = join(work, `tcefs-${tag}`);
  list.push(await serve([TCEFS, 'mount', mnt, '--topology', topology], mnt, 'dev/iommu', 'mounted on', cpu));
  return { nullNode: join(nullDir, 'null'), tunedNode: join(tunedDir, 'null'), mnt, list };
}

/** Run fuse_bench on `cpu` (under `tcefs run --mount` when `mount` is given) and collect its JSON lines. */
async function client(args: string[], mount: string | undefined, cpu?: number): Promise<Sample[]> {
  const argv = on(cpu, mount ? [process.execPath, TCEFS, 'run', '--mount', mount, '--', CLIENT, ...args] : [CLIENT, ...args]);
  const { stdout } = await exec(argv[0], argv.slice(1), { maxBuffer: 1 << 20 });
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
    each: samples.map((x) => per(x.median, x)),
  };
}

/** The median over blocks of check/bare (or raw/bare, ...): each block set ran within milliseconds. */
export function blockRatio(num: number[], den: number[]): number {
  return median(num.map((x, i) => x / den[i]));
}

/** The median over blocks of a difference, ns. */
export function blockDiff(a: number[], b: number[]): number {
  return median(a.map((x, i) => x - b[i]));
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

/** The median over rounds of a ratio taken within each round, where both sides saw the same machine. */
export function roundRatio(a: Measured, b: Measured): { median: number; each: number[] } {
  const each = a.each.map((x, i) => x / b.each[i]);
  return { median: [...each].sort((x, y) => x - y)[Math.floor(each.length / 2)], each };
}

async function measurePlacement(p: PlacementOptions, nullNode: string, tunedNode: string, mnt: string, log: (l: string) => void): Promise<Placement> {
  const s: Record<string, Sample[]> = {};
  const add = (xs: Sample[], prefix = '') => xs.forEach((x) => (s[prefix + x.name] ??= []).push(x));
  const blocks = { bare: [] as number[], tuned: [] as number[], raw: [] as number[], check: [] as number[] };
  const cpu = p.clientCpu;
  for (let r = 0; r < p.rounds; r++) {
    log(`fuse, client ${p.name}, round ${r + 1}/${p.rounds}`);
    add(await client(['rt', nullNode, String(p.n)], undefined, cpu), 'bare.');
    add(await client(['rt', tunedNode, String(p.n)], undefined, cpu), 'tuned.');
    add(await client(['rt', join(mnt, 'dev/vfio/vfio'), String(p.n)], undefined, cpu), 'raw.');
    add(await client(['check', String(p.n)], mnt, cpu));
    add(await client(['interleave', nullNode, String(p.n)], mnt, cpu), 'il.');
    const out = (await client(['blocks', nullNode, tunedNode, String(p.blockSets), String(p.blockCalls)], mnt, cpu)) as unknown as { bare: number; tuned: number; raw: number; check: number }[];
    for (const b of out) blocks.bare.push(b.bare), blocks.tuned.push(b.tuned), blocks.raw.push(b.raw), blocks.check.push(b.check);
    add(await client(['spapr', '0', String(p.pairs), String(BATCH), String(p.batches)], mnt, cpu));
    add(await client(['iommufd', bdf(1), String(p.pairs), String(BATCH), String(p.batches)], mnt, cpu));
  }
  return {
    name: p.name,
    clientCpu: cpu,
    bare: combine(s['bare.rt']),
    bareTuned: combine(s['tuned.rt']),
    rawTcefs: combine(s['raw.rt']),
    check: combine(s.check),
    interleaved: { bare: combine(s['il.bare']), raw: combine(s['il.raw']), check: combine(s['il.check']) },
    blocks,
    spaprMap: combine(s['spapr.map']),
    spaprUnmap: combine(s['spapr.unmap']),
    spaprBatchMap: combine(s['spapr.batch_map']),
    spaprBatchUnmap: combine(s['spapr.batch_unmap']),
    iommufdMap: combine(s['iommufd.map']),
    iommufdUnmap: combine(s['iommufd.unmap']),
    iommufdBatchMap: combine(s['iommufd.batch_map']),
    iommufdBatchUnmap: combine(s['iommufd.batch_unmap']),
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

/** Clients (one argv each) at once, released together once all have set up; ops/s each. */
async function concurrent(label: string, twoNodes: boolean, argvs: string[][], mount: string | undefined, seconds: number, daemonPid?: number): Promise<Throughput> {
  const count = argvs.length;
  const procs = argvs.map((args, i) => {
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
    label,
    clients: count,
    twoNodes,
    seconds,
    total: perClient.reduce((a, b) => a + b, 0),
    perClient,
    jsBusy: cpu0 && cpu1 ? (cpu1[0] - cpu0[0]) / wall : undefined,
    processBusy: cpu0 && cpu1 ? (cpu1[1] - cpu0[1]) / wall : undefined,
  };
}

export async function measureFuse(o: FuseOptions): Promise<FuseNumbers> {
  const log = o.log ?? (() => undefined);
  await buildClient();
  const work = await mkdtemp(join(tmpdir(), 'tcefs-bench-'));
  const running: Server[] = [];
  try {
    const pinned = await servers(work, 'pinned', 0);
    running.push(...pinned.list);
    const placements: Placement[] = [];
    for (const p of o.placements) placements.push(await measurePlacement(p, pinned.nullNode, pinned.tunedNode, pinned.mnt, log));
    const sys = Object.fromEntries((await client(['syscalls', join(pinned.mnt, 'dev/vfio/vfio'), '20000'], undefined, 0)).map((x) => [x.name, x.median]));
    const closes = Object.fromEntries((await client(['close', '2000'], pinned.mnt, 0)).map((x) => [x.name, x.median]));
    for (const x of running.splice(0).reverse()) await x.stop();

    const free = await servers(work, 'free');
    running.push(...free.list);
    const [nullServer, , tcefsServer] = free.list;
    const throughput: Throughput[] = [];
    const nullThroughput: Throughput[] = [];
    const sec = String(o.seconds);
    const iommufdClients = (c: number) => Array.from({ length: c }, (_, i) => ['loop', bdf(i % 8), sec]);
    const nullClients = (c: number) => Array.from({ length: c }, () => ['rtloop', free.nullNode, sec]);
    for (const c of o.clients) {
      const label = c === 1 ? '1 client' : `${c} clients, one node`;
      log(`throughput, ${label}`);
      throughput.push(await concurrent(label, false, iommufdClients(c), free.mnt, o.seconds, tcefsServer.proc.pid));
      nullThroughput.push(await concurrent(label, false, nullClients(c), undefined, o.seconds, nullServer.proc.pid));
    }
    // Two clients whose frames go to different nodes: an iommufd and a SPAPR container; two null nodes.
    log('throughput, 2 clients, two nodes');
    throughput.push(await concurrent('2 clients, two nodes', true, [['loop', bdf(0), sec], ['sloop', '1', sec]], free.mnt, o.seconds, tcefsServer.proc.pid));
    nullThroughput.push(await concurrent('2 clients, two nodes', true, [['rtloop', free.nullNode, sec], ['rtloop', free.nullNode + '2', sec]], undefined, o.seconds, nullServer.proc.pid));

    return {
      placements,
      syscalls: {
        sigmaskPair: sys['sys.sigmask_pair'],
        statx: sys['sys.statx'],
        readlinkProcFd: sys['sys.readlink_proc_fd'],
        processVmReadv: sys['sys.process_vm_readv'],
      },
      close: { last: closes['close.last'], raw: closes['close.raw'], dup: closes['close.dup'] },
      throughput,
      nullThroughput,
    };
  } finally {
    for (const x of running.reverse()) await x.stop();
    await rm(work, { recursive: true, force: true }).catch(() => undefined);
  }
}
