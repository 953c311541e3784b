// IOMMU_TEST_CMD (CONFIG_IOMMUFD_TEST): one ioctl whose `op` picks a test operation, each reading and
// writing its own member of the argument's union. The ops live in one file per area (mock devices and
// domains, bookkeeping, accesses, fault queues ...), each exporting a TestOps record; index.ts joins them
// into the table this file dispatches through. An op nobody registered is EOPNOTSUPP, as in the kernel;
// without --selftest the ioctl itself does not exist (ENOTTY, the file's command table lacks it).
import { CommandTable } from '../../../dispatch/table.ts';
import type { IoctlCall } from '../../../dispatch/call.ts';
import { EOPNOTSUPP, Errno } from '../../../errno.ts';
import type { Value } from '../../../uapi/layout.ts';
import { iommu_test_cmd, TEST_OP, type TestOpName } from '../../../uapi/selftest.ts';
import type { IommufdFile } from '../context.ts';

/** The call as an op sees it: the common header fields and its own union member's fields by their short names. */
export class TestCall {
  constructor(readonly call: IoctlCall, readonly op: TestOpName, readonly member: string | null) {}

  /** The header's `id`: an object ID whose meaning depends on the op. */
  get id(): number {
    return this.call.get('id');
  }

  private path(field: string): string {
    if (!this.member) throw new Error(`${this.op} has no union member`);
    const p = `${this.member}.${field}`;
    if (!iommu_test_cmd.byName.has(p)) throw new Error(`iommu_test_cmd has no ${p}`);
    return p;
  }

  get(field: string): number {
    return this.call.get(this.path(field));
  }

  get64(field: string): bigint {
    return this.call.get64(this.path(field));
  }

  set(field: string, value: Value): void {
    this.call.set(this.path(field), value);
  }

  /** iommufd_ucmd_respond: the whole struct back, cut to the caller's size. */
  respond(): void {
    this.call.respond();
  }

  /** The client process that made the call, as pinned memory knows it. */
  get owner(): string {
    return this.call.owner;
  }

  get pid(): number {
    return this.call.pid;
  }
}

export interface TestOp {
  /** The union member the op uses (`iommu_test_cmd.<member>`); null when it needs only the header. */
  member: string | null;
  handler: (file: IommufdFile, cmd: TestCall) => number | bigint | void;
}

export type TestOps = Partial<Record<TestOpName, TestOp>>;

export class TestOpTable {
  private readonly byOp = new Map<number, { name: TestOpName } & TestOp>();

  constructor(areas: TestOps[]) {
    for (const area of areas) {
      for (const [name, op] of Object.entries(area) as [TestOpName, TestOp][]) {
        const nr = TEST_OP[name];
        if (nr === undefined) throw new Error(`unknown test op ${name}`);
        if (this.byOp.has(nr)) throw new Error(`test op ${name} is registered twice`);
        if (op.member && !iommu_test_cmd.byName.has(op.member)) throw new Error(`${name}: iommu_test_cmd has no member ${op.member}`);
        this.byOp.set(nr, { name, ...op });
      }
    }
  }

  names(): TestOpName[] {
    return [...this.byOp.values()].map((o) => o.name);
  }

  run(file: IommufdFile, call: IoctlCall): number | bigint | void {
    const nr = call.get('op');
    const op = this.byOp.get(nr);
    if (!op) throw new Errno(EOPNOTSUPP, `test op ${nr}`);
    return op.handler(file, new TestCall(call, op.name, op.member));
  }
}

/** `base` with IOMMU_TEST_CMD added, one per base table (the plain context and the one serving SPAPR calls). */
const withTest = new WeakMap<CommandTable<IommufdFile>, CommandTable<IommufdFile>>();
export function selftestCommands(base: CommandTable<IommufdFile>, ops: TestOpTable): CommandTable<IommufdFile> {
  let t = withTest.get(base);
  if (!t) {
    t = new CommandTable<IommufdFile>('iommufd', { IOMMU_TEST_CMD: (f, call) => ops.run(f, call) }).with(base);
    withTest.set(base, t);
  }
  return t;
}
