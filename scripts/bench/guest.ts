// The POWER guest against QEMU's own NVMe: the same kernel, initramfs, -m and disk image, booted once with
// `-device nvme,drive=...` on the image and once with tcefs's function passed through (`-device vfio-pci`)
// whose namespace is backed by that image. The guest's init (guest_bench=M:N, scripts/guest/init) times a
// direct sequential read of M MiB in 128 KiB blocks and N direct 4 KiB reads at random blocks, each read
// one busybox dd (busybox has no fio); the same loop over a file in the guest's RAM gives the loop's own
// cost, which the device time is what is left of. The host times boot to the first completed read: from
// starting scripts/guest/run.sh to the console line of the init's first direct read.
// For the tcefs boot the daemon's own counters (sys/kernel/debug/tcefs/perf.json) say where its time went.
import { spawn } from 'node:child_process';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DEFAULT_TOPOLOGY_JSON } from '../../src/topology/topology.ts';
import { serve } from './fuse.ts';

const exec = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TCEFS = join(ROOT, 'bin', 'tcefs');
const RUN = join(ROOT, 'scripts', 'guest', 'run.sh');
const PRELOAD = join(ROOT, 'build', 'libtcefs-preload.so');
const BDF = '0000:02:00.0';
const BOOT_MS = 240_000;

export interface GuestBoot {
  /** ms from starting run.sh to the console line of the first completed read */
  firstRead: number;
  /** ms from starting run.sh to the guest's first console output, the firmware's (QEMU's setup, the VFIO one included) */
  kernelStart: number;
  /** ms from starting run.sh to the init's first line (the kernel's boot, TCE clearing included) */
  initStart: number;
  /** ms from starting run.sh until QEMU exited */
  total: number;
  seqMiB: number;
  /** guest seconds (10 ms resolution) */
  seqS: number;
  randN: number;
  randS: number;
  /** the same loop over a file in RAM */
  loopS: number;
}

/** The daemon's counters (perf.json) over a stretch of the tcefs boot. */
export interface PerfDelta {
  mmioRead: Metered;
  mmioWrite: Metered;
  dmaRead: Metered;
  dmaWrite: Metered;
  irqs: Metered;
  irqsQueued: Metered;
  fuse: Metered;
  /** CPU time of the daemon process (user + system, ms) */
  daemonCpuMs: number;
}

export interface Metered {
  count: number;
  ms: number;
  bytes: number;
}

export interface GuestNumbers {
  builtin: GuestBoot;
  tcefs: GuestBoot;
  /** the whole tcefs boot, the sequential read and the random reads */
  perf: { boot: PerfDelta; seq: PerfDelta; rand: PerfDelta };
  diskMiB: number;
}

/** Boots the guest; at each of the init's bench marks `mark` runs before the guest goes on. */
async function bootGuest(args: string[], env: NodeJS.ProcessEnv, mark: (name: string) => Promise<void> = async () => undefined): Promise<GuestBoot> {
  const t0 = performance.now();
  const p = spawn('bash', [RUN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let firstRead = 0;
  let kernelStart = 0;
  let initStart = 0;
  const marked = new Set<string>();
  const onData = (b: Buffer) => {
    out += b;
    if (!initStart && out.includes('TCEFS-GUEST: modules loaded')) initStart = performance.now() - t0;
    if (!firstRead && out.includes('TCEFS-GUEST: read lba')) firstRead = performance.now() - t0;
    for (const m of out.matchAll(/TCEFS-GUEST: bench mark (\w+)/g)) {
      if (marked.has(m[1])) continue;
      marked.add(m[1]);
      void mark(m[1]).finally(() => p.stdin.write('go\n'));
    }
  };
  p.stdin.on('error', () => undefined);
  p.stdout.once('data', () => (kernelStart = performance.now() - t0));
  p.stdout.on('data', onData);
  p.stderr.on('data', onData);
  const timer = setTimeout(() => p.kill('SIGKILL'), BOOT_MS);
  const code = await new Promise<number | null>((res) => p.on('close', res));
  clearTimeout(timer);
  const total = performance.now() - t0;
  const seq = /bench seq (\d+) MiB bs 128k in (\d+) cs/.exec(out);
  const rand = /bench rand (\d+) reads bs 4k in (\d+) cs/.exec(out);
  const loop = /bench randloop \d+ reads of a RAM file in (\d+) cs/.exec(out);
  if (code !== 0 || !firstRead || !seq || !rand || !loop) throw new Error(`guest boot ${args.join(' ')} failed (exit ${code}):\n${out.slice(-4000)}`);
  return { firstRead, kernelStart, initStart, total, seqMiB: Number(seq[1]), seqS: Number(seq[2]) / 100, randN: Number(rand[1]), randS: Number(rand[2]) / 100, loopS: Number(loop[1]) / 100 };
}

async function perfJson(mnt: string): Promise<any> {
  return JSON.parse(await readFile(join(mnt, 'sys/kernel/debug/tcefs/perf.json'), 'utf8'));
}

async function cpuMs(pid: number): Promise<number> {
  const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime in clock ticks (USER_HZ 100)
}

export async function measureGuest(quick: boolean, log: (l: string) => void): Promise<GuestNumbers> {
  await Promise.all([exec('bash', [join(ROOT, 'scripts', 'guest', 'build.sh')], { timeout: 600_000 }), exec('bash', [join(ROOT, 'scripts', 'build-c.sh')])]);
  const seqMiB = 64;
  const randN = quick ? 50 : 200;
  const diskMiB = seqMiB;
  const work = await mkdtemp(join(tmpdir(), 'tcefs-bench-guest-'));
  try {
    // Data rather than holes, so neither side reads zeros it never stored.
    const disk = join(work, 'disk.img');
    const f = await open(disk, 'w');
    for (let i = 0; i < diskMiB; i++) await f.write(randomBytes(1 << 20));
    await f.close();
    const append = `guest_read=2 guest_write=5:bench guest_bench=${seqMiB}:${randN}`;
    log('guest: QEMU built-in NVMe');
    const builtin = await bootGuest(['-a', append, disk], process.env);

    const topology = structuredClone(DEFAULT_TOPOLOGY_JSON) as { phbs: { pes: { devices: Record<string, unknown>[] }[] }[] };
    const dev = topology.phbs.flatMap((p) => p.pes.flatMap((pe) => pe.devices)).find((x) => x.bdf === BDF)!;
    Object.assign(dev, { model: 'nvme', backing: disk });
    const topo = join(work, 'topology.json');
    await writeFile(topo, JSON.stringify(topology));
    const mnt = join(work, 'mnt');
    const server = await serve([TCEFS, 'mount', mnt, '--topology', topo], mnt, 'dev/vfio', 'mounted on');
    try {
      log('guest: tcefs NVMe through vfio-pci');
      const snap = async () => ({ perf: await perfJson(mnt), cpu: await cpuMs(server.proc.pid!) });
      const marks = new Map<string, Awaited<ReturnType<typeof snap>>>();
      const start = await snap();
      const env = { ...process.env, LD_PRELOAD: PRELOAD, TCEFS_MOUNT: mnt };
      const tcefs = await bootGuest(['-a', append, '-v', BDF], env, async (name) => void marks.set(name, await snap()));
      const end = await snap();
      const delta = (a: typeof start, b: typeof start | undefined): PerfDelta => {
        if (!b) throw new Error('the guest skipped a bench mark');
        const d = (k: string): Metered => ({ count: b.perf[k].count - a.perf[k].count, ms: b.perf[k].ms - a.perf[k].ms, bytes: b.perf[k].bytes - a.perf[k].bytes });
        return { mmioRead: d('mmioRead'), mmioWrite: d('mmioWrite'), dmaRead: d('dmaRead'), dmaWrite: d('dmaWrite'), irqs: d('irqs'), irqsQueued: d('irqsQueued'), fuse: d('fuse'), daemonCpuMs: b.cpu - a.cpu };
      };
      const perf = { boot: delta(start, end), seq: delta(marks.get('seq')!, marks.get('rand')), rand: delta(marks.get('rand')!, marks.get('end')) };
      return { builtin, tcefs, perf, diskMiB };
    } finally {
      await server.stop();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** MB/s of the sequential read. */
export const seqMBps = (b: GuestBoot) => (b.seqMiB * 1.048576) / b.seqS;
/** Random 4 KiB reads per second, loop included. */
export const randIops = (b: GuestBoot) => b.randN / b.randS;

const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;

/** docs/benchmarks.md's section on the guest, every number from the run. */
export function renderGuest(g: GuestNumbers): string {
  const b = g.builtin;
  const t = g.tcefs;
  const s = (ms: number) => f2(ms / 1000);
  const setup = (x: GuestBoot) => x.kernelStart;
  const kernel = (x: GuestBoot) => x.initStart - x.kernelStart;
  const init = (x: GuestBoot) => x.firstRead - x.initStart;
  const device = (x: GuestBoot) => (1000 * (x.randS - x.loopS)) / x.randN;
  // The two loops ran seconds apart: on a busy machine the RAM loop can come out slower than the device's.
  const share = (x: GuestBoot) => (device(x) > 0 ? f2(device(x)) : 'lost in the noise');
  const commands = (t.seqMiB * 1024) / 128;
  const perCmd = (x: GuestBoot) => (1000 * x.seqS) / commands;
  const { boot, seq, rand } = g.perf;
  const row = (name: string, f: (p: PerfDelta) => string) => `| ${name} | ${f(boot)} | ${f(seq)} | ${f(rand)} |`;
  const handlers = (p: PerfDelta) => p.mmioRead.ms + p.mmioWrite.ms + p.dmaRead.ms + p.dmaWrite.ms;
  const seqFuse = seq.fuse.count + seq.irqs.count;
  return `
## A POWER guest: tcefs against QEMU's built-in NVMe

\`scripts/bench/guest.ts\`: the guest of docs/guest.md (the same kernel, initramfs, \`-m 1G\`, TCG, and a
${g.diskMiB} MiB disk image of random data) booted twice, one boot each: with QEMU's own
\`-device nvme,drive=...\` on the image, then with tcefs's NVMe function passed through
(\`-device vfio-pci\`), its namespace backed by the same image. The init's bench mode
(\`guest_bench=${t.seqMiB}:${t.randN}\`) reads ${t.seqMiB} MiB sequentially with one
\`dd bs=128k iflag=direct\` and then does ${t.randN} 4 KiB reads at random blocks, one
\`dd bs=4096 skip=$RANDOM iflag=direct\` each (busybox has no fio), timed by the guest's /proc/uptime
(10 ms steps). Starting a dd dominates that loop under TCG, so the same loop over a file in the guest's
RAM is timed too; what is left is the device's share. Boot to first completed read is timed on the host,
from starting \`scripts/guest/run.sh\` to the console line of the init's first direct read. Both boots
ran on the shared machine one after the other, so the ratios carry its noise.

| | built-in nvme | tcefs | tcefs / built-in |
|---|---:|---:|---:|
| boot to first completed read, s | ${s(b.firstRead)} | ${s(t.firstRead)} | ${ratio(t.firstRead, b.firstRead)} |
| &nbsp;&nbsp;QEMU's setup, until the firmware's first output, s | ${s(setup(b))} | ${s(setup(t))} | ${ratio(setup(t), setup(b))} |
| &nbsp;&nbsp;firmware and kernel, until the init runs, s | ${s(kernel(b))} | ${s(kernel(t))} | ${ratio(kernel(t), kernel(b))} |
| &nbsp;&nbsp;the init: modules, the nvme probe, the first read, s | ${s(init(b))} | ${s(init(t))} | ${ratio(init(t), init(b))} |
| sequential read, ${t.seqMiB} MiB in 128 KiB O_DIRECT reads, MB/s | ${f1(seqMBps(b))} | ${f1(seqMBps(t))} | ${ratio(seqMBps(t), seqMBps(b))} |
| &nbsp;&nbsp;per 128 KiB read, ms | ${f2(perCmd(b))} | ${f2(perCmd(t))} | ${ratio(perCmd(t), perCmd(b))} |
| 4 KiB random reads, one dd each, IOPS | ${f1(randIops(b))} | ${f1(randIops(t))} | ${ratio(randIops(t), randIops(b))} |
| &nbsp;&nbsp;the same loop over a RAM file, ms per read | ${f2((1000 * b.loopS) / b.randN)} | ${f2((1000 * t.loopS) / t.randN)} | |
| &nbsp;&nbsp;what is left: the device's share, ms per read | ${share(b)} | ${share(t)} | ${device(b) > 0 && device(t) > 0 ? ratio(device(t), device(b)) : ''} |

### Where tcefs's time goes

The daemon's own counters (\`sys/kernel/debug/tcefs/perf.json\`, \`src/perf.ts\`) over the tcefs boot and
over its two measured phases (the init waits at a mark before and after each until the host has read
them). Times are the daemon's handlers on its JS thread; "FUSE requests" are those on device and
iommufd files: ioctl frames and their replies, and region accesses, which are one request each. An
interrupt is one more: the shim's delivery thread has a read waiting on the device's event stream, which
the daemon answers when the model raises the vector; the thread then signals QEMU's eventfd and reads
again.

| | whole boot | sequential read | random reads |
|---|---:|---:|---:|
${row('MMIO region reads (the shim traps QEMU\'s pread): count, ms', (p) => `${p.mmioRead.count}, ${f1(p.mmioRead.ms)}`)}
${row('MMIO region writes (doorbells): count, ms', (p) => `${p.mmioWrite.count}, ${f1(p.mmioWrite.ms)}`)}
${row('DMA from guest memory (/proc/pid/mem reads): MiB, calls, ms', (p) => `${f2(p.dmaRead.bytes / 2 ** 20)}, ${p.dmaRead.count}, ${f1(p.dmaRead.ms)}`)}
${row('DMA to guest memory (/proc/pid/mem writes): MiB, calls, ms', (p) => `${f2(p.dmaWrite.bytes / 2 ** 20)}, ${p.dmaWrite.count}, ${f1(p.dmaWrite.ms)}`)}
${row('interrupts delivered (of them, found no read waiting)', (p) => `${p.irqs.count} (${p.irqsQueued.count})`)}
${row('FUSE requests on device files: count, ms in handlers', (p) => `${p.fuse.count}, ${f1(p.fuse.ms)}`)}
${row("daemon process CPU time (all threads), ms", (p) => `${Math.round(p.daemonCpuMs)}`)}

In the sequential read each 128 KiB read costs tcefs ${f2(perCmd(t))} ms against ${f2(perCmd(b))} ms
built in, ${f2(perCmd(t) - perCmd(b))} ms more. Of that the daemon's handlers (MMIO, and the DMA of the
command, its PRP list, the data and the completion) take ${f2(handlers(seq) / commands)} ms per read and
its process ${f2(seq.daemonCpuMs / commands)} ms of CPU; the rest is hand-offs: ${f2(seqFuse / commands)} FUSE
requests per read (${f2(seq.mmioWrite.count / commands)} doorbell writes and ${f2(seq.irqs.count / commands)} interrupts: ${
    seq.mmioWrite.count < 1.5 * commands
      ? "the submission doorbell, the completion doorbell staying in the guest's memory (the doorbell buffer, docs/devices.md)"
      : 'the submission and the completion doorbell'}), each waking
libfuse's thread, the daemon's JS thread and the client in turn, on two CPUs that QEMU's TCG thread
keeps busy. Over the whole boot, most FUSE requests outside the two phases are QEMU's one-entry
\`VFIO_IOMMU_UNMAP_DMA\` calls (a frame and its reply each) as the guest clears its 32 MiB default window
at boot (docs/guest.md).
`;
}
