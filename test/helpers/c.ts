// Compile C test programs against the generated headers and libtcefs, and run them.
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './daemon.ts';

const exec = promisify(execFile);
let buildDir: Promise<string> | undefined;
const built = new Map<string, Promise<string>>();

/** gcc -Wall -Werror: a warning in a test program is a failure too. */
export function buildC(name: string): Promise<string> {
  buildDir ??= mkdtemp(join(tmpdir(), 'tcefs-c-'));
  let p = built.get(name);
  if (!p) {
    p = buildDir.then(async (dir) => {
      const exe = join(dir, name);
      await exec('gcc', ['-Wall', '-Werror', '-O1', '-g', `-I${join(ROOT, 'include')}`, join(ROOT, 'test', 'c', `${name}.c`), join(ROOT, 'c', 'libtcefs.c'), join(ROOT, 'c', 'libtcefs-irq.c'), join(ROOT, 'c', 'libtcefs-lease.c'), join(ROOT, 'c', 'libtcefs-post.c'), '-o', exe]);
      return exe;
    });
    built.set(name, p);
  }
  return p;
}

export interface CResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runC(name: string, args: string[], env: Record<string, string> = {}): Promise<CResult> {
  const exe = await buildC(name);
  try {
    const r = await exec(exe, args, { env: { ...process.env, ...env }, timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

/** Parse `key=value` lines a test program prints. */
export function kv(stdout: string): Record<string, string> {
  return Object.fromEntries(stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}
