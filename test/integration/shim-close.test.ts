// A last close has released the file in the daemon when close() returns, and a close that is not the
// last leaves it alone (test/c/close_wait.c checks the daemon's view right after each close). Under the
// preload shim for unmodified programs, and through libtcefs's tcefs_close without it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kv, runC } from '../helpers/c.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { runUnderShim } from '../helpers/shim.ts';

/** What every run must print, shim or not. */
const COMMON = {
  legacy_unset_failures: '0',
  legacy_devices_left: '0',
  legacy_files_left: '0',
  ioas_alloc: '0',
  cdev_rebind_failures: '0',
  cdev_devices_before_close: '0',
  cdev_devices_left: '0',
  cdev_files_left: '0',
  dup_kept: '1',
  dup2_kept: '1',
  dupfd_kept: '1',
  fork_child_closed: '0',
  fork_kept: '1',
  exec_child_close: '0',
  exec_child_groups: '1',
  exec_child_exit: '0',
  exec_kept: '1',
  last_close_released: '0',
  child_holds: '1',
  child_used_it: '0',
  reopen_after_child_exit: '0',
  groups_left: '0',
  iommufd_dup_kept: '1',
  iommufd_fork_child_closed: '0',
  iommufd_fork_kept: '1',
  iommufd_objects_left: '0',
  iommufd_files_left: '0',
};

describe('close waits for the release', () => {
  it('under the shim: close, dup2 over, close_range, closefrom and fclose of a last fd release it; dups and forks keep it', async () => {
    // A private daemon (`tcefs run` without --mount): the program is its only client.
    const r = await runUnderShim('close_wait', []);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toEqual({
      ...COMMON,
      handover_open: '0',
      handover_groups_left: '0',
      handover_reopen: '0',
      handover_child_exit: '0',
      dup2_over_released: '0',
      close_range_released: '0',
      moved_kept: '1',
      closefrom_released: '0',
      fopen: '0',
      fclose_released: '0',
    });
  });

  describe('with libtcefs, no shim', () => {
    let d: RunningDaemon;
    beforeAll(async () => {
      d = await startDaemon();
    });
    afterAll(async () => {
      await d?.stop();
    });

    it('tcefs_close does the same, and the daemon answers a release lookup only once the file is gone', async () => {
      const r = await runC('close_wait', ['lib', d.mnt]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(kv(r.stdout)).toEqual({
        ...COMMON,
        // Still open after the daemon's bound: ETIMEDOUT; released or never open: ENOENT.
        release_lookup_open: '-ETIMEDOUT',
        release_close: '0',
        release_lookup_closed: '-ENOENT',
        release_lookup_bad: '-ENOENT',
        release_lookup_too_many: '-ENOENT',
        release_close_bad_fd: '-EBADF',
      });
    });
  });
});
