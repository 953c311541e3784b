// Posted BAR writes (src/transport/posted.ts, c/libtcefs-post.c) as a program sees them through the
// preload shim (test/c/posted_writes.c): every answer is the one a FUSE round trip would give, and the
// daemon's counters show the writes did go down the socket. Interrupt records come down a socket too
// (the NVMe tests and the guest boots drive those).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kv } from '../helpers/c.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { buildShim, runUnderShim } from '../helpers/shim.ts';

const BDF = '0000:02:00.0';
let d: RunningDaemon;
beforeAll(async () => {
  [d] = await Promise.all([startDaemon(), buildShim()]);
});
afterAll(async () => {
  await d?.stop();
});

const posted = async () => JSON.parse(await readFile(join(d.mnt, 'sys/kernel/debug/tcefs/perf.json'), 'utf8')).posted.count as number;

async function run(env: Record<string, string> = {}) {
  const r = await runUnderShim('posted_writes', [BDF], { mnt: d.mnt, env });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return kv(r.stdout);
}

const ANSWERS = {
  writes_answered: '1',
  aqa_after_writes: '0x03e803e8',
  write_decode_off: '-EIO',
  write_decode_on: '4',
  aqa_after_decode_on: '0x00070007',
  write_bad_buffer: '-EFAULT',
  write_across_end: '4',
  write_past_end: '-EINVAL',
  child_wrote: '1',
  aqa_after_child: '0x00030003',
  write_reopened: '4',
  aqa_after_reopen: '0x00050005',
};

describe('posted BAR writes', () => {
  it('answer as the round trip does, in order, and go down the socket', async () => {
    const before = await posted();
    expect(await run()).toEqual(ANSWERS);
    // The thousand writes go down the socket, bar one the socket could not take at once (that one goes
    // the usual way, behind them); the refused and shortened ones are never posted.
    expect((await posted()) - before).toBeGreaterThan(900);
  });

  it('TCEFS_POST=0 sends every write as a FUSE request, with the same answers', async () => {
    const before = await posted();
    expect(await run({ TCEFS_POST: '0' })).toEqual(ANSWERS);
    expect(await posted()).toBe(before);
  });

  it('leaves no connection behind once the program is gone', async () => {
    await run();
    const connections = async () => JSON.parse(await readFile(join(d.mnt, 'sys/kernel/debug/tcefs/daemon.json'), 'utf8')).postConnections as number;
    // The daemon sees the sockets close as the process exits, a moment after the release.
    for (let i = 0; i < 100 && (await connections()) !== 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await connections()).toBe(0);
  });
});
