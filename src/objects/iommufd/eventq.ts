// iommufd's event queues: the fault queue (IOMMU_FAULT_QUEUE_ALLOC), through which a HWPT's page requests
// reach user space and its answers go back, and the vEVENTQ (IOMMU_VEVENTQ_ALLOC), through which a
// vIOMMU reports events. Each is an object in the context's table and a file the client reads (and, for
// a fault queue, writes) through its own fd; the fd holds a reference on the object and on the context.
// The read and write rules follow drivers/iommu/iommufd/eventq.c: whole records only, no file position,
// never blocking (an empty queue reads 0 bytes; poll() is how a client waits).
import { EEXIST, EINVAL, EOPNOTSUPP, ESPIPE, Errno } from '../../errno.ts';
import { IOMMUFD } from '../../uapi/constants.ts';
import { iommu_hwpt_page_response, iommu_hwpt_pgfault, iommufd_vevent_header } from '../../uapi/structs.ts';
import type { IommufdObject } from './id-table.ts';

const FAULT_SIZE = iommu_hwpt_pgfault.size;
const RESPONSE_SIZE = iommu_hwpt_page_response.size;
const HEADER_SIZE = iommufd_vevent_header.size;

/** One page request (PCIe PRI or a PASID fault) as the IOMMU core records it. */
export interface PageRequest {
  /** IOMMU_PGFAULT_FLAGS_*: PASID_VALID, LAST_PAGE. */
  flags: number;
  pasid: number;
  grpid: number;
  /** IOMMU_PGFAULT_PERM_*. */
  perm: number;
  addr: bigint;
}

/** A fault group: the page requests of one group from one device, answered together. */
export interface FaultGroup {
  /** The device object's ID in the context, which every record carries. */
  devId: number;
  requests: PageRequest[];
  /** The attachment (device and PASID on this HWPT) it came through: detaching answers what it left. */
  attachment: object;
  /** The device hears the answer (IOMMUFD_PAGE_RESP_*). Called exactly once per group. */
  respond(code: number): void;
}

/** What the fd of an event queue reads and writes; both return bytes moved or throw Errno. */
export interface EventQueue extends IommufdObject {
  readonly kind: 'fault' | 'veventq';
  read(count: number, pos: bigint): Buffer;
  write(data: Buffer, pos: bigint): number;
  /** Whether a read would return something now (poll's EPOLLIN). */
  readonly readable: boolean;
}

export class FaultQueue implements EventQueue {
  readonly kind = 'fault';
  id = 0;
  users = 1;
  /** Groups reported and not read yet, oldest first. */
  private deliver: FaultGroup[] = [];
  /** Groups read and not answered yet, by the cookie their records carried. */
  private readonly awaiting = new Map<number, FaultGroup>();

  get readable(): boolean {
    return this.deliver.length > 0;
  }

  /** Groups read and waiting for their answer. */
  get outstanding(): number {
    return this.awaiting.size;
  }

  /** The HWPT's fault handler: the group waits here until user space reads it. */
  report(group: FaultGroup): void {
    this.deliver.push(group);
  }

  /** Whole groups that fit, each given a cookie and kept until answered; nothing at all is EINVAL. */
  read(count: number, pos: bigint): Buffer {
    if (pos !== 0n || count % FAULT_SIZE) throw new Errno(ESPIPE, `read of ${count} bytes at ${pos}`);
    const fit: FaultGroup[] = [];
    let bytes = 0;
    for (const g of this.deliver) {
      if (g.requests.length * FAULT_SIZE > count - bytes) break;
      fit.push(g);
      bytes += g.requests.length * FAULT_SIZE;
    }
    if (!fit.length && this.deliver.length) throw new Errno(EINVAL, `a ${count}-byte buffer holds not even the first group`);
    this.deliver.splice(0, fit.length);
    const out = Buffer.alloc(bytes);
    let at = 0;
    for (const g of fit) {
      const cookie = this.allocCookie();
      this.awaiting.set(cookie, g);
      for (const r of g.requests) {
        out.writeUInt32LE(r.flags, at);
        out.writeUInt32LE(g.devId, at + 4);
        out.writeUInt32LE(r.pasid, at + 8);
        out.writeUInt32LE(r.grpid, at + 12);
        out.writeUInt32LE(r.perm, at + 16);
        out.writeBigUInt64LE(r.addr, at + 24);
        out.writeUInt32LE(cookie, at + 36);
        at += FAULT_SIZE;
      }
    }
    return out;
  }

  /** The lowest free cookie from 1, as an allocating xarray gives. */
  private allocCookie(): number {
    let c = 1;
    while (this.awaiting.has(c)) c++;
    return c;
  }

  /** Responses in order until one is bad; bytes taken, or the first one's errno. */
  write(data: Buffer, pos: bigint): number {
    if (pos !== 0n || data.length % RESPONSE_SIZE) throw new Errno(ESPIPE, `write of ${data.length} bytes at ${pos}`);
    let done = 0;
    try {
      for (; done < data.length; done += RESPONSE_SIZE) {
        const cookie = data.readUInt32LE(done);
        const code = data.readUInt32LE(done + 4);
        if (code !== IOMMUFD.IOMMUFD_PAGE_RESP_SUCCESS && code !== IOMMUFD.IOMMUFD_PAGE_RESP_INVALID) throw new Errno(EINVAL, `response code ${code}`);
        const g = this.awaiting.get(cookie);
        if (!g) throw new Errno(EINVAL, `no fault group awaits cookie ${cookie}`);
        this.awaiting.delete(cookie);
        g.respond(code);
      }
    } catch (e) {
      if (done === 0) throw e;
    }
    return done;
  }

  /** An attachment went (detach or replace): its groups, read or not, are answered INVALID. */
  autoRespond(attachment: object): void {
    const mine = this.deliver.filter((g) => g.attachment === attachment);
    this.deliver = this.deliver.filter((g) => g.attachment !== attachment);
    for (const g of mine) g.respond(IOMMUFD.IOMMUFD_PAGE_RESP_INVALID);
    for (const [cookie, g] of this.awaiting) {
      if (g.attachment !== attachment) continue;
      this.awaiting.delete(cookie);
      g.respond(IOMMUFD.IOMMUFD_PAGE_RESP_INVALID);
    }
  }

  /** The object goes (its fd closed and destroyed, or the context closed): nothing is left unanswered. */
  destroy(): void {
    const left = [...this.deliver, ...this.awaiting.values()];
    this.deliver = [];
    this.awaiting.clear();
    for (const g of left) g.respond(IOMMUFD.IOMMUFD_PAGE_RESP_INVALID);
  }
}

/** What a vEVENTQ needs of its vIOMMU: a reference count and its queues, at most one per type. */
export interface VeventqOwner extends IommufdObject {
  readonly veventqs: Map<number, VeventQueue>;
}

/** The kernel's bound on a vEVENTQ's depth. */
export const VEVENTQ_MAX_DEPTH = 1 << 19;

interface Vevent {
  flags: number;
  sequence: number;
  data: Buffer;
}

const NO_DATA = Buffer.alloc(0);

export class VeventQueue implements EventQueue {
  readonly kind = 'veventq';
  id = 0;
  users = 1;
  private deliver: Vevent[] = [];
  /** Events in the queue, the lost-events header not counted. */
  private events = 0;
  private sequence = 0;
  /** The one lost-events header; when queued it is always the last record. */
  private readonly lost: Vevent = { flags: IOMMUFD.IOMMU_VEVENTQ_FLAG_LOST_EVENTS, sequence: 0, data: NO_DATA };

  private constructor(
    readonly viommu: VeventqOwner,
    readonly type: number,
    readonly depth: number,
  ) {}

  /** IOMMU_VEVENTQ_ALLOC's checks after the vIOMMU lookup: one queue per type, which holds its vIOMMU. */
  static create(viommu: VeventqOwner, type: number, depth: number): VeventQueue {
    if (viommu.veventqs.has(type)) throw new Errno(EEXIST, `vIOMMU ${viommu.id} has a type ${type} vEVENTQ`);
    const q = new VeventQueue(viommu, type, depth);
    viommu.veventqs.set(type, q);
    viommu.users++;
    return q;
  }

  get readable(): boolean {
    return this.deliver.length > 0;
  }

  /**
   * An event from the vIOMMU. A full queue takes the lost-events header instead; any record queued after
   * the header replaces it, so only the sequence numbers tell a reader what was lost.
   */
  report(data: Buffer): void {
    let ev = this.lost;
    if (this.events < this.depth) {
      ev = { flags: 0, sequence: 0, data: Buffer.from(data) };
      this.events++;
    }
    if (this.deliver[this.deliver.length - 1] === this.lost) this.deliver.pop();
    ev.sequence = this.sequence;
    this.sequence = (this.sequence + 1) & 0x7fffffff;
    this.deliver.push(ev);
  }

  /** Whole records (header and data) that fit; a first event too big for the buffer is EINVAL. */
  read(count: number, pos: bigint): Buffer {
    if (pos !== 0n) throw new Errno(ESPIPE, `read at ${pos}`);
    if (count < HEADER_SIZE) throw new Errno(EINVAL, `a ${count}-byte buffer holds no vEVENT header`);
    const parts: Buffer[] = [];
    let done = 0;
    let taken = 0;
    for (const ev of this.deliver) {
      if (HEADER_SIZE > count - done) break;
      if (ev !== this.lost && HEADER_SIZE + ev.data.length > count - done) {
        if (done === 0) throw new Errno(EINVAL, `a ${count}-byte buffer holds not even the first vEVENT`);
        break;
      }
      const h = Buffer.alloc(HEADER_SIZE);
      h.writeUInt32LE(ev.flags, 0);
      h.writeUInt32LE(ev.sequence, 4);
      parts.push(h, ev.data);
      done += HEADER_SIZE + ev.data.length;
      taken++;
      if (ev !== this.lost) this.events--;
    }
    this.deliver.splice(0, taken);
    return Buffer.concat(parts, done);
  }

  /** A vEVENTQ's fd has no write: the VFS answers EINVAL. */
  write(): number {
    throw new Errno(EINVAL, 'a vEVENTQ is read-only');
  }

  destroy(): void {
    this.deliver = [];
    this.events = 0;
    this.viommu.veventqs.delete(this.type);
    this.viommu.users--;
  }
}

/** A vIOMMU reports an event of `type`: EOPNOTSUPP when no queue of that type listens. */
export function reportVevent(viommu: VeventqOwner, type: number, data: Buffer): void {
  const q = viommu.veventqs.get(type);
  if (!q) throw new Errno(EOPNOTSUPP, `vIOMMU ${viommu.id} has no type ${type} vEVENTQ`);
  q.report(data);
}
