// Deterministic failure injection in the spirit of the kernel's fail_nth. Three ways to make a check fail:
// - the calling thread's fail-nth counter (`nth`), which the client sends with each call (the preload
//   shim serves /proc/<pid>/task/<tid>/fail-nth): every check counts it down, the one that brings it to
//   zero fails, and the client gets back what is left;
// - `arm`: the nth check of a kind from now on fails once (`tcefs fault`);
// - the debugfs knobs of each capability (fault-attr.ts), in the kernel's probability mode.
// Tests sweep n upwards until the operation succeeds, proving every failure point leaves consistent state.

import { EFAULT, EINVAL, ENOMEM, Errno, fail } from '../errno.ts';
import { FaultAttr } from './fault-attr.ts';

/**
 * alloc: objects, table structs and level nodes (failslab, fail_page_alloc). pin: pinning user pages.
 * iommufd: iommufd's own points (iommufd_should_fail: object lookup, reserved regions, access pins...),
 * whose errno each caller gives.
 */
export type FaultKind = 'alloc' | 'pin' | 'iommufd';

const ERRNO_OF: Record<FaultKind, number> = { alloc: ENOMEM, pin: EFAULT, iommufd: EINVAL };

export class FaultInjector {
  private armedKind: FaultKind | 'any' | null = null;
  private remaining = 0;
  // Counted in plain fields: a check runs on every map, and a keyed increment costs more than the check.
  private allocChecks = 0;
  private pinChecks = 0;
  private iommufdChecks = 0;
  /** Failures actually injected. */
  fired = 0;
  /**
   * The fail-nth counter of the thread whose call is running (0: off). The dispatcher sets it from the
   * frame before the call and hands back what is left after it; outside a call it is 0.
   */
  nth = 0;
  /** The capabilities under /sys/kernel/debug, as the kernel names them. */
  readonly attrs = {
    fail_iommufd: new FaultAttr('fail_iommufd'),
    failslab: new FaultAttr('failslab', { 'ignore-gfp-wait': true, 'cache-filter': false }),
    fail_page_alloc: new FaultAttr('fail_page_alloc', { 'ignore-gfp-wait': true, 'ignore-gfp-highmem': true, 'min-order': 1 }),
  };

  /** The nth check of `kind` from now on fails (n = 1 is the very next one), then the injector disarms. */
  arm(kind: FaultKind | 'any', nth: number): void {
    if (kind !== 'alloc' && kind !== 'pin' && kind !== 'iommufd' && kind !== 'any') fail(EINVAL, `unknown fault kind ${String(kind)}`);
    if (!Number.isInteger(nth) || nth < 1) fail(EINVAL, `nth must be a positive integer, got ${nth}`);
    this.armedKind = kind;
    this.remaining = nth;
  }

  disarm(): void {
    this.armedKind = null;
    this.remaining = 0;
  }

  get armed(): boolean {
    return this.armedKind !== null;
  }

  /** Checks of any kind since construction or the last resetCounters(). */
  get checks(): number {
    return this.allocChecks + this.pinChecks + this.iommufdChecks;
  }

  get checksByKind(): Record<FaultKind, number> {
    return { alloc: this.allocChecks, pin: this.pinChecks, iommufd: this.iommufdChecks };
  }

  resetCounters(): void {
    this.allocChecks = this.pinChecks = this.iommufdChecks = 0;
    this.fired = 0;
  }

  /** Run `fn` as a call of a thread whose fail-nth is `nth`; returns what is left of it afterwards. */
  withNth(nth: number, fn: () => void): number {
    const outer = this.nth;
    this.nth = nth;
    try {
      fn();
      return this.nth;
    } finally {
      this.nth = outer;
    }
  }

  /** Counts one check and reports whether it must fail; for callers that map the failure to their own errno. */
  fails(kind: FaultKind): boolean {
    if (kind === 'pin') this.pinChecks++;
    else if (kind === 'alloc') this.allocChecks++;
    else this.iommufdChecks++;
    // The kernel's order: the thread's fail-nth first, and while it runs nothing else is asked.
    if (this.nth !== 0) {
      const attr = kind === 'alloc' ? this.attrs.failslab : this.attrs.fail_iommufd;
      if (!attr.stackMatches() || --this.nth !== 0) return false;
      attr.forced();
      this.fired++;
      return true;
    }
    if (this.armedKind !== null && (this.armedKind === kind || this.armedKind === 'any') && --this.remaining <= 0) {
      this.disarm();
      this.fired++;
      return true;
    }
    return this.knobsFail(kind);
  }

  private knobsFail(kind: FaultKind): boolean {
    const a = this.attrs;
    // Nothing to ask while every probability is 0 (the default), the usual case on every map.
    if (a.fail_iommufd.probability === 0n && a.failslab.probability === 0n && a.fail_page_alloc.probability === 0n) return false;
    const hit = kind === 'alloc' ? a.failslab.shouldFail() || a.fail_page_alloc.shouldFail() : a.fail_iommufd.shouldFail();
    if (hit) this.fired++;
    return hit;
  }

  /** Throws `errno` (by default ENOMEM for alloc, EFAULT for pin, EINVAL for iommufd) when this check fails. */
  check(kind: FaultKind, errno = ERRNO_OF[kind], what: string = kind): void {
    if (this.fails(kind)) throw new Errno(errno, `injected ${what} failure`);
  }
}
