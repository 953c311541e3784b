// The end-to-end POWER guest: Debian's ppc64el kernel boots under TCG in QEMU, which passes tcefs's NVMe
// function 0000:02:00.0 through with vfio-pci. The guest's nvme driver binds, reads a block the test put
// in the backing file, writes one the test finds there afterwards, and powers off. On the way the guest
// creates its DMA windows through RTAS, which QEMU turns into VFIO_IOMMU_SPAPR_TCE_CREATE, and maps its
// buffers with TCEs: with a 64-bit DDW (Linux maps all its memory there at once) and, in a second boot
// with disable_ddw, in the default 32-bit window alone. While the driver is bound after its I/O, the
// guest copies a 1 MiB chunk of random data to the next one (one direct read, one direct write), then
// waits on its console and the test reads the PE's windows out of the daemon. QEMU 10.0 does the
// DDW boot once more. Every boot has QEMU's 1 GiB default window, which Linux clears at boot (262,144
// unmaps, answered by the shim's unmap lease). The DDW boot on QEMU 7.2 has an emulated PCnet NIC on
// the same PHB, whose driver maps its rings in the default window: both windows hold live TCEs at once.
// Before it, a guest is killed (SIGKILL to QEMU) while it reads, and the daemon must be left clean.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, TCEFS, startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { DEBUG_DIR, readViews, waitForClean, type Views } from '../helpers/leaks.ts';
import { qemu10 } from '../helpers/qemu.ts';
import { buildShim } from '../helpers/shim.ts';
import { DEFAULT_TOPOLOGY_JSON } from '../../src/topology/topology.ts';
import type { PeView } from '../../src/tce/inspect.ts';

const exec = promisify(execFile);
const BDF = '0000:02:00.0';
const BLOCK = 4096;
const READ_LBA = 2;
const WRITE_LBA = 5;
const DISK_BYTES = 16 << 20;
const CHUNK = 1 << 20;
/** Each boot copies chunk i to i + 1; the source chunks hold random data. */
const CHUNKS = { ddw: 2, noDdw: 4, qemu10: 6, killed: 8 };
const DDW_START = 0x0800000000000000n;
/** A hang guard, not a target: a boot takes 15 to 20 s here, several times that on a loaded machine. */
const BOOT_MS = 150_000;

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
/** `line\n` repeated to one block, as the guest's `yes TOKEN | head -c 4096` makes it. */
const pattern = (line: string) => Buffer.alloc(BLOCK, `${line}\n`);

interface Boot {
  code: number | null;
  console: string;
  /** The daemon's ioctl trace while the guest ran. */
  trace: string;
  /** The PE of the passed-through function while the guest held its driver bound after the I/O. */
  held?: PeView;
}

describe(`a pseries guest's nvme driver on tcefs's ${BDF}, passed through with vfio-pci`, () => {
  let work: string;
  let disk: string;
  let d: RunningDaemon;
  let idle: Views;
  let group: string;
  const hostBlock = pattern(`tcefs-host-${randomBytes(6).toString('hex')}`);
  const chunks = new Map(Object.values(CHUNKS).map((i) => [i, randomBytes(CHUNK)]));

  beforeAll(async () => {
    await Promise.all([exec('bash', [join(ROOT, 'scripts/guest/build.sh')], { timeout: 300_000 }), buildShim()]);
    work = await mkdtemp(join(tmpdir(), 'tcefs-guest-'));
    disk = join(work, 'disk.img');
    const f = await open(disk, 'w');
    await f.truncate(DISK_BYTES);
    await f.write(hostBlock, 0, BLOCK, READ_LBA * BLOCK);
    for (const [i, data] of chunks) await f.write(data, 0, CHUNK, i * CHUNK);
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

  /** Boot the guest under `tcefs run`; when it says it holds, snapshot the PE and let it go on. */
  async function boot(name: string, append: string, qemu?: string, extra?: string, killAt?: string): Promise<Boot> {
    const b = await bootOnce(append, qemu, extra, killAt);
    // For people to read: the guest's console, the PE while held and QEMU's ioctls.
    const dir = join(ROOT, 'build', 'test-logs');
    await mkdir(dir, { recursive: true });
    const log = join(dir, `guest-nvme-${name}.log`);
    await writeFile(log, `--- console (exit ${b.code})\n${b.console}\n--- PE while held\n${JSON.stringify(b.held?.windows, null, 1)}\n--- tcefs ioctl trace\n${b.trace}`);
    const counts = b.held?.windows.map((w) => `${w.start}: ${w.liveTces} live`).join(', ');
    console.log(`guest ${name}: held with ${counts ?? 'no snapshot'}; logged in ${log}`);
    return b;
  }

  /** With `killAt`, QEMU gets SIGKILL a second after that line shows on the console. */
  function bootOnce(append: string, qemu?: string, extra?: string, killAt?: string): Promise<Boot> {
    const traceStart = d.stderr().length;
    const argv = [TCEFS, 'run', '--mount', d.mnt, '--', 'bash', join(ROOT, 'scripts/guest/run.sh'), '-v', BDF, '-a', append, ...(extra ? ['-x', extra] : [])];
    const env = { ...process.env, ...(qemu && { QEMU: qemu }) };
    const p = spawn(process.execPath, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let held: PeView | undefined;
    let asked = false;
    let killing = false;
    const onData = (b: Buffer) => {
      out += b;
      if (killAt && !killing && out.includes(killAt)) {
        killing = true;
        setTimeout(() => void killQemu(p.pid!).then((pid) => (out += `\n(QEMU ${pid} killed with SIGKILL)\n`)), 1000);
      }
      if (!asked && out.includes('TCEFS-GUEST: holding')) {
        asked = true;
        readFile(join(d.mnt, DEBUG_DIR, 'groups', group, 'pe.json'), 'utf8')
          .then((j) => (held = JSON.parse(j)))
          .finally(() => p.stdin.write('go\n'));
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        out += `\n(killed after ${BOOT_MS / 1000} s)`;
        // QEMU first: it holds the group, and the console pipes until it is gone.
        void killQemu(p.pid!).finally(() => p.kill('SIGKILL'));
      }, BOOT_MS);
      p.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, console: out, trace: d.stderr().slice(traceStart), held });
      });
    });
  }

  /** SIGKILL to the QEMU that `tcefs run` (pid) started: its child, as run.sh execs QEMU. */
  async function killQemu(pid: number): Promise<number | undefined> {
    const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
    for (const c of children.split(' ').filter(Boolean).map(Number)) {
      const comm = await readFile(`/proc/${c}/comm`, 'utf8').catch(() => '');
      if (comm.startsWith('qemu-system')) {
        process.kill(c, 'SIGKILL');
        return c;
      }
    }
    return undefined;
  }

  /** The guest read the host's block, wrote its own, which is in the backing file now; the same for the chunk. */
  async function checkIo(b: Boot, token: string, chunk: number): Promise<void> {
    expect(b.console, b.console).toContain('TCEFS-GUEST: nvme0n1 present');
    expect(b.console).toContain(`TCEFS-GUEST: read lba ${READ_LBA} md5 ${md5(hostBlock)}`);
    const mine = pattern(token);
    expect(b.console).toContain(`TCEFS-GUEST: wrote lba ${WRITE_LBA} md5 ${md5(mine)} reread ${md5(mine)}`);
    expect(b.console).toContain('TCEFS-GUEST: done');
    expect(b.code, b.console).toBe(0);
    const f = await open(disk, 'r');
    const got = Buffer.alloc(BLOCK);
    await f.read(got, 0, BLOCK, WRITE_LBA * BLOCK);
    await f.close();
    expect(got.equals(mine)).toBe(true);
    const src = chunks.get(chunk)!;
    expect(b.console).toContain(`TCEFS-GUEST: bulk chunk ${chunk} of 1024k md5 ${md5(src)}`);
    const copy = Buffer.alloc(CHUNK);
    const g = await open(disk, 'r');
    await g.read(copy, 0, CHUNK, (chunk + 1) * CHUNK);
    await g.close();
    expect(copy.equals(src)).toBe(true);
    // QEMU's DMA calls all succeeded (it ignores some irq ones that fail on a kernel too).
    expect(b.trace).not.toMatch(/VFIO_IOMMU_(?:UN)?MAP_DMA .* -> E|SPAPR_TCE_(?:CREATE|REMOVE) .* -> E/);
  }

  const live = (pe: PeView | undefined, start: bigint) =>
    pe?.windows.find((w) => BigInt(w.start) === start)?.liveTces ?? 0;

  /** The guest made its 64-bit window through RTAS, QEMU asked tcefs for it, and the driver used it. */
  async function checkDdw(b: Boot): Promise<void> {
    expect(b.console).toMatch(/ibm,create-pe-dma-window\(\d+\) .* returned 0/);
    expect(b.trace).toMatch(new RegExp(`VFIO_IOMMU_SPAPR_TCE_CREATE \\{[^}]* start_addr=0x${DDW_START.toString(16)}\\} -> 0`));
    expect(b.trace).toMatch(new RegExp(`VFIO_IOMMU_MAP_DMA \\{[^}]* iova=0x${DDW_START.toString(16)}[^}]*\\} -> 0`));
    expect(live(b.held, DDW_START)).toBeGreaterThan(0);
    expect(await waitForClean(d.mnt, idle)).toEqual([]);
  }

  it('a guest killed (SIGKILL to QEMU) while it reads leaves the daemon as it booted; the next boots at once', async () => {
    const b = await boot('killed', `guest_busy=${CHUNKS.killed}:1024`, undefined, undefined, 'TCEFS-GUEST: busy reading');
    expect(b.console, b.console).toMatch(/QEMU \d+ killed with SIGKILL/);
    expect(b.console).not.toContain('TCEFS-GUEST: done');
    // There was state to clean: the guest had mapped all its memory into its DDW.
    expect(b.trace).toMatch(new RegExp(`VFIO_IOMMU_MAP_DMA \\{[^}]* iova=0x${DDW_START.toString(16)}[^}]*\\} -> 0`));
    // No pins, files, interrupts or windows left: the views are the boot views again.
    expect(await waitForClean(d.mnt, idle)).toEqual([]);
    // The next test's guest boots right after this one and does its I/O on the same daemon.
  }, BOOT_MS + 10_000);

  it('binds with a 64-bit DDW the guest creates through RTAS, does its I/O through it, and powers off; a NIC beside it uses the default window meanwhile', async () => {
    const token = `guest-ddw-${randomBytes(4).toString('hex')}`;
    const b = await boot('ddw', `guest_nic guest_read=${READ_LBA} guest_write=${WRITE_LBA}:${token} guest_bulk=${CHUNKS.ddw}:1024 guest_hold=30`, undefined, '-device pcnet,romfile=');
    await checkIo(b, token, CHUNKS.ddw);
    expect(b.console).toContain('TCEFS-GUEST: eth0 up');
    // The PCnet's driver (32-bit DMA mask) maps its rings in the default window, the NVMe all memory in
    // the DDW: both live in the same PE while the guest holds its driver bound after the I/O.
    expect(live(b.held, 0n)).toBeGreaterThan(0);
    await checkDdw(b);
    // QEMU's 1 GiB default window, which the guest clears page by page (262,144 unmaps): the daemon saw
    // a handful of them, the rest the shim answered from its unmap lease.
    expect(b.trace).toMatch(/VFIO_IOMMU_SPAPR_TCE_CREATE \{[^}]* window_size=0x40000000[^}]* start_addr=0x0\} -> 0/);
    expect(b.trace.split('\n').filter((l) => l.includes('VFIO_IOMMU_UNMAP_DMA')).length).toBeLessThan(1000);
  }, BOOT_MS + 10_000);

  it('with disable_ddw maps its buffers TCE by TCE in the default 32-bit window', async () => {
    const token = `guest-32-${randomBytes(4).toString('hex')}`;
    const b = await boot('no-ddw', `disable_ddw guest_read=${READ_LBA} guest_write=${WRITE_LBA}:${token} guest_bulk=${CHUNKS.noDdw}:1024 guest_hold=30`);
    await checkIo(b, token, CHUNKS.noDdw);
    expect(b.console).not.toMatch(/ibm,create-pe-dma-window/);
    expect(b.trace).not.toMatch(new RegExp(`start_addr=0x${DDW_START.toString(16)}`));
    expect(live(b.held, 0n)).toBeGreaterThan(0);
    expect(await waitForClean(d.mnt, idle)).toEqual([]);
  }, BOOT_MS + 10_000);

  it('does the same under QEMU 10.0 (bookworm-backports)', async () => {
    const q = await qemu10();
    const token = `guest-q10-${randomBytes(4).toString('hex')}`;
    const b = await boot('qemu10', `guest_read=${READ_LBA} guest_write=${WRITE_LBA}:${token} guest_bulk=${CHUNKS.qemu10}:1024 guest_hold=30`, `${q.bin} -L ${q.firmware}`);
    await checkIo(b, token, CHUNKS.qemu10);
    await checkDdw(b);
    // With the NVMe alone Linux maps nothing in the default window.
    expect(live(b.held, 0n)).toBe(0);
  }, BOOT_MS + 300_000);
});
