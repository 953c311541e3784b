// The mounted tree as a person or a program sees it, and the daemon's mount lifecycle.
import { execFile } from 'node:child_process';
import { lstat, readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { isMounted, startDaemon } from '../helpers/daemon.ts';

const sh = promisify(execFile);

describe('the tree', () => {
  it('has the /dev nodes and the sysfs entries real clients read', async () => {
    const d = await startDaemon();
    try {
      const m = d.mnt;
      expect((await readdir(join(m, 'dev/vfio'))).sort()).toEqual(['0', '1', 'devices', 'vfio']);
      expect((await readdir(join(m, 'dev/vfio/devices'))).sort()).toEqual(['vfio0', 'vfio1', 'vfio2']);
      expect((await stat(join(m, 'dev/iommu'))).isFile()).toBe(true);
      const dev = join(m, 'sys/bus/pci/devices/0000:01:00.1');
      expect(await readlink(join(dev, 'iommu_group'))).toBe('../../../../kernel/iommu_groups/0');
      expect(await realpath(join(dev, 'iommu_group'))).toBe(join(await realpath(m), 'sys/kernel/iommu_groups/0'));
      expect((await readdir(join(m, 'sys/kernel/iommu_groups/0/devices'))).sort()).toEqual(['0000:01:00.0', '0000:01:00.1']);
      expect(await realpath(join(m, 'sys/kernel/iommu_groups/1/devices/0000:02:00.0'))).toBe(join(await realpath(m), 'sys/devices/pci0000:00/0000:00:00.0/0000:02:00.0'));
      expect(await readFile(join(dev, 'vendor'), 'utf8')).toBe('0x15b3\n');
      expect(await readFile(join(dev, 'device'), 'utf8')).toBe('0x1017\n');
      expect(await readFile(join(dev, 'class'), 'utf8')).toBe('0x020000\n');
      expect(await readdir(join(dev, 'vfio-dev'))).toEqual(['vfio1']);
      expect((await lstat(join(dev, 'driver'))).isSymbolicLink()).toBe(true);
      expect((await realpath(join(dev, 'driver'))).endsWith('sys/bus/pci/drivers/vfio-pci')).toBe(true);
      expect(await readFile(join(m, 'sys/kernel/iommu_groups/1/reserved_regions'), 'utf8')).toBe('');
      expect(await readFile(join(m, 'sys/kernel/iommu_groups/1/type'), 'utf8')).toBe('unknown\n');
      // What a person sees from the shell.
      const ls = (await sh('ls', ['-l', join(m, 'dev/vfio')])).stdout;
      expect(ls).toMatch(/-rw-rw-rw- .* 0 .* vfio\n/);
      const cat = (await sh('cat', [join(dev, 'vendor'), join(dev, 'device')])).stdout;
      expect(cat).toBe('0x15b3\n0x1017\n');
      expect((await sh('readlink', [join(dev, 'iommu_group')])).stdout).toBe('../../../../kernel/iommu_groups/0\n');
      await expect(readFile(join(m, 'dev/nothing'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await d.stop();
    }
  });

  it('loads a topology file and refuses a bad one with a clear message', async () => {
    const topology = {
      host: { flavour: 'pseries' },
      phbs: [{ domain: 1, pes: [{ pe: 0, group: 42, devices: [{ bdf: '0001:00:01.0', vendor: '0x1af4', device: '0x1041' }] }] }],
    };
    const d = await startDaemon({ topology });
    try {
      expect(await readdir(join(d.mnt, 'dev/vfio'))).toContain('42');
        // pSeries: the function sits on the PHB's root bus, one level nearer /sys.
      expect(await readlink(join(d.mnt, 'sys/bus/pci/devices/0001:00:01.0'))).toBe('../../../devices/pci0001:00/0001:00:01.0');
      expect(await readlink(join(d.mnt, 'sys/bus/pci/devices/0001:00:01.0/iommu_group'))).toBe('../../../kernel/iommu_groups/42');
    } finally {
      await d.stop();
    }
    await expect(startDaemon({ topology: { phbs: [{ pes: [{ pe: 0, group: 1, devices: [{ bdf: 'nope' }] }] }] } })).rejects.toThrow(/bad PCI address "nope"/);
  });
});

describe('mount lifecycle', () => {
  it('unmounts cleanly on SIGTERM', async () => {
    const d = await startDaemon();
    const mnt = d.mnt;
    expect(await isMounted(mnt)).toBe(true);
    expect(await d.stop()).toBe(0);
    expect(await isMounted(mnt)).toBe(false);
  });

  it('replaces the stale mount a killed daemon left behind', async () => {
    const first = await startDaemon();
    await first.kill();
    expect(await isMounted(first.mnt)).toBe(true);
    await expect(readdir(join(first.mnt, 'dev'))).rejects.toMatchObject({ code: 'ENOTCONN' });
    const second = await startDaemon({ mnt: first.mnt });
    try {
      expect(await readdir(join(second.mnt, 'dev/vfio'))).toContain('vfio');
    } finally {
      await second.stop();
    }
    expect(await isMounted(first.mnt)).toBe(false);
  });

  it('refuses to mount over a live tcefs', async () => {
    const d = await startDaemon();
    try {
      await expect(startDaemon({ mnt: d.mnt })).rejects.toThrow(/already mounted/);
    } finally {
      await d.stop();
    }
  });
});
