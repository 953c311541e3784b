// The fuzzer (scripts/fuzz.ts) in a short run, and the frames it found that broke the daemon, kept as
// fixed cases. `npm run fuzz` is the long run (100,000 frames).
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EBADMSG } from '../../src/errno.ts';
import { encodeRequestFrame, parseReplyFrame } from '../../src/transport/frame.ts';
import { formatReport, fuzzPassed, runFuzz, walkFrame } from '../../scripts/fuzz.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';

let d: RunningDaemon;
beforeAll(async () => {
  d = await startDaemon();
});
afterAll(async () => {
  await d?.stop();
});

/** One request record by hand: the fields as given, whatever they claim. */
function record(fields: { length: number; op?: number; nblobs?: number; request?: number; argLen?: number; arg?: bigint }, tail: Buffer): Buffer {
  const r = Buffer.alloc(24);
  r.writeUInt32LE(fields.length, 0);
  r.writeUInt16LE(fields.op ?? 1, 4);
  r.writeUInt16LE(fields.nblobs ?? 0, 6);
  r.writeUInt32LE(fields.request ?? 0x3b64, 8);
  r.writeUInt32LE(fields.argLen ?? 0, 12);
  r.writeBigUInt64LE(fields.arg ?? 0n, 16);
  return Buffer.concat([r, tail]);
}

function frame(records: Buffer[]): Buffer {
  const body = Buffer.concat(records);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(0x46454354, 0);
  h.writeUInt16LE(1, 4);
  h.writeUInt16LE(records.length, 6);
  h.writeUInt32LE(16 + body.length, 8);
  return Buffer.concat([h, body]);
}

async function writeErrno(path: string, data: Buffer): Promise<number> {
  const fh = await open(join(d.mnt, path), 'r+');
  try {
    await fh.write(data, 0, data.length, 0);
    return 0;
  } catch (e) {
    return Math.abs((e as NodeJS.ErrnoException).errno!);
  } finally {
    await fh.close();
  }
}

async function apiVersion(): Promise<bigint> {
  const fh = await open(join(d.mnt, 'dev/vfio/vfio'), 'r+');
  try {
    const f = encodeRequestFrame([{ request: 0x3b64 }]);
    await fh.write(f, 0, f.length, 0);
    const b = Buffer.alloc(4096);
    const { bytesRead } = await fh.read(b, 0, b.length, 0);
    return parseReplyFrame(b.subarray(0, bytesRead))[0].result;
  } finally {
    await fh.close();
  }
}

describe('frames the fuzzer found', () => {
  it('a blob length of 2^31 is an overrun (it used to walk the parser backwards and kill the daemon)', async () => {
    // Rounded up through a 32-bit mask the length went negative, passed the overrun check, and the
    // next blob header was read 2 GiB before the buffer: a RangeError nothing caught.
    const blob = Buffer.alloc(16);
    blob.writeUInt32LE(0, 0);
    blob.writeUInt32LE(0x80000000, 4);
    const f = frame([record({ length: 40, nblobs: 2 }, blob)]);
    expect(walkFrame(f)).toMatchObject({ ok: false, errno: EBADMSG });
    expect(await writeErrno('dev/iommu', f)).toBe(EBADMSG);
    expect(await apiVersion()).toBe(0n);
  });

  it('an argument length of 2^32-8 is an overrun, not a step back into the record header', async () => {
    // With the length rounded up through a 32-bit mask the argument stepped back 8 bytes, and a blob
    // header read from the record's own `arg` field made the record add up: the frame was accepted.
    const f = frame([record({ length: 32, nblobs: 1, argLen: 0xfffffff8, arg: (8n << 32n) | 0n }, Buffer.alloc(8))]);
    expect(walkFrame(f)).toMatchObject({ ok: false, errno: EBADMSG });
    expect(await writeErrno('dev/vfio/vfio', f)).toBe(EBADMSG);
    expect(await apiVersion()).toBe(0n);
  });
});

describe('the fuzzer', () => {
  it('survives 5,000 random and mutated frames on every file kind, with valid answers and nothing leaked', async () => {
    const r = await runFuzz({ frames: 5000, seconds: 100, seed: 20260, lanes: 4 });
    // The report says what went wrong; print it on failure only.
    if (!fuzzPassed(r)) console.error(formatReport(r));
    expect(r.violations).toEqual([]);
    expect(r.internalErrors).toEqual([]);
    expect(r.leaks).toEqual([]);
    expect(r.alive).toBe(true);
    // It did reach every file kind and the deep calls, not only the frame parser.
    for (const kind of ['iommufd', 'container', 'group', 'device', 'claimed device']) expect(r.byFile[kind]).toBeGreaterThan(0);
    for (const name of ['VFIO_GROUP_SET_CONTAINER', 'VFIO_DEVICE_BIND_IOMMUFD', 'IOMMU_IOAS_ALLOC']) expect(r.ioctls[name]?.ok).toBeGreaterThan(0);
  }, 150_000);

  it('survives a short run with --selftest: IOMMU_TEST_CMD and mock devices, nothing leaked', async () => {
    // Enough frames that some of the random ops reach a handler that succeeds, whatever the answers steer.
    const r = await runFuzz({ frames: 5000, seconds: 60, seed: 1616, lanes: 2, pageShift: 12, selftest: true });
    if (!fuzzPassed(r)) console.error(formatReport(r));
    expect(r.violations).toEqual([]);
    expect(r.internalErrors).toEqual([]);
    expect(r.leaks).toEqual([]);
    expect(r.alive).toBe(true);
    expect(r.ioctls.IOMMU_TEST_CMD?.ok).toBeGreaterThan(0);
  }, 100_000);

  it('survives a shorter run on the 4K-page host, type1 cuts included, with nothing leaked', async () => {
    const r = await runFuzz({ frames: 2000, seconds: 60, seed: 4096, lanes: 2, pageShift: 12 });
    if (!fuzzPassed(r)) console.error(formatReport(r));
    expect(r.violations).toEqual([]);
    expect(r.internalErrors).toEqual([]);
    expect(r.leaks).toEqual([]);
    expect(r.alive).toBe(true);
    expect(r.ioctls.VFIO_IOMMU_UNMAP_DMA?.ok).toBeGreaterThan(0);
  }, 90_000);
});
