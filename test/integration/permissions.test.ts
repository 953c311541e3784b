// `tcefs mount --allow-other`: other users reach the mount, and the node modes decide what they may open
// (default_permissions makes the kernel check them): /dev/iommu and /dev/vfio/vfio are 0666, groups,
// cdevs, claim paths and the control node 0600, sysfs attributes 0444, and the state views sit in a
// root-only debugfs directory, as on the kernel. No request reaches another client's files: handles are
// random 31-bit capabilities, guesses fail EBADF and change nothing, and a process that is not the one
// the SPAPR container is bound to gets EPERM even with the container's own fd.
import { execFile } from 'node:child_process';
import { chmod, copyFile, open, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRequestFrame, Op, parseReplyFrame, type ClientRequest } from '../../src/transport/frame.ts';
import { buildC, kv } from '../helpers/c.ts';
import { testDir } from '../helpers/clients.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { readViews, waitForClean, type Views } from '../helpers/leaks.ts';

const exec = promisify(execFile);
const NOBODY = 65534;

let d: RunningDaemon;
let boot: Views;
let perm: string;
beforeAll(async () => {
  // Other users must be able to reach the mount point and run the test program: a 0755 directory.
  const dir = await testDir();
  await chmod(dir, 0o755);
  perm = join(dir, 'rel_perm');
  await copyFile(await buildC('rel_perm'), perm);
  await chmod(perm, 0o755);
  d = await startDaemon({ mnt: join(dir, 'mnt'), args: ['--allow-other'] });
  boot = await readViews(d.mnt);
});
afterAll(async () => {
  await d?.stop();
});

/** Run rel_perm as another user (nobody, no groups) or as this one; its key=value output. */
async function runPerm(asUid: number | undefined, args: string[]): Promise<Record<string, string>> {
  const argv = asUid === undefined ? [perm, d.mnt, ...args] : ['setpriv', `--reuid=${asUid}`, `--regid=${asUid}`, '--clear-groups', perm, d.mnt, ...args];
  const r = await exec(argv[0], argv.slice(1), { timeout: 30_000 });
  return kv(r.stdout);
}

async function send(fh: FileHandle, reqs: ClientRequest[]) {
  const f = encodeRequestFrame(reqs);
  await fh.write(f, 0, f.length, 0);
  const b = Buffer.alloc(1 << 16);
  const { bytesRead } = await fh.read(b, 0, b.length, 0);
  return parseReplyFrame(b.subarray(0, bytesRead));
}

const handleOf = async (fh: FileHandle) => Number((await send(fh, [{ op: Op.HANDLE }]))[0].result);

/** Close this test's client files; the pending device file is claimed first so that it goes too. */
async function release(s: { group: FileHandle; container: FileHandle; pending: number }) {
  await open(join(d.mnt, '.tcefs/fd', s.pending.toString(16)), 'r+').then((f) => f.close(), () => undefined);
  await s.group.close();
  await s.container.close();
}

/** This process's own client state: group 1 in a SPAPR v2 container, and a device fd left pending. */
async function ownState() {
  const group = await open(join(d.mnt, 'dev/vfio/1'), 'r+');
  const container = await open(join(d.mnt, 'dev/vfio/vfio'), 'r+');
  const c = await handleOf(container);
  const arg = Buffer.alloc(4);
  arg.writeInt32LE(c);
  expect((await send(group, [{ request: 0x3b68, argData: arg }]))[0].result).toBe(0n);
  expect((await send(container, [{ request: 0x3b66, arg: 7n }]))[0].result).toBe(0n);
  const dev = (await send(group, [{ request: 0x3b6a, argData: Buffer.from('0000:02:00.0\0') }]))[0];
  expect(dev.newHandle).toBeGreaterThan(0);
  return { group, container, containerHandle: c, pending: dev.newHandle };
}

describe('--allow-other', () => {
  it('gives /dev/iommu and /dev/vfio/vfio 0666, groups, cdevs and the control node 0600, views root only', async () => {
    const mode = async (p: string) => ((await stat(join(d.mnt, p))).mode & 0o7777).toString(8);
    expect(await mode('dev/iommu')).toBe('666');
    expect(await mode('dev/vfio/vfio')).toBe('666');
    expect(await mode('dev/vfio/0')).toBe('600');
    expect(await mode('dev/vfio/devices/vfio2')).toBe('600');
    expect(await mode('.tcefs/control')).toBe('600');
    expect(await mode('sys/bus/pci/devices/0000:02:00.0/vendor')).toBe('444');
    expect(await mode('sys/kernel/debug')).toBe('700');
  });

  it('lets another user open only what the modes allow', async () => {
    const s = await ownState();
    try {
      const out = await runPerm(NOBODY, ['opens', s.pending.toString(16)]);
      expect(out).toEqual({
        iommufd: '0', container: '0', sysfs_vendor: '0',
        group0: '-EACCES', group1: '-EACCES', cdev: '-EACCES', control: '-EACCES', claim: '-EACCES',
        // Another client's TCEs, addresses and pids are in the views: debugfs is root's.
        view_host: '-EACCES', view_tce: '-EACCES',
      });
      // This user still opens everything (group 1 is this test's), and its pending file was not taken.
      expect(await runPerm(undefined, ['opens'])).toMatchObject({ group0: '0', cdev: '0', view_host: '0', control: '0' });
      await (await open(join(d.mnt, '.tcefs/fd', s.pending.toString(16)), 'r+')).close();
    } finally {
      await release(s);
    }
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
  });

  it("gives another user's requests no way to another client's files, even with the right handle", async () => {
    const s = await ownState();
    try {
      const before = await readViews(d.mnt);
      // On the only nodes it can open, the only fd field is IOMMU_IOAS_MAP_FILE's: random handles, and the
      // container's real one, get nowhere.
      const out = await runPerm(NOBODY, ['guess', 'dev/iommu', '2000', `=${s.containerHandle}`, `=${s.pending}`]);
      expect(out.guess_ok).toBe('0');
      const after = await readViews(d.mnt);
      expect(after.host).toEqual(before.host);
      // Each guess passed a failure point (its object lookup), which counts as a check and changes nothing.
      const state = (v: typeof after.daemon) => ({ ...v, openFiles: 0, faults: { ...v.faults, checks: 0 } });
      expect(state(after.daemon)).toEqual(state(before.daemon));
      // The group is still in its container, and the pending file is still there for its owner.
      const st = Buffer.alloc(8);
      st.writeUInt32LE(8);
      const status = (await send(s.group, [{ request: 0x3b67, argData: st }]))[0];
      expect(status.out.readUInt32LE(4) & 2).toBe(2);
      await (await open(join(d.mnt, '.tcefs/fd', s.pending.toString(16)), 'r+')).close();
    } finally {
      await release(s);
    }
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
  });

  it("does not let a second process of the same user into another's container by guessing its handle", async () => {
    const s = await ownState();
    try {
      // 5,000 guesses in one batch on group 0 (everything but the handles this test holds): all EBADF.
      const out = await runPerm(undefined, ['guess', 'dev/vfio/0', '5000', String(s.containerHandle), String(s.pending), String(await handleOf(s.group))]);
      expect(out).toMatchObject({ guess_ok: '0', guess_ebadf: '5000', guess_other: '0' });
      const pe0 = (await readViews(d.mnt)).host.phbs[0].pes[0];
      expect(pe0.ownership).toBe('platform');
    } finally {
      await release(s);
    }
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
  });

  it('refuses the SPAPR container to another process with EPERM, even through the same fd', async () => {
    const out = await runPerm(undefined, ['fork', '0']);
    expect(out).toEqual({
      set_container: '0', set_iommu: '0', register: '0', map: '0',
      child_map: '-EPERM', child_unmap: '-EPERM', child_register: '-EPERM', child_unregister: '-EPERM',
      parent_map_after: '0',
    });
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
  });
});
