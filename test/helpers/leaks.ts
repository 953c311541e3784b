// Leak checks against a running daemon: what the state views say once every client file is closed.
//
// host.json describes the emulated machine (tables, TCEs, pinned and locked memory, PEs); daemon.json
// describes the daemon's own bookkeeping (open and pending files, iommufd objects, address spaces).
// A boot snapshot is the reference: after all releases the PEs must look exactly as they did then.
// Releases arrive asynchronously (FUSE sends RELEASE after close() has returned), so the check polls.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';

export const DEBUG_DIR = 'sys/kernel/debug/tcefs';

export interface Views {
  host: any;
  /** Absent on a daemon without the daemon view. */
  daemon?: any;
}

export async function readViews(mnt: string): Promise<Views> {
  const host = JSON.parse(await readFile(join(mnt, DEBUG_DIR, 'host.json'), 'utf8'));
  const daemon = await readFile(join(mnt, DEBUG_DIR, 'daemon.json'), 'utf8').then((s) => JSON.parse(s), () => undefined);
  return { host, daemon };
}

/** Counters that must be zero once nothing is open. */
const ZERO_STATS = ['tables', 'liveTces', 'pinnedBytes', 'pinnedExtents', 'lockedBytes', 'lockUnderflows'];
const ZERO_DAEMON = ['openFiles', 'pendingFiles', 'iommufdObjects', 'mmContexts', 'procHandles', 'irqStreams', 'irqWaiters'];

/** The first path where two JSON values differ, for a readable report. */
function firstDifference(a: unknown, b: unknown, path = ''): string | undefined {
  if (isDeepStrictEqual(a, b)) return undefined;
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference((a as any)[k], (b as any)[k], `${path}/${k}`);
      if (d) return d;
    }
  }
  return `${path || '/'}: ${JSON.stringify(a)} -> ${JSON.stringify(b)}`;
}

export interface LeakOptions {
  /**
   * Leave EEH state out: a PE frozen on purpose (an injected error, `eeh freeze`) stays frozen after its
   * user is gone, which is the machine's state rather than a client's leftovers.
   */
  ignoreEeh?: boolean;
}

/** The PEs without their EEH state, for comparisons that ignore it. */
function withoutEeh(phbs: any[]): any[] {
  return phbs.map((p) => ({ ...p, pes: p.pes.map(({ eeh: _eeh, ...pe }: any) => pe) }));
}

/** What is left behind relative to the boot views, as readable lines (empty: nothing leaked). */
export function leakProblems(boot: Views, now: Views, opts: LeakOptions = {}): string[] {
  const out: string[] = [];
  const s = now.host.stats;
  for (const k of ZERO_STATS) if (k in s && Number(s[k]) !== 0) out.push(`host stats.${k} = ${s[k]}`);
  if (s.kernelTables !== boot.host.stats.kernelTables) out.push(`host stats.kernelTables = ${s.kernelTables}, ${boot.host.stats.kernelTables} at boot`);
  if (!opts.ignoreEeh && s.frozenPes !== boot.host.stats.frozenPes) out.push(`host stats.frozenPes = ${s.frozenPes}, ${boot.host.stats.frozenPes} at boot`);
  for (const p of now.host.pinned ?? []) if (Number(p.pinnedBytes) !== 0 || p.extents !== 0) out.push(`pinned ${p.owner}: ${p.pinnedBytes} B in ${p.extents} extents`);
  for (const a of now.host.locked ?? []) {
    if (Number(a.lockedBytes) !== 0) out.push(`locked ${a.owner}: ${a.lockedBytes} B`);
    if (a.underflows) out.push(`locked ${a.owner}: ${a.underflows} underflows`);
  }
  const pes = opts.ignoreEeh ? firstDifference(withoutEeh(boot.host.phbs), withoutEeh(now.host.phbs)) : firstDifference(boot.host.phbs, now.host.phbs);
  if (pes) out.push(`PEs differ from boot at ${pes}`);
  if (now.daemon) {
    for (const k of ZERO_DAEMON) if (k in now.daemon && now.daemon[k] !== 0) out.push(`daemon ${k} = ${now.daemon[k]}`);
    if (now.daemon.removedDevices?.length) out.push(`daemon removedDevices = ${now.daemon.removedDevices.join(' ')}`);
    if (now.daemon.irqsEnabled?.length) out.push(`daemon irqsEnabled = ${now.daemon.irqsEnabled.join(' ')}`);
  }
  return out;
}

/**
 * Poll the views until nothing is left behind or `timeoutMs` passes; returns what is still left (empty
 * on success). Bounded: a release that never comes fails the check instead of hanging it.
 */
export async function waitForClean(mnt: string, boot: Views, timeoutMs = 10_000, opts: LeakOptions = {}): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const problems = leakProblems(boot, await readViews(mnt), opts);
    if (problems.length === 0 || Date.now() >= deadline) return problems;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Poll until `check` holds (returns true) or the time is up; returns whether it held. */
export async function pollUntil(check: () => Promise<boolean>, timeoutMs = 10_000, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
