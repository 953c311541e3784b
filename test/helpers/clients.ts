// Long-running client processes for the reliability tests: started, watched line by line, signalled,
// fed on stdin, and always waited for with a bound, so a client stuck on a dead mount fails a test
// instead of hanging it.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildC } from './c.ts';

export interface Client {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** key=value lines printed so far (the last value of each key). */
  kv: () => Record<string, string>;
  /** Resolves when a line equal to `line` (or matching it) has been printed; rejects after `ms` or if the process ends first. */
  waitForLine: (line: string | RegExp, ms?: number) => Promise<void>;
  /** Resolves when `check(stdout)` holds; rejects after `ms` or if the process ends first. */
  waitUntil: (check: (stdout: string) => boolean, ms?: number) => Promise<void>;
  /** Exit code, or 128+signal; rejects after `ms` (the process is then killed). */
  exited: (ms?: number) => Promise<number>;
}

export function watch(proc: ChildProcess): Client {
  let out = '';
  let err = '';
  const ended = new Promise<number>((res) => proc.on('close', (code, sig) => res(code ?? (sig ? 128 + (({ SIGKILL: 9, SIGTERM: 15 }) as Record<string, number>)[sig]! : 0))));
  proc.stdout?.on('data', (d) => (out += d));
  proc.stderr?.on('data', (d) => (err += d));
  const lines = () => out.split('\n');
  const waitUntil = (check: () => boolean, what: string, ms = 20_000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`no ${what} within ${ms} ms; stdout:\n${out}\nstderr:\n${err}`)), ms);
      const test = () => check() && done();
      const onClose = () => done(new Error(`exited before ${what}; stdout:\n${out}\nstderr:\n${err}`));
      function done(e?: Error) {
        clearTimeout(timer);
        proc.stdout?.off('data', test);
        proc.off('close', onClose);
        if (e) reject(e);
        else resolve();
      }
      proc.stdout?.on('data', test);
      proc.on('close', onClose);
      test();
    });
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    kv: () => Object.fromEntries(lines().filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])),
    waitForLine: (line, ms) => waitUntil(() => lines().some((l) => (typeof line === 'string' ? l === line : line.test(l))), `"${line}"`, ms),
    waitUntil: (check, ms) => waitUntil(() => check(out), 'the expected output', ms),
    exited: (ms = 30_000) =>
      Promise.race([
        ended,
        new Promise<number>((_, reject) =>
          setTimeout(() => {
            proc.kill('SIGKILL');
            reject(new Error(`still running after ${ms} ms; stdout:\n${out}\nstderr:\n${err}`));
          }, ms).unref(),
        ),
      ]),
  };
}

/** Start a test program from test/c (built with libtcefs), stdin a pipe the test may write to. */
export async function startC(name: string, args: string[], opts: SpawnOptions = {}): Promise<Client> {
  const exe = await buildC(name);
  return watch(spawn(exe, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts }));
}

/** A directory inside the run's temp dir, which test/global-setup.ts removes (mounts detached first) when the run ends. */
export async function testDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'tcefs-test-'));
}
