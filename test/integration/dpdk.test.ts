// DPDK's PCI bus scan as a real client of the emulated sysfs: EAL walks /sys/bus/pci/devices, reads each
// function's IDs, numa_node, resources and driver, and probes which VFIO IOMMU types the container offers.
// Under tcefs run it must find the emulated functions and nothing of the host, and see the SPAPR container.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/daemon.ts';
import { tcefsRun } from '../helpers/shim.ts';
import { DEFAULT_TOPOLOGY_JSON } from '../../src/topology/topology.ts';

const exec = promisify(execFile);
const LIB = '/usr/lib/x86_64-linux-gnu';
const EMULATED = DEFAULT_TOPOLOGY_JSON.phbs.flatMap((p) => p.pes.flatMap((pe) => pe.devices.map((d) => d.bdf)));

describe("DPDK's EAL PCI bus scan (Debian's dpdk 22.11)", () => {
  let dir: string;
  let exe: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tcefs-dpdk-'));
    exe = join(dir, 'dpdk_scan');
    await exec('gcc', ['-Wall', '-Werror', '-O1', join(ROOT, 'test/c/dpdk_scan.c'), join(LIB, 'librte_eal.so.23'), '-o', exe]);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(`/var/run/dpdk/tcefs${process.pid}`, { recursive: true, force: true }); // EAL's runtime dir
  });

  it('finds the emulated functions only, on their NUMA node, and the SPAPR v2 VFIO container', async () => {
    const r = await tcefsRun([exe, '--no-huge', '-m', '64', '-l', '0', '--no-telemetry', '--file-prefix', `tcefs${process.pid}`,
      '-d', join(LIB, 'librte_bus_pci.so.23'), '--log-level=lib.eal:debug']);
    const log = r.stdout + r.stderr;
    expect(log, log).toMatch(/rte_eal_init=\d+/);
    const seen = [...log.matchAll(/EAL: PCI device (\S+) on NUMA socket (-?\d+)/g)].map((m) => [m[1], m[2]]);
    // The NVMe function has no DPDK driver here, so EAL names only the functions a driver matched: the NICs.
    expect(seen).toEqual([['0000:01:00.0', '0'], ['0000:01:00.1', '0']]);
    for (const [bdf] of seen) expect(EMULATED).toContain(bdf);
    expect(log).toMatch(/IOMMU type 7 \(sPAPR\) is supported/);
    expect(log).toMatch(/IOMMU type 1 \(Type 1\) is not supported/);
    expect(log).toMatch(/VFIO support initialized/);
  });
});
