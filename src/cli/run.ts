// `tcefs run [--topology F] [--mount DIR] -- CMD ARGS...`: run an unmodified program against tcefs, the
// way umockdev-run runs one against mocked devices. The program gets the preload shim
// (build/libtcefs-preload.so) in LD_PRELOAD and the mount in TCEFS_MOUNT, so its open("/dev/vfio/0"),
// ioctl() and readlink("/sys/...") reach the emulation. Without --mount a private daemon serves a
// fresh tree for the program's lifetime and is stopped afterwards; `tcefs run` exits with the
// program's status.
//
// The daemon is a separate process (bin/tcefs mount), never this one: the program's calls into the
// mount must not depend on this process's event loop, and a process making synchronous calls into a
// FUSE mount it serves itself would deadlock.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants, tmpdir } from 'node:os';
import { constants as fsConstants } from 'node:fs';
import { access, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isatty } from 'node:tty';
import { promisify } from 'node:util';
import { Option, type Command } from 'commander';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const PRELOAD = join(ROOT, 'build', 'libtcefs-preload.so');
const BIN = join(ROOT, 'bin', 'tcefs');

/** How long a private daemon may take to mount before `tcefs run` gives up. */
const MOUNT_TIMEOUT_MS = 30_000;

/** Signals sent to `tcefs run` that go on to the program. */
const RELAYED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

export interface RunOptions {
  topology?: string;
  mount?: string;
  vfioContainer?: 'legacy' | 'iommufd';
  pageSize?: '4K' | '64K';
  hostPci?: boolean;
  selftest?: boolean;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run CMD with /dev/iommu, /dev/vfio and their sysfs served by tcefs (LD_PRELOAD shim); exits with its status')
    .argument('<cmd...>', 'the program and its arguments; put them after --')
    .option('-t, --topology <file>', 'JSON topology for the private mount (default: the embedded PowerNV host)')
    .option('-m, --mount <dir>', 'use this running tcefs mount instead of starting a private one')
    .addOption(new Option('--vfio-container <kind>', 'what /dev/vfio/vfio is in the private mount (as tcefs mount)').choices(['legacy', 'iommufd']))
    .addOption(new Option('--page-size <size>', "the private mount's host page size (as tcefs mount)").choices(['4K', '64K']))
    .option('--host-pci', "the private mount also lists the host's real PCI functions (the emulated ones win)")
    .option('--selftest', 'the private mount serves IOMMU_TEST_CMD and the mock IOMMU (as tcefs mount)')
    .action((cmd: string[], opts: RunOptions) => runCommand(cmd, opts));
}

function fail(message: string, code: number): never {
  console.error(`tcefs run: ${message}`);
  process.exit(code);
}

/** scripts/build-c.sh is a quick no-op when build/ is current; it rebuilds after a checkout changed c/. */
async function ensureShim(): Promise<void> {
  try {
    await promisify(execFile)('bash', [join(ROOT, 'scripts', 'build-c.sh')]);
  } catch (e) {
    const have = await access(PRELOAD).then(() => true, () => false);
    const why = ((e as { stderr?: string }).stderr || (e as Error).message).trim();
    if (!have) fail(`cannot build the preload shim:\n${why}`, 1);
    console.error(`tcefs run: warning: rebuilding the shim failed, using the existing ${PRELOAD}:\n${why}`);
  }
}

async function isTcefsMount(dir: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  const escaped = dir.replace(/\\/g, '\\134').replace(/ /g, '\\040').replace(/\t/g, '\\011').replace(/\n/g, '\\012');
  return mounts.split('\n').some((l) => {
    const [, point, type] = l.split(' ');
    return point === escaped && type === 'fuse.tcefs';
  });
}

/** The daemon's environment: nothing that would make it load the shim or redirect its own paths. */
function daemonEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.TCEFS_MOUNT;
  const preload = (env.LD_PRELOAD ?? '').split(/[: ]/).filter((p) => p && p !== PRELOAD);
  if (preload.length) env.LD_PRELOAD = preload.join(':');
  else delete env.LD_PRELOAD;
  return env;
}

interface PrivateDaemon {
  proc: ChildProcess;
  exited: Promise<void>;
}

/** util-linux's setpriv, if installed: it can have the kernel signal the daemon when we die. */
async function findSetpriv(): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = join(dir || '.', 'setpriv');
    if (await access(p, fsConstants.X_OK).then(() => true, () => false)) return p;
  }
  return undefined;
}

async function startDaemon(mount: string, opts: RunOptions): Promise<PrivateDaemon> {
  const args = [BIN, 'mount', mount];
  if (opts.topology) args.push('--topology', resolve(opts.topology));
  if (opts.vfioContainer) args.push('--vfio-container', opts.vfioContainer);
  if (opts.pageSize) args.push('--page-size', opts.pageSize);
  if (opts.hostPci) args.push('--host-pci');
  if (opts.selftest) args.push('--selftest');
  // Even if this process is killed outright (SIGKILL), the daemon gets SIGTERM and unmounts.
  const setpriv = await findSetpriv();
  const [file, argv] = setpriv ? [setpriv, ['--pdeathsig', 'TERM', '--', process.execPath, ...args]] : [process.execPath, args];
  // Its own process group: a Ctrl-C at the terminal is for the program, and the daemon has to outlive
  // the program's reaction to it.
  const proc = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: daemonEnv(), detached: true });
  const exited = new Promise<void>((res) => proc.once('exit', () => res()));
  // Its diagnostics (DEBUG=tcefs:* traces, errors) are the user's; its banner is not the program's output.
  proc.stderr!.pipe(process.stderr);
  let out = '';
  await new Promise<void>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`no mount after ${MOUNT_TIMEOUT_MS / 1000} s`)), MOUNT_TIMEOUT_MS);
    const onData = (d: Buffer) => {
      out += d;
      if (out.includes('mounted on')) {
        clearTimeout(timer);
        proc.stdout!.off('data', onData);
        proc.stdout!.resume();
        res();
      }
    };
    proc.stdout!.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`the daemon exited with status ${code} before mounting`));
    });
  }).catch((e: Error) => {
    proc.kill('SIGTERM');
    fail(e.message, 1);
  });
  // The banner follows FUSE INIT; wait until the tree answers before the program looks at it.
  for (let i = 0; !(await stat(join(mount, 'dev')).then(() => true, () => false)); i++) {
    if (i > 500) {
      proc.kill('SIGTERM');
      fail(`${mount} does not answer`, 1);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { proc, exited };
}

function signalStatus(signal: NodeJS.Signals): number {
  return 128 + (osConstants.signals[signal] ?? 0);
}

export async function runCommand(cmd: string[], opts: RunOptions): Promise<never> {
  // Signal handlers come first: one arriving before them would kill this process outright and leave a
  // private daemon behind. Until the program runs, a signal means "stop": nothing is started after it.
  let child: ChildProcess | undefined;
  let stopped: NodeJS.Signals | undefined;
  for (const sig of RELAYED) {
    process.on(sig, () => {
      if (!child) {
        stopped ??= sig;
        return;
      }
      // A terminal's Ctrl-C or Ctrl-\ already reached the program, which shares our process group.
      if ((sig === 'SIGINT' || sig === 'SIGQUIT') && isatty(0)) return;
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    });
  }

  await ensureShim();
  let mount: string;
  let daemon: PrivateDaemon | undefined;
  let work: string | undefined;
  if (opts.mount) {
    if (opts.hostPci) fail('--host-pci is chosen when the mount starts (tcefs mount --host-pci)', 2);
    mount = resolve(opts.mount);
    // A running mount has its host already: these would silently do nothing.
    if (opts.topology || opts.vfioContainer || opts.pageSize || opts.selftest) fail('--topology, --vfio-container, --page-size and --selftest shape a private mount; they cannot go with --mount', 2);
    if (!(await isTcefsMount(mount))) fail(`${mount} is not a tcefs mount (start one with: tcefs mount ${mount})`, 2);
  } else {
    work = await mkdtemp(join(tmpdir(), 'tcefs-run-'));
    mount = join(work, 'mnt');
    daemon = await startDaemon(mount, opts);
  }
  // If this process dies of something unexpected, the private daemon must not outlive it.
  process.on('exit', () => daemon?.proc.exitCode === null && daemon.proc.kill('SIGTERM'));

  let status: number;
  if (stopped) status = signalStatus(stopped);
  else {
    const preload = process.env.LD_PRELOAD ? `${PRELOAD}:${process.env.LD_PRELOAD}` : PRELOAD;
    const running = spawn(cmd[0], cmd.slice(1), { stdio: 'inherit', env: { ...process.env, LD_PRELOAD: preload, TCEFS_MOUNT: mount } });
    child = running;
    status = await new Promise<number>((res) => {
      running.once('error', (e: NodeJS.ErrnoException) => {
        console.error(`tcefs run: ${cmd[0]}: ${e.code === 'ENOENT' ? 'command not found' : e.message}`);
        res(e.code === 'ENOENT' ? 127 : 126);
      });
      running.once('exit', (code, signal) => res(signal ? signalStatus(signal) : (code ?? 1)));
    });
  }

  if (daemon) {
    daemon.proc.kill('SIGTERM');
    await daemon.exited;
    await rm(work!, { recursive: true, force: true }).catch(() => undefined);
  }
  process.exit(status);
}
