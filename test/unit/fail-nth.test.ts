// fail-nth in the daemon: the injector's per-thread counter, the debugfs knobs of each fault capability
// in the kernel's formats, and TCEFS_OP_FAIL_NTH in a frame.
import { describe, expect, it } from 'vitest';
import { runFrame, runRequest } from '../../src/dispatch/dispatch.ts';
import { EINVAL, ENOMEM, EOPNOTSUPP, ERANGE, ENOENT } from '../../src/errno.ts';
import { FaultAttr, kstrtobool } from '../../src/tce/fault-attr.ts';
import { FaultInjector } from '../../src/tce/faults.ts';
import { Op, type Request } from '../../src/transport/frame.ts';
import { ioctl, requestValue } from '../../src/uapi/ioctls.ts';
import { encode } from '../../src/uapi/layout.ts';
import type { IommufdFile } from '../../src/objects/iommufd/context.ts';
import { Harness } from '../helpers/direct.ts';
import { expectErrno } from './tce/helpers.ts';

const knob = (a: FaultAttr, name: string) => a.knobs().find((k) => k.name === name)!;

describe('fault attributes (debugfs knobs)', () => {
  it('show the kernel defaults in its formats', () => {
    const a = new FaultAttr('fail_iommufd');
    const shown = Object.fromEntries(a.knobs().map((k) => [k.name, k.show()]));
    expect(shown).toEqual({
      probability: '0\n', interval: '1\n', times: '1\n', space: '0\n', verbose: '2\n',
      verbose_ratelimit_interval_ms: '0\n', verbose_ratelimit_burst: '0\n', 'task-filter': 'N\n',
      'stacktrace-depth': '32\n', 'require-start': '0x0000000000000000\n', 'require-end': '0xffffffffffffffff\n',
      'reject-start': '0x0000000000000000\n', 'reject-end': '0x0000000000000000\n',
    });
    const slab = new FaultAttr('failslab', { 'ignore-gfp-wait': true, 'cache-filter': false });
    expect(knob(slab, 'ignore-gfp-wait').show()).toBe('Y\n');
    expect(knob(slab, 'cache-filter').show()).toBe('N\n');
  });

  it('parse writes as the kernel does, narrowing as a C assignment would', () => {
    const a = new FaultAttr('fail_iommufd');
    knob(a, 'probability').store(Buffer.from('0x10\n'));
    expect(knob(a, 'probability').show()).toBe('16\n');
    knob(a, 'times').store(Buffer.from('-1'));
    expect(a.times).toBe(-1);
    knob(a, 'times').store(Buffer.from('4294967294'));
    expect(a.times).toBe(-2);
    knob(a, 'verbose_ratelimit_burst').store(Buffer.from('4294967297'));
    expect(a.ratelimitBurst).toBe(1);
    knob(a, 'stacktrace-depth').store(Buffer.from('99'));
    expect(a.stacktraceDepth).toBe(32n);
    knob(a, 'task-filter').store(Buffer.from('on'));
    expect(a.taskFilter).toBe(true);
    expectErrno(() => knob(a, 'interval').store(Buffer.from('ten')), EINVAL);
    expectErrno(() => knob(a, 'interval').store(Buffer.from('-1')), EINVAL);
    expectErrno(() => knob(a, 'probability').store(Buffer.from('18446744073709551616')), ERANGE);
    expectErrno(() => knob(a, 'task-filter').store(Buffer.from('maybe')), EINVAL);
    expect(a.probability).toBe(16n);
    // simple attributes look at 23 bytes: the rest of a long write is not seen
    knob(a, 'interval').store(Buffer.from('00000000000000000000003garbage'));
    expect(a.interval).toBe(3n);
    expect([kstrtobool('Yes'), kstrtobool('0'), kstrtobool('oFF'), kstrtobool('t')]).toEqual([true, false, false, true]);
  });

  it('drive the probability mode: times, interval, space, task filter and stack filter', () => {
    const a = new FaultAttr('fail_iommufd', {}, () => 0.5);
    expect(a.shouldFail()).toBe(false); // probability 0
    a.probability = 100n;
    a.times = 2;
    expect([a.shouldFail(), a.shouldFail(), a.shouldFail()]).toEqual([true, true, false]);
    a.times = -1;
    a.interval = 3n;
    expect([a.shouldFail(), a.shouldFail(), a.shouldFail(), a.shouldFail(), a.shouldFail(), a.shouldFail()]).toEqual([false, false, true, false, false, true]);
    expect(a.times).toBe(-1);
    a.interval = 1n;
    a.space = 2;
    expect([a.shouldFail(), a.shouldFail(), a.shouldFail()]).toEqual([false, true, true]);
    a.probability = 50n; // the random draw is 50: not below 50
    expect(a.shouldFail()).toBe(false);
    a.probability = 51n;
    expect(a.shouldFail()).toBe(true);
    a.taskFilter = true;
    expect(a.shouldFail()).toBe(false);
    a.taskFilter = false;
    a.requireStart = 0x1000n;
    expect(a.shouldFail()).toBe(false);
  });
});

describe('the injector and a thread\'s fail-nth', () => {
  it('fails exactly the nth check of a call and hands back what is left', () => {
    const f = new FaultInjector();
    const seen: boolean[] = [];
    expect(f.withNth(3, () => { for (let i = 0; i < 5; i++) seen.push(f.fails(i % 2 ? 'pin' : 'alloc')); })).toBe(0);
    expect(seen).toEqual([false, false, true, false, false]);
    expect(f.nth).toBe(0);
    expect(f.withNth(10, () => { f.fails('iommufd'); f.fails('alloc'); })).toBe(8);
    expect(f.fired).toBe(1);
    // the failure used one of failslab's `times`, as the kernel's fail path does
    expect(f.attrs.failslab.times).toBe(0);
    expect(f.attrs.failslab.fired).toBe(1);
  });

  it('takes precedence over an armed fault, and counts only where the stack filter lets it', () => {
    const f = new FaultInjector();
    f.arm('alloc', 1);
    expect(f.withNth(2, () => expect([f.fails('alloc'), f.fails('alloc')]).toEqual([false, true]))).toBe(0);
    expect(f.armed).toBe(true);
    expect(f.fails('alloc')).toBe(true);
    f.attrs.fail_iommufd.requireStart = 0x1000n;
    expect(f.withNth(1, () => expect([f.fails('iommufd'), f.fails('pin'), f.fails('alloc')]).toEqual([false, false, true]))).toBe(0);
  });

  it('throws the errno its caller gives', () => {
    const f = new FaultInjector();
    f.withNth(1, () => expectErrno(() => f.check('iommufd', ENOENT, 'object lookup'), ENOENT, /injected object lookup/));
    f.withNth(1, () => expectErrno(() => f.check('alloc'), ENOMEM));
  });
});

describe('TCEFS_OP_FAIL_NTH', () => {
  const alloc = (): Request => {
    const d = ioctl('IOMMU_IOAS_ALLOC');
    return { op: Op.IOCTL, request: requestValue(d.nr), arg: 0n, argData: encode(d.struct!, { size: d.struct!.size }), blobs: [] };
  };
  const nth = (n: bigint): Request => ({ op: Op.FAIL_NTH, request: 0, arg: n, argData: Buffer.alloc(0), blobs: [] });

  it('sets the counter for the requests after it and answers what is left; a failed call changes nothing', () => {
    const h = new Harness();
    const i = h.open('/dev/iommu') as IommufdFile;
    const faults = h.daemon.host.faults;
    let a = runFrame(i, { pid: 1, requests: [nth(1n), alloc()] }, faults);
    expect(a.map((x) => x.result)).toEqual([0n, BigInt(-ENOMEM)]);
    expect(i.objects.size).toBe(0);
    a = runFrame(i, { pid: 1, requests: [nth(5n), alloc(), alloc()] }, faults);
    expect(a.map((x) => x.result)).toEqual([3n, 0n, 0n]);
    expect(i.objects.size).toBe(2);
    expect(faults.nth).toBe(0);
    // requests before it run without a counter; past 32 bits it is refused and nothing is injected
    a = runFrame(i, { pid: 1, requests: [alloc(), nth(1n << 32n), alloc()] }, faults);
    expect(a.map((x) => x.result)).toEqual([0n, BigInt(-ERANGE), 0n]);
    // a channel without an injector refuses it, and a lone request has no thread to set it for
    a = runFrame(i, { pid: 1, requests: [nth(1n), alloc()] });
    expect(a.map((x) => x.result)).toEqual([BigInt(-EOPNOTSUPP), 0n]);
    expect(runRequest(i, nth(1n), 1).result).toBe(BigInt(-EOPNOTSUPP));
    expect(i.objects.size).toBe(5);
  });
});
