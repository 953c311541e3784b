// One fault-injection capability as the kernel exposes it under debugfs (fail_iommufd, failslab,
// fail_page_alloc): its knobs, kept in the kernel's types and shown and parsed in its formats, and the
// probability mode they drive. The per-thread fail-nth counter, which takes precedence over all of
// this, is the injector's (faults.ts).
import { EINVAL, Errno } from '../errno.ts';
import { kstrto } from '../transport/sysfs-format.ts';

const U64_MAX = (1n << 64n) - 1n;

/** kstrtobool: the first character decides ("on"/"off" need the second); anything else is EINVAL. */
export function kstrtobool(value: Buffer | string): boolean {
  const s = typeof value === 'string' ? value : value.toString('latin1');
  switch (s[0]) {
    case 'y': case 'Y': case 't': case 'T': case '1':
      return true;
    case 'n': case 'N': case 'f': case 'F': case '0':
      return false;
    case 'o': case 'O':
      if (s[1] === 'n' || s[1] === 'N') return true;
      if (s[1] === 'f' || s[1] === 'F') return false;
  }
  throw new Errno(EINVAL, `not a boolean: ${JSON.stringify(s)}`);
}

/** debugfs's simple attributes read at most 23 bytes of a write before parsing them. */
const simple = (v: Buffer) => (v.length > 23 ? v.subarray(0, 23) : v);

/** A debugfs file of a fault attribute: its text and what a write does. */
export interface FaultKnob {
  name: string;
  show(): string;
  /** Throws Errno (EINVAL, ERANGE) for what the kernel's parser refuses; nothing changes then. */
  store(value: Buffer): void;
}

type Kind = 'ul' | 'atomic' | 'u32' | 'bool' | 'xul' | 'depth';

export class FaultAttr {
  probability = 0n;
  interval = 1n;
  /** -1: no limit; 0: no more failures. */
  times = 1;
  space = 0;
  verbose = 2n;
  ratelimitIntervalMs = 0;
  ratelimitBurst = 0;
  taskFilter = false;
  stacktraceDepth = 32n;
  requireStart = 0n;
  requireEnd = U64_MAX;
  rejectStart = 0n;
  rejectEnd = 0n;
  /** Calls seen in interval mode. */
  private count = 0n;
  /** Failures this attribute forced, by fail-nth or probability. */
  fired = 0;
  /** Extra booleans and numbers of this capability (failslab's ignore-gfp-wait...), by knob name. */
  readonly extra = new Map<string, boolean | number>();

  constructor(readonly name: string, extra: Record<string, boolean | number> = {}, private readonly random: () => number = Math.random) {
    for (const [k, v] of Object.entries(extra)) this.extra.set(k, v);
  }

  /** The knob files, in the order the kernel creates them. */
  knobs(): FaultKnob[] {
    const knob = (name: string, kind: Kind, get: () => bigint | number | boolean, set: (v: bigint | boolean) => void): FaultKnob => ({
      name,
      show: () => {
        const v = get();
        if (kind === 'bool') return v ? 'Y\n' : 'N\n';
        if (kind === 'xul') return `0x${BigInt(v as bigint).toString(16).padStart(16, '0')}\n`;
        return `${v}\n`;
      },
      store: (value) => {
        if (kind === 'bool') return set(kstrtobool(value));
        // Simple attributes parse a 64-bit value and the setter narrows it, as a C assignment does.
        const v = kind === 'atomic' ? kstrto(simple(value), true, 64) : kstrto(simple(value), false, 64);
        if (kind === 'atomic') set(BigInt.asIntN(32, v));
        else if (kind === 'u32') set(BigInt.asUintN(32, v));
        else if (kind === 'depth') set(v < 32n ? v : 32n);
        else set(v);
      },
    });
    const list: FaultKnob[] = [
      knob('probability', 'ul', () => this.probability, (v) => (this.probability = v as bigint)),
      knob('interval', 'ul', () => this.interval, (v) => (this.interval = v as bigint)),
      knob('times', 'atomic', () => this.times, (v) => (this.times = Number(v))),
      knob('space', 'atomic', () => this.space, (v) => (this.space = Number(v))),
      knob('verbose', 'ul', () => this.verbose, (v) => (this.verbose = v as bigint)),
      knob('verbose_ratelimit_interval_ms', 'u32', () => this.ratelimitIntervalMs, (v) => (this.ratelimitIntervalMs = Number(v))),
      knob('verbose_ratelimit_burst', 'u32', () => this.ratelimitBurst, (v) => (this.ratelimitBurst = Number(v))),
      knob('task-filter', 'bool', () => this.taskFilter, (v) => (this.taskFilter = v as boolean)),
      knob('stacktrace-depth', 'depth', () => this.stacktraceDepth, (v) => (this.stacktraceDepth = v as bigint)),
      knob('require-start', 'xul', () => this.requireStart, (v) => (this.requireStart = v as bigint)),
      knob('require-end', 'xul', () => this.requireEnd, (v) => (this.requireEnd = v as bigint)),
      knob('reject-start', 'xul', () => this.rejectStart, (v) => (this.rejectStart = v as bigint)),
      knob('reject-end', 'xul', () => this.rejectEnd, (v) => (this.rejectEnd = v as bigint)),
    ];
    for (const [name, v] of this.extra) {
      const kind: Kind = typeof v === 'boolean' ? 'bool' : 'u32';
      list.push(knob(name, kind, () => this.extra.get(name)!, (x) => this.extra.set(name, typeof x === 'boolean' ? x : Number(x))));
    }
    return list;
  }

  /**
   * The stack filter: a required address range matches no stack of the daemon, and a rejected one
   * rejects none, so only the default (require nothing) lets a point count.
   */
  stackMatches(): boolean {
    return this.requireStart === 0n && this.requireEnd === U64_MAX;
  }

  /** A failure was forced here (by fail-nth or by the probability mode): one fewer of `times` left. */
  forced(): void {
    if (this.times !== -1 && this.times !== 0) this.times--;
    this.fired++;
  }

  /**
   * The probability mode, once the thread's fail-nth is off: `times` failures at most, after `space`
   * units of size, every `interval`th call, each with `probability` percent. No task of a tcefs client
   * is marked make-it-fail, so with task-filter on nothing fails; a stack filter that requires or
   * rejects a range matches no stack here either.
   */
  shouldFail(size = 1): boolean {
    if (this.probability === 0n) return false;
    if (this.taskFilter || this.times === 0 || !this.stackMatches()) return false;
    if (this.space > size) {
      this.space -= size;
      return false;
    }
    if (this.interval > 1n && ++this.count % this.interval !== 0n) return false;
    if (this.probability <= BigInt(Math.floor(this.random() * 100))) return false;
    this.forced();
    return true;
  }
}
