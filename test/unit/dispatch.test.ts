// Dispatch by file kind without FUSE: the iommufd size rules, fallbacks, and what each colliding number
// means on each kind.
import { describe, expect, it } from 'vitest';
import { IoctlCall } from '../../src/dispatch/call.ts';
import { runRequest } from '../../src/dispatch/dispatch.ts';
import { E2BIG, EFAULT, EINVAL, ENOENT, ENOTTY } from '../../src/errno.ts';
import { Daemon } from '../../src/daemon.ts';
import { IommufdFile } from '../../src/objects/iommufd/context.ts';
import { ContainerFile } from '../../src/objects/vfio/container.ts';
import { defaultTopology } from '../../src/topology/topology.ts';
import { Op } from '../../src/transport/frame.ts';
import { ioctl as declOf, ioctlsFor, requestValue, type FileKind } from '../../src/uapi/ioctls.ts';

const ioctl = (file: IommufdFile | ContainerFile, request: number, argData = Buffer.alloc(0), arg = 0n) =>
  runRequest(file, { op: Op.IOCTL, request, arg, argData, blobs: [] }, 1);

describe('iommufd extensible structs (copy_struct_from_user)', () => {
  const f = new IommufdFile('/dev/iommu', new Daemon(defaultTopology()));
  const destroy = (bytes: number[]) => ioctl(f, 0x3b80, Buffer.from(bytes)).result;
  it('reads size first: nothing readable is EFAULT', () => expect(destroy([])).toBe(BigInt(-EFAULT)));
  it('size below the minimum is EINVAL', () => expect(destroy([7, 0, 0, 0, 0, 0, 0])).toBe(BigInt(-EINVAL)));
  it('exact size reaches the handler', () => expect(destroy([8, 0, 0, 0, 1, 0, 0, 0])).toBe(BigInt(-ENOENT)));
  it('a longer struct with a zero tail is accepted', () => expect(destroy([12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])).toBe(BigInt(-ENOENT)));
  it('a non-zero tail is E2BIG', () => expect(destroy([12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0])).toBe(BigInt(-E2BIG)));
  it('a size larger than the bytes sent is EFAULT', () => expect(destroy([64, 0, 0, 0, 1, 0, 0, 0])).toBe(BigInt(-EFAULT)));
  it('numbers outside the table are ENOTTY', () => {
    expect(ioctl(f, 0x3b7f).result).toBe(BigInt(-ENOTTY));
    expect(ioctl(f, 0x3ba0).result).toBe(BigInt(-ENOTTY));
    expect(ioctl(f, 0x40083b80).result).toBe(BigInt(-ENOTTY)); // _IOW-style encoding of DESTROY
  });
});

describe('a legacy container before VFIO_SET_IOMMU', () => {
  const c = new ContainerFile('/dev/vfio/vfio', new Daemon(defaultTopology()));
  it('answers the core calls', () => {
    expect(ioctl(c, 0x3b64).result).toBe(0n);
    expect(ioctl(c, 0x3b65, undefined, 7n).result).toBe(1n);
    expect(ioctl(c, 0x20003b65, undefined, 2n).result).toBe(1n);
    expect(ioctl(c, 0x3b65, undefined, 3n).result).toBe(0n);
  });
  it('refuses everything else with EINVAL, even garbage numbers', () => {
    for (const r of [0x3b70, 0x3b77, 0x3b79, 0x1234, 0xc0283b77]) expect(ioctl(c, r).result).toBe(BigInt(-EINVAL));
  });
});

describe('the collision table: what each colliding number means on each file kind', () => {
  // ../shared/reference/uapi.md §3, restated as the meanings tcefs declares per kind.
  const expected: Record<number, Partial<Record<FileKind, string[]>>> = {
    0x70: { device: ['VFIO_DEVICE_GET_PCI_HOT_RESET_INFO'], container: ['VFIO_IOMMU_GET_INFO', 'VFIO_IOMMU_SPAPR_TCE_GET_INFO'] },
    0x71: { device: ['VFIO_DEVICE_PCI_HOT_RESET'], container: ['VFIO_IOMMU_MAP_DMA'] },
    0x72: { device: ['VFIO_DEVICE_QUERY_GFX_PLANE'], container: ['VFIO_IOMMU_UNMAP_DMA'] },
    0x73: { device: ['VFIO_DEVICE_GET_GFX_DMABUF'], container: ['VFIO_IOMMU_ENABLE'] },
    0x74: { device: ['VFIO_DEVICE_IOEVENTFD'], container: ['VFIO_IOMMU_DISABLE'] },
    0x75: { device: ['VFIO_DEVICE_FEATURE'], container: ['VFIO_IOMMU_DIRTY_PAGES', 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY'] },
    0x76: { device: ['VFIO_DEVICE_BIND_IOMMUFD'], container: ['VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY'] },
    0x77: { device: ['VFIO_DEVICE_ATTACH_IOMMUFD_PT'], container: ['VFIO_IOMMU_SPAPR_TCE_CREATE'] },
    0x78: { device: ['VFIO_DEVICE_DETACH_IOMMUFD_PT'], container: ['VFIO_IOMMU_SPAPR_TCE_REMOVE'] },
    0x79: { device: [], container: ['VFIO_EEH_PE_OP'] },
  };
  for (const [nr, kinds] of Object.entries(expected)) {
    it(`0x3b${Number(nr).toString(16)} / 0x2000 3b${Number(nr).toString(16)}`, () => {
      for (const kind of ['device', 'container', 'group'] as FileKind[]) {
        expect(ioctlsFor(kind, Number(nr)).map((d) => d.name).sort(), kind).toEqual((kinds[kind] ?? []).sort());
      }
      expect(requestValue(Number(nr), 'powerpc')).toBe((0x20003b00 | Number(nr)) >>> 0);
    });
  }
});

describe('IoctlCall copy-back (copy_to_user into the argument image)', () => {
  const decl = declOf('IOMMU_IOAS_MAP');
  const size = decl.struct!.size;
  const user = () => {
    const b = Buffer.alloc(size, 0xaa);
    b.writeUInt32LE(size, 0);
    return b;
  };
  const call = (arg: Buffer) => {
    const c = new IoctlCall(decl, { op: Op.IOCTL, request: 0, arg: 0n, argData: arg, blobs: [] }, 1);
    c.extensibleCopyIn();
    return c;
  };

  it('returns the whole struct after respond(), and leaves the request bytes alone', () => {
    const arg = user();
    const c = call(arg);
    c.set('iova', 0x1234n);
    c.respond();
    expect(c.userOut().readBigUInt64LE(decl.struct!.byName.get('iova')!.offset)).toBe(0x1234n);
    expect(arg.readBigUInt64LE(decl.struct!.byName.get('iova')!.offset)).toBe(0xaaaaaaaaaaaaaaaan);
  });

  it('a field set after the reply was copied back does not reach the user', () => {
    const c = call(user());
    c.set('iova', 1n);
    c.respond();
    c.set('iova', 2n);
    expect(c.get64('iova')).toBe(2n);
    expect(c.userOut().readBigUInt64LE(decl.struct!.byName.get('iova')!.offset)).toBe(1n);
  });

  it('a later copy-back of one field changes the user image, not the kernel struct', () => {
    const c = call(user());
    c.respond();
    c.writeUser(0, Buffer.from([9, 9, 9, 9]));
    expect(c.userOut().readUInt32LE(0)).toBe(0x09090909);
    expect(c.get('size')).toBe(size);
  });

  it('copies back only what the user sent room for', () => {
    const short = user().subarray(0, decl.minsz!);
    short.writeUInt32LE(decl.minsz!, 0);
    const c = call(short);
    c.respond();
    expect(c.userOut().length).toBe(decl.minsz);
  });
});
