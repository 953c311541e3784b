// The NVMe model driven by an unmodified user-space NVMe driver under `tcefs run` (test/c/nvme_client.c):
// through a SPAPR v2 container and through an iommufd IOAS, with completions on an MSI-X eventfd, the
// data landing in the backing file named in the topology, a restarted daemon serving the same file, and
// a DMA fault that freezes the PE.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TOPOLOGY_JSON } from '../../src/topology/topology.ts';
import { kv } from '../helpers/c.ts';
import { tcefs } from '../helpers/cli.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { readViews, waitForClean } from '../helpers/leaks.ts';
import { runUnderShim } from '../helpers/shim.ts';

const BDF = '0000:02:00.0';
const GROUP = '1';
const XFER = 32 << 10;
const SLBA = 16;
const pattern = Buffer.from(Array.from({ length: XFER }, (_, i) => (i * 31 + 7) & 0xff));

let dir: string;
let backing: string;
let topology: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tcefs-nvme-'));
  backing = join(dir, 'nvme.img');
  const t = structuredClone(DEFAULT_TOPOLOGY_JSON) as any;
  Object.assign(t.phbs[0].pes[1].devices[0], { backing, size: '16M' });
  topology = join(dir, 'topology.json');
  await writeFile(topology, JSON.stringify(t));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const EXPECTED = {
  device: expect.stringMatching(/^\d+$/), region_info: '0', enable_memory: '2',
  mqes: '1023', dstrd: '0', mpsmax: '4', css_nvm: '1', vs: '0x10400', cap_halves: '1',
  disabled: '0x0', ready: '0x1', set_irqs: '0',
  identify_ctrl: '0', model: 'tcefs NVMe controller', nn: '1', admin_irq: '1',
  identify_ns: '0', nsze: String((16 << 20) / 512), lbads: '9',
  set_queues: '0', queues: '0x0', create_cq: '0', create_sq: '0',
  write: '0', io_irq: '1', flush: '0', read: '0', readback: 'ok',
  lba_range: '0x80', bad_opcode: '0x1', bad_ns: '0xb', shst: '2',
  fault_csts: '0xffffffff', fault_view: `dma fault ${BDF} write 0x0000000000800000  no-tce`,
};

describe('a user-space NVMe driver under tcefs run', () => {
  it.each(['spapr', 'iommufd'])('%s: identify, an I/O queue pair on MSI-X, write + flush + read, bad commands, a DMA fault', async (mode) => {
    await rm(backing, { force: true });
    const r = await runUnderShim('nvme_client', [mode, BDF, GROUP], { topology });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = kv(r.stdout);
    expect(out).toMatchObject(EXPECTED);
    // Flush completed: the data is in the file, at the block the driver wrote.
    const file = await readFile(backing);
    expect(file.length).toBe(16 << 20);
    expect(file.subarray(SLBA * 512, SLBA * 512 + XFER).equals(pattern)).toBe(true);
  });

  it('INTx: with MSI-X off the completions arrive on the INTx eventfd, unmasked by the driver after each', async () => {
    const r = await runUnderShim('nvme_client', ['spapr', BDF, GROUP, 'intx'], { topology });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = kv(r.stdout);
    expect(out).toMatchObject(EXPECTED);
    expect(out.unmask).toBeUndefined();
  });

  it('a new daemon serves what the file holds: a pattern put there beforehand reads back, nothing is written', async () => {
    await rm(backing, { force: true });
    const image = Buffer.alloc(1 << 20);
    pattern.copy(image, SLBA * 512);
    await writeFile(backing, image);
    const r = await runUnderShim('nvme_client', ['iommufd', BDF, GROUP, 'verify'], { topology });
    expect(r.stderr).toBe('');
    const out = kv(r.stdout);
    expect(out).toMatchObject({ ready: '0x1', read: '0', readback: 'ok', nsze: String((16 << 20) / 512) });
    expect(out.write).toBeUndefined();
    // The file was grown to the topology's size; its bytes are the test's.
    const after = await readFile(backing);
    expect(after.length).toBe(16 << 20);
    expect(after.subarray(0, 1 << 20).equals(image)).toBe(true);
  });
});

describe('a backing file that cannot be had', () => {
  it('stops the mount with the reason and status 2, before anything is mounted', async () => {
    const t = structuredClone(DEFAULT_TOPOLOGY_JSON) as any;
    Object.assign(t.phbs[0].pes[1].devices[0], { backing: dir });
    const file = join(dir, 'bad-topology.json');
    await writeFile(file, JSON.stringify(t));
    const r = await tcefs(['mount', join(dir, 'mnt'), '--topology', file]);
    expect(r.stderr.trim()).toBe(`tcefs: backing file ${dir}: EISDIR: illegal operation on a directory, open '${dir}'`);
    expect(r.code).toBe(2);
  });
});

describe('a driver SIGKILLed with writes in flight', () => {
  let d: RunningDaemon;
  beforeAll(async () => {
    d = await startDaemon();
  });
  afterAll(async () => {
    await d?.stop();
  });

  it.each(['spapr', 'iommufd'])('%s: leaves no pins, no /proc handle, no frozen PE; the next driver gets a working controller', async (mode) => {
    const boot = await readViews(d.mnt);
    const r = await runUnderShim('nvme_client', [mode, BDF, GROUP, 'kill'], { mnt: d.mnt });
    expect(kv(r.stdout)).toMatchObject({ ready: '0x1', create_sq: '0', killing: '1' });
    expect(r.code).not.toBe(0);
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
    expect((await readViews(d.mnt)).daemon.procHandles).toBe(0);
    const next = await runUnderShim('nvme_client', [mode, BDF, GROUP], { mnt: d.mnt });
    expect(kv(next.stdout)).toMatchObject({ ready: '0x1', write: '0', flush: '0', read: '0', readback: 'ok' });
  });
});
