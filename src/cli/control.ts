// `tcefs fault`, `tcefs device`, `tcefs eeh`, `tcefs irq`: commands for a running daemon, through its control node.
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CONTROL_PATH } from '../transport/paths.ts';

async function send(mount: string, line: string): Promise<void> {
  const path = join(resolve(mount), CONTROL_PATH);
  try {
    await writeFile(path, line + '\n');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no control node (is tcefs mounted there?)' :
      code === 'ENODEV' ? 'no such device or group' :
      code === 'EINVAL' ? 'the daemon refused the command' :
      code === 'EEXIST' ? 'the device is already present' : (e as Error).message;
    console.error(`tcefs: ${line}: ${why}`);
    process.exit(1);
  }
}

export async function faultCommand(kind: string, nth: string | undefined, opts: { mount: string }): Promise<void> {
  if (kind === 'off') return send(opts.mount, 'fail off');
  if (kind === 'status') {
    process.stdout.write((await readFile(join(resolve(opts.mount), CONTROL_PATH), 'utf8')).split('\n').filter((l) => l.startsWith('# faults')).join('\n') + '\n');
    return;
  }
  await send(opts.mount, `fail ${kind} ${nth ?? ''}`.trim());
}

export const deviceCommand = (action: string, bdf: string, opts: { mount: string }) => send(opts.mount, `device ${action} ${bdf}`);

export const eehCommand = (action: string, group: string, opts: { mount: string }) => send(opts.mount, `eeh ${action} ${group}`);

export const irqCommand = (bdf: string, index: string, vector: string, opts: { mount: string }) => send(opts.mount, `irq ${bdf} ${index} ${vector}`);
