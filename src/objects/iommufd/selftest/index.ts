// The IOMMU_TEST_CMD ops tcefs serves, one record per area. A new area is a new file here and one line
// in this list.
import { accessOps } from './access.ts';
import { bookkeepingOps } from './bookkeeping.ts';
import { dirtyOps } from './dirty.ts';
import { dmabufOps } from './dmabuf.ts';
import { iopfOps } from './iopf.ts';
import { mockDomainOps } from './mock-domain.ts';
import { nestedOps } from './nested.ts';
import { pasidOps } from './pasid.ts';
import { TestOpTable } from './test-cmd.ts';
import { viommuOps } from './viommu.ts';

export const TEST_OPS = new TestOpTable([mockDomainOps, bookkeepingOps, iopfOps, pasidOps, dirtyOps, nestedOps, viommuOps, accessOps, dmabufOps]);
