// QEMU is the client tcefs exists for: a pseries machine with every default-topology function passed
// through with -device vfio-pci must realize with no vfio error, on Debian's QEMU 7.2 and on QEMU 10.0
// (bookworm-backports, fetched into the cache with a private apt configuration), and `quit` must leave
// the daemon as it booted. The ioctls QEMU issued are written to build/test-logs/ for people to read.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { readViews, waitForClean, type Views } from '../helpers/leaks.ts';
import { qemu10 } from '../helpers/qemu.ts';
import { tcefsRun } from '../helpers/shim.ts';
import { DEFAULT_TOPOLOGY_JSON } from '../../src/topology/topology.ts';

const BDFS = DEFAULT_TOPOLOGY_JSON.phbs.flatMap((p) => p.pes.flatMap((pe) => pe.devices.map((d) => d)));

const QEMUS: { name: string; get: () => Promise<{ bin: string; firmware?: string }> }[] = [
  { name: 'QEMU 7.2 (Debian 12)', get: async () => ({ bin: 'qemu-system-ppc64' }) },
  { name: 'QEMU 10.0 (bookworm-backports)', get: qemu10 },
];

function qemuArgs(q: { bin: string; firmware?: string }, devices: string[]): string[] {
  return [
    q.bin, ...(q.firmware ? ['-L', q.firmware] : []),
    '-M', 'pseries', '-accel', 'tcg', '-nodefaults', '-vga', 'none', '-nographic', '-S', '-display', 'none', '-serial', 'none',
    '-monitor', 'stdio', ...devices.flatMap((bdf) => ['-device', `vfio-pci,host=${bdf}`]),
  ];
}

for (const Q of QEMUS) {
  describe(`${Q.name}: -device vfio-pci for every default-topology function`, () => {
    let d: RunningDaemon;
    let boot: Views;
    let q: { bin: string; firmware?: string };

    beforeAll(async () => {
      q = await Q.get();
      d = await startDaemon({ env: { DEBUG: 'tcefs:ioctl' } });
      boot = await readViews(d.mnt);
    }, 300_000);
    afterAll(async () => {
      await d?.stop();
    });

    it('realizes them all in one guest (both functions of group 0 too), lists them in info pci, and quit leaves nothing', async () => {
      const script = `printf 'info pci\\nquit\\n' | ${qemuArgs(q, BDFS.map((b) => b.bdf)).map((a) => `'${a}'`).join(' ')}`;
      const traceStart = d.stderr().length;
      const r = await tcefsRun(['sh', '-c', script], { mnt: d.mnt });
      const trace = d.stderr().slice(traceStart);
      const logDir = join(ROOT, 'build', 'test-logs');
      await mkdir(logDir, { recursive: true });
      const log = join(logDir, `qemu-${Q.name.split(' ')[1]}-realize.log`);
      await writeFile(log, `$ ${script}\n--- qemu stdout\n${r.stdout}\n--- qemu stderr\n${r.stderr}\n--- tcefs ioctl trace\n${trace}`);
      console.log(`${Q.name}: ${trace.split('\n').filter((l) => l.includes('tcefs:ioctl')).length} ioctls, logged in ${log}`);

      expect(r.stderr, r.stderr).not.toMatch(/vfio|error|fail/i);
      expect(r.code, r.stderr).toBe(0);
      for (const dev of BDFS) {
        // info pci names each function by its IDs; the three functions come in as three guest devices.
        expect(r.stdout).toContain(`PCI device ${dev.vendor.slice(2)}:${dev.device.slice(2)}`);
      }
      expect(r.stdout.match(/PCI device 15b3:1017/g)).toHaveLength(2);
      // QEMU drove the legacy container the way a pseries VMM does.
      expect(trace).toMatch(/VFIO_SET_IOMMU arg=7 -> 0/);
      expect(trace).toMatch(/VFIO_DEVICE_SET_IRQS .* -> 0/);
      expect(trace.match(/VFIO_GROUP_GET_DEVICE_FD +-> 0/g)).toHaveLength(BDFS.length);
      expect(await waitForClean(d.mnt, boot)).toEqual([]);
    }, 120_000);
  });
}
