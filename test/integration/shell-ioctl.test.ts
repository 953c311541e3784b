// `tcefs ioctl`: one call on one node from the command line, against a real mount.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tcefs } from '../helpers/cli.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';

let d: RunningDaemon;
let work: string;
const ioctl = (...args: string[]) => tcefs(['ioctl', '-m', d.mnt, ...args]);

beforeAll(async () => {
  d = await startDaemon();
  work = await mkdtemp(join(tmpdir(), 'tcefs-shell-'));
});
afterAll(async () => {
  await d?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('tcefs ioctl', () => {
  it('runs a value ioctl with the argument by name or number', async () => {
    const byName = await ioctl('dev/vfio/vfio', 'VFIO_CHECK_EXTENSION', 'VFIO_SPAPR_TCE_v2_IOMMU');
    expect(byName).toMatchObject({ code: 0, stdout: 'VFIO_CHECK_EXTENSION arg=VFIO_SPAPR_TCE_v2_IOMMU on dev/vfio/vfio: 1\n' });
    expect((await ioctl('dev/vfio/vfio', 'VFIO_CHECK_EXTENSION', 'arg=3')).stdout).toMatch(/: 0\n$/);
  });

  it('prints the struct as a table, marking what the kernel wrote', async () => {
    const r = await ioctl('dev/vfio/1', 'VFIO_GROUP_GET_STATUS');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('VFIO_GROUP_GET_STATUS on dev/vfio/1: 0, 8 bytes copied back');
    expect(lines.find((l) => l.includes('argsz'))).toMatch(/^ +argsz +0x8 +8$/);
    expect(lines.find((l) => l.includes('flags'))).toMatch(/^\* +flags +0x1 +1 +VIABLE$/);
  });

  it('takes the node relative to the mount, absolute in it, or absolute as if the mount were /', async () => {
    for (const node of ['dev/vfio/vfio', join(d.mnt, 'dev/vfio/vfio'), '/dev/vfio/vfio']) {
      expect((await ioctl(node, 'VFIO_GET_API_VERSION')).stdout, node).toBe('VFIO_GET_API_VERSION on dev/vfio/vfio: 0\n');
    }
  });

  it('prints JSON for scripts, 64-bit values as hex strings', async () => {
    const r = await ioctl('dev/vfio/1', 'VFIO_GROUP_GET_STATUS', '--json');
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ node: 'dev/vfio/1', ioctl: 'VFIO_GROUP_GET_STATUS', result: 0, errno: null, out_len: 8, changed: ['flags'] });
    expect(j.fields).toEqual({ argsz: 8, flags: 1 });
    expect(j.names.flags).toBe('VIABLE');
    const info = JSON.parse((await ioctl('dev/vfio/vfio', 'VFIO_IOMMU_SPAPR_TCE_GET_INFO', '--json')).stdout);
    expect(info.fields['ddw.pgsizes']).toBe('0x0');
  });

  it('fails with the errno name and a non-zero status', async () => {
    // A container without a group cannot take an IOMMU type.
    const r = await ioctl('dev/vfio/vfio', 'VFIO_SET_IOMMU', 'VFIO_SPAPR_TCE_v2_IOMMU');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('VFIO_SET_IOMMU arg=VFIO_SPAPR_TCE_v2_IOMMU on dev/vfio/vfio: EINVAL (-22)\n');
    const j = JSON.parse((await ioctl('dev/iommu', 'IOMMU_DESTROY', 'id=5', '--json')).stdout);
    expect(j).toMatchObject({ result: -2, errno: 'ENOENT' });
    const missing = await ioctl('dev/vfio/7', 'VFIO_GROUP_GET_STATUS');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/open dev\/vfio\/7: ENOENT/);
  });

  it('refuses what it cannot encode with status 2, and says why @NAME needs the shell', async () => {
    const unknown = await ioctl('dev/vfio/vfio', 'VFIO_FROB');
    expect(unknown).toMatchObject({ code: 2, stdout: '' });
    expect(unknown.stderr).toMatch(/unknown ioctl VFIO_FROB/);
    expect((await ioctl('dev/vfio/1', 'VFIO_GROUP_GET_STATUS', 'flag=1')).stderr).toMatch(/no field flag \(fields: argsz flags\)/);
    const handle = await ioctl('dev/vfio/1', 'VFIO_GROUP_SET_CONTAINER', '@c');
    expect(handle.code).toBe(2);
    expect(handle.stderr).toMatch(/a handle lives only while its file is open, so @name works in the shell/);
    // Numbers still work for fd fields: fd=-1 is the kernel's EBADF case.
    expect((await ioctl('dev/vfio/1', 'VFIO_GROUP_SET_CONTAINER', 'fd=-1')).stdout).toMatch(/: EBADF \(-9\)/);
  });

  it('records a transcript that tcefs replay runs again', async () => {
    const file = join(work, 'one.tx');
    expect((await tcefs(['ioctl', '-m', d.mnt, '--record', file, 'dev/vfio/vfio', 'VFIO_CHECK_EXTENSION', '7'])).code).toBe(0);
    const lines = (await readFile(file, 'utf8')).split('\n');
    expect(lines[0]).toBe('#! tcefs-transcript 1 tcefs 0.1.0');
    expect(lines[1]).toBe('#! topology powernv 64K; PHB4 domain 0: group 0 = domain0-pe1 [0000:01:00.0 0000:01:00.1], group 1 = domain0-pe2 [0000:02:00.0]');
    expect(lines.slice(2)).toEqual(['> open f dev/vfio/vfio', '< 0', '> f VFIO_CHECK_EXTENSION arg=VFIO_SPAPR_TCE_v2_IOMMU', '< 1', '']);
    const replay = await tcefs(['replay', '-m', d.mnt, file]);
    expect(replay).toMatchObject({ code: 0, stdout: `${file}: 2 requests replayed, all as recorded\n` });
  });
});
