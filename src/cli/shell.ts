// `tcefs shell`: keep files open under names and run ioctls on them, typed (history, completion) or
// from a script on stdin (`tcefs shell < script`), which stops with a non-zero status at the first
// unexpected result. The language is in src/shell/session.ts and docs/shell.md.
import { appendFile, readdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { complete, type CompletionState } from '../shell/complete.ts';
import { settableFields } from '../shell/codec.ts';
import { Session } from '../shell/session.ts';
import { TranscriptWriter } from '../shell/transcript.ts';

interface ShellOptions {
  mount: string;
  record?: string;
  echo: boolean;
}

/** Nodes and views worth completing after open and cat, listed once at start. */
async function mountPaths(mount: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string, depth: number): Promise<void> => {
    const entries = await readdir(join(mount, rel), { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const p = `${rel}/${e.name}`;
      if (e.isDirectory() && depth > 0) await walk(p, depth - 1);
      else if (!e.isDirectory()) out.push(p);
    }
  };
  await walk('dev', 2);
  await walk('sys/kernel/debug/tcefs', 2);
  return out;
}

function completionState(session: Session, paths: string[]): CompletionState {
  return {
    files: new Map([...session.files.values()].map((f) => [f.name, f.kind])),
    vars: new Map([...session.vars].map(([name, r]) => [name, [
      ...(r.decoded?.call.layout ? settableFields(r.decoded.call.layout).map((f) => f.name) : []),
      ...r.extras.keys(),
    ]])),
    paths,
  };
}

const HISTORY = process.env.TCEFS_HISTORY ?? join(homedir(), '.tcefs_history');

async function interactive(session: Session, mount: string): Promise<number> {
  const paths = await mountPaths(mount);
  const history = (await readFile(HISTORY, 'utf8').catch(() => '')).split('\n').filter(Boolean).slice(-500).reverse();
  const rl = createInterface({
    input: process.stdin,
    output: process.stdout,
    prompt: 'tcefs> ',
    history,
    historySize: 500,
    completer: (line: string) => complete(line, completionState(session, paths)),
  });
  // Ctrl-C drops the line being typed, as in a login shell; Ctrl-D (or exit) leaves.
  rl.on('SIGINT', () => {
    process.stdout.write('^C\n');
    rl.prompt();
  });
  console.log(`tcefs shell on ${mount}; help lists the commands, Tab completes, Ctrl-D leaves`);
  rl.prompt();
  for await (const line of rl) {
    if (/^\s*(exit|quit)\s*$/.test(line)) break;
    if (line.trim()) await appendFile(HISTORY, line + '\n').catch(() => undefined);
    const out = await session.runLine(line);
    if (!out.ok && !out.failedCall) console.error(`tcefs: ${out.message}`);
    rl.prompt();
  }
  rl.close();
  return 0;
}

async function script(session: Session, echo: boolean): Promise<number> {
  const rl = createInterface({ input: process.stdin, terminal: false });
  let n = 0;
  for await (const line of rl) {
    n++;
    if (/^\s*(exit|quit)\s*$/.test(line)) break;
    if (echo && line.trim() && !line.trim().startsWith('#')) console.log(`tcefs> ${line}`);
    const out = await session.runLine(line);
    if (!out.ok) {
      console.error(`tcefs: line ${n}: ${line.trim()}\n  ${out.message}`);
      rl.close();
      return 1;
    }
  }
  return 0;
}

export async function shellCommand(opts: ShellOptions): Promise<void> {
  const writer = opts.record ? await TranscriptWriter.create(opts.record, opts.mount) : undefined;
  const session = new Session({ mount: opts.mount, record: writer?.write, print: (l) => console.log(l) });
  try {
    process.exitCode = process.stdin.isTTY ? await interactive(session, session.mount) : await script(session, opts.echo);
  } finally {
    await session.closeAll();
    await writer?.close();
  }
}

export function registerShell(program: Command, defaultMount: string): void {
  program
    .command('shell')
    .description('keep files open under names and run ioctls on them; reads a script from stdin when it is not a terminal')
    .option('-m, --mount <dir>', 'the mount', defaultMount)
    .option('--record <file>', 'write a transcript of every request and response (tcefs replay runs it again)')
    .option('--no-echo', 'in a script, do not echo each command before its result')
    .addHelpText('after', `
A script stops at the first unexpected result (exit status 1): a failed call, unless its line expects the
failure with "=> ERRNO", or a result other than the one a "=> ..." line expects. Type help in the shell.`)
    .action(shellCommand);
}
