// The copy engine driven by an unmodified C program under `tcefs run` (test/c/copy_engine.c): DMA into
// the program's own memory through a SPAPR v2 container and through an iommufd domain, a fault that
// freezes the PE and writes nothing, EEH recovery, and a client SIGKILLed with a copy in flight.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kv } from '../helpers/c.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { readViews, waitForClean } from '../helpers/leaks.ts';
import { runUnderShim, tcefsRun } from '../helpers/shim.ts';

const TOPOLOGY_FILE = fileURLToPath(new URL('../../topologies/copy-engine.json', import.meta.url));
const BDF = '0000:03:00.0';
const GROUP = '2';

/** What both paths show: the copy, the register probes, and a fault that froze the PE. */
const COMMON = {
  device: expect.stringMatching(/^\d+$/), region_info: '0', config_info: '0', enable_memory: '2', id: '0x59504354',
  status: '0x2', completed: '1', copy: 'ok',
  // MSI-X armed on an eventfd (arm_msix) and the completion interrupt seen on it (wait_msix).
  set_irqs: '0', msix: '1',
  odd_write: '3', odd_read: '7', past_bar: '4',
  fault_status: '0xffffffff', fault_mmio: '0xffffffff', untouched: '1',
  fault_view: `dma fault ${BDF} write 0x0000000000400000  no-tce`,
};

describe('the copy engine under tcefs run', () => {
  it('copies through a SPAPR v2 container, freezes the PE on an unmapped IOVA, and recovers through EEH', async () => {
    const r = await runUnderShim('copy_engine', ['spapr', BDF, GROUP], { topology: TOPOLOGY_FILE });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toEqual({
      set_container: '0', set_iommu: '0', register_src: '0', register_dst: '0', remove_default: '0', create: '0',
      map_src: '0', map_dst: '0', eeh_enable: '0',
      ...COMMON,
      eeh_state: '2', unfreeze_io: '0', error_status: '0x304', unfreeze_dma: '0', eeh_state_after: '0',
      recovered_status: '0x2', recovered: 'ok',
    });
  });

  it('copies through an iommufd paging domain and freezes the PE on an unmapped IOVA', async () => {
    const r = await runUnderShim('copy_engine', ['iommufd', BDF, GROUP], { topology: TOPOLOGY_FILE });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toEqual({ bind: '0', ioas_alloc: '0', attach: '0', map_src: '0', map_dst: '0', ...COMMON });
  });
});

describe('a client SIGKILLed with a copy in flight', () => {
  let d: RunningDaemon;
  beforeAll(async () => {
    d = await startDaemon({ topology: JSON.parse(readFileSync(TOPOLOGY_FILE, 'utf8')) });
  });
  afterAll(async () => {
    await d?.stop();
  });

  it.each(['spapr', 'iommufd'])('%s: leaves no pins, no /proc handle, no frozen PE', async (mode) => {
    const boot = await readViews(d.mnt);
    const r = await runUnderShim('copy_engine', [mode, BDF, GROUP, 'kill'], { mnt: d.mnt });
    expect(kv(r.stdout)).toMatchObject({ id: '0x59504354', killing: '1' });
    expect(r.code).not.toBe(0);
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
    expect((await readViews(d.mnt)).daemon.procHandles).toBe(0);
  });
});

describe('the shim and Yama', () => {
  it('declares the daemon its ptracer with the pid the mount publishes, so /proc/<pid>/mem stays open to it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tcefs-strace-'));
    try {
      const log = join(dir, 'log');
      const r = await tcefsRun(['sh', '-c', `strace -f -qq -e trace=prctl -o ${log} cat "$TCEFS_MOUNT/.tcefs/pid"`]);
      expect(r.code).toBe(0);
      const pid = Number(r.stdout.trim());
      expect(pid).toBeGreaterThan(0);
      // Without Yama the call fails with EINVAL, which the shim ignores; the call is what matters.
      expect(readFileSync(log, 'utf8')).toMatch(new RegExp(`prctl\\(PR_SET_PTRACER, ${pid}\\)`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
