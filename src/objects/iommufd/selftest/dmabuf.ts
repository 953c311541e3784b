// The selftest driver's dma-buf exporter: DMABUF_GET makes a buffer of whole pages (at most 512) and
// hands the client its fd; IOMMU_IOAS_MAP_FILE maps it (dmabuf.ts); DMABUF_REVOKE sets or clears its
// revoked state and invalidates every mapping of it, which then stays unmapped from the domains. The
// memory is the exporter's own and nothing reads it, so it is only named, never allocated.
import { CommandTable } from '../../../dispatch/table.ts';
import { OpenFile } from '../../../dispatch/open-file.ts';
import { EBADF, EINVAL, Errno } from '../../../errno.ts';
import { HANDLE_IN_RESULT } from '../../../transport/frame.ts';
import { clientFdLink, clientFile } from '../../client-fd.ts';
import type { IommufdFile } from '../context.ts';
import type { DmaBuf, DmabufMapping } from '../dmabuf.ts';
import type { TestOps } from './test-cmd.ts';

const MAX_PAGES = 512n;
const NO_COMMANDS = new CommandTable<SelftestDmabufFile>('dmabuf', {});
let serial = 0;

export class SelftestDmabufFile extends OpenFile implements DmaBuf {
  readonly kind = 'dmabuf';
  revoked = false;
  readonly imports = new Set<DmabufMapping>();
  readonly owner = `dmabuf:${++serial}`;

  constructor(ctx: IommufdFile, readonly size: bigint) {
    super(`${ctx.path}:dmabuf`);
  }

  commands(): CommandTable<SelftestDmabufFile> {
    return NO_COMMANDS;
  }

  /** Mappings outlive the fd: each holds the buffer, as an attachment holds a dma-buf reference. */
  release(): void {}
}

export const dmabufOps: TestOps = {
  IOMMU_TEST_OP_DMABUF_GET: {
    member: 'dmabuf_get',
    handler: (f, cmd) => {
      const page = f.daemon.host.memory.pageSize;
      const len = (BigInt(cmd.get('length')) + page - 1n) & ~(page - 1n);
      if (len === 0n || len > page * MAX_PAGES) throw new Errno(EINVAL, `length ${cmd.get('length')}`);
      // The fd is the result (the 7.3 driver answers 0 and leaks it; the selftest takes the result as the fd).
      cmd.call.newHandle = f.daemon.files.addPending(new SelftestDmabufFile(f, len), f.handle);
      cmd.call.handleField = HANDLE_IN_RESULT;
    },
  },
  IOMMU_TEST_OP_DMABUF_REVOKE: {
    member: 'dmabuf_revoke',
    handler: (f, cmd) => {
      const fd = cmd.get('dmabuf_fd');
      const file = clientFile(f.daemon.files, cmd.pid, fd);
      // dma_buf_get: EBADF for no file, EINVAL for a file that is no dma-buf.
      if (!file && clientFdLink(cmd.pid, fd) === undefined) throw new Errno(EBADF, `fd ${fd} is not open`);
      if (!(file instanceof SelftestDmabufFile)) throw new Errno(EINVAL, `fd ${fd} is not a dma-buf`);
      file.revoked = cmd.get('revoked') !== 0;
      for (const m of file.imports) m.revoke();
    },
  },
};
