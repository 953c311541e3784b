// Run C test programs the way users run theirs: unmodified, under `tcefs run` and the preload shim.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { buildC, type CResult } from './c.ts';
import { ROOT, TCEFS } from './daemon.ts';

const exec = promisify(execFile);
let built: Promise<void> | undefined;
const TIMEOUT_MS = 30_000;

/** build/libtcefs-preload.so and friends, once per test process (scripts/build-c.sh is a no-op when current). */
export function buildShim(): Promise<void> {
  built ??= exec('bash', [`${ROOT}/scripts/build-c.sh`]).then(() => undefined);
  return built;
}

export interface ShimRunOptions {
  /** Use this running mount (`tcefs run --mount`); without it `tcefs run` starts a private daemon. */
  mnt?: string;
  /** A topology file for the private daemon. */
  topology?: string;
  /** More `tcefs run` options for the private daemon, e.g. ['--page-size', '4K']. */
  runArgs?: string[];
  env?: Record<string, string>;
  /** `tcefs run --host-pci`: the private daemon lists the host's PCI functions too. */
  hostPci?: boolean;
}

/** `tcefs run [--mount M] [--topology T] -- argv...`: exit status and output, whatever the status. */
export async function tcefsRun(argv: string[], opts: ShimRunOptions = {}): Promise<CResult> {
  await buildShim();
  const args = [TCEFS, 'run'];
  if (opts.mnt) args.push('--mount', opts.mnt);
  if (opts.topology) args.push('--topology', opts.topology);
  if (opts.runArgs) args.push(...opts.runArgs);
  if (opts.hostPci) args.push('--host-pci');
  args.push('--', ...argv);
  return new Promise((resolve) => {
    const p = spawn(process.execPath, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    // A program stuck on a mount that went away must fail the test, not hang it.
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${TIMEOUT_MS / 1000} s)`;
      p.kill('SIGTERM');
    }, TIMEOUT_MS);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? -1 : 0), stdout, stderr });
    });
  });
}

/** Build test/c/<name>.c and run it unmodified under the shim. */
export async function runUnderShim(name: string, args: string[], opts: ShimRunOptions = {}): Promise<CResult> {
  const exe = await buildC(name);
  return tcefsRun([exe, ...args], opts);
}
