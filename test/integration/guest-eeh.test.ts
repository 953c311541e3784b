// EEH end to end: the pseries guest of guest-nvme.test.ts reads its NVMe namespace in a loop while the
// test freezes the function's PE, first with `tcefs eeh freeze`, then, once the guest has recovered,
// with an induced DMA fault (`tcefs eeh dma-fault`: the device's next DMA fails as through a bad TCE
// and the PHB freezes the PE). Each time the in-flight read hangs; the nvme driver's
// timeout reads CSTS as all ones, the guest's EEH core asks QEMU for the slot state over RTAS (QEMU:
// VFIO_EEH_PE_OP GET_STATE on the container), calls the driver's error_detected, resets the PE
// (ibm,set-slot-reset -> RESET_HOT, RESET_DEACTIVATE: tcefs resets the NVMe model), restores config
// and lets the driver re-enable the controller; the block layer retries the read. The test then checks
// the guest's log of the recovery, that every read returned the right data, that a write after the
// recovery reached the backing file, and that the TCE tables lived through the reset as on POWER.
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { tcefs } from '../helpers/cli.ts';
import { bootGuest } from '../helpers/guest.ts';
import { DEBUG_DIR, readViews, waitForClean, type Views } from '../helpers/leaks.ts';
import { buildShim } from '../helpers/shim.ts';
import { DEFAULT_TOPOLOGY_JSON } from '../../src/topology/topology.ts';
import type { PeView } from '../../src/tce/inspect.ts';

const exec = promisify(execFile);
const BDF = '0000:02:00.0';
const BLOCK = 4096;
const READ_LBA = 2;
const WRITE_LBA = 5;
const DISK_BYTES = 16 << 20;
const DDW_START = 0x0800000000000000n;
/** How long a command may hang before the guest's nvme driver looks at the device (30 s by default). */
const IO_TIMEOUT_S = 4;
const BOOT_MS = 240_000;

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const pattern = (line: string) => Buffer.alloc(BLOCK, `${line}\n`);

describe(`EEH recovery of a pseries guest's nvme driver on tcefs's ${BDF}`, () => {
  let work: string;
  let disk: string;
  let d: RunningDaemon;
  let idle: Views;
  let group: string;
  const hostBlock = randomBytes(BLOCK);

  beforeAll(async () => {
    await Promise.all([exec('bash', [join(ROOT, 'scripts/guest/build.sh')], { timeout: 300_000 }), buildShim()]);
    work = await mkdtemp(join(tmpdir(), 'tcefs-guest-eeh-'));
    disk = join(work, 'disk.img');
    const f = await open(disk, 'w');
    await f.truncate(DISK_BYTES);
    await f.write(hostBlock, 0, BLOCK, READ_LBA * BLOCK);
    await f.close();
    const topology = structuredClone(DEFAULT_TOPOLOGY_JSON) as { phbs: { pes: { devices: Record<string, unknown>[] }[] }[] };
    const dev = topology.phbs.flatMap((p) => p.pes.flatMap((pe) => pe.devices)).find((x) => x.bdf === BDF)!;
    Object.assign(dev, { model: 'nvme', backing: disk });
    d = await startDaemon({ topology, env: { DEBUG: 'tcefs:ioctl' } });
    group = basename(await readlink(join(d.mnt, 'sys/bus/pci/devices', BDF, 'iommu_group')));
    idle = await readViews(d.mnt);
  }, 300_000);
  afterAll(async () => {
    await d?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const pe = async (): Promise<PeView> => JSON.parse(await readFile(join(d.mnt, DEBUG_DIR, 'groups', group, 'pe.json'), 'utf8'));
  const live = (v: PeView | undefined, start: bigint) => v?.windows.find((w) => BigInt(w.start) === start)?.liveTces;
  const recoveries = (out: string) => out.split('\nTCEFS-GUEST: eeh reads')[0].match(/EEH: Recovery successful/g)?.length ?? 0;

  it('freezing the PE under I/O, by command and by a DMA fault: the guest resets it through RTAS each time and its I/O goes on', async () => {
    const token = `guest-eeh-${randomBytes(4).toString('hex')}`;
    const traceStart = d.stderr().length;
    let freezeAt = -1;
    let before: PeView | undefined;
    let frozen: PeView | undefined;
    let after: PeView | undefined;
    let faulted: PeView | undefined;
    let freeze: { code: number | null; stderr: string } | undefined;
    let arm: { code: number | null; stderr: string } | undefined;
    let stage = 0;
    const b = await bootGuest({
      mnt: d.mnt,
      bdf: BDF,
      append: `guest_read=${READ_LBA} guest_write=${WRITE_LBA}:${token} guest_eeh=150 nvme_core.io_timeout=${IO_TIMEOUT_S}`,
      timeoutMs: BOOT_MS,
      watch: async (out, say) => {
        if (stage === 0 && out.includes('TCEFS-GUEST: eeh reading')) {
          stage = 1;
          before = await pe();
          freezeAt = d.stderr().length;
          freeze = await tcefs(['eeh', 'freeze', group, '--mount', d.mnt]);
          frozen = await pe();
        } else if (stage === 1 && recoveries(out) === 1) {
          stage = 2;
          after = await pe();
          arm = await tcefs(['eeh', 'dma-fault', group, '--mount', d.mnt]);
        } else if (stage === 2 && recoveries(out) === 2) {
          stage = 3;
          faulted = await pe();
          say('go');
        }
      },
    });
    const trace = d.stderr().slice(traceStart);
    const sinceFreeze = freezeAt < 0 ? '' : d.stderr().slice(freezeAt);
    const dir = join(ROOT, 'build', 'test-logs');
    await mkdir(dir, { recursive: true });
    const log = join(dir, 'guest-eeh.log');
    await writeFile(log, `--- console (exit ${b.code})\n${b.console}\n--- PE before, frozen, after the freeze, after the DMA fault\n${JSON.stringify([before, frozen, after, faulted], null, 1)}\n--- tcefs ioctl trace\n${trace}`);
    console.log(`guest eeh: logged in ${log}`);

    // The freeze took, and the guest was told nothing but found out by itself.
    expect(freeze, b.console).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(frozen?.eeh.stateName).toBe('STOPPED');
    // The guest's EEH core found the frozen PE, the driver took part in every step, and recovery ended well.
    expect(b.console).toMatch(/EEH: Frozen PHB#\w+-PE#\w+ detected/);
    expect(b.console).toMatch(/EEH: Invoking nvme->error_detected\(IO frozen\)/);
    expect(b.console).toContain('EEH: Reset without hotplug activity');
    expect(b.console).toContain('nvme nvme0: restart after slot reset');
    expect(b.console).toMatch(/EEH: nvme driver reports: 'recovered'/);
    expect(b.console).toContain('EEH: Recovery successful');
    expect(b.console).not.toMatch(/EEH: (?:Permanent failure|Unable to recover)/);
    // Through QEMU's RTAS: the state read back as stopped, then a PE reset, asserted and deasserted.
    expect(sinceFreeze).toMatch(/VFIO_EEH_PE_OP \{[^}]* op=4 [^}]*\} -> 2n/);
    expect(sinceFreeze).toMatch(/VFIO_EEH_PE_OP \{[^}]* op=[67] [^}]*\} -> 0n/);
    expect(sinceFreeze).toMatch(/VFIO_EEH_PE_OP \{[^}]* op=5 [^}]*\} -> 0n/);
    // The reset controller got its MSI-X vectors back (QEMU turned MSI-X off for the reset).
    const reset = sinceFreeze.search(/op=[67] /);
    expect(sinceFreeze.slice(reset)).toMatch(/VFIO_DEVICE_SET_IRQS \{[^}]* index=2 start=0 count=2 [^}]*\} -> 0n/);
    // The TCE tables lived through the reset: no window made again, the DDW's TCEs all still there.
    expect(sinceFreeze).not.toMatch(/SPAPR_TCE_(?:CREATE|REMOVE)/);
    expect(live(before, DDW_START)).toBeGreaterThan(0);
    expect(live(after, DDW_START)).toBe(live(before, DDW_START));
    expect(after?.eeh.stateName).toBe('NORMAL');

    // The DMA fault: on record in the PE's view with the device that hit it, and recovered the same way.
    expect(arm).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(recoveries(b.console)).toBe(2);
    expect(b.console).toContain('EEH: This PCI device has failed 2 times in the last hour');
    expect(faulted?.eeh.dmaFaults).toEqual([expect.objectContaining({ reason: 'injected', device: BDF })]);
    expect(faulted?.eeh.stateName).toBe('NORMAL');
    expect(sinceFreeze.match(/VFIO_EEH_PE_OP \{[^}]* op=5 [^}]*\} -> 0n/g)?.length).toBeGreaterThanOrEqual(2);
    expect(live(faulted, DDW_START)).toBe(live(before, DDW_START));

    // Every read of the loop, the ones across the freezes included, returned the host's block.
    const reads = /TCEFS-GUEST: eeh reads (\d+) bad (\d+)/.exec(b.console);
    expect(reads, b.console).not.toBeNull();
    expect(Number(reads![1])).toBeGreaterThan(1);
    expect(Number(reads![2])).toBe(0);
    expect(b.console).toContain(`TCEFS-GUEST: read lba ${READ_LBA} md5 ${md5(hostBlock)}`);
    // The write after the recovery is in the backing file.
    const mine = pattern(token);
    expect(b.console).toContain(`TCEFS-GUEST: wrote lba ${WRITE_LBA} md5 ${md5(mine)} reread ${md5(mine)}`);
    expect(b.console).toContain('TCEFS-GUEST: done');
    expect(b.code, b.console).toBe(0);
    const f = await open(disk, 'r');
    const got = Buffer.alloc(BLOCK);
    await f.read(got, 0, BLOCK, WRITE_LBA * BLOCK);
    await f.close();
    expect(got.equals(mine)).toBe(true);
    expect(await waitForClean(d.mnt, idle)).toEqual([]);
  }, BOOT_MS + 10_000);
});
