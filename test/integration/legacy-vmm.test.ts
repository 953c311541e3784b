// A VMM's legacy VFIO sequence on a POWER host (spapr-tce.md §6), run unmodified under `tcefs run`:
// plain open()/ioctl()/pread() on /dev/vfio and /sys, with the TCE view checked at every step.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_TOPOLOGY_JSON } from '../../src/topology/topology.ts';
import { kv } from '../helpers/c.ts';
import { runUnderShim } from '../helpers/shim.ts';

/** The program's key=value lines, and its "view STEP ... end view" sections. */
function parse(stdout: string) {
  const views: Record<string, string[]> = {};
  let current: string[] | undefined;
  const plain: string[] = [];
  for (const line of stdout.split('\n')) {
    if (line.startsWith('view ')) views[line.slice(5)] = current = [];
    else if (line === 'end view') current = undefined;
    else if (current) current.push(line);
    else plain.push(line);
  }
  return { values: kv(plain.join('\n')), views };
}

/** TCE lines of a view: "<iova> <perm>". */
const tces = (view: string[]) => view.filter((l) => l.startsWith('0x')).map((l) => l.split(/\s+/)).map(([iova, , perm]) => `${iova} ${perm}`);

describe('the QEMU spapr sequence under tcefs run', () => {
  it('v2: register, get info, remove the default window, create both windows, map, tear down', async () => {
    const r = await runUnderShim('spapr_vmm', ['0000:02:00.0']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { values, views } = parse(r.stdout);
    expect(values).toMatchObject({
      group: '1', group_open: '0', viable: '1', api_version: '0', type: '7', set_container: '0', iommu: '7',
      register: '0', get_info: '0', dma32_start: '0x0', dma32_size: '0x80000000', flags: '1', pgsizes: '0x40211000', windows: '2', levels: '5',
      remove_default: '0', create_32: '0', window32: '0x0',
      map_4k_rw: '0', map_4k_ro: '0', map_misaligned_iova: '1', map_outside_windows: '-ENXIO',
      create_64: '0', window64: '0x800000000000000', map_64k: '0',
      unmap_64: '0', remove_64: '0', unmap_32: '0', remove_32: '0', unregister: '0', unset_container: '0',
    });
    // Before VFIO claims the group the host's own window is there (64K pages, two levels).
    expect(views.boot.join('\n')).toMatch(/slot0 host {2}0x0000000000000000-0x0000003fffffffff {2}64K pages {2}2 levels/);
    expect(views.mapped32.join('\n')).toMatch(/slot0 user {2}0x0000000000000000-0x000000003fffffff {2}4K pages {2}1 level {2}262144 TCEs {2}2 live/);
    expect(tces(views.mapped32)).toEqual(['0x0000000000001000 RW', '0x0000000000002000 R-']);
    expect(views.mapped64.join('\n')).toMatch(/slot1 user {2}0x0800000000000000-0x08000000ffffffff {2}64K pages/);
    expect(tces(views.mapped64)).toEqual(['0x0000000000001000 RW', '0x0000000000002000 R-', '0x0800000000020000 RW']);
    // And the host has its window back at the end.
    expect(views.released.join('\n')).toMatch(/slot0 host .*0 live/);
    expect(tces(views.released)).toEqual([]);
  });

  it('v1: enable, map into the lazily created default window, and refuse v2 calls', async () => {
    const r = await runUnderShim('spapr_vmm', ['0000:01:00.1', 'v1']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { values, views } = parse(r.stdout);
    expect(values).toMatchObject({
      group: '0', type: '7', set_iommu_v1: '0', iommu: '2', enable: '0', get_info: '0', dma32_size: '0x80000000', flags: '0',
      map_4k: '0', create_v1: '-ENOTTY', unmap: '0', disable: '0', unset_container: '0',
    });
    expect(views.mapped_v1.join('\n')).toMatch(/slot0 user {2}0x0000000000000000-0x000000007fffffff {2}4K pages/);
    expect(tces(views.mapped_v1)).toEqual(['0x0000000000004000 RW', '0x0000000000005000 RW']);
  });

  it('the device through the group: info, config space by pread, BAR sizing, interrupts, reset', async () => {
    const r = await runUnderShim('spapr_vmm', ['0000:01:00.1', 'v1']);
    expect(kv(r.stdout)).toMatchObject({
      device_fd_ok: '0', device_info: '0', device_flags: '3', num_regions: '9', num_irqs: '5',
      config_info: '0', config_size: '4096', config_offset: '0x70000000000', config_flags: '3',
      config_read: '4', vendor: '0x15b3', device: '0x1017',
      bar0_write: '4', bar0_read: '4', bar0: '0xfe00000c', bar0_info: '0', bar0_size: '33554432',
      msix_info: '0', msix_count: '64', device_reset: '0', unset_with_device_open: '-EBUSY',
    });
  });
});

describe('the same sequence over an iommufd-backed /dev/vfio/vfio serving the SPAPR calls (extension)', () => {
  it('runs unmodified with host.vfioContainer "iommufd" and host.iommufdSpaprCompat', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tcefs-topo-'));
    const topology = join(dir, 'topology.json');
    await writeFile(topology, JSON.stringify({ ...DEFAULT_TOPOLOGY_JSON, host: { ...DEFAULT_TOPOLOGY_JSON.host, vfioContainer: 'iommufd', iommufdSpaprCompat: true } }));
    const r = await runUnderShim('spapr_vmm', ['0000:02:00.0', 'v2'], { topology });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { values, views } = parse(r.stdout);
    expect(values).toMatchObject({ type: '7', iommu: '7', register: '0', flags: '1', window64: '0x800000000000000', map_64k: '0', unset_container: '0' });
    expect(tces(views.mapped64)).toEqual(['0x0000000000001000 RW', '0x0000000000002000 R-', '0x0800000000020000 RW']);
  });
});
