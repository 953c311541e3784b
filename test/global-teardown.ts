// Whatever a failed test left mounted under the temp dir is detached, so one failure cannot spoil the next run.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

export async function teardown() {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  for (const line of mounts.split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type === 'fuse.tcefs' && dir.includes('/tcefs-test-')) await promisify(execFile)('fusermount', ['-uz', dir]).catch(() => undefined);
  }
}
