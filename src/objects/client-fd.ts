// What a client's own fd number refers to, for the few calls whose argument carries one the shim cannot
// translate (IOMMU_TEST_CMD names an access or dma-buf fd only for some ops). The daemon runs on the
// client's machine and reads the link in /proc/<pid>/fd, as the kernel's fget looks in the caller's
// table: a file the client claimed from .tcefs/fd/<handle> points there. Only a readlink: a stat of the
// link would ask this very daemon through FUSE.
import { readlinkSync } from 'node:fs';
import type { OpenFile } from '../dispatch/open-file.ts';
import { CLAIM_DIR } from '../transport/paths.ts';
import type { FileRegistry } from './file-registry.ts';

const CLAIMED = new RegExp(`${CLAIM_DIR.replace(/\./g, '\\.')}/([0-9a-f]{1,8})$`);

/** The link of the client's fd, or undefined when it is not open. */
export function clientFdLink(pid: number, fd: number): string | undefined {
  if (!pid || fd < 0 || !Number.isInteger(fd)) return undefined;
  try {
    return readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/** The daemon's file behind a client fd, or undefined when the fd is not open or not a tcefs file. */
export function clientFile(files: FileRegistry, pid: number, fd: number): OpenFile | undefined {
  const m = CLAIMED.exec(clientFdLink(pid, fd) ?? '');
  return m ? files.get(parseInt(m[1], 16)) : undefined;
}
