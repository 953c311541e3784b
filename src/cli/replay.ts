// `tcefs replay FILE`: run a recorded transcript against a mount as a regression test.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { replayTranscript } from '../shell/replay.ts';
import { TranscriptError } from '../shell/transcript.ts';

export async function replayCommand(file: string, opts: { mount: string }): Promise<void> {
  try {
    const r = await replayTranscript(await readFile(file, 'utf8'), opts.mount, file);
    for (const line of r.report) (r.ok ? console.log : console.error)(line);
    process.exitCode = r.ok ? 0 : 1;
  } catch (e) {
    if (!(e instanceof TranscriptError) && !(e as NodeJS.ErrnoException).code) throw e;
    console.error(`tcefs: ${file}: ${(e as Error).message}`);
    process.exitCode = 2;
  }
}

export function registerReplay(program: Command, defaultMount: string): void {
  program
    .command('replay')
    .description('replay a transcript (--record) against a mount; fails at the first response that differs')
    .argument('<file>', 'the transcript')
    .option('-m, --mount <dir>', 'the mount', defaultMount)
    .action(replayCommand);
}
