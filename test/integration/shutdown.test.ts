// Stopping the daemon with clients still holding files: SIGTERM unmounts cleanly (the mount point is
// free, even though clients keep their fds), `fusermount -u` from outside ends the daemon, a killed daemon leaves a dead mount that the next
// `tcefs mount` on the same directory replaces by itself, and a client of a dead daemon gets an error on
// its next call (ENOTCONN, or EIO), never a hang. Every wait here is bounded.
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startC, testDir, type Client } from '../helpers/clients.ts';
import { isMounted, startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { readViews } from '../helpers/leaks.ts';

const DEAD = ['-ENOTCONN', '-EIO'];
const execFileP = promisify(execFile);

/** A client on group 1 holding its files with a live mapping, ready to make one more call per line on stdin. */
async function holder(mnt: string, mode: string): Promise<Client> {
  const c = await startC('rel_client', [mnt, mode, '1', 'vfio2', 'hold']);
  await c.waitForLine('ready');
  return c;
}

/** Ask the client for one more call and return what it printed: its value, or the errno it failed with. */
async function nextCall(c: Client): Promise<string> {
  const answers = (out: string) => [...out.matchAll(/^after=(\S+)$/gm)].map((m) => m[1]);
  const before = answers(c.stdout()).length;
  c.proc.stdin!.write('again\n');
  await c.waitUntil((out) => answers(out).length > before, 10_000);
  return answers(c.stdout())[before];
}

/** The new daemon on the same directory serves a fresh machine: a client can take group 1 again. */
async function expectFreshMount(d: RunningDaemon) {
  expect(await isMounted(d.mnt)).toBe(true);
  const v = await readViews(d.mnt);
  expect(v.daemon).toMatchObject({ openFiles: 0, pendingFiles: 0, iommufdObjects: 0, mmContexts: 0 });
  const c = await startC('rel_client', [d.mnt, 'spapr4k', '1', 'vfio2', 'run', '0.3']);
  expect({ code: await c.exited(), stderr: c.stderr() }).toEqual({ code: 0, stderr: '' });
}

describe('daemon shutdown with clients open', () => {
  it.each([['spapr4k'], ['iommufd']])('SIGTERM unmounts cleanly while a %s client holds its files; the client gets an error, the next mount works', async (mode) => {
    const mnt = join(await testDir(), 'mnt');
    const d = await startDaemon({ mnt });
    let d2: RunningDaemon | undefined;
    const c = await holder(mnt, mode);
    try {
      expect(await nextCall(c)).not.toMatch(/^-/);
      expect(await d.stop()).toBe(0);
      expect(d.stdout()).toMatch(/SIGTERM: unmounted/);
      expect(await isMounted(mnt)).toBe(false);
      // The client still holds its fds; its next call fails, promptly.
      expect(DEAD).toContain(await nextCall(c));
      // The same directory mounts again with no cleanup, while the old client still holds its fds.
      d2 = await startDaemon({ mnt });
      await expectFreshMount(d2);
    } finally {
      c.proc.stdin!.end();
      await c.exited();
      await d2?.stop();
    }
  });

  it('a mount taken away with fusermount -u ends the daemon, and the directory mounts again', async () => {
    const mnt = join(await testDir(), 'mnt');
    const d = await startDaemon({ mnt });
    await execFileP('fusermount', ['-u', mnt]);
    expect(await d.exited(10_000)).toBe(0);
    expect(d.stdout()).toMatch(/unmounted from outside; exiting/);
    expect(await isMounted(mnt)).toBe(false);
    const d2 = await startDaemon({ mnt });
    try {
      await expectFreshMount(d2);
    } finally {
      await d2.stop();
    }
  });

  it('a daemon killed with SIGKILL leaves a dead mount: clients get ENOTCONN, the next mount replaces it', async () => {
    const mnt = join(await testDir(), 'mnt');
    const d = await startDaemon({ mnt });
    let d2: RunningDaemon | undefined;
    const c = await holder(mnt, 'spapr4k');
    try {
      await d.kill();
      expect(await isMounted(mnt)).toBe(true);
      // readdir always reaches the daemon (a stat may be answered from the kernel's cache).
      expect(await readdir(mnt).catch((e) => e.code)).toBe('ENOTCONN');
      expect(await nextCall(c)).toBe('-ENOTCONN');
      d2 = await startDaemon({ mnt });
      await expectFreshMount(d2);
    } finally {
      c.proc.stdin!.end();
      await c.exited();
      await d2?.stop();
    }
  });
});
