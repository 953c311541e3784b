// Shared setup for the TCE backend tests.

import { expect } from 'vitest';
import { Errno, errnoName } from '../../../src/errno.ts';

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
