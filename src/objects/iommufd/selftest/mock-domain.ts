// Test ops that make and move mock devices: MOCK_DOMAIN and MOCK_DOMAIN_FLAGS create a selftest object
// owning a mock device, bind it to the context (an idev) and attach it to the IOAS or HWPT in `id`;
// MOCK_DOMAIN_REPLACE moves an attached one. Destroying the selftest object detaches and unbinds.
import { EINVAL, ENOENT, Errno } from '../../../errno.ts';
import { MOCK_DEVICE_FLAGS, MockDevice } from '../../../mock/device.ts';
import { IommufdDevice } from '../device.ts';
import type { IommufdFile } from '../context.ts';
import type { IommufdObject } from '../id-table.ts';
import type { SelftestState } from './state.ts';
import type { TestCall, TestOps } from './test-cmd.ts';

/** IOMMUFD_OBJ_SELFTEST: the handle user space destroys to take a mock device away. */
export class SelftestDevice implements IommufdObject {
  readonly kind = 'selftest';
  id = 0;
  users = 1;
  idev?: IommufdDevice;

  constructor(readonly mock: MockDevice, private readonly state: SelftestState) {}

  destroy(): void {
    this.idev?.unbind();
    this.idev = undefined;
    this.state.freeDevice(this.mock.index);
  }
}

export function selftestState(f: IommufdFile): SelftestState {
  const s = f.daemon.selftest;
  if (!s) throw new Error('IOMMU_TEST_CMD without --selftest');
  return s;
}

/** The selftest object `id` names; ENOENT for anything else, as a typed object lookup fails. */
export function selftestDevice(f: IommufdFile, id: number): SelftestDevice {
  return f.objects.get<SelftestDevice>(id, 'selftest');
}

function target(f: IommufdFile, id: number): IommufdObject {
  const o = f.objects.find(id);
  if (!o) throw new Errno(ENOENT, `no object ${id}`);
  return o;
}

function mockDomain(f: IommufdFile, cmd: TestCall, flags: number): void {
  const state = selftestState(f);
  if (flags & ~MOCK_DEVICE_FLAGS) throw new Errno(EINVAL, `device flags 0x${flags.toString(16)}`);
  const index = state.allocDevice();
  let stdev: SelftestDevice;
  try {
    stdev = f.objects.insert(new SelftestDevice(new MockDevice(index, flags, f.daemon.host.memory.pageSize), state));
  } catch (e) {
    state.freeDevice(index);
    throw e;
  }
  try {
    stdev.idev = IommufdDevice.bindIommu(f, stdev.mock, false);
    const hwpt = stdev.idev.attach(target(f, cmd.id), cmd.owner);
    cmd.set('out_stdev_id', stdev.id);
    cmd.set('out_hwpt_id', hwpt.id);
    cmd.set('out_idev_id', stdev.idev.id);
    cmd.respond();
  } catch (e) {
    f.objects.remove(stdev);
    throw e;
  }
}

export const mockDomainOps: TestOps = {
  IOMMU_TEST_OP_MOCK_DOMAIN: { member: 'mock_domain', handler: (f, cmd) => mockDomain(f, cmd, 0) },
  IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS: {
    member: 'mock_domain_flags',
    handler: (f, cmd) => mockDomain(f, cmd, cmd.get('dev_flags')),
  },
  IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE: {
    member: 'mock_domain_replace',
    handler: (f, cmd) => {
      const idev = selftestDevice(f, cmd.id).idev!;
      if (!idev.hwpt) throw new Errno(EINVAL, 'the device is not attached');
      const hwpt = idev.attach(target(f, cmd.get('pt_id')), cmd.owner);
      cmd.set('pt_id', hwpt.id);
      cmd.respond();
    },
  },
};
