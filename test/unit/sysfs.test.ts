// The PCI sysfs formats and kernfs's open/read/write rules, without a mount.
import { describe, expect, it } from 'vitest';
import { E2BIG, EACCES, EFBIG, EINVAL, EIO, ENOENT, ERANGE } from '../../src/errno.ts';
import type { BarSpec, PciFunctionSpec } from '../../src/topology/topology.ts';
import {
  capabilities,
  cpulistText,
  cpumaskText,
  kstrto,
  linkSpeedText,
  modalias,
  pcieLink,
  resetMethods,
  resourceFlags,
  resourceText,
  sysfsStreq,
  ueventText,
} from '../../src/transport/sysfs-format.ts';
import { deviceDir, openAttr, relLink, type SysfsAttr } from '../../src/transport/sysfs.ts';
import { Daemon } from '../../src/daemon.ts';
import { defaultTopology, parseTopology } from '../../src/topology/topology.ts';
import { lookup } from '../../src/transport/tree.ts';

const bar = (b: Partial<BarSpec>): BarSpec => ({ index: 0, size: 4096, type: 'mem64', prefetchable: false, address: 0n, cpuAddress: 0n, ...b });
const errno = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as { errno?: number }).errno;
  }
  return 0;
};

describe('resource', () => {
  it('has the flags the PCI core gives each BAR kind', () => {
    // The values real machines print: 64-bit prefetchable, 64-bit, 32-bit memory, I/O.
    expect(resourceFlags(bar({ type: 'mem64', prefetchable: true }))).toBe(0x14220c);
    expect(resourceFlags(bar({ type: 'mem64' }))).toBe(0x140204);
    expect(resourceFlags(bar({ type: 'mem32' }))).toBe(0x40200);
    expect(resourceFlags(bar({ type: 'mem32', prefetchable: true }))).toBe(0x42208);
    expect(resourceFlags(bar({ type: 'io' }))).toBe(0x40101);
  });

  it('prints 13 lines: BARs at their CPU address, zeros for the rest (ROM, the 64-bit upper half, SR-IOV)', () => {
    const lines = resourceText([bar({ index: 0, size: 0x2000000, cpuAddress: 0x6000000000000n, prefetchable: true }), bar({ index: 2, size: 0x4000, type: 'mem32', cpuAddress: 0x600c080000000n })]).split('\n');
    expect(lines).toHaveLength(14);
    expect(lines[13]).toBe('');
    expect(lines[0]).toBe('0x0006000000000000 0x0006000001ffffff 0x000000000014220c');
    expect(lines[1]).toBe('0x0000000000000000 0x0000000000000000 0x0000000000000000');
    expect(lines[2]).toBe('0x000600c080000000 0x000600c080003fff 0x0000000000040200');
    for (const l of lines.slice(3, 13)) expect(l).toBe('0x0000000000000000 0x0000000000000000 0x0000000000000000');
  });
});

describe('identity texts', () => {
  const spec: PciFunctionSpec = { bdf: '0000:01:00.0', vendor: 0x15b3, device: 0x1017, classCode: 0x010802, subsystemVendor: 0x15b3, subsystemDevice: 0x0007, bars: [], msi: 0, msix: 0, caps: { revision: 0, interruptPin: 1, romSize: 0, romAddress: 0n, extCaps: [], serial: 0n } };
  it('modalias and uevent are upper-case hex as the kernel prints them', () => {
    expect(modalias(spec)).toBe('pci:v000015B3d00001017sv000015B3sd00000007bc01sc08i02\n');
    expect(ueventText(spec, 'vfio-pci')).toBe(
      'DRIVER=vfio-pci\nPCI_CLASS=10802\nPCI_ID=15B3:1017\nPCI_SUBSYS_ID=15B3:0007\nPCI_SLOT_NAME=0000:01:00.0\nMODALIAS=pci:v000015B3d00001017sv000015B3sd00000007bc01sc08i02\n',
    );
  });
});

describe('cpumasks', () => {
  it('prints %*pb: 32-bit chunks, the first only as wide as its bits', () => {
    expect(cpumaskText([0, 1], 2)).toBe('3\n');
    expect(cpumaskText([0, 1, 2, 3, 4, 5, 6, 7], 8)).toBe('ff\n');
    expect(cpumaskText([...Array(33).keys()], 33)).toBe('1,ffffffff\n');
    expect(cpumaskText([...Array(64).keys()], 64)).toBe('ffffffff,ffffffff\n');
    expect(cpumaskText([4], 40)).toBe('00,00000010\n');
  });
  it('prints %*pbl: ranges', () => {
    expect(cpulistText([0])).toBe('0\n');
    expect(cpulistText([0, 1, 2, 3])).toBe('0-3\n');
    expect(cpulistText([0, 2, 3, 4, 8])).toBe('0,2-4,8\n');
  });
});

/** A config space with the capabilities given (id, body bytes after the header). */
function configWith(caps: [number, number[]][]): (o: number, l: number) => Buffer {
  const b = Buffer.alloc(256);
  b.writeUInt16LE(0x10, 0x06);
  let at = 0x40;
  let prev = 0x34;
  for (const [id, body] of caps) {
    b[prev] = at;
    b[at] = id;
    Buffer.from(body).copy(b, at + 2);
    prev = at + 1;
    at += 0x40;
  }
  return (o, l) => b.subarray(o, o + l);
}

describe('capabilities, link and reset', () => {
  // PCIe capability v2: DEVCAP with FLR, LNKCAP 8 GT/s x16, LNKSTA 5 GT/s x8, LNKCAP2 up to 16 GT/s.
  const exp = Array(0x3e).fill(0);
  exp[0] = 0x02; // version 2
  exp.splice(2, 4, 0, 0, 0, 0x10); // DEVCAP (at +4): bit 28
  exp.splice(10, 4, 0x03 | (16 << 4), 0x01, 0, 0); // LNKCAP (at +0x0c)
  exp.splice(16, 2, 0x02 | (8 << 4), 0); // LNKSTA (at +0x12)
  exp.splice(0x2a, 4, 0x1e, 0, 0, 0); // LNKCAP2 (at +0x2c): 2.5-16 GT/s
  const read = configWith([[0x01, [0x03, 0x00, 0x08, 0x00]], [0x10, exp]]);

  it('walks the list', () => {
    expect([...capabilities(read)]).toEqual([
      [0x01, 0x40],
      [0x10, 0x80],
    ]);
    expect(capabilities(configWith([])).size).toBe(0);
  });

  it('decodes the link as the link attributes print it', () => {
    const l = pcieLink(read, 0x80);
    expect(l).toEqual({ speed: 2, width: 8, maxSpeed: 4, maxWidth: 16 });
    expect(linkSpeedText(l.speed)).toBe('5.0 GT/s PCIe\n');
    expect(linkSpeedText(l.maxSpeed)).toBe('16.0 GT/s PCIe\n');
    expect(linkSpeedText(0)).toBe('Unknown\n');
  });

  it('finds FLR from the PCIe capability, PM reset only without No_Soft_Reset, bus reset when alone below a bridge', () => {
    // The PM capability above has No_Soft_Reset (PMCSR bit 3) set.
    expect(resetMethods(read, false)).toEqual(['flr']);
    expect(resetMethods(read, true)).toEqual(['flr', 'bus']);
    expect(resetMethods(configWith([[0x01, [0x03, 0x00, 0x00, 0x00]]]), false)).toEqual(['pm']);
    expect(resetMethods(configWith([]), false)).toEqual([]);
  });
});

describe('kstrto', () => {
  it('takes what kstrtoul/kstrtoint take', () => {
    expect(kstrto('1', false, 64)).toBe(1n);
    expect(kstrto('1\n', false, 64)).toBe(1n);
    expect(kstrto('+7', false, 64)).toBe(7n);
    expect(kstrto('0x1f', false, 64)).toBe(31n);
    expect(kstrto('010', false, 64)).toBe(8n);
    expect(kstrto('0', false, 64)).toBe(0n);
    expect(kstrto('-1', true, 32)).toBe(-1n);
    expect(kstrto(Buffer.from('5\0junk'), false, 64)).toBe(5n);
  });
  it('refuses the rest: EINVAL for text, ERANGE for overflow', () => {
    for (const s of ['', '\n', 'yes', '1 ', ' 1', '1\n\n', '-1', '0x', '08', '1.0']) expect([s, errno(() => kstrto(s, false, 64))]).toEqual([s, EINVAL]);
    expect(errno(() => kstrto('18446744073709551616', false, 64))).toBe(ERANGE);
    expect(errno(() => kstrto('2147483648', true, 32))).toBe(ERANGE);
    expect(kstrto('-2147483648', true, 32)).toBe(-2147483648n);
  });
  it('compares as sysfs_streq', () => {
    expect(sysfsStreq('default\n', 'default')).toBe(true);
    expect(sysfsStreq('default ', 'default')).toBe(false);
  });
});

describe('kernfs open, read and write', () => {
  const text = (a: Partial<SysfsAttr>): SysfsAttr => ({ mode: 0o644, size: 4096, ...a });
  it('refuses a direction without a mode bit or a handler with EACCES, whoever asks', () => {
    expect(errno(() => openAttr(text({ mode: 0o444, show: () => 'x' }), 1, 4096))).toBe(EACCES);
    expect(errno(() => openAttr(text({ mode: 0o444, show: () => 'x' }), 2, 4096))).toBe(EACCES);
    expect(errno(() => openAttr(text({ mode: 0o200, store: () => {} }), 0, 4096))).toBe(EACCES);
    expect(errno(() => openAttr(text({ mode: 0o644, show: () => 'x' }), 1, 4096))).toBe(EACCES);
    expect(errno(() => openAttr(text({ mode: 0o200, store: () => {} }), 1, 4096))).toBe(0);
  });
  it('shows a text attribute once per open and serves any offset', () => {
    let n = 0;
    const f = openAttr(text({ mode: 0o444, show: () => `value${++n}\n` }), 0, 4096);
    expect(f.read(3, 2).toString()).toBe('lue');
    expect(f.read(100, 0).toString()).toBe('value1\n');
    expect(f.read(10, 7).length).toBe(0);
    expect(f.read(10, 1000).length).toBe(0);
  });
  it('hands a whole write to the store, E2BIG past a page', () => {
    const got: string[] = [];
    const f = openAttr(text({ store: (v) => void got.push(v.toString()) }), 1, 4096);
    expect(f.write(Buffer.from('1\n'), 0)).toBe(2);
    expect(f.write(Buffer.alloc(0), 0)).toBe(0);
    expect(errno(() => f.write(Buffer.alloc(4097, 0x31), 0))).toBe(E2BIG);
    expect(got).toEqual(['1\n']);
  });
  it('clips binary reads at the end, refuses writes at or past it with EFBIG, and mmap-only files with EIO', () => {
    const data = Buffer.from('0123456789');
    const writes: [number, string][] = [];
    const a: SysfsAttr = { mode: 0o644, size: 10, bin: { read: (o, l) => data.subarray(o, o + l), write: (o, d) => void writes.push([o, d.toString()]) } };
    const f = openAttr(a, 2, 4096);
    expect(f.read(4, 8).toString()).toBe('89');
    expect(f.read(4, 10).length).toBe(0);
    expect(f.write(Buffer.from('abcd'), 8)).toBe(2);
    expect(errno(() => f.write(Buffer.from('x'), 10))).toBe(EFBIG);
    expect(writes).toEqual([[8, 'ab']]);
    const bar = openAttr({ mode: 0o600, size: 4096, bin: { mmapOnly: true } }, 2, 4096);
    expect(errno(() => bar.read(4, 0))).toBe(EIO);
    expect(errno(() => bar.write(Buffer.from('x'), 0))).toBe(EIO);
  });
});

describe('layout', () => {
  it('puts PowerNV functions below the root port, pSeries and root-bus ones on the PHB bus', () => {
    expect(deviceDir('powernv', '0000:01:00.0')).toBe('/sys/devices/pci0000:00/0000:00:00.0/0000:01:00.0');
    expect(deviceDir('powernv', '0030:00:01.0')).toBe('/sys/devices/pci0030:00/0030:00:01.0');
    expect(deviceDir('pseries', '0001:00:01.0')).toBe('/sys/devices/pci0001:00/0001:00:01.0');
    expect(relLink('/sys/bus/pci/devices/0000:01:00.0', '/sys/devices/pci0000:00/0000:00:00.0/0000:01:00.0')).toBe('../../../devices/pci0000:00/0000:00:00.0/0000:01:00.0');
  });

  it('keeps store state across tree rebuilds; remove then rescan restores the function', () => {
    const d = new Daemon(defaultTopology());
    const numa = () => (lookup(d.tree, '/sys/devices/pci0000:00/0000:00:00.0/0000:01:00.1/numa_node') as { attr: SysfsAttr }).attr;
    openAttr(numa(), 1, 4096).write(Buffer.from('-1'), 0);
    d.rebuildTree();
    expect(openAttr(numa(), 0, 4096).read(10, 0).toString()).toBe('-1\n');
    const remove = (lookup(d.tree, '/sys/bus/pci/devices/0000:01:00.1') as { type: string }).type;
    expect(remove).toBe('link');
    const rm = (lookup(d.tree, '/sys/devices/pci0000:00/0000:00:00.0/0000:01:00.1/remove') as { attr: SysfsAttr }).attr;
    expect(errno(() => openAttr(rm, 1, 4096).write(Buffer.from('x'), 0))).toBe(EINVAL);
    expect(lookup(d.tree, '/sys/bus/pci/devices/0000:01:00.1')).toBeDefined();
    openAttr(rm, 1, 4096).write(Buffer.from('1'), 0);
    expect(lookup(d.tree, '/sys/bus/pci/devices/0000:01:00.1')).toBeUndefined();
    expect(lookup(d.tree, '/sys/kernel/iommu_groups/0/devices/0000:01:00.1')).toBeUndefined();
    const rescan = (lookup(d.tree, '/sys/bus/pci/rescan') as { attr: SysfsAttr }).attr;
    openAttr(rescan, 1, 4096).write(Buffer.from('1\n'), 0);
    expect(lookup(d.tree, '/sys/bus/pci/devices/0000:01:00.1')).toBeDefined();
    d.shutdown();
  });

  it('gives a topology SR-IOV PF the sriov_* files; sriov_numvfs refuses as vfio-pci without enable_sriov does', () => {
    const t = parseTopology({ phbs: [{ pes: [{ pe: 1, group: 3, devices: [{ bdf: '0000:01:00.0', vendor: '0x15b3', device: '0x1017', sriov: { totalVfs: 8, vfDevice: '0x1018' } }] }] }] });
    const d = new Daemon(t);
    const at = (n: string) => (lookup(d.tree, `${deviceDir('powernv', '0000:01:00.0')}/${n}`) as { attr: SysfsAttr } | undefined)?.attr;
    const show = (n: string) => openAttr(at(n)!, 0, 65536).read(100, 0).toString();
    expect([show('sriov_totalvfs'), show('sriov_numvfs'), show('sriov_offset'), show('sriov_stride'), show('sriov_vf_device')]).toEqual(['8\n', '0\n', '1\n', '1\n', '1018\n']);
    const numvfs = openAttr(at('sriov_numvfs')!, 1, 65536);
    expect(errno(() => numvfs.write(Buffer.from('many'), 0))).toBe(EINVAL);
    expect(errno(() => numvfs.write(Buffer.from('65536'), 0))).toBe(ERANGE);
    expect(errno(() => numvfs.write(Buffer.from('9'), 0))).toBe(ERANGE);
    expect(errno(() => numvfs.write(Buffer.from('4'), 0))).toBe(ENOENT);
    expect(numvfs.write(Buffer.from('0\n'), 0)).toBe(2);
    expect(show('sriov_numvfs')).toBe('0\n');
    const probe = openAttr(at('sriov_drivers_autoprobe')!, 1, 65536);
    expect(errno(() => probe.write(Buffer.from('maybe'), 0))).toBe(EINVAL);
    expect(show('sriov_drivers_autoprobe')).toBe('1\n');
    probe.write(Buffer.from('off'), 0);
    expect(show('sriov_drivers_autoprobe')).toBe('0\n');
    // Without SR-IOV in the topology there are none.
    const plain = new Daemon(defaultTopology());
    expect(lookup(plain.tree, `${deviceDir('powernv', '0000:01:00.0')}/sriov_totalvfs`)).toBeUndefined();
    expect(lookup(plain.tree, `${deviceDir('powernv', '0000:01:00.0')}/vendor`)).toBeDefined();
    plain.shutdown();
    d.shutdown();
  });
});
