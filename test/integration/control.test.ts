// The control node on a real mount: hot-unplug and plug, fault injection and EEH from the CLI, and the
// daemon's own state view.
import { execFile } from 'node:child_process';
import { open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENODEV } from '../../src/errno.ts';
import { encodeRequestFrame, Op, parseReplyFrame } from '../../src/transport/frame.ts';
import { requestValue, ioctl } from '../../src/uapi/ioctls.ts';
import { encode } from '../../src/uapi/layout.ts';
import { startDaemon, TCEFS, type RunningDaemon } from '../helpers/daemon.ts';

const exec = promisify(execFile);
let d: RunningDaemon;
beforeAll(async () => {
  d = await startDaemon();
});
afterAll(async () => {
  await d?.stop();
});

const cli = (...args: string[]) => exec(process.execPath, [TCEFS, ...args, '--mount', d.mnt]);
const daemonView = async () => JSON.parse(await readFile(join(d.mnt, 'sys/kernel/debug/tcefs/daemon.json'), 'utf8'));

describe('the control node', () => {
  it('unplugs and replugs a device: /dev and sysfs follow, an open device file answers ENODEV', async () => {
    const info = ioctl('VFIO_DEVICE_GET_INFO');
    const fh = await open(join(d.mnt, 'dev/vfio/devices/vfio2'), 'r+');
    try {
      await cli('device', 'remove', '0000:02:00.0');
      expect(await readdir(join(d.mnt, 'dev/vfio/devices'))).not.toContain('vfio2');
      expect(await readdir(join(d.mnt, 'sys/bus/pci/devices'))).not.toContain('0000:02:00.0');
      expect(await readdir(join(d.mnt, 'dev/vfio'))).not.toContain('1');
      expect((await daemonView()).removedDevices).toEqual(['0000:02:00.0']);
      const frame = encodeRequestFrame([{ op: Op.IOCTL, request: requestValue(info.nr), argData: encode(info.struct!, { argsz: 24 }) }]);
      await fh.write(frame, 0, frame.length, 0);
      const buf = Buffer.alloc(4096);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      expect(parseReplyFrame(buf.subarray(0, bytesRead))[0].result).toBe(BigInt(-ENODEV));
      await expect(cli('device', 'remove', '0000:02:00.0')).rejects.toMatchObject({ stderr: expect.stringMatching(/no such device/) });
    } finally {
      await fh.close();
    }
    await cli('device', 'add', '0000:02:00.0');
    expect(await readdir(join(d.mnt, 'dev/vfio/devices'))).toContain('vfio2');
    expect((await daemonView()).removedDevices).toEqual([]);
  });

  it('arms and disarms fault injection, freezes a PE, and reports the daemon state', async () => {
    await cli('fault', 'alloc', '3');
    expect((await cli('fault', 'status')).stdout).toMatch(/# faults: armed/);
    expect((await daemonView()).faults.armed).toBe(true);
    await cli('fault', 'off');
    expect((await daemonView()).faults.armed).toBe(false);
    await expect(cli('fault', 'disk', '3')).rejects.toMatchObject({ stderr: expect.stringMatching(/refused/) });
    // Nobody owns group 1, so the host's own EEH recovery thaws it at once (a user-owned PE stays
    // frozen: test/unit/hotplug-limits.test.ts).
    await cli('eeh', 'freeze', '1');
    expect((await exec(process.execPath, [TCEFS, 'status', '--mount', d.mnt])).stdout).toMatch(/group 1 .*eeh NORMAL/);
    await expect(cli('eeh', 'freeze', '9')).rejects.toMatchObject({ stderr: expect.stringMatching(/no such device or group/) });
    const v = await daemonView();
    expect(v).toMatchObject({ pendingFiles: 0, iommufdObjects: 0, mmContexts: 0 });
  });
});
