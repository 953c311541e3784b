// Preregistered memory (SPAPR v2): regions live per process address space ("mm"), not per container.
// tcefs knows a process by the pid its frames carry; an mm lives while a container is bound to it.
// A container holds references to the regions it registered; a region stays pinned and charged until
// its last reference goes and no TCE points into it. Unregistering a region that is still mapped drops
// the container's reference and succeeds, leaving the region orphaned but pinned (current kernels).
import { EINVAL, Errno } from '../../errno.ts';
import type { TceHost } from '../../tce/index.ts';

export class PreregRegion {
  /** References: containers that registered it (the kernel's `used`). */
  used = 1;
  /** 1 + live TCEs pointing into it (the kernel's `mapped`, which never drops below 1). */
  mapped = 1;

  constructor(
    readonly mm: MmContext,
    readonly ua: bigint,
    readonly size: bigint,
    /** Largest IOMMU page shift the region can back: min(natural alignment, host page shift). */
    readonly pageShift: number,
  ) {}

  get end(): bigint {
    return this.ua + this.size;
  }

  contains(ua: bigint, length: bigint): boolean {
    return ua >= this.ua && ua + length <= this.end;
  }

  hpa(ua: bigint): bigint {
    return this.mm.host.memory.hpaOf(this.mm.owner, ua);
  }
}

/** One client process's address space as the IOMMU code sees it: its registered regions. */
export class MmContext {
  readonly regions: PreregRegion[] = [];

  constructor(readonly owner: string, readonly host: TceHost) {}

  find(ua: bigint, size: bigint): PreregRegion | undefined {
    return this.regions.find((r) => r.ua === ua && r.size === size);
  }

  /** The region holding [ua, ua + length), registered through any container of this process. */
  lookup(ua: bigint, length: bigint): PreregRegion | undefined {
    return this.regions.find((r) => r.contains(ua, length));
  }

  /** Create a new region: charge, pin, refuse a partial overlap (after pinning, as the kernel does). */
  create(ua: bigint, size: bigint): PreregRegion {
    const host = this.host;
    const account = host.account(this.owner);
    const pageShift = BigInt(host.hostPageShift);
    const pages = size >> pageShift;
    account.charge(pages << pageShift);
    try {
      if (size > 0n) host.memory.pin(this.owner, ua, size);
    } catch (e) {
      account.uncharge(pages << pageShift);
      throw e;
    }
    if (this.regions.some((r) => ua < r.end && r.ua < ua + size)) {
      if (size > 0n) host.memory.unpin(this.owner, ua, size);
      account.uncharge(pages << pageShift);
      throw new Errno(EINVAL, 'overlaps a registered region');
    }
    const natural = lowestSetBit(ua | size);
    const region = new PreregRegion(this, ua, size, Math.min(natural, host.hostPageShift));
    this.regions.push(region);
    return region;
  }

  /**
   * Drop one reference. The region is freed (unpinned, un-charged) when none is left and nothing maps
   * it; with mappings left the final put fails EBUSY internally and the region stays, orphaned.
   */
  put(region: PreregRegion): 'freed' | 'orphaned' | 'referenced' {
    region.used--;
    if (region.used > 0) return 'referenced';
    if (region.mapped > 1) return 'orphaned';
    this.regions.splice(this.regions.indexOf(region), 1);
    if (region.size > 0n) this.host.memory.unpin(this.owner, region.ua, region.size);
    this.host.account(this.owner).uncharge(region.size);
    return 'freed';
  }

  /** A TCE into the region went away. An orphaned region stays pinned even when this was the last. */
  unmapped(region: PreregRegion): void {
    if (region.mapped > 1) region.mapped--;
  }

  /** The address space is gone: everything it pinned is released, orphans included. */
  teardown(): void {
    for (const r of this.regions.splice(0)) {
      if (r.size > 0n) this.host.memory.unpin(this.owner, r.ua, r.size);
      this.host.account(this.owner).uncharge(r.size);
    }
  }
}

function lowestSetBit(v: bigint): number {
  if (v === 0n) return 64;
  let n = 0;
  while ((v & 1n) === 0n) {
    v >>= 1n;
    n++;
  }
  return n;
}

