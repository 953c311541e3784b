// The event queues on their own (fault groups in, records out, responses back; vEVENTs with their
// sequence numbers and the lost-events header), then as objects and files of an iommufd context.
import { beforeEach, describe, expect, it } from 'vitest';
import { EBUSY, EEXIST, EINVAL, ENOENT, ENOTTY, EOPNOTSUPP, ESPIPE, Errno } from '../../src/errno.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import type { IommufdFile } from '../../src/objects/iommufd/context.ts';
import { FaultQueue, reportVevent, VeventQueue, type FaultGroup, type VeventqOwner } from '../../src/objects/iommufd/eventq.ts';
import { EventQueueFile } from '../../src/objects/iommufd/eventq-file.ts';
import { IOMMUFD } from '../../src/uapi/constants.ts';
import { decode } from '../../src/uapi/layout.ts';
import { iommu_hwpt_pgfault } from '../../src/uapi/structs.ts';
import { Harness } from '../helpers/direct.ts';

const { IOMMUFD_PAGE_RESP_SUCCESS: SUCCESS, IOMMUFD_PAGE_RESP_INVALID: INVALID } = IOMMUFD;
const REC = iommu_hwpt_pgfault.size;

const errnoOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    if (e instanceof Errno) return e.errno;
    throw e;
  }
  return 0;
};

/** A fault group of `n` requests whose answers land in `answers`. */
function group(devId: number, n: number, answers: number[][], attachment: object = {}): FaultGroup {
  const requests = Array.from({ length: n }, (_, k) => ({ flags: k === n - 1 ? 2 : 0, pasid: 5, grpid: 7, perm: 3, addr: 0x1000n * BigInt(k + 1) }));
  return { devId, requests, attachment, respond: (code) => answers.push([devId, code]) };
}

const records = (b: Buffer) => Array.from({ length: b.length / REC }, (_, k) => decode(iommu_hwpt_pgfault, b.subarray(k * REC, (k + 1) * REC)));
const response = (...pairs: [number, number][]) => Buffer.concat(pairs.map(([cookie, code]) => Buffer.from(new Uint32Array([cookie, code]).buffer)));

describe('a fault queue', () => {
  it('reads whole groups with a cookie each, and takes the responses', () => {
    const q = new FaultQueue();
    const answers: number[][] = [];
    expect(q.read(4 * REC, 0n).length).toBe(0);
    q.report(group(1, 1, answers));
    q.report(group(2, 2, answers));
    expect(q.readable).toBe(true);
    const got = records(q.read(4 * REC, 0n));
    expect(got.map((r) => [r.dev_id, r.cookie, r.addr, r.flags])).toEqual([[1, 1, 0x1000n, 2], [2, 2, 0x1000n, 0], [2, 2, 0x2000n, 2]]);
    expect(got[0]).toMatchObject({ pasid: 5, grpid: 7, perm: 3, length: 0, __reserved: 0 });
    expect(q.readable).toBe(false);
    expect(q.outstanding).toBe(2);
    expect(q.write(response([2, INVALID], [1, SUCCESS]), 0n)).toBe(16);
    expect(answers).toEqual([[2, INVALID], [1, SUCCESS]]);
    expect(q.outstanding).toBe(0);
  });

  it('leaves a group that does not fit whole; not even the first is EINVAL', () => {
    const q = new FaultQueue();
    const answers: number[][] = [];
    q.report(group(1, 1, answers));
    q.report(group(2, 3, answers));
    expect(records(q.read(2 * REC, 0n)).map((r) => r.dev_id)).toEqual([1]);
    expect(errnoOf(() => q.read(2 * REC, 0n))).toBe(EINVAL);
    expect(errnoOf(() => q.read(0, 0n))).toBe(EINVAL);
    expect(records(q.read(3 * REC, 0n)).map((r) => r.dev_id)).toEqual([2, 2, 2]);
  });

  it('needs whole records at offset 0 both ways', () => {
    const q = new FaultQueue();
    expect(errnoOf(() => q.read(REC + 1, 0n))).toBe(ESPIPE);
    expect(errnoOf(() => q.read(REC, 8n))).toBe(ESPIPE);
    expect(errnoOf(() => q.write(Buffer.alloc(7), 0n))).toBe(ESPIPE);
    expect(errnoOf(() => q.write(Buffer.alloc(8), 8n))).toBe(ESPIPE);
    expect(q.write(Buffer.alloc(0), 0n)).toBe(0);
  });

  it('stops at the first bad response: its errno alone, or the bytes before it', () => {
    const q = new FaultQueue();
    const answers: number[][] = [];
    q.report(group(1, 1, answers));
    q.report(group(2, 1, answers));
    q.read(2 * REC, 0n);
    expect(errnoOf(() => q.write(response([1, 2]), 0n))).toBe(EINVAL); // no such code
    expect(errnoOf(() => q.write(response([9, SUCCESS]), 0n))).toBe(EINVAL); // no such cookie
    expect(answers).toEqual([]);
    expect(q.write(response([1, SUCCESS], [1, SUCCESS], [2, SUCCESS]), 0n)).toBe(8);
    expect(errnoOf(() => q.write(response([1, SUCCESS]), 0n))).toBe(EINVAL); // answered already
    expect(answers).toEqual([[1, SUCCESS]]);
  });

  it('reuses the lowest free cookie', () => {
    const q = new FaultQueue();
    const answers: number[][] = [];
    for (let d = 1; d <= 3; d++) q.report(group(d, 1, answers));
    expect(records(q.read(3 * REC, 0n)).map((r) => r.cookie)).toEqual([1, 2, 3]);
    q.write(response([2, SUCCESS]), 0n);
    q.report(group(4, 1, answers));
    expect(records(q.read(REC, 0n)).map((r) => r.cookie)).toEqual([2]);
  });

  it('answers INVALID for what an attachment leaves, read or not, and for everything at destroy', () => {
    const q = new FaultQueue();
    const answers: number[][] = [];
    const a = {};
    const b = {};
    q.report(group(1, 1, answers, a));
    q.report(group(2, 1, answers, b));
    q.read(REC, 0n);
    q.report(group(3, 1, answers, a));
    q.autoRespond(a);
    expect(answers).toEqual([[3, INVALID], [1, INVALID]]);
    expect(records(q.read(2 * REC, 0n)).map((r) => r.dev_id)).toEqual([2]);
    q.report(group(4, 1, answers, b));
    q.destroy();
    expect(answers.slice(2)).toEqual([[4, INVALID], [2, INVALID]]);
    expect(q.read(REC, 0n).length).toBe(0);
  });
});

/** A stand-in for the vIOMMU object, which the nesting code provides. */
const viommu = (): VeventqOwner => ({ kind: 'viommu', id: 9, users: 1, veventqs: new Map() });
const vevents = (b: Buffer) => {
  const out: [number, number, string][] = [];
  for (let at = 0; at < b.length; ) {
    const flags = b.readUInt32LE(at);
    const seq = b.readUInt32LE(at + 4);
    const len = flags ? 0 : 4;
    out.push([flags, seq, b.subarray(at + 8, at + 8 + len).toString('hex')]);
    at += 8 + len;
  }
  return out;
};
const ev = (n: number) => Buffer.from([n, n, n, n]);

describe('a vEVENTQ', () => {
  it('is one per type and holds its vIOMMU', () => {
    const v = viommu();
    const q = VeventQueue.create(v, 1, 4);
    expect(v.users).toBe(2);
    expect(errnoOf(() => VeventQueue.create(v, 1, 4))).toBe(EEXIST);
    VeventQueue.create(v, 2, 4).destroy();
    expect(errnoOf(() => reportVevent(v, 3, ev(1)))).toBe(EOPNOTSUPP);
    q.destroy();
    expect(v.users).toBe(1);
    expect(v.veventqs.size).toBe(0);
  });

  it('numbers events; a full queue queues the lost-events header, which a later record replaces', () => {
    const v = viommu();
    const q = VeventQueue.create(v, 1, 2);
    for (let n = 1; n <= 4; n++) reportVevent(v, 1, ev(n));
    // Two fit; the third and fourth are lost, the header carrying the last sequence number used.
    expect(vevents(q.read(100, 0n))).toEqual([[0, 0, '01010101'], [0, 1, '02020202'], [1, 3, '']]);
    reportVevent(v, 1, ev(5));
    reportVevent(v, 1, ev(6));
    reportVevent(v, 1, ev(7));
    expect(vevents(q.read(100, 0n))).toEqual([[0, 4, '05050505'], [0, 5, '06060606'], [1, 6, '']]);
    reportVevent(v, 1, ev(8));
    expect(q.read(12, 0n).length).toBe(12);
    // The header queued after an overflow goes when a record comes after it.
    reportVevent(v, 1, ev(9));
    reportVevent(v, 1, ev(10));
    reportVevent(v, 1, ev(11));
    q.read(12, 0n);
    reportVevent(v, 1, ev(12));
    expect(vevents(q.read(100, 0n))).toEqual([[0, 9, '0a0a0a0a'], [0, 11, '0c0c0c0c']]);
  });

  it('reads whole records; a buffer short of the first event or of a header is EINVAL', () => {
    const v = viommu();
    const q = VeventQueue.create(v, 1, 8);
    expect(q.read(8, 0n).length).toBe(0);
    expect(errnoOf(() => q.read(7, 0n))).toBe(EINVAL);
    expect(errnoOf(() => q.read(8, 4n))).toBe(ESPIPE);
    reportVevent(v, 1, ev(1));
    reportVevent(v, 1, ev(2));
    expect(errnoOf(() => q.read(11, 0n))).toBe(EINVAL);
    expect(vevents(q.read(23, 0n))).toEqual([[0, 0, '01010101']]);
    expect(errnoOf(() => q.write())).toBe(EINVAL);
  });

  it('sequence numbers wrap at INT_MAX', () => {
    const v = viommu();
    const q = VeventQueue.create(v, 1, 4);
    (q as unknown as { sequence: number }).sequence = 0x7fffffff;
    reportVevent(v, 1, ev(1));
    reportVevent(v, 1, ev(2));
    expect(vevents(q.read(100, 0n)).map((e) => e[1])).toEqual([0x7fffffff, 0]);
  });
});

describe('fault queue objects and files of a context', () => {
  let h: Harness;
  let i: OpenFile;
  beforeEach(() => {
    h = new Harness();
    i = h.open('/dev/iommu');
  });
  const ctx = () => i as IommufdFile;

  it('ALLOC makes the object and a pending file the client claims; the file answers no ioctls', () => {
    expect(-h.call(i, 'IOMMU_FAULT_QUEUE_ALLOC', { flags: 1 }).result).toBe(EOPNOTSUPP);
    const r = h.call(i, 'IOMMU_FAULT_QUEUE_ALLOC');
    expect(r.result).toBe(0);
    expect(r.out.out_fault_id).toBe(1);
    expect(r.newHandle).not.toBe(0);
    const file = h.claim(r.newHandle);
    expect(file).toBeInstanceOf(EventQueueFile);
    expect(file.kind).toBe('fault');
    expect(-h.call(file, 'IOMMU_DESTROY', { id: 1 }).result).toBe(ENOTTY);
    expect(file.regionRead(0n, REC)).toHaveLength(0);
    expect(file.pollEvents()).toBe(0x4); // EPOLLOUT: always writable, nothing to read
    ((file as EventQueueFile).queue as FaultQueue).report(group(1, 1, []));
    expect(file.pollEvents()).toBe(0x45); // and EPOLLIN | EPOLLRDNORM once a group waits
  });

  it('the file holds the object (EBUSY) and the context (its objects outlive the context fd)', () => {
    const r = h.call(i, 'IOMMU_FAULT_QUEUE_ALLOC');
    const file = h.claim(r.newHandle);
    expect(-h.call(i, 'IOMMU_DESTROY', { id: 1 }).result).toBe(EBUSY);
    h.close(i);
    expect(ctx().objects.size).toBe(1);
    const q = (file as EventQueueFile).queue as FaultQueue;
    const answers: number[][] = [];
    q.report(group(1, 1, answers));
    expect(records(file.regionRead(0n, REC) as Buffer)).toHaveLength(1);
    h.close(file);
    // The context went with its last holder, and the unanswered group with it.
    expect(ctx().objects.size).toBe(0);
    expect(answers).toEqual([[1, INVALID]]);
  });

  it('an unclaimed file goes with the context file that made it', () => {
    h.call(i, 'IOMMU_FAULT_QUEUE_ALLOC');
    expect(h.daemon.files.pendingCount).toBe(1);
    h.close(i);
    expect(h.daemon.files.pendingCount).toBe(0);
    expect(ctx().objects.size).toBe(0);
  });

  it('DESTROY works once the file is closed', () => {
    const r = h.call(i, 'IOMMU_FAULT_QUEUE_ALLOC');
    h.close(h.claim(r.newHandle));
    expect(h.call(i, 'IOMMU_DESTROY', { id: 1 }).result).toBe(0);
    expect(-h.call(i, 'IOMMU_DESTROY', { id: 1 }).result).toBe(ENOENT);
  });

  it('VEVENTQ_ALLOC needs a vIOMMU; with one it is unique per type and its file reads the events', () => {
    expect(-h.call(i, 'IOMMU_VEVENTQ_ALLOC', { type: 1, veventq_depth: 2, viommu_id: 1 }).result).toBe(ENOENT);
    const v = ctx().objects.insert(viommu());
    const r = h.call(i, 'IOMMU_VEVENTQ_ALLOC', { type: 1, veventq_depth: 2, viommu_id: v.id });
    expect(r.result).toBe(0);
    expect(-h.call(i, 'IOMMU_VEVENTQ_ALLOC', { type: 1, veventq_depth: 2, viommu_id: v.id }).result).toBe(EEXIST);
    expect(v.users).toBe(2);
    const file = h.claim(r.newHandle);
    expect(file.kind).toBe('veventq');
    expect(file.pollEvents()).toBe(0);
    reportVevent(v, 1, ev(3));
    expect(file.pollEvents()).toBe(0x41);
    expect(vevents(file.regionRead(0n, 64) as Buffer)).toEqual([[0, 0, '03030303']]);
    expect(errnoOf(() => file.regionWrite(0n, Buffer.alloc(8)))).toBe(EINVAL);
    expect(-h.call(i, 'IOMMU_DESTROY', { id: v.id }).result).toBe(EBUSY);
    h.close(file);
    expect(h.call(i, 'IOMMU_DESTROY', { id: r.out.out_veventq_id as number }).result).toBe(0);
    expect(v.users).toBe(1);
    expect(v.veventqs.size).toBe(0);
  });
});
