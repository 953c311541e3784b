// Interrupts end to end: an unmodified C program under the preload shim attaches eventfds with
// VFIO_DEVICE_SET_IRQS and sees them become readable when it triggers them or the device raises them
// (the control node's "irq" command), with vfio-pci's errnos for bad calls. A client killed with its
// interrupts armed leaves no waiting read or open file behind.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kv } from '../helpers/c.ts';
import { startC } from '../helpers/clients.ts';
import { ROOT, startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { pollUntil, readViews, waitForClean, type Views } from '../helpers/leaks.ts';
import { buildShim, tcefsRun } from '../helpers/shim.ts';
import { buildC } from '../helpers/c.ts';
import { tcefs } from '../helpers/cli.ts';

// The default topology's NVMe function: MSI with 1 vector, MSI-X with 33, INTx pin A, conventional PCI.
const BDF = '0000:02:00.0';

let d: RunningDaemon;
let boot: Views;
let out: Record<string, string>;
beforeAll(async () => {
  await buildShim();
  d = await startDaemon();
  boot = await readViews(d.mnt);
  const r = await tcefsRun([await buildC('irq_client'), BDF], { mnt: d.mnt });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  out = kv(r.stdout);
});
afterAll(async () => {
  await d?.stop();
});

describe('VFIO_DEVICE_SET_IRQS under the shim', () => {
  it('GET_IRQ_INFO counts and flags come from config space; MSI-X is resizable; ERR for a PCIe function', () => {
    expect(out).toMatchObject({
      info_intx: '1', info_intx_flags: '7', info_msi: '32', info_msi_flags: '9', info_msix: '33', info_msix_flags: '1',
      info_err: '1', info_err_flags: '9', info_req: '1', info_req_flags: '9',
    });
  });

  it('MSI-X: eventfds fire on DATA_NONE and DATA_BOOL triggers, vectors added while enabled, unassign, disable', () => {
    expect(out).toMatchObject({
      msix_enable: '0', msix_config_enabled: '1',
      msix_trigger_none: '0', msix_e1_after_none: '1', msix_e0_untouched: '0',
      msix_trigger_bool: '0', msix_e0_after_bool: '1', msix_e1_bool0: '0',
      msix_trigger_both: '0', msix_e1_after_both: '1', msix_e0_after_both: '1',
      msix_unassign0: '0', msix_trigger_unassigned: '0', msix_e1_after_unassign: '1', msix_e0_after_unassign: '0',
      msi_while_msix: '-EINVAL', msix_mask: '-ENOTTY',
      msix_disable: '0', msix_config_disabled: '1', msix_trigger_disabled: '-EINVAL', msix_reenable_closed_fd: '-EBADF',
    });
  });

  it('a vector whose eventfd the program closed after SET_IRQS still reaches the eventfd (the kernel holds it too)', () => {
    expect(out).toMatchObject({ msix_add_vector5: '0', msix_e5_after_close_raise: '1' });
  });

  it('MSI: the vector count is fixed at enable; the device raises it; INTx cannot be enabled beside it', () => {
    expect(out).toMatchObject({
      msi_too_many: '-EINVAL', msi_enable: '0', msi_config_enabled: '1', msi_after_raise: '1',
      intx_while_msi: '-EINVAL', msi_disable: '0', msi_config_disabled: '1',
    });
  });

  it('INTx: loopback trigger, automask on a device raise, pending while masked, fired on unmask', () => {
    expect(out).toMatchObject({
      intx_unmask_disabled: '-EINVAL', intx_enable: '0', intx_trigger_none: '0', intx_after_trigger: '1',
      intx_after_raise: '1', intx_probe_fired: '1', intx_masked_raise: '0',
      intx_unmask: '0', intx_pending_on_unmask: '1', intx_unmask_again: '0', intx_after_unmasked_raise: '1',
      intx_mask_bool: '0', intx_unmask_bool: '0', intx_pending_on_bool_unmask: '1',
      intx_mask_eventfd: '-ENOTTY', intx_count2: '-EINVAL', intx_disable: '0', intx_trigger_disabled: '-EINVAL',
    });
  });

  it('the REQ notifier: loopback needs an eventfd, count 0 detaches it, no masking', () => {
    expect(out).toMatchObject({
      req_none_unset: '-EINVAL', req_set: '0', req_trigger: '0', req_after_trigger: '1', req_unmask: '-ENOTTY',
      req_clear: '0', req_none_cleared: '-EINVAL',
    });
  });

  it('bad calls get vfio-pci\'s errnos', () => {
    expect(out).toMatchObject({
      bad_argsz: '-EINVAL', bad_null: '-EFAULT', bad_two_data: '-EINVAL', bad_two_actions: '-ENOTTY', bad_unknown_flag: '-EINVAL',
      bad_index: '-EINVAL', bad_range: '-EINVAL', bad_overflow: '-EINVAL', bad_short_data: '-EINVAL',
      bad_fd_closed: '-EBADF', bad_fd_not_eventfd: '-EINVAL', bad_err_index: '-EINVAL',
    });
  });

  it('after fork the child drops the library\'s event node; the parent\'s thread delivers to the shared eventfd', () => {
    expect(out).toMatchObject({
      fork_arm: '0', fork_parent_holds_node: '1', fork_child_holds_node: '0', fork_child_trigger: '0', fork_child_sees: '1',
      fork_parent_trigger: '0', fork_parent_sees: '1', fork_disable: '0',
    });
  });

  it('VFIO_DEVICE_RESET turns the interrupts off', () => {
    expect(out).toMatchObject({ reset_arm: '0', reset: '0', reset_trigger_after: '-EINVAL' });
  });

  it('leaves no event stream, waiting read or open file once the program has exited', async () => {
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
  });
});

describe('through the cdev', () => {
  it('a cdev bound to an iommufd delivers the same way', async () => {
    const r = await tcefsRun([await buildC('irq_client'), BDF, 'cdev', '/dev/vfio/devices/vfio2'], { mnt: d.mnt });
    expect(r.code).toBe(0);
    expect(kv(r.stdout)).toMatchObject({ cdev_bind: '0', cdev_arm: '0', cdev_after_raise: '1' });
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
  });
});

describe('tcefs irq', () => {
  it('raises through the control node and names an unknown function', async () => {
    expect((await tcefs(['irq', '--mount', d.mnt, BDF, '2', '3'])).code).toBe(0);
    const r = await tcefs(['irq', '--mount', d.mnt, '0000:09:00.0', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no such device/);
  });
});

describe('hot-unplug', () => {
  it('signals the request notifier of the device being removed, as vfio-pci asks its user to let go', async () => {
    const env = { ...process.env, LD_PRELOAD: join(ROOT, 'build', 'libtcefs-preload.so'), TCEFS_MOUNT: d.mnt };
    const c = await startC('irq_client', [BDF, 'req'], { env });
    await c.waitForLine('req_armed=0');
    expect((await tcefs(['device', 'remove', BDF, '--mount', d.mnt])).code).toBe(0);
    expect(await c.exited()).toBe(0);
    expect(c.kv()).toMatchObject({ req_fired: '1', req_after_remove: '-ENODEV' });
    expect((await tcefs(['device', 'add', BDF, '--mount', d.mnt])).code).toBe(0);
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
  });
});

describe('a client killed with interrupts armed', () => {
  it('exits although its delivery thread was blocked in a read the daemon had taken, and leaves nothing', async () => {
    // TCEFS_POST=0: the thread reads the event node, as it does where the daemon's socket cannot be had.
    const c = await startC('irq_client', [BDF, 'armed'], {
      env: { ...process.env, LD_PRELOAD: join(ROOT, 'build', 'libtcefs-preload.so'), TCEFS_MOUNT: d.mnt, TCEFS_POST: '0' },
    });
    await c.waitForLine('armed=1');
    // The thread's read is with the daemon: the view shows it waiting, and MSI-X on.
    expect(await pollUntil(async () => (await readViews(d.mnt)).daemon.irqWaiters === 1)).toBe(true);
    expect((await readViews(d.mnt)).daemon).toMatchObject({ irqStreams: 1, irqsEnabled: [`${BDF}:msix`] });
    c.proc.kill('SIGKILL');
    expect(await c.exited(10_000)).toBe(128 + 9);
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
  });

  it('exits although its delivery thread was waiting on the daemon\'s socket, and leaves no connection', async () => {
    const c = await startC('irq_client', [BDF, 'armed'], {
      env: { ...process.env, LD_PRELOAD: join(ROOT, 'build', 'libtcefs-preload.so'), TCEFS_MOUNT: d.mnt },
    });
    await c.waitForLine('armed=1');
    // Records come down a socket: no read of the event node, one connection, MSI-X on.
    expect(await pollUntil(async () => (await readViews(d.mnt)).daemon.postConnections === 1)).toBe(true);
    expect((await readViews(d.mnt)).daemon).toMatchObject({ irqStreams: 0, irqWaiters: 0, irqsEnabled: [`${BDF}:msix`] });
    c.proc.kill('SIGKILL');
    expect(await c.exited(10_000)).toBe(128 + 9);
    expect(await waitForClean(d.mnt, boot)).toEqual([]);
    expect((await readViews(d.mnt)).daemon.postConnections).toBe(0);
  });
});
