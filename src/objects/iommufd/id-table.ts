// iommufd's object table: one ID space for every object kind, IDs from 1, the lowest free ID reused.
// Every object counts its users; the table holds one, and each object that refers to it holds another,
// so DESTROY of something still in use is EBUSY.
import { EBUSY, ENOENT, ENOSPC, Errno } from '../../errno.ts';
import type { FaultInjector } from '../../tce/faults.ts';

/** Objects per iommufd context unless the daemon says otherwise (tcefs mount --max-objects). */
export const DEFAULT_MAX_OBJECTS = 65536;

export interface IommufdObject {
  readonly kind: string;
  id: number;
  /** The table's reference plus one per referrer (an attached device, a HWPT on an IOAS...). */
  users: number;
  /** Tear down what the object owns; called once it has left the table. */
  destroy?(): void;
}

export class IdTable {
  private readonly objects = new Map<number, IommufdObject>();
  /** No ID below this is free: the lowest-free search starts here instead of at 1. */
  private lowestFree = 1;

  /**
   * @param limit objects one context may hold; past it creation fails ENOSPC, so no client can exhaust the daemon
   * @param faults failure points: an object's allocation (ENOMEM) and each lookup (ENOENT), as iommufd has them
   */
  constructor(readonly limit = DEFAULT_MAX_OBJECTS, private readonly faults?: FaultInjector) {}

  /** iommufd_object_alloc's failures (the table full, the allocation refused), before anything is built. */
  private reserve(): void {
    if (this.objects.size >= this.limit) throw new Errno(ENOSPC, `this context holds its limit of ${this.limit} objects`);
    this.faults?.check('alloc', undefined, 'object allocation');
  }

  /** Add an object whose making changed nothing else; may fail (ENOSPC, ENOMEM), leaving the table as it was. */
  insert<T extends IommufdObject>(obj: T): T {
    this.reserve();
    return this.place(obj);
  }

  /**
   * Make and add an object whose making changes other objects (a domain joins its IOAS): the table's
   * failures come first, so once `make` has succeeded nothing is left to fail.
   */
  create<T extends IommufdObject>(make: () => T): T {
    this.reserve();
    return this.place(make());
  }

  private place<T extends IommufdObject>(obj: T): T {
    let id = this.lowestFree;
    while (this.objects.has(id)) id++;
    this.lowestFree = id + 1;
    obj.id = id;
    this.objects.set(id, obj);
    return obj;
  }

  /** Look an ID up with the kind the caller needs; a missing ID or the wrong kind is ENOENT. */
  get<T extends IommufdObject>(id: number, kind?: string): T {
    this.faults?.check('iommufd', ENOENT, 'object lookup');
    const o = this.objects.get(id);
    if (!o || (kind && o.kind !== kind)) throw new Errno(ENOENT, `no ${kind ?? 'object'} ${id}`);
    return o as T;
  }

  find(id: number): IommufdObject | undefined {
    return this.objects.get(id);
  }

  /** IOMMU_DESTROY: only an object nobody else uses. */
  destroy(id: number): void {
    // iommufd's destroy looks the ID up itself, not through the lookup that can be made to fail.
    const o = this.objects.get(id);
    if (!o) throw new Errno(ENOENT, `no object ${id}`);
    if (o.users > 1) throw new Errno(EBUSY, `${o.kind} ${id} is in use`);
    this.remove(o);
  }

  /** Take an object out of the table and tear it down (its users are the caller's business). */
  remove(o: IommufdObject): void {
    this.objects.delete(o.id);
    if (o.id < this.lowestFree) this.lowestFree = o.id;
    o.destroy?.();
  }

  get size(): number {
    return this.objects.size;
  }

  values(): IommufdObject[] {
    return [...this.objects.values()];
  }
}
