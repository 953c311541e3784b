// One temp dir for the whole run: every test file (and every program they start) inherits TMPDIR set here,
// so whatever a test makes in the temp dir, a failed one included, goes when the run ends.
// Mounts are detached first. A live daemon of another run is never ours: only mounts inside this run's dir
// are touched, and of those only dead ones at setup time.
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

async function mountsUnder(dir: string): Promise<string[]> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  return mounts
    .split('\n')
    .map((l) => l.split(' '))
    .filter(([, d, type]) => type?.startsWith('fuse') && d.startsWith(dir + '/'))
    .map(([, d]) => d.replace(/\\040/g, ' '));
}

export async function setup() {
  const base = tmpdir();
  // What an earlier run that was killed left mounted, dead, under the shared temp dir.
  for (const d of await mountsUnder(base)) {
    if (!d.includes('/tcefs-')) continue;
    const dead = await readdir(d).then(() => false, (e: NodeJS.ErrnoException) => e.code === 'ENOTCONN');
    if (dead) await exec('fusermount', ['-uz', d]).catch(() => undefined);
  }
  const run = mkdtempSync(join(base, 'tcefs-vitest-'));
  // Searchable by everyone, as the shared temp dir is: --allow-other tests reach mounts in here as another user.
  chmodSync(run, 0o755);
  process.env.TMPDIR = run;
  return async () => {
    // Whatever is still mounted here belongs to this run: detach it lazily, then remove the lot.
    for (const d of (await mountsUnder(run)).sort((a, b) => b.length - a.length)) await exec('fusermount', ['-uz', d]).catch(() => undefined);
    await rm(run, { recursive: true, force: true });
  };
}
