// What /proc/<pid>/status shows of the memory iommufd pins for a process: VmPin (the mm's pinned_vm,
// charged in every accounting mode) and VmLck (its locked_vm, charged only when the iommufd accounts
// per process, IOMMU_OPTION_RLIMIT_MODE 1). The shim adds these to the real file (c/shim-status.c).

/** Bytes one process is charged for, as the two status lines count them. */
export interface VmCharge {
  pinned: bigint;
  locked: bigint;
}

export class ProcessVm {
  private readonly byOwner = new Map<string, VmCharge>();

  /** `bytes` more pinned for `owner`, and locked too when `mm` (per-process accounting). */
  charge(owner: string, bytes: bigint, mm: boolean): void {
    let c = this.byOwner.get(owner);
    if (!c) this.byOwner.set(owner, (c = { pinned: 0n, locked: 0n }));
    c.pinned += bytes;
    if (mm) c.locked += bytes;
  }

  /** The inverse of charge; never below zero, and an owner left with nothing is forgotten. */
  uncharge(owner: string, bytes: bigint, mm: boolean): void {
    const c = this.byOwner.get(owner);
    if (!c) return;
    c.pinned = c.pinned > bytes ? c.pinned - bytes : 0n;
    if (mm) c.locked = c.locked > bytes ? c.locked - bytes : 0n;
    if (!c.pinned && !c.locked) this.byOwner.delete(owner);
  }

  of(owner: string): VmCharge {
    const c = this.byOwner.get(owner);
    return { pinned: c?.pinned ?? 0n, locked: c?.locked ?? 0n };
  }
}

/** The answer of .tcefs/vm/<pid> (src/transport/paths.ts): both values in kB, one per line. */
export function renderVmCharge(c: VmCharge): string {
  return `VmPin ${c.pinned >> 10n}\nVmLck ${c.locked >> 10n}\n`;
}
