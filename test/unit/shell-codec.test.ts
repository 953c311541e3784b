// Named calls to request bytes and back: what tcefs ioctl and the shell send must be the bytes a C caller
// of the same ioctl sends, and the words printed for a call must encode the same bytes again.
import { describe, expect, it } from 'vitest';
import {
  argLayout, argumentKeys, decodeAnswer, encodeCall, formatArguments, formatValue, IN_BUFFER_BASE, OUT_BUFFER_BASE, parseWord, UsageError,
  type EncodeContext,
} from '../../src/shell/codec.ts';
import { splitWords } from '../../src/shell/values.ts';
import { Op, HANDLE_FOREIGN, type Answer } from '../../src/transport/frame.ts';
import { VFIO } from '../../src/uapi/constants.ts';
import { IOCTLS, ioctl, requestValue } from '../../src/uapi/ioctls.ts';
import { encode } from '../../src/uapi/layout.ts';
import * as S from '../../src/uapi/structs.ts';

const words = (line: string) => splitWords(line).map(parseWord);
const call = (name: string, line = '', ctx?: EncodeContext) => encodeCall(ioctl(name), words(line), ctx);
const answer = (c: ReturnType<typeof call>, a: Partial<Answer>): Answer => ({
  op: Op.IOCTL, request: c.request, result: 0n, out: Buffer.alloc(0), blobs: [], newHandle: 0, handleField: 0, ...a,
});

describe('encoding struct arguments', () => {
  it('sends the bytes a C caller would: argsz = sizeof, flags by name, sizes and sums', () => {
    const c = call('VFIO_IOMMU_MAP_DMA', 'flags=READ|WRITE vaddr=0x7f0000000000+128K iova=0x0800_0000_0000_0000 size=64K');
    expect(c.request).toBe(requestValue(ioctl('VFIO_IOMMU_MAP_DMA').nr));
    expect(c.argData).toEqual(encode(S.vfio_iommu_type1_dma_map, {
      argsz: 32, flags: VFIO.VFIO_DMA_MAP_FLAG_READ | VFIO.VFIO_DMA_MAP_FLAG_WRITE, vaddr: 0x7f0000020000n, iova: 1n << 59n, size: 65536n,
    }));
    expect(c.blobs).toEqual([]);
  });

  it('takes full constant names, lower-case short names and nested members', () => {
    expect(call('VFIO_IOMMU_MAP_DMA', 'flags=VFIO_DMA_MAP_FLAG_WRITE|read').argData.readUInt32LE(4)).toBe(3);
    const e = call('VFIO_EEH_PE_OP', 'op=INJECT_ERR err.type=1 err.addr=0x1000');
    expect(e.argData).toEqual(encode(S.vfio_eeh_pe_op, { argsz: S.vfio_eeh_pe_op.size, op: VFIO.VFIO_EEH_PE_INJECT_ERR, 'err.type': 1, 'err.addr': 0x1000n }));
  });

  it('lets argsz/size be set: smaller to test the minimum, larger for capability chains', () => {
    expect(call('VFIO_IOMMU_SPAPR_TCE_GET_INFO', 'argsz=12').argData.length).toBe(S.vfio_iommu_spapr_tce_info.size);
    expect(call('VFIO_IOMMU_SPAPR_TCE_GET_INFO', 'argsz=12').argData.readUInt32LE(0)).toBe(12);
    expect(call('VFIO_DEVICE_GET_REGION_INFO', 'argsz=256').argData.length).toBe(256);
    // Beyond what a caller plausibly has, the rest is memory that faults.
    expect(call('IOMMU_IOAS_ALLOC', 'size=0x10000000').argData.length).toBe(S.iommu_ioas_alloc.size);
  });

  it('sends the declared minimum for ioctls whose struct tcefs does not declare', () => {
    const c = call('IOMMU_HWPT_INVALIDATE');
    expect(c.argData.length).toBe(ioctl('IOMMU_HWPT_INVALIDATE').minsz);
    expect(c.argData.readUInt32LE(0)).toBe(c.argData.length);
  });

  it('takes raw argument bytes', () => {
    const c = call('IOMMU_DESTROY', 'raw=hex:0800000005000000');
    expect(c.argData).toEqual(Buffer.from([8, 0, 0, 0, 5, 0, 0, 0]));
    expect(formatArguments(c)).toEqual(['raw=hex:0800000005000000']);
  });

  it('refuses what does not fit, with the reason', () => {
    const bad = (name: string, line: string) => () => call(name, line);
    expect(bad('IOMMU_DESTROY', 'id=0x100000000')).toThrow(/does not fit in 32 bits/);
    expect(bad('IOMMU_DESTROY', 'ib=1')).toThrow(/has no field ib \(fields: size id\)/);
    expect(bad('IOMMU_DESTROY', '5')).toThrow(/needs a field name/);
    expect(bad('VFIO_GET_API_VERSION', 'arg=1')).toThrow(/takes no argument/);
    expect(bad('VFIO_IOMMU_MAP_DMA', 'flags=READ|EXEC')).toThrow(/"EXEC" is not a number or a known name/);
    expect(bad('IOMMU_IOAS_IOVA_RANGES', 'allowed_iovas=[1-2]')).toThrow(/written by the kernel; set num_iovas/);
    expect(bad('IOMMU_DESTROY', 'id=$x')).toThrow(UsageError);
    expect(bad('IOMMU_GET_HW_INFO', '__reserved=1')).toThrow(/holds 3 values: write __reserved=\[a,b,...\]/);
  });

  it('reads -1 as all ones for unsigned fields and keeps signed ones signed', () => {
    expect(call('IOMMU_DESTROY', 'id=-1').argData.readUInt32LE(4)).toBe(0xffffffff);
    expect(call('IOMMU_IOAS_MAP_FILE', 'fd=-1').argData.readInt32LE(12)).toBe(-1);
  });
});

describe('the other argument kinds', () => {
  it('integer arguments: bare or arg=, by number or by name', () => {
    expect(call('VFIO_CHECK_EXTENSION', 'VFIO_SPAPR_TCE_v2_IOMMU').arg).toBe(7n);
    expect(call('VFIO_CHECK_EXTENSION', 'arg=3').arg).toBe(3n);
    expect(call('VFIO_SET_IOMMU', '7').argData.length).toBe(0);
    expect(formatArguments(call('VFIO_SET_IOMMU', '7'))).toEqual(['arg=VFIO_SPAPR_TCE_v2_IOMMU']);
    expect(formatArguments(call('VFIO_CHECK_EXTENSION', '99'))).toEqual(['arg=99']);
  });

  it('strings go with their NUL', () => {
    const c = call('VFIO_GROUP_GET_DEVICE_FD', '0000:02:00.0');
    expect(c.argData).toEqual(Buffer.from('0000:02:00.0\0'));
    expect(formatArguments(call('VFIO_GROUP_GET_DEVICE_FD', '"0000:02:00.0 vf_token=x"'))).toEqual(['name="0000:02:00.0 vf_token=x"']);
  });

  it('fd fields take the handle of a named file, NONE, FOREIGN or a number', () => {
    const ctx: EncodeContext = { handle: (n) => ({ c: 0x1234abc } as Record<string, number>)[n] };
    expect(call('VFIO_GROUP_SET_CONTAINER', '@c', ctx).argData.readInt32LE(0)).toBe(0x1234abc);
    expect(call('VFIO_GROUP_SET_CONTAINER', 'fd=FOREIGN').argData.readInt32LE(0)).toBe(HANDLE_FOREIGN);
    expect(call('VFIO_GROUP_SET_CONTAINER', 'fd=none').argData.readInt32LE(0)).toBe(0);
    expect(call('VFIO_DEVICE_BIND_IOMMUFD', 'iommufd=@c', ctx).argData.readInt32LE(8)).toBe(0x1234abc);
    // Without open files (tcefs ioctl), @name cannot mean anything, and says why.
    expect(() => call('VFIO_GROUP_SET_CONTAINER', '@c')).toThrow(/a handle lives only while its file is open/);
    const names = (h: number) => (h === 0x1234abc ? 'c' : undefined);
    expect(formatArguments(call('VFIO_GROUP_SET_CONTAINER', '@c', ctx), names)).toEqual(['fd=@c']);
    expect(formatArguments(call('VFIO_GROUP_SET_CONTAINER', '-1'), names)).toEqual(['fd=-1']);
  });
});

describe('pointers', () => {
  it('sends in-pointer data as a blob, sets its count, and points the field somewhere', () => {
    const c = call('IOMMU_IOAS_ALLOW_IOVAS', 'ioas_id=1 allowed_iovas=[0x1000-0x1fff, {start=0x4000,last=0x7fff}]');
    const ptr = S.iommu_ioas_allow_iovas.byName.get('allowed_iovas')!.offset;
    expect(c.argData.readUInt32LE(8)).toBe(2); // num_iovas
    expect(c.argData.readBigUInt64LE(ptr)).not.toBe(0n);
    expect(c.blobs).toEqual([{
      fieldOffset: ptr,
      data: Buffer.concat([encode(S.iommu_iova_range, { start: 0x1000n, last: 0x1fffn }), encode(S.iommu_iova_range, { start: 0x4000n, last: 0x7fffn })]),
    }]);
    expect(formatArguments(c)).toEqual(['size=24', 'ioas_id=1', 'num_iovas=2', 'allowed_iovas=[0x1000-0x1fff,0x4000-0x7fff]']);
  });

  it('keeps a count that was given (to send less data than the kernel reads)', () => {
    const c = call('IOMMU_IOAS_ALLOW_IOVAS', 'num_iovas=3 allowed_iovas=[0x1000-0x1fff]');
    expect(c.argData.readUInt32LE(8)).toBe(3);
    expect(c.blobs[0].data.length).toBe(16);
  });

  it('without data an in-pointer is NULL; a number is a raw pointer without data', () => {
    expect(call('IOMMU_IOAS_ALLOW_IOVAS', 'num_iovas=1').argData.readBigUInt64LE(16)).toBe(0n);
    const c = call('IOMMU_IOAS_ALLOW_IOVAS', 'num_iovas=1 allowed_iovas=0x5000');
    expect(c.argData.readBigUInt64LE(16)).toBe(0x5000n);
    expect(c.blobs).toEqual([]);
  });

  it('byte pointers take hex: or a list of bytes', () => {
    const c = call('VFIO_DEVICE_BIND_IOMMUFD', 'flags=TOKEN token_uuid_ptr=hex:00112233445566778899aabbccddeeff');
    expect(c.blobs[0].data.toString('hex')).toBe('00112233445566778899aabbccddeeff');
    expect(call('IOMMU_HWPT_ALLOC', 'data_uptr=[1,2,0xff]').argData.readUInt32LE(28)).toBe(3); // data_len from the data
  });

  it('gives out-pointers a non-NULL address unless told otherwise, and decodes their data', () => {
    const c = call('IOMMU_IOAS_IOVA_RANGES', 'ioas_id=1 num_iovas=2');
    const ptr = S.iommu_ioas_iova_ranges.byName.get('allowed_iovas')!.offset;
    expect(c.argData.readBigUInt64LE(ptr) >= OUT_BUFFER_BASE).toBe(true);
    expect(formatArguments(c)).toEqual(['size=32', 'ioas_id=1', 'num_iovas=2']);
    expect(formatArguments(call('IOMMU_IOAS_IOVA_RANGES', 'allowed_iovas=0'))).toEqual(['size=32', 'allowed_iovas=0']);

    const out = Buffer.from(c.argData);
    out.writeUInt32LE(1, 8);
    out.writeBigUInt64LE(0x1000n, 24);
    const d = decodeAnswer(c, answer(c, { out, blobs: [{ fieldOffset: ptr, data: encode(S.iommu_iova_range, { start: 0n, last: 0xffffn }) }] }));
    expect(d.changed).toEqual(['num_iovas', 'out_iova_alignment']);
    expect([...d.outData.keys()]).toEqual(['allowed_iovas']);
    expect(d.fields.out_iova_alignment).toBe(0x1000n);
  });
});

describe('answers', () => {
  it('decode the copy-back over what was sent and name what changed', () => {
    const c = call('VFIO_IOMMU_SPAPR_TCE_CREATE', 'page_shift=16 window_size=4G levels=1');
    const out = Buffer.from(c.argData);
    out.writeBigUInt64LE(1n << 59n, 32);
    const d = decodeAnswer(c, answer(c, { out }));
    expect(d.outLen).toBe(40);
    expect(d.changed).toEqual(['start_addr']);
    expect(d.fields.start_addr).toBe(1n << 59n);
    expect(d.fields.window_size).toBe(4n << 30n);
  });

  it('keep copy-back past the struct (capability chains) as extra bytes', () => {
    const c = call('VFIO_DEVICE_GET_REGION_INFO', 'argsz=48');
    const out = Buffer.alloc(48, 0xaa);
    const d = decodeAnswer(c, answer(c, { out }));
    expect(d.extra?.length).toBe(48 - S.vfio_region_info.size);
  });

  it('name flags and enums, with unknown bits in hex', () => {
    const d = ioctl('VFIO_IOMMU_MAP_DMA');
    expect(formatValue(d, S.vfio_iommu_type1_dma_map, 'flags', 3)).toBe('READ|WRITE');
    expect(formatValue(d, S.vfio_iommu_type1_dma_map, 'flags', 0x81)).toBe('READ|0x80');
    expect(formatValue(d, S.vfio_iommu_type1_dma_map, 'flags', 0)).toBe('0');
    expect(formatValue(ioctl('VFIO_EEH_PE_OP'), S.vfio_eeh_pe_op, 'op', 4)).toBe('GET_STATE');
    expect(formatValue(ioctl('VFIO_EEH_PE_OP'), S.vfio_eeh_pe_op, 'op', 77)).toBe('77');
  });
});

describe('printed words encode the same bytes again (what makes transcripts replayable)', () => {
  const handles: Record<string, number> = { c: 0x2468ace };
  const ctx: EncodeContext = { handle: (n) => handles[n] };
  const names = (h: number) => Object.keys(handles).find((k) => handles[k] === h);
  for (const d of IOCTLS) {
    it(d.name, () => {
      // Every field set to a distinct non-zero value that fits it; fds to a named file.
      const line = argumentKeys(d).map((k, i) => {
        if (d.arg === 'fdptr' || d.fdFields?.includes(k)) return `${k}=@c`;
        if (d.arg === 'string') return `${k}=dev${i}`;
        if (k === 'size' || k === 'argsz') return '';
        const count = argLayout(d)?.byName.get(k)?.count ?? 1;
        return count > 1 ? `${k}=[${i},${i + 1}]` : `${k}=${(i % 200) + 1}`;
      }).join(' ');
      const first = encodeCall(d, words(line), ctx);
      const again = encodeCall(d, formatArguments(first, names).map(parseWord), ctx);
      expect(again.argData).toEqual(first.argData);
      expect(again.arg).toBe(first.arg);
      expect(again.blobs).toEqual(first.blobs);
    });
  }

  it('including pointer data and arrays', () => {
    for (const line of ['ioas_id=2 allowed_iovas=[0x1000-0x1fff,0x4000-0x7fff]', 'size=0x30 __reserved=[1,0,3]']) {
      const d = ioctl(line.includes('allowed') ? 'IOMMU_IOAS_ALLOW_IOVAS' : 'IOMMU_GET_HW_INFO');
      const first = encodeCall(d, words(line));
      const again = encodeCall(d, formatArguments(first).map(parseWord));
      expect(again.argData).toEqual(first.argData);
      expect(again.blobs).toEqual(first.blobs);
    }
    expect(IN_BUFFER_BASE).not.toBe(0n);
  });
});
