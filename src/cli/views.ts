// `tcefs status` and `tcefs tce <group>`: print the state views of a running mount.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DEBUG_DIR } from '../transport/paths.ts';

async function view(mount: string, rel: string): Promise<string> {
  const path = join(resolve(mount), DEBUG_DIR, rel);
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such view (is tcefs mounted there, and does the group exist?)' : code === 'ENOTCONN' ? 'the daemon serving it is gone' : (e as Error).message;
    console.error(`tcefs: ${path}: ${why}`);
    process.exit(1);
  }
}

export async function statusCommand(opts: { mount: string; json?: boolean }): Promise<void> {
  process.stdout.write(await view(opts.mount, opts.json ? 'host.json' : 'host'));
}

export async function tceCommand(group: string, opts: { mount: string; json?: boolean }): Promise<void> {
  if (!/^\d+$/.test(group)) {
    console.error(`tcefs: group must be a number, got "${group}"`);
    process.exit(2);
  }
  process.stdout.write(await view(opts.mount, `groups/${group}/${opts.json ? 'pe.json' : 'tce'}`));
}
