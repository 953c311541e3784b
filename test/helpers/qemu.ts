// The QEMUs tcefs is tested with besides Debian 12's own qemu-system-ppc64.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './daemon.ts';

const exec = promisify(execFile);

/** QEMU 10.0.2 from bookworm-backports, extracted into the cache; its libraries are bookworm's own. */
export async function qemu10(): Promise<{ bin: string; firmware: string }> {
  const { stdout } = await exec('bash', [join(ROOT, 'scripts/debian-fetch.sh'), '-s', 'bookworm-backports', 'qemu-system-ppc', 'qemu-system-data'], { timeout: 300_000 });
  const [ppc, data] = stdout.trim().split('\n');
  return { bin: join(ppc, 'usr/bin/qemu-system-ppc64'), firmware: join(data, 'usr/share/qemu') };
}
