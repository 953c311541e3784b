// Request frames over a real mount: batches, frames larger than one FUSE write, malformed frames that
// change nothing, one state per open, and every colliding number on every file kind.
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2BIG, EBADMSG, EBUSY, EINVAL, ENOTTY, EPROTONOSUPPORT } from '../../src/errno.ts';
import { encodeRequestFrame, Op, parseReplyFrame, type ClientRequest } from '../../src/transport/frame.ts';
import { encode } from '../../src/uapi/layout.ts';
import { vfio_group_status } from '../../src/uapi/structs.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';

let d: RunningDaemon;
beforeAll(async () => {
  d = await startDaemon();
});
afterAll(async () => {
  await d?.stop();
});

async function roundTrip(fh: FileHandle, frame: Buffer) {
  await fh.write(frame, 0, frame.length, 0);
  const chunks: Buffer[] = [];
  for (;;) {
    const b = Buffer.alloc(128 * 1024);
    const { bytesRead } = await fh.read(b, 0, b.length, 0);
    if (bytesRead === 0) break;
    chunks.push(b.subarray(0, bytesRead));
  }
  return parseReplyFrame(Buffer.concat(chunks));
}

const send = (fh: FileHandle, reqs: ClientRequest[]) => roundTrip(fh, encodeRequestFrame(reqs));

async function writeErrno(fh: FileHandle, frame: Buffer): Promise<number> {
  try {
    await fh.write(frame, 0, frame.length, 0);
    return 0;
  } catch (e) {
    return (e as NodeJS.ErrnoException).errno!;
  }
}

const groupStatus = { request: 0x3b67, argData: encode(vfio_group_status, { argsz: 8 }) };

describe('frames through FUSE', () => {
  it('answers a batch in order with one read', async () => {
    const fh = await open(join(d.mnt, 'dev/vfio/vfio'), 'r+');
    try {
      const a = await send(fh, [{ request: 0x3b64 }, { request: 0x3b65, arg: 7n }, { request: 0x3b65, arg: 3n }, { request: 0x20003b65, arg: 5n }, { op: Op.HANDLE }]);
      expect(a.map((x) => x.result)).toEqual([0n, 1n, 0n, 1n, a[4].result]);
      expect(a[4].result).toBeGreaterThan(0n);
      expect(a[4].handleField).toBe(2); // container kind
    } finally {
      await fh.close();
    }
  });

  it('assembles a frame larger than one FUSE write and returns a reply larger than one read', async () => {
    const fh = await open(join(d.mnt, 'dev/vfio/vfio'), 'r+');
    try {
      const reqs = Array.from({ length: 6000 }, (_, i) => ({ request: 0x3b65, arg: BigInt(i % 11) }));
      const frame = encodeRequestFrame(reqs);
      expect(frame.length).toBeGreaterThan(128 * 1024);
      const a = await roundTrip(fh, frame);
      expect(a).toHaveLength(6000);
      expect(a.map((x) => x.result)).toEqual(reqs.map((r) => ([2n, 5n, 7n].includes(r.arg) ? 1n : 0n)));
    } finally {
      await fh.close();
    }
  });

  it('rejects malformed frames with a clear errno and keeps the previous reply and all state', async () => {
    const fh = await open(join(d.mnt, 'dev/vfio/0'), 'r+');
    try {
      const ok = await send(fh, [groupStatus]);
      expect(ok[0].result).toBe(0n);
      const good = encodeRequestFrame([groupStatus]);
      const cases: [string, Buffer, number][] = [
        ['short', good.subarray(0, 10), EBADMSG],
        ['bad magic', Buffer.concat([Buffer.from('XXXX'), good.subarray(4)]), EBADMSG],
        ['version 9', (() => { const b = Buffer.from(good); b.writeUInt16LE(9, 4); return b; })(), EPROTONOSUPPORT],
        ['length lies (short)', (() => { const b = Buffer.from(good); b.writeUInt32LE(good.length - 8, 8); return b; })(), EBADMSG],
        ['count lies', (() => { const b = Buffer.from(good); b.writeUInt16LE(3, 6); return b; })(), EBADMSG],
        ['too large', (() => { const b = Buffer.from(good); b.writeUInt32LE(64 << 20, 8); return b; })(), E2BIG],
        ['unknown op', (() => { const b = Buffer.from(good); b.writeUInt16LE(77, 16 + 4); return b; })(), EBADMSG],
      ];
      for (const [name, frame, errno] of cases) expect(await writeErrno(fh, frame), name).toBe(-errno);
      // The group is still open by this file, and it still answers.
      const again = await send(fh, [groupStatus]);
      expect(again[0].result).toBe(0n);
      expect(again[0].out.readUInt32LE(4)).toBe(1);
      await expect(open(join(d.mnt, 'dev/vfio/0'), 'r+')).rejects.toMatchObject({ code: 'EBUSY' });
    } finally {
      await fh.close();
    }
  });

  it('keeps one state per open: a group is held by its file until that file is released', async () => {
    const a = await open(join(d.mnt, 'dev/vfio/1'), 'r+');
    const err = await open(join(d.mnt, 'dev/vfio/1'), 'r+').catch((e) => e.errno);
    expect(err).toBe(-EBUSY);
    const ha = (await send(a, [{ op: Op.HANDLE }]))[0].result;
    await a.close();
    const b = await open(join(d.mnt, 'dev/vfio/1'), 'r+');
    const hb = (await send(b, [{ op: Op.HANDLE }]))[0].result;
    expect(hb).not.toBe(ha);
    await b.close();
  });

  it('sends every colliding number, in both encodings, to every file kind', async () => {
    // With an all-zero argument and no backend or binding: a legacy container answers EINVAL to all, an
    // unbound cdev EINVAL, a group ENOTTY (none is a group call); an iommufd sends 0x70-0x72 to the type1
    // compat handlers (GET_INFO, MAP_DMA, UNMAP_DMA: EINVAL for argsz 0) and knows none of the rest.
    const compat = (nr: number) => (nr <= 0x72 ? EINVAL : ENOTTY);
    const kinds: [string, (nr: number) => number][] = [
      ['dev/vfio/vfio', () => EINVAL], ['dev/vfio/0', () => ENOTTY], ['dev/vfio/devices/vfio0', () => EINVAL], ['dev/iommu', compat],
    ];
    for (const [path, errnoFor] of kinds) {
      const fh = await open(join(d.mnt, path), 'r+');
      try {
        const reqs: ClientRequest[] = [];
        const want: bigint[] = [];
        for (let nr = 0x70; nr <= 0x79; nr++) {
          for (const high of [0, 0x20000000]) {
            reqs.push({ request: (high | 0x3b00 | nr) >>> 0, argData: Buffer.alloc(64) });
            want.push(BigInt(-errnoFor(nr)));
          }
        }
        const a = await send(fh, reqs);
        expect(a.map((x) => x.result), path).toEqual(want);
      } finally {
        await fh.close();
      }
    }
  });
});
