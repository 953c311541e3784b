// `tcefs mount`: serve the tree in the foreground; unmount cleanly on SIGINT/SIGTERM, and exit when the
// mount is taken away from outside (`fusermount -u`).
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Daemon } from '../daemon.ts';
import { isMountedAt, TcefsFs } from '../transport/fuse-fs.ts';
import { scanHost } from '../transport/sysfs.ts';
import { defaultTopology, parseTopology, TopologyError, type Topology } from '../topology/topology.ts';

export async function loadTopology(file?: string): Promise<Topology> {
  if (!file) return defaultTopology();
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new TopologyError(`${file}: ${(e as Error).message}`);
  }
  return parseTopology(json);
}

/** How often the daemon looks whether its mount is still there. */
const UNMOUNT_POLL_MS = 1000;

export async function mountCommand(
  dir: string,
  opts: { topology?: string; allowOther?: boolean; strictKernel?: boolean; maxObjects?: number; vfioContainer?: 'legacy' | 'iommufd'; pageSize?: '4K' | '64K'; hostPci?: boolean; selftest?: boolean },
): Promise<void> {
  let topology: Topology;
  try {
    topology = await loadTopology(opts.topology);
  } catch (e) {
    console.error(`tcefs: ${(e as Error).message}`);
    process.exit(2);
  }
  if (opts.vfioContainer) topology.vfioContainer = opts.vfioContainer;
  if (opts.pageSize) topology.hostPageShift = opts.pageSize === '4K' ? 12 : 16;
  // The selftests count pins and align in the client's own pages (4K on the machines that run them).
  else if (opts.selftest) topology.hostPageShift = 12;
  if (opts.maxObjects !== undefined && !(Number.isSafeInteger(opts.maxObjects) && opts.maxObjects > 0)) {
    console.error('tcefs: --max-objects takes a positive integer');
    process.exit(2);
  }
  // The host's modules (and functions) are read once, now: the daemon does not follow the host's changes.
  const host = scanHost(!!opts.hostPci);
  let daemon: Daemon;
  try {
    daemon = new Daemon(topology, { strictKernel: !!opts.strictKernel, maxObjects: opts.maxObjects, host, selftest: !!opts.selftest });
  } catch (e) {
    // What the topology names but cannot be had (a model's backing file) is the topology's fault too.
    console.error(`tcefs: ${(e as Error).message}`);
    process.exit(2);
  }
  const fs = new TcefsFs(daemon, resolve(dir));
  // Handlers go in before the mount: a signal in the gap would otherwise kill us with the mount left behind.
  let stopping: Promise<void> | undefined;
  const stop = (sig: string) => {
    stopping ??= (async () => {
      await mounted.catch(() => undefined);
      await fs.unmount();
      console.log(`tcefs: ${sig}: unmounted ${fs.mountpoint}`);
      process.exit(0);
    })();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  const mounted = fs.mount({ allowOther: opts.allowOther });
  try {
    await mounted;
  } catch (e) {
    console.error(`tcefs: cannot mount ${dir}: ${(e as Error).message}`);
    process.exit(1);
  }
  // `fusermount -u` ends the FUSE session but not this process, which would linger with nothing to serve.
  const watch = setInterval(async () => {
    if (stopping || (await isMountedAt(fs.mountpoint)) !== false) return;
    clearInterval(watch);
    stopping ??= (async () => {
      await fs.unmount();
      console.log(`tcefs: ${fs.mountpoint} was unmounted from outside; exiting`);
      process.exit(0);
    })();
  }, UNMOUNT_POLL_MS);
  watch.unref();
  const groups = daemon.inventory.groups.size;
  const devices = daemon.inventory.functions.size;
  console.log(`tcefs: mounted on ${fs.mountpoint} (${topology.flavour}, ${topology.hostPageShift === 12 ? '4K' : '64K'} pages, ${groups} groups, ${devices} devices); Ctrl-C unmounts`);
}
