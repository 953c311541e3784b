// The POWER test guest (scripts/guest) under `tcefs run`, for tests that talk to it while it runs: the
// console is watched line by line and the test may answer on the guest's console input.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, TCEFS } from './daemon.ts';

export interface GuestRun {
  code: number | null;
  console: string;
}

export interface GuestOptions {
  mnt: string;
  bdf: string;
  append: string;
  /** Killed after this long (the run then fails on its exit code). */
  timeoutMs: number;
  /** Another QEMU command ($QEMU of run.sh). */
  qemu?: string;
  /**
   * Called with all console output so far whenever more arrives; `say` writes a line to the guest's
   * console input. Calls do not overlap: output arriving meanwhile is seen by the next one.
   */
  watch?: (console: string, say: (line: string) => void) => Promise<void> | void;
}

export function bootGuest(o: GuestOptions): Promise<GuestRun> {
  const argv = [TCEFS, 'run', '--mount', o.mnt, '--', 'bash', join(ROOT, 'scripts/guest/run.sh'), '-v', o.bdf, '-a', o.append];
  const env = { ...process.env, ...(o.qemu && { QEMU: o.qemu }) };
  const p = spawn(process.execPath, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let busy = false;
  let again = false;
  const say = (line: string) => p.stdin.write(`${line}\n`);
  const poke = async () => {
    if (!o.watch) return;
    if (busy) return void (again = true);
    busy = true;
    try {
      do {
        again = false;
        await o.watch(out, say);
      } while (again);
    } catch (e) {
      out += `\n(watcher failed: ${e})`;
      p.kill('SIGKILL');
    } finally {
      busy = false;
    }
  };
  const onData = (b: Buffer) => {
    out += b;
    void poke();
  };
  p.stdout.on('data', onData);
  p.stderr.on('data', onData);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      out += `\n(killed after ${o.timeoutMs / 1000} s)`;
      p.kill('SIGKILL');
    }, o.timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, console: out });
    });
  });
}
