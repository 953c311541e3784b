// Paths inside a tcefs mount that clients and the CLI need, kept apart from the tree so that a light
// command (status, fault, ioctl) does not load the daemon to learn them.

/** Where fd-returning ioctls' files wait to be claimed: open .tcefs/fd/<handle in hex>. */
export const CLAIM_DIR = '/.tcefs/fd';

/** Interrupt event streams of device files: read .tcefs/irq/<device handle in hex> (docs/protocol.md). */
export const IRQ_DIR = '/.tcefs/irq';

/** Text commands for the running daemon: fault injection, hot-unplug (src/control.ts). */
export const CONTROL_PATH = '/.tcefs/control';

/** Where the state views live: text for people, JSON for scripts. */
export const DEBUG_DIR = '/sys/kernel/debug/tcefs';

/** The daemon's pid as text, so the shim can let it read the client's memory (prctl PR_SET_PTRACER). */
export const PID_PATH = '/.tcefs/pid';
