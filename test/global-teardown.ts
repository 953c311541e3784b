// Detach what a failed test left mounted under the temp dir, so one failure cannot spoil the next run.
// Only dead mounts (whose daemon is gone: readdir fails ENOTCONN) are touched: another test run may be
// going on at the same time, and its live daemons are not ours to unmount.
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

export async function teardown() {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  for (const line of mounts.split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type !== 'fuse.tcefs' || !dir.includes('/tcefs-test-')) continue;
    const dead = await readdir(dir).then(() => false, (e: NodeJS.ErrnoException) => e.code === 'ENOTCONN');
    if (dead) await promisify(execFile)('fusermount', ['-uz', dir]).catch(() => undefined);
  }
}
