// Shared setup for the TCE backend tests.

import { expect } from 'vitest';
import { Errno, errnoName } from '../../../src/errno.ts';
import { TceHost, type TceHostConfig } from '../../../src/tce/index.ts';

export const KiB = 1n << 10n;
export const MiB = 1n << 20n;
export const GiB = 1n << 30n;
export const TiB = 1n << 40n;

/** Runs fn and returns the Errno it threw, failing the test when it returns or throws anything else. */
export function errnoOf(fn: () => unknown): Errno {
  try {
    fn();
  } catch (e) {
    if (e instanceof Errno) return e;
    throw e;
  }
  throw new Error('expected an Errno, but the call succeeded');
}

export function expectErrno(fn: () => unknown, errno: number, message?: RegExp): Errno {
  const e = errnoOf(fn);
  expect(errnoName(e.errno)).toBe(errnoName(errno));
  if (message) expect(e.message).toMatch(message);
  return e;
}

/** One PHB (domain 0) with PEs 1 and 2 in groups 7 and 8. */
export function powernvHost(extra: Partial<TceHostConfig> = {}): TceHost {
  return new TceHost({
    flavour: 'powernv',
    phbs: [{ domain: 0, model: 'PHB4', pes: [{ number: 1, groupId: 7 }, { number: 2, groupId: 8 }] }],
    ...extra,
  });
}

export function pseriesHost(pseries: TceHostConfig['pseries'] = {}, extra: Partial<TceHostConfig> = {}): TceHost {
  return new TceHost({
    flavour: 'pseries',
    pseries,
    phbs: [{ domain: 1, pes: [{ number: 0, groupId: 3 }, { number: 1, groupId: 4 }] }],
    ...extra,
  });
}

/** A PE already handed to user space, and its owner's locked-memory account. */
export function userPe(host: TceHost, groupId: number, owner = 'pid:100') {
  const pe = host.peByGroup(groupId);
  if (!pe) throw new Error(`no group ${groupId}`);
  pe.takeOwnership();
  return { pe, account: host.account(owner) };
}

/** A user PE with QEMU's usual pair of windows programmed: 4K pages over 1 GiB in slot 0, 64K over 64 GiB in slot 1. */
export function userPeWithWindows(host: TceHost, groupId: number, owner = 'pid:100') {
  const { pe, account } = userPe(host, groupId, owner);
  const w0 = pe.createTable(0, 12, GiB, 1, account);
  const w1 = pe.createTable(1, 16, 64n * GiB, 1, account);
  pe.setWindow(0, w0);
  pe.setWindow(1, w1);
  return { pe, account, w0, w1 };
}
