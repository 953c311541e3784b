// The emulated PCI sysfs as real enumeration code meets it: a C program that finds its device the usual
// way, lspci (libpci's sysfs backend) under `tcefs run`, and every attribute written with garbage.
import { execFile } from 'node:child_process';
import { mkdtemp, open, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kv } from '../helpers/c.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { runUnderShim, tcefsRun } from '../helpers/shim.ts';
import { defaultTopology } from '../../src/topology/topology.ts';
import { PciConfigSpace } from '../../src/objects/vfio/pci-config.ts';
import { capabilities, resourceText } from '../../src/transport/sysfs-format.ts';
import { deviceDir } from '../../src/transport/sysfs.ts';

const sh = promisify(execFile);
const topology = defaultTopology();
const specs = topology.phbs.flatMap((p) => p.pes.flatMap((pe) => pe.devices.map((d) => ({ ...d, group: pe.group }))));
/** The config space the daemon builds for a function, to compare against without hard-coding it. */
const configOf = (bdf: string) => {
  const spec = specs.find((s) => s.bdf === bdf)!;
  const slot = bdf.slice(0, -2);
  return new PciConfigSpace(spec, specs.some((s) => s !== spec && s.bdf.slice(0, -2) === slot));
};

describe('a program that enumerates PCI the usual way (test/c/shim_sysfs.c)', () => {
  it('finds only the emulated functions, reads their sysfs and gets the same config bytes from the device fd', async () => {
    const r = await runUnderShim('shim_sysfs', []);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = kv(r.stdout);
    const bdfs = specs.map((s) => s.bdf).sort();
    const first = specs.find((s) => s.bdf === bdfs[0])!;
    const size = configOf(first.bdf).size;
    expect(out).toEqual({
      readdir: bdfs.join(','),
      bdf: first.bdf,
      group: String(first.group),
      vendor: `0x${first.vendor.toString(16).padStart(4, '0')}`,
      device: `0x${first.device.toString(16).padStart(4, '0')}`,
      class: `0x${first.classCode.toString(16).padStart(6, '0')}`,
      resource: resourceText(first.bars).split('\n')[0],
      config_st_size: String(size),
      config_len: String(size),
      set_container: '0',
      set_iommu: '0',
      device_fd: '0',
      config_region_info: '0',
      config_region_size: String(size),
      config_matches_region: '1',
      // vfio-pci enables the function while a user has it open.
      enable_while_open: '1',
      // d_type comes with the listing, as on sysfs (DT_LNK for every entry).
      getdents64_types: bdfs.map(() => 'lnk').join(','),
      fdopendir_count: String(bdfs.length),
      scandir: bdfs.join(','),
      nftw: '0',
      nftw_entries: bdfs.join(','),
      ftw: '0',
      ftw_first: '/sys/bus/pci/devices',
      ftw_foreign: '0',
      ftw_many: '1',
      glob: '0',
      glob_paths: bdfs.map((b) => `/sys/bus/pci/devices/${b}/vendor`).join(','),
      glob_groups: '0',
      glob_groups_count: String(bdfs.length),
      realpath: deviceDir('powernv', first.bdf),
      group_realpath: deviceDir('powernv', first.bdf),
      readlink: `../../..${deviceDir('powernv', first.bdf).slice('/sys'.length)}`,
      lstat_is_link: '1',
      stat_is_dir: '1',
      config_odd_offset: '1',
      config_read_at_end_minus_2: '2',
      config_read_at_end: '0',
      config_read_past_end: '0',
      config_write_past_end: '-EFBIG',
      vendor_write: '-EACCES',
      remove_open_read: '-EACCES',
      enable_garbage: '-EINVAL',
      enable_zero_when_off: '-EIO',
      numa_node_offline: '-EINVAL',
      numa_node_garbage: '-EINVAL',
      numa_node_none: '3',
      numa_node_back: '2',
      driver_override_set: '7',
      driver_override_clear: '1',
      bind_bound: '-ENODEV',
      missing_bdf: '-ENOENT',
      // Keys printed twice keep the last value (kv): the state after the writes.
      ...{ enable: '0', numa_node: '-1', driver_override: '(null)' },
    });
    // The values before the writes.
    expect(r.stdout).toMatch(/^numa_node=0\nenable=0$/m);
    expect(r.stdout).toMatch(/^driver_override=foo$/m);
  });
});

describe('lspci under tcefs run', () => {
  it('-vvv -nn -D shows the topology: every function, IDs, class, BARs, capabilities, group, driver; no host function', async () => {
    const r = await tcefsRun(['lspci', '-vvv', '-nn', '-D']);
    expect(r.code).toBe(0);
    // lspci asks libkmod for module names; this machine may have no /lib/modules, which is not ours.
    expect(r.stderr.replace(/^lspci: Unable to load libkmod resources.*\n/m, '')).toBe('');
    const blocks = r.stdout.trim().split(/\n\n+/);
    const heads = blocks.map((b) => b.split(' ')[0]);
    expect(heads).toEqual(specs.map((s) => s.bdf).sort());
    for (const block of blocks) {
      const s = specs.find((x) => x.bdf === block.split(' ')[0])!;
      const h4 = (n: number) => n.toString(16).padStart(4, '0');
      expect(block.split('\n')[0]).toContain(`[${h4(s.classCode >> 8)}]: `);
      expect(block.split('\n')[0]).toContain(`[${h4(s.vendor)}:${h4(s.device)}]`);
      expect(block).toContain(`Subsystem: `);
      expect(block).toContain(`[${h4(s.subsystemVendor)}:${h4(s.subsystemDevice)}]`);
      expect(block).toMatch(new RegExp(`\\n\\s+IOMMU group: ${s.group}\\n`));
      expect(block).toMatch(/\n\s+Kernel driver in use: vfio-pci(\n|$)/);
      for (const bar of s.bars) {
        const kind = bar.type === 'io' ? 'I/O ports' : 'Memory';
        const bits = bar.type === 'mem64' ? '64-bit' : '32-bit';
        const line = new RegExp(`Region ${bar.index}: ${kind} at ${bar.cpuAddress.toString(16)} \\(${bits}, ${bar.prefetchable ? '' : 'non-'}prefetchable\\)`);
        expect(block).toMatch(line);
      }
      // Whatever capabilities config space has, lspci found them at their offsets.
      const cfg = configOf(s.bdf);
      const offsets = [...capabilities((o, l) => cfg.read(o, l)).values()];
      expect(offsets.length).toBeGreaterThan(0);
      for (const at of offsets) expect(block).toContain(`Capabilities: [${at.toString(16)}]`);
    }
  });

  it('-t draws the functions on their buses, -nnk names the driver', async () => {
    const [tree, k] = await Promise.all([tcefsRun(['lspci', '-t']), tcefsRun(['lspci', '-nnk'])]);
    expect(tree.code).toBe(0);
    const buses = [...new Set(specs.map((s) => s.bdf.slice(0, 7)))];
    for (const b of buses) expect(tree.stdout).toContain(`[${b}]`);
    expect(k.stdout.match(/Kernel driver in use: vfio-pci/g)).toHaveLength(specs.length);
  });
});

describe('a pSeries host', () => {
  it('puts functions on the PHB root bus, and lspci still finds their group and driver through the links', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tcefs-sysfs-'));
    try {
      const file = join(dir, 'pseries.json');
      const json = { host: { flavour: 'pseries' }, phbs: [{ domain: 1, pes: [{ pe: 0, group: 42, devices: [{ bdf: '0001:00:01.0', vendor: '0x1af4', device: '0x1041', bars: [{ index: 0, size: '16K', type: 'mem64' }], msix: 3 }] }] }] };
      await writeFile(file, JSON.stringify(json));
      const r = await tcefsRun(['sh', '-c', 'lspci -vvv -D; readlink -f /sys/bus/pci/devices/0001:00:01.0/..'], { topology: file });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^0001:00:01\.0 /);
      expect(r.stdout).toMatch(/\n\s+IOMMU group: 42\n/);
      expect(r.stdout).toMatch(/\n\s+Kernel driver in use: vfio-pci\n/);
      expect(r.stdout.trim().split('\n').pop()).toBe('/sys/devices/pci0001:00');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('--host-pci', () => {
  it("lists the host's functions too, reachable, while the emulated ones win", async () => {
    const host = await readdir('/sys/bus/pci/devices').catch(() => [] as string[]);
    const script = 'ls /sys/bus/pci/devices; for d in /sys/bus/pci/devices/*; do echo "$d $(cat $d/vendor) $(readlink $d)"; done';
    const r = await tcefsRun(['sh', '-c', script], { hostPci: true });
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    const listed = lines.filter((l) => !l.includes(' '));
    const expected = [...new Set([...host, ...specs.map((s) => s.bdf)])].sort();
    expect(listed).toEqual(expected);
    for (const s of specs) expect(lines).toContain(`/sys/bus/pci/devices/${s.bdf} 0x${s.vendor.toString(16).padStart(4, '0')} ../../..${deviceDir('powernv', s.bdf).slice(4)}`);
    // A host function is the host's own entry: its real vendor, and the kernel's own link.
    for (const b of host.filter((b) => !specs.some((s) => s.bdf === b))) {
      const real = (await readFile(`/sys/bus/pci/devices/${b}/vendor`, 'utf8')).trim();
      expect(lines).toContain(`/sys/bus/pci/devices/${b} ${real} ${await readlink(`/sys/bus/pci/devices/${b}`)}`);
    }
  });
});

describe('shell tools', () => {
  it('readlink -f, realpath, find and ls agree with the links', async () => {
    const bdfs = specs.map((s) => s.bdf).sort();
    const b = bdfs[bdfs.length - 1];
    const g = specs.find((s) => s.bdf === b)!.group;
    const script = [
      `readlink -f /sys/bus/pci/devices/${b} /sys/kernel/iommu_groups/${g}/devices/${b} /sys/bus/pci/drivers/vfio-pci/${b}`,
      `realpath /sys/bus/pci/devices/${b}/iommu_group /sys/bus/pci/devices/${b}/driver`,
      'find /sys/bus/pci/devices/ -mindepth 1 -maxdepth 1 | sort',
      'ls /sys/bus/pci/drivers/vfio-pci',
    ].join('; ');
    const r = await tcefsRun(['bash', '-c', script]);
    expect(r.stderr).toBe('');
    const dir = deviceDir('powernv', b);
    expect(r.stdout.trim().split('\n')).toEqual([
      dir,
      dir,
      dir,
      `/sys/kernel/iommu_groups/${g}`,
      '/sys/bus/pci/drivers/vfio-pci',
      ...bdfs.map((x) => `/sys/bus/pci/devices/${x}`),
      ...[...bdfs, 'bind', 'module', 'uevent'].sort(),
    ]);
  });
});

describe('/sys/module', () => {
  it("lists the host's modules and the emulated host's VFIO ones, whose parameters say no no-IOMMU mode", async () => {
    const host = await readdir('/sys/module').catch(() => [] as string[]);
    const r = await tcefsRun(['bash', '-c', 'ls /sys/module; cat /sys/module/vfio/parameters/enable_unsafe_noiommu_mode; readlink -f /sys/module/vfio_pci/drivers/pci:vfio-pci; echo Y > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode || echo refused']);
    const lines = r.stdout.trim().split('\n');
    for (const m of ['vfio', 'vfio_pci', 'vfio_iommu_spapr_tce', 'iommufd', ...host]) expect(lines).toContain(m);
    expect(lines.slice(-3)).toEqual(['N', '/sys/bus/pci/drivers/vfio-pci', 'refused']);
    expect(r.stderr).toMatch(/Invalid argument/);
  });
});

describe('bad input on the attributes (on the mount itself)', () => {
  let d: RunningDaemon;
  beforeAll(async () => {
    d = await startDaemon();
  });
  afterAll(async () => {
    await d?.stop();
  });

  /** Every readable attribute of a function with its content, to see that refused writes change nothing. */
  async function snapshot(dir: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const name of (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name).sort()) {
      const fh = await open(join(dir, name), 'r').catch(() => undefined);
      if (!fh) continue;
      try {
        out[name] = (await fh.readFile()).toString('latin1');
      } catch (e) {
        out[name] = (e as NodeJS.ErrnoException).code!;
      } finally {
        await fh.close();
      }
    }
    return out;
  }

  it('refuses garbage with the kernel errno on every attribute and leaves every attribute as it was', async () => {
    const dev = join(d.mnt, 'sys/devices/pci0000:00/0000:00:00.0/0000:02:00.0');
    const before = await snapshot(dev);
    const errors: Record<string, string> = {};
    for (const name of Object.keys(before).concat(['remove', 'rescan', 'reset']).sort()) {
      // driver_override takes any string and config any bytes, as the kernel's do; they are tested apart.
      if (name === 'driver_override' || name === 'config') continue;
      const err = await writeFile(join(dev, name), 'garbage\n').then(() => 'ok', (e: NodeJS.ErrnoException) => e.code!);
      errors[name] = err;
    }
    expect(await snapshot(dev)).toEqual(before);
    const stores = ['enable', 'msi_bus', 'numa_node', 'uevent', 'reset_method', 'driver_override', 'config'];
    const refusedAtOpen = Object.keys(before).filter((n) => !stores.includes(n) && !/^resource\d/.test(n));
    expect(refusedAtOpen).toContain('vendor');
    for (const n of refusedAtOpen) expect([n, errors[n]]).toEqual([n, 'EACCES']);
    // BAR files open for writing (they map) but have no write: EIO, as sysfs answers.
    for (const n of Object.keys(before).filter((n) => /^resource\d/.test(n))) expect([n, errors[n]]).toEqual([n, 'EIO']);
    for (const n of ['enable', 'msi_bus', 'numa_node', 'uevent', 'remove', 'rescan', 'reset', 'reset_method']) expect([n, errors[n]]).toEqual([n, 'EINVAL']);
  });

  it('reads text and binary attributes at any offset; writes past config end are EFBIG; config writes reach config space', async () => {
    const dev = join(d.mnt, 'sys/bus/pci/devices/0000:01:00.1');
    const fh = await open(join(dev, 'resource'), 'r');
    const whole = await readFile(join(dev, 'resource'), 'latin1');
    const part = Buffer.alloc(10);
    const { bytesRead } = await fh.read(part, 0, 10, 3);
    expect(part.subarray(0, bytesRead).toString('latin1')).toBe(whole.slice(3, 13));
    expect((await fh.read(Buffer.alloc(8), 0, 8, whole.length + 100)).bytesRead).toBe(0);
    await fh.close();
    const cfg = await open(join(dev, 'config'), 'r+');
    const size = configOf('0000:01:00.1').size;
    expect((await cfg.read(Buffer.alloc(16), 0, 16, size - 5)).bytesRead).toBe(5);
    await expect(cfg.write(Buffer.from([1]), 0, 1, size)).rejects.toMatchObject({ code: 'EFBIG' });
    // The command register is writable through sysfs as on the kernel (the memory enable bit here).
    await cfg.write(Buffer.from([0x02]), 0, 1, 4);
    const b = Buffer.alloc(2);
    await cfg.read(b, 0, 2, 4);
    expect(b.readUInt16LE(0) & 0x2).toBe(2);
    await cfg.write(Buffer.from([0x00]), 0, 1, 4);
    await cfg.close();
    // Memory BAR files only map: reading one is EIO.
    const bar = await open(join(dev, 'resource0'), 'r');
    await expect(bar.read(Buffer.alloc(4), 0, 4, 0)).rejects.toMatchObject({ code: 'EIO' });
    await bar.close();
  });

  it('remove unplugs the function and rescan brings it back; reset_method takes only methods the function has', async () => {
    const m = d.mnt;
    const bdf = '0000:02:00.0';
    const methods = await readFile(join(m, `sys/bus/pci/devices/${bdf}/reset_method`), 'utf8');
    // No POWER host has ACPI, so no function has its reset method.
    await expect(writeFile(join(m, `sys/bus/pci/devices/${bdf}/reset_method`), 'acpi\n')).rejects.toMatchObject({ code: 'EINVAL' });
    expect(await readFile(join(m, `sys/bus/pci/devices/${bdf}/reset_method`), 'utf8')).toBe(methods);
    await writeFile(join(m, `sys/bus/pci/devices/${bdf}/reset_method`), '\n');
    expect(await readFile(join(m, `sys/bus/pci/devices/${bdf}/reset_method`), 'utf8')).toBe('');
    await expect(writeFile(join(m, `sys/bus/pci/devices/${bdf}/reset`), '1')).rejects.toMatchObject({ code: 'ENOTTY' });
    await writeFile(join(m, `sys/bus/pci/devices/${bdf}/reset_method`), 'default');
    expect(await readFile(join(m, `sys/bus/pci/devices/${bdf}/reset_method`), 'utf8')).toBe(methods);
    await writeFile(join(m, `sys/bus/pci/devices/${bdf}/reset`), '1');

    await writeFile(join(m, `sys/bus/pci/devices/${bdf}/remove`), '1');
    expect(await readdir(join(m, 'sys/bus/pci/devices'))).not.toContain(bdf);
    expect(await readdir(join(m, 'dev/vfio'))).not.toContain('1');
    await writeFile(join(m, 'sys/bus/pci/rescan'), '1');
    expect(await readdir(join(m, 'sys/bus/pci/devices'))).toContain(bdf);
    expect(await readlink(join(m, `sys/bus/pci/devices/${bdf}`))).toBe(`../../..${deviceDir('powernv', bdf).slice(4)}`);
    const ls = (await sh('ls', [join(m, 'sys/kernel/iommu_groups/1/devices')])).stdout;
    expect(ls.trim()).toBe(bdf);
  });
});
