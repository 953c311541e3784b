// iommufd's object table: one ID space for every object kind, IDs from 1, the lowest free ID reused.
// Every object counts its users; the table holds one, and each object that refers to it holds another,
// so DESTROY of something still in use is EBUSY.
import { EBUSY, ENOENT, ENOSPC, Errno } from '../../errno.ts';

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

  /** @param limit objects one context may hold; past it creation fails ENOSPC, so no client can exhaust the daemon */
  constructor(readonly limit = DEFAULT_MAX_OBJECTS) {}

  insert<T extends IommufdObject>(obj: T): T {
    if (this.objects.size >= this.limit) throw new Errno(ENOSPC, `this context holds its limit of ${this.limit} objects`);
    let id = this.lowestFree;
    while (this.objects.has(id)) id++;
    this.lowestFree = id + 1;
    obj.id = id;
    this.objects.set(id, obj);
    return obj;
  }

  /** Look an ID up with the kind the caller needs; a missing ID or the wrong kind is ENOENT. */
  get<T extends IommufdObject>(id: number, kind?: string): T {
    const o = this.objects.get(id);
    if (!o || (kind && o.kind !== kind)) throw new Errno(ENOENT, `no ${kind ?? 'object'} ${id}`);
    return o as T;
  }

  find(id: number): IommufdObject | undefined {
    return this.objects.get(id);
  }

  /** IOMMU_DESTROY: only an object nobody else uses. */
  destroy(id: number): void {
    const o = this.get(id);
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
