// Eight client processes at once, each owning one IOMMU group: four through the legacy SPAPR v2
// container (two on the default 4 KiB window, two on a 64 KiB window they create), four through an
// iommufd and the group's cdev. Each maps and unmaps slices of its own memory at random for a few
// seconds and checks after every 16 calls that its group's TCE view shows exactly its own mappings
// (test/c/rel_client.c). Meanwhile this test reads all eight views and checks that no TCE belongs to
// two owners: every frame appears in one group only, every TCE points into the address range of the
// process that owns the group, and no table is shared between PEs.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startC, type Client } from '../helpers/clients.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { readViews, waitForClean, type Views } from '../helpers/leaks.ts';

const GROUPS = 8;
const SECONDS = 3;

/** One PHB4 with eight PEs of one function each: a group per client. */
const topology = {
  host: { flavour: 'powernv', pageShift: 16 },
  phbs: [{
    domain: 0, model: 'PHB4',
    pes: Array.from({ length: GROUPS }, (_, i) => ({
      pe: i + 1, group: i,
      devices: [{ bdf: `0000:0${i + 1}:00.0`, vendor: '0x1af4', device: '0x1041', class: '0x020000', bars: [{ index: 0, size: '64K', type: 'mem64' }], msix: 4 }],
    })),
  }],
};

const MODES = ['spapr4k', 'spapr64k', 'iommufd', 'iommufd', 'spapr4k', 'spapr64k', 'iommufd', 'iommufd'];

let d: RunningDaemon;
let boot: Views;
beforeAll(async () => {
  d = await startDaemon({ topology });
  boot = await readViews(d.mnt);
});
afterAll(async () => {
  await d?.stop();
});

interface Tce {
  iova: bigint;
  hpa: bigint;
  ua?: bigint;
}

function parseTces(view: string): Tce[] {
  return view.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => {
    const m = /^(0x[0-9a-f]+)\s+tce=0x[0-9a-f]+\s+\S+\s+hpa=(0x[0-9a-f]+)\s+ua=(0x[0-9a-f]+|-)/.exec(l);
    if (!m) throw new Error(`unparsed TCE line: ${l}`);
    return { iova: BigInt(m[1]), hpa: BigInt(m[2]), ua: m[3] === '-' ? undefined : BigInt(m[3]) };
  });
}

describe('eight clients at once', () => {
  it('each sees exactly its own maps and unmaps, and no TCE ever belongs to two owners', async () => {
    // The cdev of group i is vfio<i>: one function per group, numbered in topology order.
    const clients: Client[] = await Promise.all(MODES.map((mode, g) => startC('rel_client', [d.mnt, mode, String(g), `vfio${g}`, 'run', String(SECONDS)])));
    // Each client says where its memory is before it takes its group.
    await Promise.all(clients.map((c) => c.waitForLine(/^len=/)));
    const ranges = new Map(clients.map((c, g) => [g, { start: BigInt(c.kv().va), end: BigInt(c.kv().va) + BigInt(c.kv().len) }]));
    const finished = Promise.all(clients.map((c) => c.exited(60_000)));
    let running = true;
    void finished.finally(() => (running = false));
    let rounds = 0;
    let tcesSeen = 0;
    const problems: string[] = [];
    // Watch the views while the clients work. Each read is one group's view at one moment; a frame is
    // allocated once and never reused, so seeing it in two groups, even at different moments, means two
    // owners.
    const owner = new Map<bigint, number>();
    while (running) {
      for (let g = 0; g < GROUPS; g++) {
        const tces = parseTces(await readFile(join(d.mnt, `sys/kernel/debug/tcefs/groups/${g}/tce`), 'utf8'));
        const pe = JSON.parse(await readFile(join(d.mnt, `sys/kernel/debug/tcefs/groups/${g}/pe.json`), 'utf8'));
        for (const w of pe.windows) if (w.sharedWith.length) problems.push(`group ${g} window ${w.slot} shared with ${w.sharedWith}`);
        for (const t of tces) {
          tcesSeen++;
          const r = ranges.get(g)!;
          if ( t.ua === undefined || t.ua < r.start || t.ua >= r.end) problems.push(`group ${g}: TCE at 0x${t.iova.toString(16)} ua ${t.ua?.toString(16)} is not its client's memory`);
          const page = t.hpa >> 12n;
          const o = owner.get(page);
          if (o === undefined) owner.set(page, g);
          else if (o !== g) problems.push(`frame 0x${t.hpa.toString(16)} seen in groups ${o} and ${g}`);
        }
      }
      rounds++;
    }
    const codes = await finished;
    for (const [g, c] of clients.entries()) {
      const kv = c.kv();
      expect({ group: g, code: codes[g], failures: kv.failures, error: kv.error, stderr: c.stderr() }).toEqual({ group: g, code: 0, failures: '0', error: undefined, stderr: '' });
      expect(c.stdout()).not.toMatch(/^mismatch=/m);
      // Every client worked and checked its view many times, interleaved with the others.
      expect(Number(kv.ops)).toBeGreaterThanOrEqual(64);
      expect(Number(kv.checks)).toBeGreaterThan(1);
    }
    expect(problems.slice(0, 10)).toEqual([]);
    expect(rounds).toBeGreaterThan(0);
    expect(tcesSeen).toBeGreaterThan(0);
    // All of it was given back.
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
  }, 90_000);
});

describe('state views', () => {
  it('read whole while the state they show changes (a stale st_size used to cut them off)', async () => {
    const pe = join(d.mnt, 'sys/kernel/debug/tcefs/groups/3/pe.json');
    // The kernel caches the size from this stat for a second; the client then grows the view.
    const before = await stat(pe);
    const c = await startC('rel_client', [d.mnt, 'spapr64k', '3', 'vfio3', 'stop', 'map']);
    try {
      await c.waitForLine('ready');
      const text = await readFile(pe, 'utf8');
      expect(text.length).toBeGreaterThan(before.size);
      expect(JSON.parse(text).windows.map((w: { kernelOwned: boolean }) => w.kernelOwned)).toEqual([false]);
    } finally {
      c.proc.kill('SIGKILL');
      await c.exited();
    }
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
  });
});
