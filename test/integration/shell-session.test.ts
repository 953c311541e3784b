// `tcefs shell < script` and `tcefs replay` against real mounts: the SPAPR v2 sequence with named files,
// handles, expectations and the TCE view; scripts that stop at the first unexpected result; transcripts
// recorded on one fresh daemon and replayed on another, as recorded and tampered with.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TOPOLOGY_JSON } from '../../src/topology/topology.ts';
import { tcefs } from '../helpers/cli.ts';
import { startDaemon, type DaemonOptions, type RunningDaemon } from '../helpers/daemon.ts';

/** A fresh daemon for the length of fn: transcripts replay against the state they were recorded from. */
async function withDaemon<T>(fn: (d: RunningDaemon) => Promise<T>, opts?: DaemonOptions): Promise<T> {
  const d = await startDaemon(opts);
  try {
    return await fn(d);
  } finally {
    await d.stop();
  }
}

// QEMU's order for a SPAPR v2 container (spapr-tce.md §6.2), with the answers it expects.
const SPAPR = `# SPAPR v2 on group 1
open c dev/vfio/vfio
open g dev/vfio/1
c VFIO_GET_API_VERSION => 0
c VFIO_CHECK_EXTENSION VFIO_SPAPR_TCE_v2_IOMMU => 1
c VFIO_SET_IOMMU VFIO_SPAPR_TCE_v2_IOMMU => EINVAL   # no group in the container yet
g VFIO_GROUP_GET_STATUS => 0 flags=VIABLE
g VFIO_GROUP_SET_CONTAINER @c
g VFIO_GROUP_GET_STATUS => 0 flags=VIABLE|CONTAINER_SET
c VFIO_SET_IOMMU VFIO_SPAPR_TCE_v2_IOMMU
$info = c VFIO_IOMMU_SPAPR_TCE_GET_INFO => 0 flags=DDW dma32_window_size=2G ddw.levels=5
$va = 0x7f0000000000
c VFIO_IOMMU_SPAPR_REGISTER_MEMORY vaddr=$va size=4G
$w = c VFIO_IOMMU_SPAPR_TCE_CREATE page_shift=16 window_size=4G levels=1 => 0 start_addr=0x0800000000000000
cat sys/kernel/debug/tcefs/groups/1/tce
c VFIO_IOMMU_MAP_DMA flags=READ|WRITE vaddr=$va+128K iova=$w.start_addr+128K size=64K
cat sys/kernel/debug/tcefs/groups/1/tce
d = g VFIO_GROUP_GET_DEVICE_FD 0000:02:00.0
d VFIO_DEVICE_GET_INFO => 0 flags=RESET|PCI num_regions=9 num_irqs=5
d VFIO_DEVICE_GET_REGION_INFO index=CONFIG => 0 size=4096 offset=0x70000000000
d read config:0 4 => 4 le=0xa808144d
g VFIO_GROUP_UNSET_CONTAINER => EBUSY   # the device is open
c VFIO_IOMMU_UNMAP_DMA iova=$w.start_addr+128K size=64K
c VFIO_IOMMU_SPAPR_TCE_REMOVE start_addr=$w.start_addr
open i dev/iommu
i IOMMU_DESTROY id=1 => ENOENT
echo window at $w.start_addr
`;

let d: RunningDaemon;
let work: string;
const shell = (script: string, ...args: string[]) => tcefs(['shell', '-m', d.mnt, ...args], script);

beforeAll(async () => {
  d = await startDaemon();
  work = await mkdtemp(join(tmpdir(), 'tcefs-shell-'));
});
afterAll(async () => {
  await d?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('tcefs shell < script', () => {
  it('runs the SPAPR v2 sequence with named files, handles, variables and expectations', async () => {
    const r = await shell(SPAPR);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout.split('\n');
    // Each command is echoed, then its response.
    expect(out.slice(0, 4)).toEqual(['tcefs> open c dev/vfio/vfio', '0', 'tcefs> open g dev/vfio/1', '0']);
    expect(out).toContain('@c kind=container  # handle of c');
    expect(out).toContain('0 out=40 start_addr=0x800000000000000');
    // The TCE view before and after the map: the new window is empty, then holds the one RW page.
    const views = r.stdout.split('tcefs> cat sys/kernel/debug/tcefs/groups/1/tce\n').slice(1);
    expect(views[0]).toMatch(/# slot1 user {2}0x0800000000000000-0x08000000ffffffff {2}64K pages {2}1 level {2}65536 TCEs {2}0 live/);
    expect(views[1]).toMatch(/# slot1 user .* 1 live/);
    expect(views[1]).toMatch(/^0x0800000000020000 {2}tce=0x[0-9a-f]{16} {2}RW {2}hpa=0x[0-9a-f]{16} {2}ua=0x00007f0000020000$/m);
    expect(out).toContain('0 new=@d');
    expect(out).toContain('4 data=hex:4d1408a8 le=0xa808144d');
    expect(out).toContain('window at 0x800000000000000');
  });

  it('leaves nothing open: the next session can take the same group', async () => {
    expect((await shell('open g dev/vfio/1\ng VFIO_GROUP_GET_STATUS => 0 flags=VIABLE\n')).code).toBe(0);
  });

  it('stops at the first unexpected result, with status 1 and the line', async () => {
    const r = await shell('open c dev/vfio/vfio\nc VFIO_SET_IOMMU VFIO_SPAPR_TCE_v2_IOMMU\necho not reached\n');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('tcefs: line 2: c VFIO_SET_IOMMU VFIO_SPAPR_TCE_v2_IOMMU\n  unexpected EINVAL\n');
    expect(r.stdout).not.toMatch(/not reached/);
  });

  it('stops when a result or a field is not the one expected', async () => {
    const wrong = await shell('open c dev/vfio/vfio\nc VFIO_CHECK_EXTENSION VFIO_TYPE1v2_IOMMU => 1\n');
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/line 2: .*\n {2}expected 1, got 0/);
    const field = await shell('open g dev/vfio/0\ng VFIO_GROUP_GET_STATUS => 0 flags=VIABLE|CONTAINER_SET\n');
    expect(field.code).toBe(1);
    expect(field.stderr).toMatch(/expected flags=VIABLE\|CONTAINER_SET, got VIABLE/);
    const errno = await shell('open g dev/vfio/0\ng VFIO_GROUP_UNSET_CONTAINER => EBUSY\n');
    expect(errno.stderr).toMatch(/expected EBUSY, got EINVAL/);
  });

  it('stops at a line it cannot run', async () => {
    for (const [line, why] of [
      ['c VFIO_CHECK_EXTENSION 7', /c: not a command or an open file/],
      ['open c dev/vfio/vfio\nc VFIO_IOMMU_MAP_DMA flags=READ|EXEC', /"EXEC" is not a number or a known name/],
      ['open c dev/vfio/vfio\nc VFIO_NOPE', /unknown ioctl VFIO_NOPE/],
      ['open c dev/vfio/vfio\nopen c dev/iommu', /c is already open/],
    ] as const) {
      const r = await shell(line + '\necho not reached\n');
      expect(r.code, line).toBe(1);
      expect(r.stderr, line).toMatch(why);
      expect(r.stdout).not.toMatch(/not reached/);
    }
  });

  it('expects open and cat failures like any other result', async () => {
    const r = await shell('open g dev/vfio/9 => ENOENT\ncat sys/kernel/debug/tcefs/groups/9/tce => ENOENT\nopen g dev/vfio/1\nopen h dev/vfio/1 => EBUSY\n');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('echoes nothing with --no-echo, and prints help', async () => {
    const r = await shell('open c dev/vfio/vfio\nhelp\n', '--no-echo');
    expect(r.stdout).toMatch(/^0\ncommands:\n {2}open NAME PATH/);
  });
});

describe('transcripts', () => {
  let recorded: string;

  beforeAll(async () => {
    const file = join(work, 'spapr.tx');
    const r = await withDaemon((fresh) => tcefs(['shell', '-m', fresh.mnt, '--record', file], SPAPR));
    expect(r.code).toBe(0);
    recorded = await readFile(file, 'utf8');
  });

  it('record every request and response with files by name', () => {
    const lines = recorded.split('\n');
    expect(lines[0]).toBe('#! tcefs-transcript 1 tcefs 0.1.0');
    expect(lines[1]).toMatch(/^#! topology powernv 64K; PHB4 domain 0: group 0 = domain0-pe1 \[0000:01:00.0 0000:01:00.1\], group 1 = domain0-pe2 \[0000:02:00.0\]$/);
    expect(lines).toEqual(expect.arrayContaining([
      '> c VFIO_SET_IOMMU arg=VFIO_SPAPR_TCE_v2_IOMMU', '< EINVAL',
      '> c handle', '< @c kind=container',
      '> g VFIO_GROUP_SET_CONTAINER fd=@c', '< 0',
      '> c VFIO_IOMMU_SPAPR_TCE_CREATE argsz=40 page_shift=16 window_size=0x100000000 levels=1', '< 0 out=40 start_addr=0x800000000000000',
      '> c VFIO_IOMMU_MAP_DMA argsz=32 flags=READ|WRITE vaddr=0x7f0000020000 iova=0x800000000020000 size=0x10000',
      '> d = g VFIO_GROUP_GET_DEVICE_FD name=0000:02:00.0', '< 0 new=@d',
      '> d read 0x70000000000 4', '< 4 data=hex:4d1408a8 le=0xa808144d',
    ]));
    expect(lines.filter((l) => l.startsWith('<| 0x0800000000020000'))).toHaveLength(1);
    // Handles are random on every run: no number of one may appear.
    expect(recorded).not.toMatch(/fd=\d|new=\d/);
  });

  it('replay against a fresh daemon as recorded', async () => {
    const file = join(work, 'replay-ok.tx');
    await writeFile(file, recorded);
    const r = await withDaemon((fresh) => tcefs(['replay', '-m', fresh.mnt, file]));
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${file}: 25 requests replayed, all as recorded\n`);
    expect(r.code).toBe(0);
  });

  it('fail at the first difference in a response, showing the expected and actual lines', async () => {
    const file = join(work, 'tampered.tx');
    await writeFile(file, recorded.replace('< 0 out=40 start_addr=0x800000000000000', '< 0 out=40 start_addr=0x900000000000000'));
    const line = recorded.split('\n').indexOf('> c VFIO_IOMMU_SPAPR_TCE_CREATE argsz=40 page_shift=16 window_size=0x100000000 levels=1') + 1;
    const r = await withDaemon((fresh) => tcefs(['replay', '-m', fresh.mnt, file]));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`${file}:${line}: > c VFIO_IOMMU_SPAPR_TCE_CREATE argsz=40 page_shift=16 window_size=0x100000000 levels=1\n` +
      '  expected: < 0 out=40 start_addr=0x900000000000000\n  actual:   < 0 out=40 start_addr=0x800000000000000\n');
  });

  it('fail at a difference in the text a cat read', async () => {
    const file = join(work, 'tampered-view.tx');
    await writeFile(file, recorded.replace(/(<\| 0x0800000000020000 .*)RW/, '$1R-'));
    const r = await withDaemon((fresh) => tcefs(['replay', '-m', fresh.mnt, file]));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/> cat sys\/kernel\/debug\/tcefs\/groups\/1\/tce\n {2}expected: <\| 0x0800000000020000 .* R- .*\n {2}actual: {3}<\| 0x0800000000020000 .* RW /);
  });

  it('refuse another topology, and what is not a transcript', async () => {
    const file = join(work, 'other.tx');
    await writeFile(file, recorded);
    const oneGroup = structuredClone(DEFAULT_TOPOLOGY_JSON) as { phbs: { pes: unknown[] }[] };
    oneGroup.phbs[0].pes = oneGroup.phbs[0].pes.slice(1);
    const r = await withDaemon((fresh) => tcefs(['replay', '-m', fresh.mnt, file]), { topology: oneGroup });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/recorded on another topology\n {2}expected: powernv 64K; .*group 0 = .*\n {2}actual: {3}powernv 64K; PHB4 domain 0: group 1 = domain0-pe2 \[0000:02:00.0\]\n/);
    const junk = join(work, 'junk.tx');
    await writeFile(junk, 'open c dev/vfio/vfio\n');
    const j = await tcefs(['replay', '-m', d.mnt, junk]);
    expect(j.code).toBe(2);
    expect(j.stderr).toMatch(/not a tcefs transcript/);
  });
});
