// The fd of an event queue (fault queue or vEVENTQ), and the two ioctls that make one. The file answers
// no ioctls (ENOTTY); read() and write() reach it as the protocol's read and write requests at the file
// position the client gives (ops 3 and 4, which on a device file are region accesses), so a position
// other than 0 is ESPIPE as on the kernel's anonymous queue files.
import { CommandTable } from '../../dispatch/table.ts';
import type { IoctlCall } from '../../dispatch/call.ts';
import { OpenFile, POLLIN, POLLOUT, POLLRDNORM } from '../../dispatch/open-file.ts';
import { EINVAL, EOPNOTSUPP, Errno } from '../../errno.ts';
import { IOMMUFD } from '../../uapi/constants.ts';
import type { IommufdFile } from './context.ts';
import { FaultQueue, VEVENTQ_MAX_DEPTH, VeventQueue, type EventQueue, type VeventqOwner } from './eventq.ts';

const FAULT_COMMANDS = new CommandTable<EventQueueFile>('fault', {});
const VEVENTQ_COMMANDS = new CommandTable<EventQueueFile>('veventq', {});

export class EventQueueFile extends OpenFile {
  readonly kind: 'fault' | 'veventq';
  private released = false;

  /** The file holds the queue (DESTROY is EBUSY while it is open) and the context (it outlives a close). */
  constructor(readonly queue: EventQueue, readonly ctx: IommufdFile) {
    super(`${ctx.path}:${queue.kind}${queue.id}`);
    this.kind = queue.kind;
    queue.users++;
    ctx.holdForQueue();
  }

  commands(): CommandTable<EventQueueFile> {
    return this.kind === 'fault' ? FAULT_COMMANDS : VEVENTQ_COMMANDS;
  }

  regionRead(offset: bigint, length: number): Buffer {
    return this.queue.read(length, offset);
  }

  regionWrite(offset: bigint, data: Buffer): number {
    return this.queue.write(data, offset);
  }

  /** Readable while records wait; a fault queue is always writable. */
  pollEvents(): number {
    return (this.queue.readable ? POLLIN | POLLRDNORM : 0) | (this.kind === 'fault' ? POLLOUT : 0);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.queue.users--;
    this.ctx.queueFileClosed();
  }
}

/**
 * Answer the alloc and hand the client the queue's new file, which libtcefs claims and whose fd it stores
 * at `fdField`. Should the answer fail, the object goes again, as the kernel aborts it.
 */
function respondWithFile(f: IommufdFile, call: IoctlCall, q: EventQueue, idField: string, fdField: string): void {
  const file = new EventQueueFile(q, f);
  try {
    call.set(idField, q.id);
    call.set(fdField, 0);
    call.respond();
  } catch (e) {
    file.release();
    f.objects.remove(q);
    throw e;
  }
  call.newHandle = f.daemon.files.addPending(file, f.handle);
  call.handleField = call.struct.byName.get(fdField)!.offset;
}

function faultQueueAlloc(f: IommufdFile, call: IoctlCall): void {
  if (call.get('flags')) throw new Errno(EOPNOTSUPP, 'flags');
  respondWithFile(f, call, f.objects.insert(new FaultQueue()), 'out_fault_id', 'out_fault_fd');
}

function veventqAlloc(f: IommufdFile, call: IoctlCall): void {
  if (call.get('flags') || call.get('__reserved') || call.get('type') === IOMMUFD.IOMMU_VEVENTQ_TYPE_DEFAULT) {
    throw new Errno(EOPNOTSUPP, 'flags, __reserved or type');
  }
  const depth = call.get('veventq_depth');
  if (!depth || depth > VEVENTQ_MAX_DEPTH) throw new Errno(EINVAL, `veventq_depth ${depth}`);
  const viommu = f.objects.get<VeventqOwner>(call.get('viommu_id'), 'viommu');
  const q = VeventQueue.create(viommu, call.get('type'), depth);
  try {
    f.objects.insert(q);
  } catch (e) {
    q.destroy();
    throw e;
  }
  respondWithFile(f, call, q, 'out_veventq_id', 'out_veventq_fd');
}

/** IOMMU_HWPT_ALLOC with IOMMU_HWPT_FAULT_ID_VALID, once the domain exists: the HWPT holds the queue. */
export function hwptFaultQueue(f: IommufdFile, faultId: number): FaultQueue {
  const q = f.objects.get<FaultQueue>(faultId, 'fault');
  q.users++;
  return q;
}

export const eventqCommands = {
  IOMMU_FAULT_QUEUE_ALLOC: faultQueueAlloc,
  IOMMU_VEVENTQ_ALLOC: veventqAlloc,
};
