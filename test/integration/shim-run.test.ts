// `tcefs run` as a command: private mounts and their cleanup, --mount, --topology, exit statuses,
// signals, the environment it gives the program, and the example that builds and runs in one command.
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, open, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kv } from '../helpers/c.ts';
import { isMounted, ROOT, startDaemon, TCEFS, type RunningDaemon } from '../helpers/daemon.ts';
import { buildShim, runUnderShim, tcefsRun } from '../helpers/shim.ts';

const PRELOAD = join(ROOT, 'build', 'libtcefs-preload.so');

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tcefs-test-run-'));
  await buildShim();
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('tcefs run with a private mount', () => {
  it('runs the program under the shim, exits with its status and removes the mount', async () => {
    const r = await tcefsRun(['sh', '-c', 'echo mount=$TCEFS_MOUNT; echo preload=$LD_PRELOAD; [ -c /dev/vfio/vfio ] && echo vfio=chr; exit 7']);
    expect(r.code).toBe(7);
    expect(r.stderr).toBe('');
    const out = kv(r.stdout);
    expect(out.preload).toBe(PRELOAD);
    expect(out.vfio).toBe('chr');
    expect(out.mount).toMatch(/\/tcefs-run-[^/]+\/mnt$/);
    expect(await isMounted(out.mount)).toBe(false);
    await expect(stat(out.mount)).rejects.toThrow(/ENOENT/);
  });

  it('serves the topology given with --topology', async () => {
    const topology = join(work, 'one-nvme.json');
    await writeFile(topology, JSON.stringify({
      host: { flavour: 'powernv' },
      phbs: [{ domain: 0, model: 'PHB4', pes: [{ pe: 7, group: 5, devices: [{ bdf: '0000:05:00.0', vendor: '0x1234', device: '0x5678', class: '0x010802', bars: [{ index: 0, size: '16K', type: 'mem64', prefetchable: false }] }] }] }],
    }));
    const r = await tcefsRun(['sh', '-c', 'echo groups=$(ls /sys/kernel/iommu_groups); echo vendor=$(cat /sys/bus/pci/devices/0000:05:00.0/vendor)'], { topology });
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toEqual({ groups: '5', vendor: '0x1234' });
  });

  it('passes the private daemon\'s DEBUG traces on to stderr', async () => {
    const r = await runUnderShim('shim_foundation', [], { env: { DEBUG: 'tcefs:ioctl' } });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/dev\/vfio\/vfio#[0-9a-f]+ VFIO_GET_API_VERSION +-> 0/);
    expect(r.stdout).not.toMatch(/mounted on/);
  });

  it('works when the mount is reached through a symlink (/proc/self/fd shows the real path)', async () => {
    await mkdir(join(work, 'real'));
    await symlink(join(work, 'real'), join(work, 'link'));
    const r = await runUnderShim('shim_foundation', [], { env: { TMPDIR: join(work, 'link') } });
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toMatchObject({ api_version: '0', ext_spapr_v2: '1', group_status: '0', group_second_open: '-EBUSY' });
  });

  it('puts the shim first in an existing LD_PRELOAD', async () => {
    const mine = join(ROOT, 'build', 'libtcefs.so');
    const r = await tcefsRun(['sh', '-c', 'echo "$LD_PRELOAD"'], { env: { LD_PRELOAD: mine } });
    expect(r.stdout.trim()).toBe(`${PRELOAD}:${mine}`);
  });

  it('answers 127 for a missing command and 128+N for a program killed by signal N', async () => {
    const missing = await tcefsRun([join(work, 'no-such-program')]);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toMatch(/command not found/);
    const killed = await tcefsRun(['sh', '-c', 'kill -KILL $$']);
    expect({ code: killed.code, stderr: killed.stderr }).toEqual({ code: 128 + 9, stderr: '' });
  });

  it('relays a signal sent to tcefs run to the program', async () => {
    const p = spawn(process.execPath, [TCEFS, 'run', '--', 'sh', '-c', 'trap "echo got=TERM; exit 42" TERM; echo ready=1; while :; do sleep 0.05; done'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const exited = new Promise<number | null>((res) => p.on('exit', (code) => res(code)));
    await new Promise<void>((res) => {
      p.stdout.on('data', (d) => {
        out += d;
        if (out.includes('ready=1')) res();
      });
    });
    p.kill('SIGTERM');
    expect(await exited).toBe(42);
    expect(out).toContain('got=TERM');
  });

  it('unmounts the private tree even when tcefs run is killed outright', async () => {
    const p = spawn(process.execPath, [TCEFS, 'run', '--', 'sh', '-c', 'echo mount=$TCEFS_MOUNT pid=$$; exec sleep 600'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    await new Promise<void>((res) => {
      p.stdout.on('data', (d) => {
        out += d;
        if (out.includes('\n')) res();
      });
    });
    const { mount, pid } = Object.fromEntries(out.trim().split(' ').map((kvp) => kvp.split('=')));
    expect(await isMounted(mount)).toBe(true);
    p.kill('SIGKILL');
    try {
      while (await isMounted(mount)) await new Promise((r) => setTimeout(r, 50));
    } finally {
      process.kill(Number(pid), 'SIGKILL'); // the program outlives tcefs run, as under any wrapper
      await rm(join(mount, '..'), { recursive: true, force: true });
    }
  });
});

describe('tcefs run --mount', () => {
  let d: RunningDaemon;
  beforeAll(async () => {
    d = await startDaemon();
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('runs the program against the running mount, sharing its state', async () => {
    // This process holds group 0 open on the mount; the program sees it busy there.
    const held = await open(join(d.mnt, 'dev/vfio/0'), 'r+');
    try {
      const r = await tcefsRun(['sh', '-c', 'echo mount=$TCEFS_MOUNT; exec 3<>/dev/vfio/0'], { mnt: d.mnt });
      expect(kv(r.stdout).mount).toBe(d.mnt);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/busy/i);
    } finally {
      await held.close();
    }
    const again = await tcefsRun(['sh', '-c', 'exec 3<>/dev/vfio/0 && echo opened=1'], { mnt: d.mnt });
    expect(kv(again.stdout).opened).toBe('1');
    expect(await isMounted(d.mnt)).toBe(true);
  });

  it('refuses a directory that is not a tcefs mount', async () => {
    const r = await tcefsRun(['true'], { mnt: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not a tcefs mount/);
  });
});

describe('examples/list-groups', () => {
  it('builds and runs with one command', async () => {
    const r = await promisify(execFile)(join(ROOT, 'examples', 'list-groups', 'run.sh'), [], { timeout: 60_000 });
    expect(r.stdout).toBe(
      [
        'group 0 (domain0-pe1): viable',
        '  0000:01:00.0  vendor 0x15b3 device 0x1017',
        '    config space says 15b3:1017; 9 regions, 5 irq indexes',
        '  0000:01:00.1  vendor 0x15b3 device 0x1017',
        '    config space says 15b3:1017; 9 regions, 5 irq indexes',
        'group 1 (domain0-pe2): viable',
        '  0000:02:00.0  vendor 0x144d device 0xa808',
        '    config space says 144d:a808; 9 regions, 5 irq indexes',
        '',
      ].join('\n'),
    );
  });
});
