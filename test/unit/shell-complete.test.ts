// Tab completion of the shell, as readline calls it: (line) => [candidates, word being completed].
import { describe, expect, it } from 'vitest';
import { complete, type CompletionState } from '../../src/shell/complete.ts';
import type { FileKind } from '../../src/uapi/ioctls.ts';

const state: CompletionState = {
  files: new Map<string, FileKind | undefined>([['c', 'container'], ['g', 'group'], ['d', 'device'], ['i', 'iommufd']]),
  vars: new Map([['w', ['argsz', 'start_addr', 'out']]]),
  paths: ['dev/iommu', 'dev/vfio/vfio', 'dev/vfio/1', 'sys/kernel/debug/tcefs/host', 'sys/kernel/debug/tcefs/groups/1/tce'],
};
const c = (line: string) => complete(line, state);

describe('the shell completer', () => {
  it('completes commands and open files first, each as a whole word', () => {
    expect(c('')[0]).toEqual(expect.arrayContaining(['open ', 'close ', 'cat ', 'help ', 'c ', 'g ']));
    expect(c('op')).toEqual([['open '], 'op']);
    expect(c('cl')).toEqual([['close '], 'cl']);
  });

  it('completes ioctl names by the kind of the file, case-insensitively', () => {
    const [names, word] = c('g VFIO_GROUP_');
    expect(word).toBe('VFIO_GROUP_');
    expect(names).toEqual(['VFIO_GROUP_GET_DEVICE_FD ', 'VFIO_GROUP_GET_STATUS ', 'VFIO_GROUP_SET_CONTAINER ', 'VFIO_GROUP_UNSET_CONTAINER ']);
    expect(c('c vfio_iommu_spapr_tce_c')[0]).toEqual(['VFIO_IOMMU_SPAPR_TCE_CREATE ']);
    // A group has no container calls; a container has no group calls.
    expect(c('g VFIO_IOMMU_')[0]).toEqual([]);
    expect(c('c VFIO_GROUP')[0]).toEqual([]);
    expect(c('i IOMMU_IOAS_AL')[0]).toEqual(['IOMMU_IOAS_ALLOC ', 'IOMMU_IOAS_ALLOW_IOVAS ']);
    expect(c('d re')[0]).toEqual(['read ']);
    expect(c('x VFIO')[0]).toEqual([]); // not an open file
  });

  it('completes field names not given yet, then the names a field takes', () => {
    expect(c('c VFIO_IOMMU_MAP_DMA ')[0]).toEqual(['argsz=', 'flags=', 'iova=', 'size=', 'vaddr=']);
    expect(c('c VFIO_IOMMU_MAP_DMA flags=READ i')[0]).toEqual(['iova=']);
    expect(c('c VFIO_IOMMU_MAP_DMA fl')).toEqual([['flags='], 'fl']);
    // Flags go on with |, so they take no blank; names already in the OR are not offered again.
    expect(c('c VFIO_IOMMU_MAP_DMA flags=')[0]).toEqual(['flags=READ', 'flags=VADDR', 'flags=WRITE']);
    expect(c('c VFIO_IOMMU_MAP_DMA flags=READ|')[0]).toEqual(['flags=READ|VADDR', 'flags=READ|WRITE']);
    expect(c('c VFIO_EEH_PE_OP op=GET')[0]).toEqual(['op=GET_STATE ']);
    expect(c('d VFIO_DEVICE_GET_REGION_INFO index=C')[0]).toEqual(['index=CONFIG ']);
  });

  it('offers the names of a bare value argument, and open files for fd fields', () => {
    expect(c('c VFIO_SET_IOMMU VFIO_SPAPR')[0]).toEqual(['VFIO_SPAPR_TCE_IOMMU ', 'VFIO_SPAPR_TCE_v2_IOMMU ']);
    expect(c('g VFIO_GROUP_SET_CONTAINER @')[0]).toEqual(['@c ', '@d ', '@g ', '@i ']);
    expect(c('d VFIO_DEVICE_BIND_IOMMUFD iommufd=@i')[0]).toEqual(['iommufd=@i ']);
  });

  it('completes variables and their fields', () => {
    expect(c('c VFIO_IOMMU_MAP_DMA iova=$w.s')[0]).toEqual(['iova=$w.start_addr ']);
    expect(c('show $')[0]).toEqual(['$w ', '$w.argsz ', '$w.out ', '$w.result ', '$w.start_addr ']);
  });

  it('completes paths after open and cat, files after close, errnos after =>', () => {
    expect(c('open g dev/vfio/')[0]).toEqual(['dev/vfio/1 ', 'dev/vfio/vfio ']);
    expect(c('cat sys/kernel/debug/tcefs/g')[0]).toEqual(['sys/kernel/debug/tcefs/groups/1/tce ']);
    expect(c('close ')[0]).toEqual(['c ', 'd ', 'g ', 'i ']);
    expect(c('g VFIO_GROUP_UNSET_CONTAINER => EB')[0]).toEqual(['EBADF ', 'EBADFD ', 'EBADMSG ', 'EBUSY ']);
    // After the result, the fields of the call again.
    expect(c('c VFIO_IOMMU_SPAPR_TCE_CREATE => 0 start')[0]).toEqual(['start_addr=']);
  });

  it('completes what follows an assignment like the call it names', () => {
    expect(c('d = g VFIO_GROUP_GET_DEV')[0]).toEqual(['VFIO_GROUP_GET_DEVICE_FD ']);
    expect(c('$w = c VFIO_IOMMU_SPAPR_TCE_CREATE page')[0]).toEqual(['page_shift=']);
  });
});
