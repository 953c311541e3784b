// IOMMUFD_OBJ_ACCESS: an in-kernel user of an IOAS that reaches the mapped memory without DMA (what an
// emulated device or a mediated driver is in the kernel, and the selftest's access fd). It is attached to
// one IOAS at a time, pins pages through its areas (sharing the pins and the locked-memory charge the
// domains use), reads and writes them, and is told to let go of a range before the IOAS unmaps it.
// There is no uAPI to make one: its driver does, and holds it until it destroys it.
import { EINVAL, ENOENT, EOVERFLOW, Errno } from '../../errno.ts';
import type { IommufdObject } from './id-table.ts';
import type { AccessPin, Area, Ioas, IoasAccess } from './ioas.ts';
import { U64_MAX } from './ranges.ts';

/** What the driver of an access gives it (iommufd_access_ops). */
export interface AccessOps {
  /** Needs iommufd_access_pin_pages: IOVAs it pins must then be page aligned in every IOAS it uses. */
  readonly needsPinPages: boolean;
  /** Drop every pin inside [iova, iova + length): the IOAS unmaps it, or the access leaves the IOAS. */
  unmap(iova: bigint, length: bigint): void;
}

export class IommufdAccess implements IommufdObject, IoasAccess {
  readonly kind = 'access';
  id = 0;
  /** The table's reference and the driver's, which IOMMU_DESTROY cannot drop (EBUSY). */
  users = 2;
  readonly iovaAlignment: bigint;
  private current?: Ioas;

  constructor(readonly ops: AccessOps, pageSize: bigint) {
    this.iovaAlignment = ops.needsPinPages ? pageSize : 1n;
  }

  /** The IOAS it works on; undefined before the attach and while it moves to another. */
  get ioas(): Ioas | undefined {
    return this.current;
  }

  attach(ioas: Ioas): void {
    if (this.current) throw new Errno(EINVAL, 'the access is attached already');
    this.change(ioas);
  }

  /** Move to another IOAS: every pin in the old one is dropped first (ENOENT when not attached). */
  replace(ioas: Ioas): void {
    if (!this.current) throw new Errno(ENOENT, 'the access is not attached');
    this.change(ioas);
  }

  private change(next: Ioas | undefined): void {
    const cur = this.current;
    if (cur === next) return;
    // No pin may start while the driver is told to drop its old ones.
    this.current = undefined;
    if (next) {
      try {
        next.addAccess(this);
      } catch (e) {
        this.current = cur;
        throw e;
      }
      next.users++;
    }
    if (cur) {
      this.ops.unmap(0n, U64_MAX);
      cur.removeAccess(this);
      cur.users--;
    }
    this.current = next;
  }

  unmapNotify(iova: bigint, length: bigint): void {
    this.ops.unmap(iova, length);
  }

  /** iommufd_access_pin_pages: EINVAL for an access that does not pin, ENOENT when not attached. */
  pin(iova: bigint, length: bigint, write: boolean): AccessPin {
    if (!this.ops.needsPinPages) throw new Errno(EINVAL, 'the access does not pin pages');
    const ioas = this.ready(iova, length);
    return ioas.accessPin(iova, length, write);
  }

  unpin(pin: AccessPin): void {
    pin.ioas.accessUnpin(pin);
  }

  /** iommufd_access_rw: `fn` moves each piece between the caller's buffer and the memory behind it. */
  rw(iova: bigint, length: bigint, write: boolean, fn: (area: Area, ua: bigint, offset: bigint, bytes: bigint) => void): void {
    this.ready(iova, length).accessRw(iova, length, write, fn);
  }

  /** The checks iommufd makes before it walks the IOAS, in its order. */
  private ready(iova: bigint, length: bigint): Ioas {
    if (length === 0n) throw new Errno(EINVAL, 'length 0');
    if (iova + length - 1n > U64_MAX) throw new Errno(EOVERFLOW, 'iova + length wraps');
    if (!this.current) throw new Errno(ENOENT, 'the access is not attached');
    return this.current;
  }

  /** Leaves its IOAS: the driver is told to drop every pin, then the IOAS forgets it. */
  destroy(): void {
    this.change(undefined);
  }
}
