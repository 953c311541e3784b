// `tcefs demo`: the end-to-end guest for a person. A private mount of the default topology (as `tcefs run`
// makes one), the POWER guest (scripts/guest/build.sh, cached) booted under TCG on a pseries machine with
// the NVMe function passed through, its init in demo mode (guest_demo=S: writes, read-backs and reads in
// a loop), and while it runs: the guest's console lines and, refreshed, the PE's DMA windows with their
// live TCEs, the maps QEMU asked for (the daemon's ioctl trace) and the device's latest DMA with the host
// address its TCE gave (the daemon's views). Ctrl-C asks the guest to stop and power off; the mount and the
// temporary directory go with it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import { DEBUG_DIR } from '../transport/paths.ts';
import { PRELOAD, ensureShim, startDaemon, type PrivateDaemon } from './run.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GUEST = join(ROOT, 'scripts', 'guest');
/** The default topology's NVMe function. */
const BDF = '0000:02:00.0';
/** How long the guest may take to boot and power off around its demo loop. */
const BOOT_GRACE_MS = 180_000;
/** After a stop request: how long the guest gets to power off before QEMU is terminated. */
const STOP_GRACE_MS = 20_000;
const MAPS_SHOWN = 4;
/** For someone who has never seen a POWER machine: what the view shows. */
const LEGEND = [
  'tcefs demo: what you will see: the guest\'s nvme driver hands the device bus addresses (IOVAs); on POWER each',
  '  is translated by a TCE (translation control entry) in one of the PE\'s DMA windows: window 0, the 32-bit',
  '  default, or window 1, the 64-bit one the guest asks its firmware (RTAS) for. QEMU turns the guest\'s TCE',
  '  hypercalls into VFIO map calls; tcefs keeps the tables, and its NVMe model\'s DMA goes through them into',
  '  QEMU\'s memory, which is the guest\'s. Ctrl-C stops the guest.',
];

export interface DemoOptions {
  duration?: number;
  interval: number;
  ddw: boolean;
  verbose?: boolean;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description("boot a POWER Linux guest (QEMU TCG, pseries) whose nvme driver uses tcefs's NVMe through vfio-pci; show its I/O and the live TCEs")
    .option('-d, --duration <s>', 'seconds of guest I/O, then it powers off (default: until Ctrl-C)', (v) => positive(v, '--duration'))
    .option('-i, --interval <ms>', 'how often the TCE view is refreshed', (v) => positive(v, '--interval'), 2000)
    .option('--no-ddw', 'no 64-bit window (disable_ddw): every buffer is mapped TCE by TCE in the 32-bit window')
    .option('-v, --verbose', "all of the guest's console, not only its I/O and DMA lines")
    .action((opts: DemoOptions) => demoCommand(opts));
}

function positive(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) {
    console.error(`tcefs demo: ${name} wants a positive whole number, got "${v}"`);
    process.exit(2);
  }
  return n;
}

const out = (line: string) => process.stdout.write(`${line}\n`);

/** Console lines worth showing a person: the init's own, and the kernel's about the NVMe and its DMA windows. */
const INTERESTING = /TCEFS-GUEST:|nvme|dma-window|ddw|Linux version|Run \/init/i;

interface TraceState {
  maps: string[];
  /** mapCount when the maps were last shown */
  shown: number;
  mapCount: number;
  mappedBytes: bigint;
  unmapCount: number;
  windows: string[];
}

/** Picks the DMA calls out of the daemon's ioctl trace (DEBUG=tcefs:ioctl). */
function traceReader(state: TraceState): (b: Buffer) => void {
  let partial = '';
  return (b) => {
    const lines = (partial + b.toString()).split('\n');
    partial = lines.pop()!;
    for (const l of lines) {
      const m = /(VFIO_IOMMU_(?:UN)?MAP_DMA|VFIO_IOMMU_SPAPR_TCE_(?:CREATE|REMOVE)) (\{[^}]*\}) -> (\S+)/.exec(l);
      if (!m) {
        // Anything else on its stderr that is not a trace line is the daemon telling something wrong.
        if (l.trim() && !/tcefs:/.test(l)) process.stderr.write(`tcefs daemon: ${l}\n`);
        continue;
      }
      const [, name, fields, result] = m;
      if (name === 'VFIO_IOMMU_UNMAP_DMA') {
        state.unmapCount++;
        continue;
      }
      if (name === 'VFIO_IOMMU_MAP_DMA') {
        state.mapCount++;
        const size = /size=(0x[0-9a-f]+|\d+)/.exec(fields)?.[1];
        if (size && /^0n?$/.test(result)) state.mappedBytes += BigInt(size);
      } else state.windows.push(`${name.replace('VFIO_IOMMU_SPAPR_TCE_', 'window ').toLowerCase()} ${fields} -> ${result}`);
      state.maps.push(`${name} ${fields} -> ${result}`);
      if (state.maps.length > MAPS_SHOWN) state.maps.shift();
    }
  };
}

const mib = (n: number | bigint) => `${(Number(n) / 2 ** 20).toFixed(1)} MiB`;

/** The refreshed view: windows and live TCEs, QEMU's maps, the device's DMA and what it cost. */
function renderView(t: string, group: string, pe: any, perf: any, trace: TraceState, last: Map<string, number>): string[] {
  const lines = [`── tcefs view ${t}: IOMMU group ${group} (${BDF}), PE ${pe.name}, ${pe.ownership}-owned, EEH ${pe.eeh.stateName}`];
  if (!pe.windows.length) lines.push('   no DMA windows yet');
  for (const w of pe.windows) {
    const before = last.get(w.start);
    const delta = before === undefined ? '' : w.liveTces === before ? '' : ` (${w.liveTces > before ? '+' : ''}${w.liveTces - before})`;
    last.set(w.start, w.liveTces);
    lines.push(`   window ${w.slot} ${w.start}-${w.last}  ${2 ** w.pageShift / 1024}K pages  ${String(w.entries).padStart(7)} TCEs  ${String(w.liveTces).padStart(7)} live${delta}`);
  }
  const fresh = trace.mapCount > trace.shown;
  lines.push(`   QEMU's maps: ${trace.mapCount} MAP_DMA (${mib(trace.mappedBytes)}), ${trace.unmapCount} UNMAP_DMA${fresh ? '; latest:' : ''}`);
  if (fresh) for (const m of trace.maps) lines.push(`     ${m}`);
  trace.shown = trace.mapCount;
  const p = perf.pes?.[pe.name];
  const dma = p?.dmaBytes ?? { read: 0, write: 0 };
  lines.push(`   device DMA through the TCEs: ${mib(dma.read)} read from guest memory, ${mib(dma.write)} written to it; ` +
    `${perf.mmioRead.count + perf.mmioWrite.count} MMIO accesses, ${perf.irqs.count} interrupts`);
  for (const r of (p?.recentDma ?? []).slice(-3)) {
    lines.push(`     ${r.direction === 'read' ? 'read ' : 'write'} ${String(r.bytes).padStart(6)} B at iova ${r.iova} -> host ${r.hpa ?? '?'}`);
  }
  return lines;
}

export async function demoCommand(opts: DemoOptions): Promise<never> {
  let qemu: ChildProcess | undefined;
  let daemon: PrivateDaemon | undefined;
  let work: string | undefined;
  let stopping = false;
  let interrupted = false;
  const stop = (why: string) => {
    if (!qemu || qemu.exitCode !== null || qemu.signalCode !== null) {
      stopping = true;
      return;
    }
    if (stopping) {
      out(`tcefs demo: ${why} again: stopping QEMU now`);
      kill(qemu, 'SIGTERM');
      return;
    }
    stopping = true;
    out(`tcefs demo: ${why}: asking the guest to stop and power off (again to stop QEMU at once)`);
    // The init's demo loop ends on a console line, then the guest syncs and powers off.
    qemu.stdin?.write('stop\n');
    setTimeout(() => kill(qemu!, 'SIGTERM'), STOP_GRACE_MS).unref();
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      interrupted = true;
      stop(sig === 'SIGINT' ? 'Ctrl-C' : sig);
    });
  }
  process.on('exit', () => {
    if (qemu && qemu.exitCode === null) kill(qemu, 'SIGKILL');
    if (daemon?.proc.exitCode === null) daemon.proc.kill('SIGTERM');
  });

  let status = 1;
  try {
    const qemuBin = process.env.QEMU?.split(/\s+/)[0] || 'qemu-system-ppc64';
    if (!(await onPath(qemuBin))) {
      console.error(`tcefs demo: ${qemuBin} is missing (Debian's qemu-system-ppc; scripts/setup.sh, which npm run demo runs first, installs it)`);
      return finish(1);
    }
    out('tcefs demo: building the preload shim and fetching the POWER guest (Debian ppc64el kernel and busybox, cached after the first run)');
    const [guest] = await Promise.all([promisify(execFile)('bash', [join(GUEST, 'build.sh')], { timeout: 600_000 }), ensureShim()]);
    const kernel = /^KERNEL=(.*)$/m.exec(guest.stdout)?.[1];
    if (stopping) return finish(130);

    work = await mkdtemp(join(tmpdir(), 'tcefs-demo-'));
    const mount = join(work, 'mnt');
    const trace: TraceState = { maps: [], shown: 0, mapCount: 0, mappedBytes: 0n, unmapCount: 0, windows: [] };
    daemon = await startDaemon(mount, {}, { debug: 'tcefs:ioctl', trace: traceReader(trace) });
    const group = basename(await readlink(join(mount, 'sys/bus/pci/devices', BDF, 'iommu_group')));
    out(`tcefs demo: tcefs mounted on ${mount}: a PowerNV host whose IOMMU group ${group} holds an NVMe controller (${BDF}, 64 MiB in memory)`);
    if (stopping) return finish(130);

    for (const l of LEGEND) out(l);
    const append = `guest_demo=${opts.duration ?? 0} guest_read=0 guest_write=1:tcefs-demo${opts.ddw ? '' : ' disable_ddw'}`;
    out(`tcefs demo: booting ${kernel ? basename(join(kernel, '..')) : 'the guest'} under qemu-system-ppc64 -M pseries -accel tcg with -device vfio-pci,host=${BDF} (about 15 s to the nvme driver)`);
    const t0 = performance.now();
    // Its own process group: a terminal's Ctrl-C is for this command, which stops the guest in order.
    const q = spawn('bash', [join(GUEST, 'run.sh'), '-v', BDF, '-a', append], {
      env: { ...process.env, LD_PRELOAD: process.env.LD_PRELOAD ? `${PRELOAD}:${process.env.LD_PRELOAD}` : PRELOAD, TCEFS_MOUNT: mount },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    qemu = q;
    const exited = new Promise<number>((res) => q.once('exit', (code, signal) => res(signal ? 128 : (code ?? 1))));
    let said = '';
    let partial = '';
    const onConsole = (b: Buffer) => {
      const lines = (partial + b.toString()).split('\n');
      partial = lines.pop()!;
      for (const raw of lines) {
        const l = raw.replace(/\r$/, '');
        if (l.includes('TCEFS-GUEST:')) said += `${l}\n`;
        // The init repeats the kernel's lines about the device at the end (dmesg:); they were shown once.
        if (opts.verbose || (INTERESTING.test(l) && !l.includes('TCEFS-GUEST: dmesg:'))) out(`guest │ ${l.replace(/^.*TCEFS-GUEST: /, '')}`);
      }
    };
    q.stdout!.on('data', onConsole);
    q.stderr!.on('data', onConsole);
    q.stdin!.on('error', () => undefined); // QEMU gone before the stop line reached it

    const last = new Map<string, number>();
    let viewing = false;
    let shownBody = '';
    const view = async (when?: string) => {
      if (viewing) return;
      viewing = true;
      try {
        const [pe, perf] = await Promise.all(['groups/' + group + '/pe.json', 'perf.json'].map(async (f) => JSON.parse(await readFile(join(mount, DEBUG_DIR, f), 'utf8'))));
        const [head, ...body] = renderView(when ?? `at ${((performance.now() - t0) / 1000).toFixed(1)} s`, group, pe, perf, trace, last);
        // Only what changed: while the firmware runs, nothing does for a while.
        if (when || body.join('\n') !== shownBody) for (const l of [head, ...body]) out(l);
        shownBody = body.join('\n');
      } catch (e) {
        out(`tcefs demo: cannot read the view: ${(e as Error).message}`);
      } finally {
        viewing = false;
      }
    };
    const timer = setInterval(() => void view(), opts.interval);
    // Run for a set time, the guest gets that and its boot; otherwise it runs until stopped.
    const deadline = opts.duration === undefined ? undefined : setTimeout(() => stop('the guest is taking too long'), opts.duration * 1000 + BOOT_GRACE_MS);
    const code = await exited;
    clearInterval(timer);
    clearTimeout(deadline);
    await view('after QEMU exited');
    const ok = code === 0 && said.includes('TCEFS-GUEST: done') && !/TCEFS-GUEST: fail/.test(said);
    const rounds = /TCEFS-GUEST: demo: (\d+) rounds/.exec(said)?.[1];
    out(ok
      ? `tcefs demo: the guest did ${rounds ?? 'its'} rounds of I/O through tcefs and powered off`
      : `tcefs demo: the guest did not finish cleanly (QEMU exit ${code}${/TCEFS-GUEST: (fail.*)/.exec(said)?.[1] ? `, ${/TCEFS-GUEST: (fail.*)/.exec(said)![1]}` : ''})`);
    status = ok ? (interrupted ? 130 : 0) : 1;
  } catch (e) {
    console.error(`tcefs demo: ${(e as Error).message}`);
  }
  return finish(status);

  async function finish(code: number): Promise<never> {
    if (qemu && qemu.exitCode === null && qemu.signalCode === null) {
      kill(qemu, 'SIGTERM');
      await new Promise((r) => qemu!.once('exit', r));
    }
    if (daemon) {
      daemon.proc.kill('SIGTERM');
      await daemon.exited;
    }
    if (work) await rm(work, { recursive: true, force: true }).catch(() => undefined);
    if (daemon || work) out(`tcefs demo: ${daemon ? 'unmounted and ' : ''}removed ${work}`);
    process.exit(code);
  }
}

async function onPath(bin: string): Promise<boolean> {
  const dirs = bin.includes('/') ? [''] : (process.env.PATH ?? '/usr/bin:/bin').split(':');
  for (const d of dirs) {
    if (await access(d ? join(d, bin) : bin, fsConstants.X_OK).then(() => true, () => false)) return true;
  }
  return false;
}

/** The whole process group (run.sh execs QEMU, but a build step may still be running under it). */
function kill(p: ChildProcess, sig: NodeJS.Signals): void {
  try {
    process.kill(-p.pid!, sig);
  } catch {
    p.kill(sig);
  }
}
