// Fault queues and PASIDs on mock devices (--selftest): a HWPT made with a fault queue gets the page
// requests TRIGGER_IOPF raises, the queue's file reads them and takes the answers, a detach or replace
// answers what is left; PASIDs attach, replace and detach with the kernel's rules and errnos.
import { beforeEach, describe, expect, it } from 'vitest';
import { EBUSY, EINVAL, ENOENT, ENOMEM, EOPNOTSUPP, Errno } from '../../src/errno.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import type { IommufdFile } from '../../src/objects/iommufd/context.ts';
import type { IommufdDevice } from '../../src/objects/iommufd/device.ts';
import { MockDevice } from '../../src/mock/device.ts';
import { IOMMUFD } from '../../src/uapi/constants.ts';
import { decode, encode, type Value } from '../../src/uapi/layout.ts';
import { iommu_hwpt_pgfault } from '../../src/uapi/structs.ts';
import { iommu_test_cmd, SELFTEST, TEST_OP, type TestOpName } from '../../src/uapi/selftest.ts';
import { Harness } from '../helpers/direct.ts';

const { IOMMU_HWPT_FAULT_ID_VALID: FAULT_ID_VALID, IOMMU_HWPT_ALLOC_PASID: ALLOC_PASID } = IOMMUFD;
const REC = iommu_hwpt_pgfault.size;

let h: Harness;
let i: OpenFile;
beforeEach(() => {
  h = new Harness(undefined, { selftest: true });
  i = h.open('/dev/iommu');
});

/** IOMMU_TEST_CMD `op` with the fields of its union member (`member.field` names); the result and what came back. */
function test(op: TestOpName, id: number, fields: Record<string, Value> = {}) {
  const r = h.call(i, 'IOMMU_TEST_CMD', { op: TEST_OP[op], id, ...fields }, { raw: encode(iommu_test_cmd, { size: iommu_test_cmd.size, op: TEST_OP[op], id, ...fields }) });
  return { errno: -r.result || 0, out: decode(iommu_test_cmd, Buffer.concat([r.outBytes, Buffer.alloc(iommu_test_cmd.size)])) };
}

const ioasAlloc = () => h.call(i, 'IOMMU_IOAS_ALLOC').out.out_ioas_id as number;

/** A mock device (PASID-capable unless told) on a fresh IOAS: its selftest object, device and automatic HWPT. */
function mockDevice(devFlags = SELFTEST.MOCK_FLAGS_DEVICE_PASID) {
  const ioas = ioasAlloc();
  const r = test('IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS', ioas, { 'mock_domain_flags.dev_flags': devFlags });
  expect(r.errno).toBe(0);
  const stdev = r.out['mock_domain_flags.out_stdev_id'] as number;
  const devId = r.out['mock_domain_flags.out_idev_id'] as number;
  const idev = (i as IommufdFile).objects.get<IommufdDevice>(devId, 'device');
  return { ioas, stdev, devId, mock: idev.iommu as MockDevice };
}

function hwptAlloc(devId: number, ptId: number, flags = 0, faultId = 0) {
  const r = h.call(i, 'IOMMU_HWPT_ALLOC', { dev_id: devId, pt_id: ptId, flags, fault_id: faultId });
  return { errno: -r.result || 0, id: r.out.out_hwpt_id as number };
}

function faultQueue() {
  const r = h.call(i, 'IOMMU_FAULT_QUEUE_ALLOC');
  return { id: r.out.out_fault_id as number, file: h.claim(r.newHandle) };
}

const trigger = (devId: number, pasid = 0, addr = 0xdeadbeafn) =>
  test('IOMMU_TEST_OP_TRIGGER_IOPF', 0, { 'trigger_iopf.dev_id': devId, 'trigger_iopf.pasid': pasid, 'trigger_iopf.grpid': 2, 'trigger_iopf.perm': 3, 'trigger_iopf.addr': addr }).errno;

const readFaults = (file: OpenFile, n = 4) => {
  const b = file.regionRead(0n, n * REC) as Buffer;
  return Array.from({ length: b.length / REC }, (_, k) => decode(iommu_hwpt_pgfault, b.subarray(k * REC, (k + 1) * REC)));
};
/** write() of one response: bytes taken, or -errno. */
function answer(file: OpenFile, cookie: number, code = 0): number {
  try {
    return file.regionWrite(0n, Buffer.from(new Uint32Array([cookie, code]).buffer));
  } catch (e) {
    if (e instanceof Errno) return -e.errno;
    throw e;
  }
}

describe('page requests through a fault queue', () => {
  it('HWPT_ALLOC takes a fault queue; the HWPT holds it', () => {
    const { ioas, devId } = mockDevice();
    const q = faultQueue();
    expect(hwptAlloc(devId, ioas, FAULT_ID_VALID, 999).errno).toBe(ENOENT);
    expect(hwptAlloc(devId, ioas, FAULT_ID_VALID, ioas).errno).toBe(ENOENT);
    expect(hwptAlloc(devId, ioas, FAULT_ID_VALID | IOMMUFD.IOMMU_HWPT_ALLOC_NEST_PARENT, q.id).errno).toBe(EOPNOTSUPP);
    const hwpt = hwptAlloc(devId, ioas, FAULT_ID_VALID, q.id);
    expect(hwpt.errno).toBe(0);
    h.close(q.file);
    expect(-h.call(i, 'IOMMU_DESTROY', { id: q.id }).result).toBe(EBUSY);
    expect(h.call(i, 'IOMMU_DESTROY', { id: hwpt.id }).result).toBe(0);
    expect(h.call(i, 'IOMMU_DESTROY', { id: q.id }).result).toBe(0);
  });

  it('TRIGGER_IOPF reaches the queue of the HWPT the device is attached to, and the answer the device', () => {
    const { ioas, stdev, devId, mock } = mockDevice();
    const q = faultQueue();
    // Attached to the automatic domain, which has no queue: the request goes nowhere.
    expect(trigger(devId)).toBe(0);
    expect(readFaults(q.file)).toEqual([]);
    const hwpt = hwptAlloc(devId, ioas, FAULT_ID_VALID, q.id).id;
    expect(test('IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', stdev, { 'mock_domain_replace.pt_id': hwpt }).errno).toBe(0);
    expect(-h.call(i, 'IOMMU_DESTROY', { id: hwpt }).result).toBe(EBUSY);
    expect(trigger(devId)).toBe(0);
    expect(q.file.pollEvents() & 1).toBe(1);
    const [f] = readFaults(q.file);
    expect(f).toMatchObject({ flags: IOMMUFD.IOMMU_PGFAULT_FLAGS_LAST_PAGE, dev_id: devId, pasid: 0, grpid: 2, perm: 3, addr: 0xdeadbeafn, length: 0, cookie: 1 });
    expect(answer(q.file, 1)).toBe(8);
    expect(mock.pageResponses).toEqual([IOMMUFD.IOMMUFD_PAGE_RESP_SUCCESS]);
    expect(-h.call(i, 'IOMMU_TEST_CMD', {}, { raw: encode(iommu_test_cmd, { size: iommu_test_cmd.size, op: TEST_OP.IOMMU_TEST_OP_TRIGGER_IOPF, 'trigger_iopf.dev_id': 99 }) }).result).toBe(ENOENT);
  });

  it('a replace or a detach answers INVALID for the requests the old HWPT still holds, read or not', () => {
    const { ioas, stdev, devId, mock } = mockDevice();
    const q = faultQueue();
    const hwpt = hwptAlloc(devId, ioas, FAULT_ID_VALID, q.id).id;
    test('IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', stdev, { 'mock_domain_replace.pt_id': hwpt });
    trigger(devId, 0, 0x1000n);
    readFaults(q.file);
    trigger(devId, 0, 0x2000n);
    test('IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', stdev, { 'mock_domain_replace.pt_id': ioas });
    expect(mock.pageResponses).toEqual([IOMMUFD.IOMMUFD_PAGE_RESP_INVALID, IOMMUFD.IOMMUFD_PAGE_RESP_INVALID]);
    expect(readFaults(q.file)).toEqual([]);
    expect(-answer(q.file, 1)).toBe(EINVAL);
  });

  it('destroying the selftest device (a client gone) leaves no request unanswered', () => {
    const { ioas, stdev, devId, mock } = mockDevice();
    const q = faultQueue();
    const hwpt = hwptAlloc(devId, ioas, FAULT_ID_VALID, q.id).id;
    test('IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', stdev, { 'mock_domain_replace.pt_id': hwpt });
    trigger(devId);
    expect(h.call(i, 'IOMMU_DESTROY', { id: stdev }).result).toBe(0);
    expect(mock.pageResponses).toEqual([IOMMUFD.IOMMUFD_PAGE_RESP_INVALID]);
  });
});

describe('PASIDs of a mock device', () => {
  const attach = (stdev: number, pasid: number, pt: number) => test('IOMMU_TEST_OP_PASID_ATTACH', stdev, { 'pasid_attach.pasid': pasid, 'pasid_attach.pt_id': pt }).errno;
  const replace = (stdev: number, pasid: number, pt: number) => test('IOMMU_TEST_OP_PASID_REPLACE', stdev, { 'pasid_attach.pasid': pasid, 'pasid_attach.pt_id': pt }).errno;
  const detach = (stdev: number, pasid: number) => test('IOMMU_TEST_OP_PASID_DETACH', stdev, { 'pasid_detach.pasid': pasid }).errno;
  const check = (stdev: number, pasid: number, hwpt: number) => test('IOMMU_TEST_OP_PASID_CHECK_HWPT', stdev, { 'pasid_check.pasid': pasid, 'pasid_check.hwpt_id': hwpt }).errno;

  it('attach, check, replace and detach with the kernel errnos', () => {
    const { ioas, stdev, devId } = mockDevice();
    const plain = hwptAlloc(devId, ioas).id;
    const s2 = hwptAlloc(devId, ioas, ALLOC_PASID).id;
    const s2b = hwptAlloc(devId, ioas, ALLOC_PASID).id;
    expect(detach(stdev, 100)).toBe(0); // nothing attached: not an error
    // The RID is on the automatic domain, which is not PASID-compatible.
    expect(attach(stdev, 100, s2)).toBe(EINVAL);
    expect(test('IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', stdev, { 'mock_domain_replace.pt_id': s2b }).errno).toBe(0);
    expect(attach(stdev, 100, plain)).toBe(EINVAL);
    expect(attach(stdev, 100, ioas)).toBe(EINVAL);
    expect(attach(stdev, 100, 999)).toBe(ENOENT);
    expect(check(stdev, 100, 0)).toBe(0);
    expect(attach(stdev, 100, s2)).toBe(0);
    expect(check(stdev, 100, s2)).toBe(0);
    expect(check(stdev, 100, 0)).toBe(EINVAL);
    expect(check(stdev, 100, s2b)).toBe(EINVAL);
    expect(check(stdev, 100, ioas)).toBe(EINVAL);
    expect(attach(stdev, 100, s2b)).toBe(EBUSY);
    expect(-h.call(i, 'IOMMU_DESTROY', { id: s2 }).result).toBe(EBUSY);
    // With a PASID attached the RID cannot go back to a domain that is not PASID-compatible.
    expect(test('IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', stdev, { 'mock_domain_replace.pt_id': plain }).errno).toBe(EINVAL);
    expect(replace(stdev, 200, s2)).toBe(EINVAL);
    expect(replace(stdev, 100, plain)).toBe(EINVAL);
    expect(replace(stdev, 100, s2b)).toBe(0);
    expect(check(stdev, 100, s2b)).toBe(0);
    expect(h.call(i, 'IOMMU_DESTROY', { id: s2 }).result).toBe(0);
    expect(detach(stdev, 100)).toBe(0);
    expect(check(stdev, 100, 0)).toBe(0);
    expect(test('IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', stdev, { 'mock_domain_replace.pt_id': plain }).errno).toBe(0);
  });

  it('PASID 1024 fails every second change on purpose, as the kernel mock does', () => {
    const { ioas, stdev, devId } = mockDevice();
    const a = hwptAlloc(devId, ioas, ALLOC_PASID).id;
    const b = hwptAlloc(devId, ioas, ALLOC_PASID).id;
    test('IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', stdev, { 'mock_domain_replace.pt_id': a });
    expect(attach(stdev, 1024, a)).toBe(0);
    expect(replace(stdev, 1024, b)).toBe(ENOMEM);
    expect(check(stdev, 1024, a)).toBe(0);
    expect(replace(stdev, 1024, b)).toBe(0);
    expect(check(stdev, 1024, b)).toBe(0);
  });

  it('a PASID request reaches its PASID\'s queue; the device going detaches its PASIDs', () => {
    const { ioas, stdev, devId, mock } = mockDevice();
    const q = faultQueue();
    const rid = hwptAlloc(devId, ioas, ALLOC_PASID).id;
    const iopf = hwptAlloc(devId, ioas, ALLOC_PASID | FAULT_ID_VALID, q.id).id;
    test('IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', stdev, { 'mock_domain_replace.pt_id': rid });
    expect(attach(stdev, 7, iopf)).toBe(0);
    trigger(devId, 5); // no such PASID: nowhere
    trigger(devId, 7);
    expect(readFaults(q.file)).toMatchObject([{ pasid: 7, flags: IOMMUFD.IOMMU_PGFAULT_FLAGS_LAST_PAGE | IOMMUFD.IOMMU_PGFAULT_FLAGS_PASID_VALID }]);
    expect(h.call(i, 'IOMMU_DESTROY', { id: stdev }).result).toBe(0);
    expect(mock.pageResponses).toEqual([IOMMUFD.IOMMUFD_PAGE_RESP_INVALID]);
    expect(h.call(i, 'IOMMU_DESTROY', { id: iopf }).result).toBe(0);
  });

  it('a device without PASID support still takes a PASID-compatible domain on its RID', () => {
    const { ioas, stdev, devId } = mockDevice(0);
    const s2 = hwptAlloc(devId, ioas, ALLOC_PASID).id;
    expect(attach(stdev, 100, s2)).toBe(EINVAL);
    expect(test('IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', stdev, { 'mock_domain_replace.pt_id': s2 }).errno).toBe(0);
  });
});
