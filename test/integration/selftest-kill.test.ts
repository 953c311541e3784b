// A client of the mock IOMMU killed mid-test: the kernel's own iommufd selftest, SIGKILLed (with the
// child each of its tests runs in) while it maps, pins through access objects and builds mock domains,
// leaves the --selftest daemon with no iommufd objects, pins, files or handles, and the daemon serves the
// next run as before.
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseKselftest } from '../../scripts/kselftest/tap.ts';
import { ROOT, TCEFS, startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { readViews, waitForClean, type Views } from '../helpers/leaks.ts';
import { buildShim } from '../helpers/shim.ts';

/** `tcefs run --mount MNT -- BIN ARGS` in a process group of its own; both streams in one pipe. */
function selftest(mnt: string, bin: string, args: string[], killAfterMs?: number): Promise<{ out: string; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    const p = spawn('sh', ['-c', 'exec "$0" "$@" 2>&1', process.execPath, TCEFS, 'run', '--mount', mnt, '--', bin, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    });
    let out = '';
    p.stdout.on('data', (b) => (out += b));
    const kill = () => {
      try {
        process.kill(-p.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const killer = killAfterMs === undefined ? undefined : setTimeout(kill, killAfterMs);
    const bound = setTimeout(kill, 170_000);
    p.on('close', (_code, signal) => {
      clearTimeout(bound);
      if (killer) clearTimeout(killer);
      resolve({ out, signal });
    });
  });
}

describe('a selftest client SIGKILLed mid-run under --selftest', () => {
  let d: RunningDaemon;
  let bin: string;
  let boot: Views;
  beforeAll(async () => {
    await buildShim();
    const built = execFileSync('bash', [join(ROOT, 'scripts/kselftest/build.sh')], { encoding: 'utf8', timeout: 600_000 });
    bin = /^IOMMUFD=(.*)$/m.exec(built)![1];
    d = await startDaemon({ args: ['--selftest'] });
    boot = await readViews(d.mnt);
  }, 600_000);
  afterAll(async () => {
    await d?.stop();
  });

  it('leaves no mock objects, pins or files, and the next run passes', async () => {
    // iommufd_ioas runs access pins, ACCESS_RW and mock domains back to back: a kill lands in one of them.
    const killed = await selftest(d.mnt, bin, ['-f', 'iommufd_ioas'], 2500);
    expect(killed.signal).toBe('SIGKILL');
    const during = parseKselftest(killed.out);
    expect(during.tests.length).toBeLessThan(during.planned ?? 0);
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
    const again = parseKselftest((await selftest(d.mnt, bin, ['-f', 'iommufd'])).out);
    expect(again.planned).toBe(11);
    expect(again.tests.filter((t) => t.status !== 'pass')).toEqual([]);
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
  }, 240_000);
});
