// Deterministic failure injection in the spirit of the kernel's fail_nth: arm a count, and exactly that
// check fails once. Tests sweep n upwards until the operation succeeds, proving every failure point
// leaves consistent state.

import { EFAULT, EINVAL, ENOMEM, Errno, fail } from '../errno.ts';

/** alloc: table structs and level nodes. pin: pinning user pages. */
export type FaultKind = 'alloc' | 'pin';

const ERRNO_OF: Record<FaultKind, number> = { alloc: ENOMEM, pin: EFAULT };

export class FaultInjector {
  private armedKind: FaultKind | 'any' | null = null;
  private remaining = 0;
  // Counted in plain fields: a check runs on every map, and a keyed increment costs more than the check.
  private allocChecks = 0;
  private pinChecks = 0;
  /** Failures actually injected. */
  fired = 0;

  /** The nth check of `kind` from now on fails (n = 1 is the very next one), then the injector disarms. */
  arm(kind: FaultKind | 'any', nth: number): void {
    if (kind !== 'alloc' && kind !== 'pin' && kind !== 'any') fail(EINVAL, `unknown fault kind ${String(kind)}`);
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
    return this.allocChecks + this.pinChecks;
  }

  get checksByKind(): Record<FaultKind, number> {
    return { alloc: this.allocChecks, pin: this.pinChecks };
  }

  resetCounters(): void {
    this.allocChecks = this.pinChecks = 0;
    this.fired = 0;
  }

  /** Counts one check and reports whether it must fail; for callers that map the failure to their own errno. */
  fails(kind: FaultKind): boolean {
    if (kind === 'pin') this.pinChecks++;
    else this.allocChecks++;
    if (this.armedKind === null || (this.armedKind !== kind && this.armedKind !== 'any')) return false;
    if (--this.remaining > 0) return false;
    this.disarm();
    this.fired++;
    return true;
  }

  /** Throws ENOMEM (alloc) or EFAULT (pin) when this check is the armed one. */
  check(kind: FaultKind): void {
    if (this.fails(kind)) throw new Errno(ERRNO_OF[kind], `injected ${kind} failure`);
  }
}
