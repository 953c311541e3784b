// `tcefs demo` run as a person would, without a terminal: it mounts tcefs, boots the POWER guest with the
// NVMe function passed through, prints the guest's I/O and the refreshed TCE view, and leaves no mount and
// no temporary directory behind, whether the guest's time runs out (--duration) or Ctrl-C stops it.
import { spawn } from 'node:child_process';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, TCEFS } from '../helpers/daemon.ts';
import { buildShim } from '../helpers/shim.ts';

const exec = promisify(execFile);
const RUN_MS = 150_000;

interface Demo {
  code: number | null;
  out: string;
}

/** Run the demo; with `interruptAt`, Ctrl-C it once its output has shown every one of those. */
function demo(args: string[], interruptAt?: (string | RegExp)[]): Promise<Demo> {
  const p = spawn(process.execPath, [TCEFS, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let sent = false;
  const onData = (b: Buffer) => {
    out += b;
    if (interruptAt && !sent && interruptAt.every((w) => (typeof w === 'string' ? out.includes(w) : w.test(out)))) {
      sent = true;
      p.kill('SIGINT');
    }
  };
  p.stdout.on('data', onData);
  p.stderr.on('data', onData);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      out += '\n(killed: the demo took too long)';
      p.kill('SIGKILL');
    }, RUN_MS);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** Live TCEs of the window starting at `start` in each refreshed view. */
const liveCounts = (out: string, start: string) =>
  [...out.matchAll(new RegExp(`window \\d ${start}-\\S+ .* (\\d+) live`, 'g'))].map((m) => Number(m[1]));

/** The demo's temporary directory is gone and nothing is mounted under it. */
async function cleanedUp(d: Demo): Promise<void> {
  const dir = /unmounted and removed (\S+)/.exec(d.out)?.[1];
  expect(dir, d.out).toMatch(/tcefs-demo-/);
  expect(existsSync(dir!)).toBe(false);
  expect(await readFile('/proc/self/mounts', 'utf8')).not.toContain(dir!);
}

describe('tcefs demo', () => {
  beforeAll(async () => {
    await Promise.all([exec('bash', [join(ROOT, 'scripts/guest/build.sh')], { timeout: 300_000 }), buildShim()]);
  }, 300_000);

  it('shows the guest writing and reading through the 64-bit DDW, the live TCEs and the DMA, then cleans up', async () => {
    const d = await demo(['--duration', '6', '--interval', '1000']);
    expect(d.out).toMatch(/guest │ demo round 1: wrote 4 KiB at lba 65, read it back \(matches: tcefs-demo round 1\), read 1 MiB at \d+ MiB/);
    expect(d.out).toMatch(/guest │ demo: \d+ rounds/);
    expect(d.out).toMatch(/ibm,create-pe-dma-window.* returned 0/);
    // Linux maps all of the guest's 1 GiB into the DDW: 262,144 4K TCEs, which QEMU asked for 16 MiB at a time.
    expect(Math.max(0, ...liveCounts(d.out, '0x0800000000000000'))).toBe(262144);
    expect(d.out).toMatch(/VFIO_IOMMU_MAP_DMA \{[^}]*iova=0x8000000[0-9a-f]{8}[^}]*\} -> 0/);
    // The device's own DMA went through those TCEs into QEMU's memory (the guest's).
    expect(d.out).toMatch(/(read |write) +\d+ B at iova 0x08[0-9a-f]{14} -> host 0x[0-9a-f]{16}/);
    expect(d.out).toMatch(/the guest did \d+ rounds of I\/O through tcefs and powered off/);
    expect(d.code, d.out).toBe(0);
    // After QEMU closed the group the PE is the platform's again, without a live TCE.
    expect(d.out).toMatch(/tcefs view after QEMU exited: .* platform-owned/);
    await cleanedUp(d);
  }, RUN_MS + 10_000);

  it('with --no-ddw maps buffers in the 32-bit window; Ctrl-C stops the guest, which powers off', async () => {
    // The views are printed when they change: Ctrl-C only once one has shown the device's DMA.
    const d = await demo(['--no-ddw', '--interval', '1000'], ['demo round 2:', /(read |write) +\d+ B at iova 0x0000000000[0-9a-f]{6} -> host/]);
    expect(d.out).toContain('Ctrl-C: asking the guest to stop and power off');
    expect(d.out).not.toMatch(/ibm,create-pe-dma-window/);
    expect(Math.max(0, ...liveCounts(d.out, '0x0000000000000000'))).toBeGreaterThan(0);
    expect(d.out).toMatch(/(read |write) +\d+ B at iova 0x0000000000[0-9a-f]{6} -> host/);
    expect(d.out).toMatch(/guest │ done/);
    expect(d.code, d.out).toBe(130);
    await cleanedUp(d);
  }, RUN_MS + 10_000);
});
