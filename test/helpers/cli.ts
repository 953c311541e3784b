// The tcefs CLI in its own process, as a user runs it from the shell.
import { spawn } from 'node:child_process';
import { TCEFS } from './daemon.ts';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `tcefs args...` with stdin from `input` (so never a terminal) and collects what it printed. */
export function tcefs(args: string[], input = ''): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [TCEFS, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(input);
  });
}
