// VFIO_DEVICE_FEATURE and VFIO_DEVICE_IOEVENTFD on a vfio-pci function: the multiplexer's checks, the
// features vfio-pci has (low power kept as state), ENOTTY for the migration driver's, and IOEVENTFD's
// argument checks before the refusal.
import { beforeEach, describe, expect, it } from 'vitest';
import { EBADF, EFAULT, EINVAL, ENODEV, ENOSPC, ENOTTY, EOPNOTSUPP } from '../../src/errno.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import { VFIO } from '../../src/uapi/constants.ts';
import { Harness } from '../helpers/direct.ts';

const { VFIO_DEVICE_FEATURE_GET: GET, VFIO_DEVICE_FEATURE_SET: SET, VFIO_DEVICE_FEATURE_PROBE: PROBE } = VFIO;
const F = {
  VF_TOKEN: 0, MIGRATION: 1, MIG_STATE: 2, ENTRY: 3, ENTRY_WAKEUP: 4, EXIT: 5, LOG_START: 6, LOG_STOP: 7, LOG_REPORT: 8,
  MIG_DATA_SIZE: 9, BUS_MASTER: 10, DMA_BUF: 11, PRECOPY_V2: 12, ZPCI_ERROR: 13,
};

let h: Harness;
let dev: OpenFile;
beforeEach(() => {
  h = new Harness();
  const i = h.open('/dev/iommu');
  dev = h.open('/dev/vfio/devices/vfio2');
  expect(h.call(dev, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: i.handle }).result).toBe(0);
});

/** The errno of VFIO_DEVICE_FEATURE with this header and payload (0 for success). */
function feature(flags: number, payload: Buffer = Buffer.alloc(0), argsz = 8 + payload.length, pid = process.pid): number {
  const b = Buffer.concat([Buffer.alloc(8), payload]);
  b.writeUInt32LE(argsz, 0);
  b.writeUInt32LE(flags >>> 0, 4);
  return -h.call(dev, 'VFIO_DEVICE_FEATURE', {}, { raw: b, pid }).result || 0;
}
const fd32 = (fd: number) => {
  const b = Buffer.alloc(8);
  b.writeInt32LE(fd, 0);
  return b;
};

describe('VFIO_DEVICE_FEATURE', () => {
  it('checks argsz and the flags first', () => {
    expect(feature(GET | F.MIGRATION, Buffer.alloc(0), 7)).toBe(EINVAL);
    expect(-h.call(dev, 'VFIO_DEVICE_FEATURE', {}, { raw: Buffer.alloc(6) }).result).toBe(EFAULT);
    expect(feature(1 << 19 | GET | F.ENTRY)).toBe(EINVAL);
    expect(feature(GET | SET | F.ENTRY)).toBe(EINVAL);
  });

  it('answers ENOTTY for the migration and DMA-logging features, and for features of other buses', () => {
    for (const f of [F.MIGRATION, F.MIG_STATE, F.LOG_START, F.LOG_STOP, F.LOG_REPORT, F.MIG_DATA_SIZE, F.BUS_MASTER, F.ZPCI_ERROR, F.VF_TOKEN, 0x1234]) {
      expect(feature(PROBE | GET | f), `feature ${f}`).toBe(ENOTTY);
      expect(feature(GET | f, Buffer.alloc(64)), `feature ${f}`).toBe(ENOTTY);
    }
    expect(feature(PROBE | SET | F.PRECOPY_V2)).toBe(EINVAL);
    expect(feature(PROBE | GET | F.DMA_BUF)).toBe(EOPNOTSUPP);
  });

  it('low power: PROBE sees SET only; ENTRY once, EXIT any time', () => {
    expect(feature(PROBE | SET | F.ENTRY)).toBe(0);
    expect(feature(PROBE | SET | GET | F.ENTRY)).toBe(EINVAL);
    expect(feature(PROBE | F.EXIT)).toBe(0);
    expect(feature(F.ENTRY)).toBe(EINVAL); // neither GET nor SET
    expect(feature(GET | F.ENTRY)).toBe(EINVAL);
    expect(feature(SET | F.ENTRY)).toBe(0);
    expect(feature(SET | F.ENTRY)).toBe(EINVAL);
    expect(feature(SET | F.ENTRY_WAKEUP, fd32(0))).toBe(EINVAL); // stdin is no eventfd (checked before the state)
    expect(feature(SET | F.EXIT)).toBe(0);
    expect(feature(SET | F.EXIT)).toBe(0);
    expect(feature(SET | F.ENTRY)).toBe(0);
  });

  it('low power with wakeup: the payload and its eventfd are checked', () => {
    expect(feature(SET | F.ENTRY_WAKEUP, Buffer.alloc(4))).toBe(EINVAL); // payload too short
    expect(feature(SET | F.ENTRY_WAKEUP, Buffer.alloc(0), 16)).toBe(EFAULT); // argsz says 8 bytes, none sent
    expect(feature(SET | F.ENTRY_WAKEUP, fd32(-1))).toBe(EINVAL);
    expect(feature(SET | F.ENTRY_WAKEUP, fd32(1 << 20))).toBe(EBADF);
    expect(feature(SET | F.ENTRY_WAKEUP, fd32(0))).toBe(EINVAL); // stdin is no eventfd
    expect(feature(SET | F.ENTRY)).toBe(0); // nothing above entered low power
  });
});

describe('VFIO_DEVICE_IOEVENTFD', () => {
  const ioev = (f: Record<string, number | bigint>) =>
    -h.call(dev, 'VFIO_DEVICE_IOEVENTFD', { flags: 4, offset: 0x100n, data: 1n, fd: 5, ...f }).result;
  it('checks flags, size, fd and the BAR range, finds nothing to remove, and has no room to add', () => {
    expect(ioev({ flags: 0x10 | 4 })).toBe(EINVAL);
    expect(ioev({ flags: 0 })).toBe(EINVAL);
    expect(ioev({ flags: 3 })).toBe(EINVAL);
    expect(ioev({ fd: -2 })).toBe(EINVAL);
    expect(ioev({ offset: 7n << 40n })).toBe(EINVAL); // config space is no BAR
    expect(ioev({ offset: 1n << 40n })).toBe(EINVAL); // BAR 1 is empty
    expect(ioev({ offset: (16n << 10n) - 2n })).toBe(EINVAL); // past the 16K BAR 0
    expect(ioev({ fd: -1 })).toBe(ENODEV);
    expect(ioev({})).toBe(ENOSPC);
    expect(ioev({ flags: 8, offset: (16n << 10n) - 8n })).toBe(ENOSPC);
  });
});
