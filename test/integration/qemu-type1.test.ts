// QEMU as a real client: its VFIO container code asks for TYPE1v2 before the SPAPR types, so on a POWER
// host whose /dev/vfio/vfio is an iommufd, a pseries guest's vfio-pci device gets a type1 container
// ("type1 compat magically works on PPC"); on the legacy container it gets SPAPR v2. Only the container
// part of realize is checked here, from the daemon's ioctl trace.
import { describe, expect, it } from 'vitest';
import { tcefsRun } from '../helpers/shim.ts';

const QEMU = 'printf "info pci\\nquit\\n" | qemu-system-ppc64 -M pseries -accel tcg -nodefaults -vga none -nographic -S -display none -serial none -monitor stdio -device vfio-pci,host=0000:02:00.0,x-msix-relocation=bar2';

describe('qemu-system-ppc64 with a vfio-pci device', () => {
  it('takes TYPE1v2 from an iommufd-backed /dev/vfio/vfio, reads its IOVA ranges and opens the device', async () => {
    const r = await tcefsRun(['sh', '-c', QEMU], { runArgs: ['--vfio-container', 'iommufd'], env: { DEBUG: 'tcefs:ioctl' } });
    expect(r.stderr).toMatch(/VFIO_CHECK_EXTENSION arg=3 -> 1n/);
    expect(r.stderr).toMatch(/VFIO_SET_IOMMU arg=3 -> 0n/);
    expect(r.stderr).toMatch(/VFIO_IOMMU_GET_INFO \{argsz=72 flags=3 iova_pgsizes=0xffffffffffff0000 cap_offset=24 pad=0\} -> 0n/);
    expect(r.stderr).toMatch(/VFIO_GROUP_GET_DEVICE_FD +-> 0n/);
    expect(r.stderr).not.toMatch(/SPAPR/);
  });

  it('takes SPAPR v2 from the legacy container, which offers no type1', async () => {
    const r = await tcefsRun(['sh', '-c', QEMU], { env: { DEBUG: 'tcefs:ioctl' } });
    expect(r.stderr).toMatch(/VFIO_CHECK_EXTENSION arg=3 -> 0n/);
    expect(r.stderr).toMatch(/VFIO_SET_IOMMU arg=7 -> 0n/);
    expect(r.stderr).toMatch(/VFIO_GROUP_GET_DEVICE_FD +-> 0n/);
  });
});
