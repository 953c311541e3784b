// The TCE backend's state as people and scripts see it: views under the mount, `tcefs status`, `tcefs tce`.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, TCEFS, type RunningDaemon } from '../helpers/daemon.ts';

const exec = promisify(execFile);
let d: RunningDaemon;
beforeAll(async () => {
  d = await startDaemon();
});
afterAll(async () => {
  await d?.stop();
});

describe('state views', () => {
  it('show the host, its PHB and PEs, with the host default windows before VFIO claims a group', async () => {
    const text = await readFile(join(d.mnt, 'sys/kernel/debug/tcefs/host'), 'utf8');
    expect(text).toMatch(/^tce host: powernv, 64K host pages, EEH on/);
    expect(text).toMatch(/domain0-pe1 {2}group 0 {2}platform/);
    expect(text).toMatch(/domain0-pe2 {2}group 1 {2}platform/);
    const json = JSON.parse(await readFile(join(d.mnt, 'sys/kernel/debug/tcefs/host.json'), 'utf8'));
    expect(json.flavour).toBe('powernv');
    expect(json.stats).toMatchObject({ phbs: 1, pes: 2, tables: 0, liveTces: 0 });
    const pe = JSON.parse(await readFile(join(d.mnt, 'sys/kernel/debug/tcefs/groups/1/pe.json'), 'utf8'));
    expect(pe.groupId).toBe(1);
  });

  it('are printed by tcefs status and tcefs tce', async () => {
    const status = await exec(process.execPath, [TCEFS, 'status', '--mount', d.mnt]);
    expect(status.stdout).toMatch(/domain0-pe1 {2}group 0/);
    const asJson = JSON.parse((await exec(process.execPath, [TCEFS, 'status', '--json', '-m', d.mnt])).stdout);
    expect(asJson.stats.pes).toBe(2);
    const tce = await exec(process.execPath, [TCEFS, 'tce', '0', '-m', d.mnt]);
    expect(tce.stdout).toMatch(/^# domain0-pe1 group 0\n# slot0 host /);
    const missing = await exec(process.execPath, [TCEFS, 'tce', '7', '-m', d.mnt]).catch((e) => e);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no such view/);
  });
});
