// A client killed with SIGKILL in the middle of its setup leaves nothing behind: the kernel closes its
// files, FUSE delivers the releases, and the daemon gives back the windows, TCEs, pinned and locked
// memory and the group. The state views must then show the machine as it booted, and another client
// must be able to take the group, by either path.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startC } from '../helpers/clients.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { readViews, waitForClean, type Views } from '../helpers/leaks.ts';

// The default topology: group 1 holds one function, 0000:02:00.0, whose cdev is vfio2.
const GROUP = '1';
const CDEV = 'vfio2';
const BDF = '0000:02:00.0';

let d: RunningDaemon;
let boot: Views;
beforeAll(async () => {
  d = await startDaemon();
  boot = await readViews(d.mnt);
});
afterAll(async () => {
  await d?.stop();
});

const pe = async () => JSON.parse(await readFile(join(d.mnt, `sys/kernel/debug/tcefs/groups/${GROUP}/pe.json`), 'utf8'));

/** What the views must show once the client stopped after `step`: the state it is holding. */
async function expectHeld(mode: string, step: string, pid: number) {
  const v = await readViews(d.mnt);
  expect(v.daemon.openFiles).toBe(step === 'device' ? 3 : 2);
  const p = await pe();
  if (mode === 'spapr64k') {
    // The group is in a container: the PE is the user's, the host's windows are gone.
    expect(p.ownership).toBe('user');
    if (step !== 'set_container') expect(v.host.pinned.map((x: { owner: string }) => x.owner)).toContain(`pid:${pid}`);
    if (step === 'create' || step === 'map' || step === 'device') expect(p.windows).toHaveLength(1);
  } else {
    // A bound device blocks the PE; attached, it gets the automatic domain's window.
    expect(p.ownership).toBe('user');
    expect(v.daemon.iommufdObjects).toBeGreaterThan(0);
    if (step !== 'bind') expect(p.windows).toHaveLength(1);
  }
  if (step === 'map' || step === 'device') expect(v.host.stats.liveTces).toBeGreaterThan(0);
}

const cases: [string, string][] = [
  ['spapr64k', 'set_container'], ['spapr64k', 'register'], ['spapr64k', 'create'], ['spapr64k', 'map'], ['spapr64k', 'device'],
  ['iommufd', 'bind'], ['iommufd', 'attach'], ['iommufd', 'map'],
];

describe('a client killed with SIGKILL mid-sequence', () => {
  it.each(cases)('%s, killed after %s, leaves nothing behind and the group can be taken again', async (mode, step) => {
    const c = await startC('rel_client', [d.mnt, mode, GROUP, CDEV, 'stop', step, BDF]);
    try {
      await c.waitForLine('ready');
      await expectHeld(mode, step, Number(c.kv().pid));
    } finally {
      c.proc.kill('SIGKILL');
    }
    expect(await c.exited()).toBe(128 + 9);
    // The releases arrive after the process is gone; give them a bounded moment.
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
    expect((await pe()).ownership).toBe('platform');
    // The group is free for either path.
    for (const next of ['spapr4k', 'iommufd']) {
      const again = await startC('rel_client', [d.mnt, next, GROUP, CDEV, 'run', '0.3']);
      expect({ next, code: await again.exited(), stdout: again.stdout() }).toMatchObject({ next, code: 0 });
      expect(await waitForClean(d.mnt, boot)).toEqual([]);
    }
  });
});
