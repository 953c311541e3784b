// Unmodified C programs against a real mount through the preload shim: plain open()/ioctl()/readlink()/
// opendir()/pread() on the real /dev and /sys paths, run by `tcefs run --mount`. The VMM programs of the
// legacy and iommufd paths run the same way in legacy-vmm.test.ts and iommufd-cdev.test.ts.
import { readdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kv, runC } from '../helpers/c.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { buildShim, runUnderShim } from '../helpers/shim.ts';

let d: RunningDaemon;
beforeAll(async () => {
  [d] = await Promise.all([startDaemon(), buildShim()]);
});
afterAll(async () => {
  await d?.stop();
});

/** Run under the shim on the shared mount; a program's stderr must stay empty and it must exit 0. */
async function run(name: string, args: string[] = []): Promise<Record<string, string>> {
  const r = await runUnderShim(name, args, { mnt: d.mnt });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return kv(r.stdout);
}

describe('the preload shim', () => {
  it('gives plain ioctl() on /dev paths exactly the answers libtcefs gets (test/c/foundation.c)', async () => {
    const direct = await runC('foundation', [d.mnt]);
    expect(direct.code).toBe(0);
    const shim = await run('shim_foundation');
    expect(shim).toEqual(kv(direct.stdout));
    // And they are the kernel's answers, not two copies of one mistake.
    expect(shim).toMatchObject({ api_version: '0', ext_spapr_v2: '1', group_status_null: '-EFAULT', group_second_open: '-EBUSY', not_a_tcefs_fd: '-ENOTTY' });
  });

  it('shows the emulated sysfs and /dev to path calls, relative paths and dirfds included', async () => {
    expect(await run('shim_paths')).toEqual({
      iommu_group_link: '../../../../kernel/iommu_groups/0',
      driver_link: '../../../../bus/pci/drivers/vfio-pci',
      iommu_group_realpath: '/sys/kernel/iommu_groups/0',
      realpath_buffer: '/dev/vfio/0',
      canonical_device: '/sys/devices/pci0000:00/0000:00:00.0/0000:02:00.0',
      vendor: '0x15b3',
      group_name: 'domain0-pe1',
      tcefs_view: '# domain0-pe2 group 1',
      groups: '0,1',
      group0_devices: '0000:01:00.0,0000:01:00.1',
      vfio_dir: '0,1,devices,vfio',
      cdevs: 'vfio0,vfio1,vfio2',
      'vfio_dev_of_0000:02:00.0': 'vfio2',
      vfio_pci_bound: '3',
      vfio_node: 'chr 10:196',
      iommu_node: 'chr 10:126',
      group1_node: 'chr 510:1',
      cdev2_node: 'chr 511:2',
      vfio_dir_node: 'dir',
      sysfs_attr_node: 'reg',
      lstat_link: '1',
      fstatat_chr: '1',
      statx_rdev_major: '510',
      fstat_chr: '1',
      fd_link: '/dev/vfio/vfio',
      access_rw: '0',
      faccessat: '0',
      open_missing_group: '-ENOENT',
      access_missing_group: '-ENOENT',
      open_trailing_slash: '-ENOTDIR',
      chdir_device: '0',
      relative_vendor: '0x144d',
      relative_link: '../../../../kernel/iommu_groups/1',
      chdir_root: '0',
      relative_open_api: '0',
      openat_dirfd_api: '0',
      openat_sysfs_name: 'domain0-pe2',
    });
  });

  it('keeps fds right across dup, fork, exec and close, and never takes a reused number for tcefs', async () => {
    expect(await run('shim_fds')).toEqual({
      open: '0',
      second_open: '-EBUSY',
      dup_status: '1',
      dupfd_number: '1',
      dupfd_status: '1',
      dup2_status: '1',
      dup3_status: '1',
      status_after_closing_original: '1',
      reopen_while_copies_open: '-EBUSY',
      fork_child: '0',
      status_after_child_closed: '1',
      reopen_after_child_closed: '-EBUSY',
      exec_child_status: '1',
      exec_child_fstat_chr: '1',
      exec_child: '0',
      reopen_after_all_closed: '0',
      reopened_status: '1',
      child_opened_group1: '0',
      group1_after_child_exit: '0',
      container_api: '0',
      pipe: '0',
      pipe_took_the_number: '1',
      ioctl_on_reused_number: '-ENOTTY',
      container2_api: '0',
      ioctl_after_pipe_dup2_over_it: '-ENOTTY',
      write_after_pipe_dup2_over_it: '1',
      pipe_got_it: '1',
      raw_open_api: '0',
      raw_open_ext_v2: '1',
      container3_api: '0',
      iommufd_took_the_number: '1',
      ioas_alloc_on_reused_number: '0',
      ioas_id: '1',
      threads_wrong_answers: '0',
      rdonly_api: '0',
      wronly_api: '0',
      fopen_r_api: '0',
    });
  });

  it('leaves pipes, files, ttys and host nodes alone, and hides the host PCI functions', async () => {
    const emulated = new Set(['0000:01:00.0', '0000:01:00.1', '0000:02:00.0']);
    const host = (await readdir('/sys/bus/pci/devices').catch(() => [] as string[])).find((b) => !emulated.has(b));
    const out = await run('shim_foreign', host ? [host] : []);
    const expected: Record<string, string> = {
      pipe: '0',
      pipe_write: '3',
      pipe_fionread: '0',
      pipe_available: '3',
      pipe_vfio_ioctl: '-ENOTTY',
      pipe_group_status: '-ENOTTY',
      pipe_read: '3',
      file_write: '10',
      file_pwrite: '2',
      file_pread: '6',
      file_data: '23AB67',
      file_lseek: '0',
      file_read: '3',
      file_head: '012',
      file_vfio_ioctl: '-ENOTTY',
      file_fionread: '0',
      file_remaining: '7',
      file_is_regular: '1',
      file_mmap: '1',
      file_fopen: '1',
      file_dup_pread: '2',
      dev_null: '1',
      dev_null_write: '1',
      dev_null_vfio_ioctl: '-ENOTTY',
      dev_listing_is_hosts: '1',
      absent_bdf: '-ENOENT',
      sysfs_vfio_ioctl: '-ENOTTY',
      sysfs_read: '12',
    };
    if (out.tty === 'none') expected.tty = 'none';
    else Object.assign(expected, { tty_tcgetattr: '0', tty_vfio_ioctl: '-ENOTTY', tty_fionbio: '0', tty_nonblocking: '1' });
    // The PCI view is the emulated host's alone: a host function is not there (tcefs run --host-pci merges
    // them back in; sysfs.test.ts).
    if (host) expected.host_vendor = '';
    expect(out).toEqual(expected);
  });

  it('turns read/write/pread/pwrite on a device fd into region accesses, BAR0 at offset 0 included', async () => {
    expect(await run('shim_device', ['0000:01:00.0'])).toEqual({
      cdev_pread_unbound: '-EINVAL',
      cdev_read_unbound: '-EINVAL',
      cdev_pwrite_unbound: '-EINVAL',
      cdev_mmap: '-EINVAL',
      set_container: '0',
      set_iommu: '0',
      device_fd: '0',
      device_fd_cloexec: '1',
      device_fd_link: 'anon_inode:[vfio-device]',
      device_fd_not_chr: '1',
      device_info: '0',
      wrong_kind_on_device: '-ENOTTY',
      config_info: '0',
      bar0_info: '0',
      bar0_offset: '0',
      bar0_no_mmap_flag: '1',
      config_pread: '4',
      vendor: '0x15b3',
      device: '0x1017',
      config_pread_all: '256',
      config_pread_past_end: '-EFAULT',
      bar0_pread_decode_off: '-EIO',
      enable_memory: '2',
      bar0_pwrite: '10',
      bar0_pread: '10',
      bar0_data: 'tcefs-bar0',
      lseek_config: String(7 * 2 ** 40),
      read_vendor: '2',
      read_vendor_value: '0x15b3',
      read_moved_position: '1',
      read_device: '2',
      read_device_value: '0x1017',
      lseek_bar0: '512',
      write_bar0: '2',
      bar0_pread_written: '2',
      bar0_written: 'xy',
      bar0_pwrite_far: '3',
      bar0_pread_big: String(3 << 20),
      bar0_big_data: '1',
      bar0_pread_bad_buffer: '-EFAULT',
      bar0_mmap: '-EINVAL',
      dup_vendor: '0x15b3',
      fork_child_reads_config: '0',
      exec_child_vendor: '0x15b3',
      exec_child_fd_link: 'anon_inode:[vfio-device]',
      exec_child: '0',
    });
  });
});
