// iommufd's object table: one ID space for every object kind, IDs from 1, the lowest free ID reused.
import { ENOENT, Errno } from '../../errno.ts';

export interface IommufdObject {
  readonly kind: string;
  id: number;
}

export class IdTable {
  private readonly objects = new Map<number, IommufdObject>();

  insert<T extends IommufdObject>(obj: T): T {
    let id = 1;
    while (this.objects.has(id)) id++;
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

  has(id: number): boolean {
    return this.objects.has(id);
  }

  delete(id: number): void {
    this.objects.delete(id);
  }

  get size(): number {
    return this.objects.size;
  }

  values(): IterableIterator<IommufdObject> {
    return this.objects.values();
  }
}
