// Start a real tcefs daemon on a temporary mount point, in its own process: a synchronous call from a
// process into a mount it serves itself would deadlock, and a separate process is the real thing anyway.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const TCEFS = join(ROOT, 'bin', 'tcefs');

export interface RunningDaemon {
  mnt: string;
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** SIGTERM and wait for a clean exit. */
  stop: () => Promise<number | null>;
  /** SIGKILL: the mount is left behind, as after a crash. */
  kill: () => Promise<void>;
  /** Wait for the daemon to exit by itself (bounded: killed and failed after `ms`). */
  exited: (ms?: number) => Promise<number | null>;
}

export interface DaemonOptions {
  topology?: object;
  env?: Record<string, string>;
  mnt?: string;
  /** More `tcefs mount` options (--allow-other, ...). */
  args?: string[];
}

export async function isMounted(dir: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  return mounts.split('\n').some((l) => l.split(' ')[1] === dir);
}

export async function startDaemon(opts: DaemonOptions = {}): Promise<RunningDaemon> {
  const work = await mkdtemp(join(tmpdir(), 'tcefs-test-'));
  const mnt = opts.mnt ?? join(work, 'mnt');
  const args = [TCEFS, 'mount', mnt, ...(opts.args ?? [])];
  if (opts.topology) {
    const t = join(work, 'topology.json');
    await writeFile(t, JSON.stringify(opts.topology));
    args.push('--topology', t);
  }
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not mount in time:\n${out}\n${err}`)), 20_000);
    const check = () => {
      if (out.includes('mounted on')) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout!.on('data', check);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited with ${code} before mounting:\n${out}\n${err}`));
    });
  });
  // The banner follows FUSE INIT; confirm the tree answers before handing the mount to a test.
  for (let i = 0; !(await stat(join(mnt, 'dev/iommu')).then(() => true, () => false)); i++) {
    if (i > 100) throw new Error(`mount ${mnt} does not answer:\n${out}\n${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  // Every wait for the exit is bounded: a daemon that does not stop is killed and the wait fails.
  const exit = (ms = 20_000) =>
    Promise.race([
      exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => {
          proc.kill('SIGKILL');
          reject(new Error(`daemon still running after ${ms} ms:\n${out}\n${err}`));
        }, ms).unref(),
      ),
    ]);
  const cleanup = async () => {
    if (!opts.mnt) await rm(work, { recursive: true, force: true }).catch(() => undefined);
  };
  return {
    mnt,
    proc,
    stdout: () => out,
    stderr: () => err,
    stop: async () => {
      proc.kill('SIGTERM');
      const code = await exit();
      await cleanup();
      return code;
    },
    kill: async () => {
      proc.kill('SIGKILL');
      await exit();
    },
    exited: async (ms?: number) => {
      const code = await exit(ms);
      await cleanup();
      return code;
    },
  };
}
