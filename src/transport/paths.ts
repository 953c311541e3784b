// Paths inside a tcefs mount that clients and the CLI need, kept apart from the tree so that a light
// command (status, fault, ioctl) does not load the daemon to learn them.

/** Where fd-returning ioctls' files wait to be claimed: open .tcefs/fd/<handle in hex>. */
export const CLAIM_DIR = '/.tcefs/fd';

/** Interrupt event streams of device files: read .tcefs/irq/<device handle in hex> (docs/protocol.md). */
export const IRQ_DIR = '/.tcefs/irq';

/**
 * Where a client waits for its last close to reach the daemon: a lookup of .tcefs/release/<handles> is
 * answered once none of the named files is open any more (docs/protocol.md, "Closing").
 */
export const RELEASE_DIR = '/.tcefs/release';
/** Handles one release wait may name, so that the name stays under NAME_MAX (255). */
export const RELEASE_WAIT_MAX = 24;

/**
 * The handles a name under RELEASE_DIR waits for: lower-case hex joined by '.', then anything after a '-'
 * (the client's uniquifier). A name that is not such a list, or names too many, waits for nothing.
 */
export function releaseWaitHandles(name: string): number[] {
  const list = name.split('-')[0].split('.');
  if (list.length > RELEASE_WAIT_MAX || !list.every((h) => /^[0-9a-f]{1,8}$/.test(h))) return [];
  return list.map((h) => parseInt(h, 16));
}

/** Text commands for the running daemon: fault injection, hot-unplug (src/control.ts). */
export const CONTROL_PATH = '/.tcefs/control';

/** Where debugfs is mounted: the state views and the fault-injection knobs live there. */
export const DEBUGFS = '/sys/kernel/debug';

/** Where the state views live: text for people, JSON for scripts. */
export const DEBUG_DIR = `${DEBUGFS}/tcefs`;

/** The daemon's pid as text, so the shim can let it read the client's memory (prctl PR_SET_PTRACER). */
export const PID_PATH = '/.tcefs/pid';

/**
 * A link to the file whose first word the daemon changes whenever an unmap lease it granted may no longer
 * hold (src/transport/leases.ts); the client maps it and reads that word instead of asking.
 */
export const LEASE_PATH = '/.tcefs/lease';

/**
 * What iommufd charged to a process, as /proc/<pid>/status would count it: read .tcefs/vm/<pid> for
 * "VmPin <kB>" and "VmLck <kB>" lines; the shim adds them to the real status file (c/shim-status.c).
 */
export const VM_DIR = '/.tcefs/vm';
