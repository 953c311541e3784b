// The names a client looks up under .tcefs/release to wait for its files' release (docs/protocol.md).
import { describe, expect, it } from 'vitest';
import { RELEASE_WAIT_MAX, releaseWaitHandles } from '../../src/transport/paths.ts';

describe('release wait names', () => {
  it('name lower-case hex handles joined by dots, with anything after a dash ignored', () => {
    expect(releaseWaitHandles('1a2b')).toEqual([0x1a2b]);
    expect(releaseWaitHandles('7fffffff.1-4d2-9')).toEqual([0x7fffffff, 1]);
    expect(releaseWaitHandles('abc-')).toEqual([0xabc]);
  });

  it('wait for nothing when the name is not such a list', () => {
    for (const bad of ['', '-1', 'ABC', '1..2', '1.', '123456789', '0x12', 'g', ' 1', '1 '])
      expect(releaseWaitHandles(bad), JSON.stringify(bad)).toEqual([]);
  });

  it('take at most RELEASE_WAIT_MAX handles, so a name stays under NAME_MAX', () => {
    const list = (n: number) => Array.from({ length: n }, () => 'ffffffff').join('.');
    expect(releaseWaitHandles(list(RELEASE_WAIT_MAX))).toHaveLength(RELEASE_WAIT_MAX);
    expect(releaseWaitHandles(list(RELEASE_WAIT_MAX + 1))).toEqual([]);
    // with the longest suffix libtcefs adds (two 8-digit hex numbers)
    expect(`${list(RELEASE_WAIT_MAX)}-ffffffff-ffffffff`.length).toBeLessThanOrEqual(255);
  });
});
