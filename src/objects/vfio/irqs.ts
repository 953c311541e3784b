// A function's interrupts as vfio-pci manages them: INTx with automask, MSI and MSI-X vectors, the
// error and request notifiers, each signalling the eventfd the user attached with VFIO_DEVICE_SET_IRQS.
//
// tcefs cannot hold the client's eventfds (they cannot be reopened or passed to Node), so a trigger is
// an IrqSink: the event stream of the device file that attached it. The client's library keeps the
// eventfds and signals them when it reads {index, vector} records from that stream (docs/protocol.md).
import type { IoctlCall } from '../../dispatch/call.ts';
import { EBADF, EINVAL, ENOTTY, Errno } from '../../errno.ts';
import { HANDLE_FOREIGN, HANDLE_NONE } from '../../transport/frame.ts';
import { VFIO } from '../../uapi/constants.ts';
import { perf } from '../../perf.ts';

const { VFIO_PCI_INTX_IRQ_INDEX: INTX, VFIO_PCI_MSI_IRQ_INDEX: MSI, VFIO_PCI_MSIX_IRQ_INDEX: MSIX } = VFIO;
const { VFIO_PCI_ERR_IRQ_INDEX: ERR, VFIO_PCI_REQ_IRQ_INDEX: REQ, VFIO_PCI_NUM_IRQS: NUM_IRQS } = VFIO;

/** Bytes of struct vfio_irq_set before data[] (offsetofend(count)). */
export const IRQ_SET_MINSZ = 20;
export const DATA_NONE = VFIO.VFIO_IRQ_SET_DATA_NONE;
export const DATA_BOOL = VFIO.VFIO_IRQ_SET_DATA_BOOL;
export const DATA_EVENTFD = VFIO.VFIO_IRQ_SET_DATA_EVENTFD;
export const ACTION_MASK = VFIO.VFIO_IRQ_SET_ACTION_MASK;
export const ACTION_UNMASK = VFIO.VFIO_IRQ_SET_ACTION_UNMASK;
export const ACTION_TRIGGER = VFIO.VFIO_IRQ_SET_ACTION_TRIGGER;
const DATA_TYPES = VFIO.VFIO_IRQ_SET_DATA_TYPE_MASK;
const ACTION_TYPES = VFIO.VFIO_IRQ_SET_ACTION_TYPE_MASK;

/**
 * An eventfd entry of data[] on the wire. The library replaces each fd: negative stays as it is,
 * IRQ_EVENTFD is an eventfd it now holds for this vector, HANDLE_NONE an fd that is not open (EBADF),
 * HANDLE_FOREIGN an open file that is not an eventfd (EINVAL).
 */
export const IRQ_EVENTFD = 1;

/** Where an interrupt goes: the event stream of the device file whose SET_IRQS attached the eventfd. */
export interface IrqSink {
  signal(index: number, vector: number): void;
}

/** What the interrupt state needs of config space: its vector counts, and the enable bits SET_IRQS moves. */
export interface IrqConfig {
  /** Vectors per vfio-pci index, as the function's own capabilities say (src/objects/vfio/pci-config.ts). */
  irqCount(index: number): number;
  setMsiEnabled(enabled: boolean, vectors: number): void;
  setMsixEnabled(enabled: boolean): void;
}

/**
 * GET_IRQ_INFO for one index; undefined where vfio-pci answers EINVAL (ERR on a conventional PCI
 * function). MSI-X is resizable where the platform allocates vectors dynamically.
 */
export function irqInfo(config: Pick<IrqConfig, 'irqCount'>, index: number, dynamicMsix: boolean): { flags: number; count: number } | undefined {
  if (index >= NUM_IRQS) return undefined;
  const count = config.irqCount(index);
  if (index === ERR && !count) return undefined;
  let flags = VFIO.VFIO_IRQ_INFO_EVENTFD;
  if (index === INTX) flags |= VFIO.VFIO_IRQ_INFO_MASKABLE | VFIO.VFIO_IRQ_INFO_AUTOMASKED;
  else if (index !== MSIX || !dynamicMsix) flags |= VFIO.VFIO_IRQ_INFO_NORESIZE;
  return { flags, count };
}

/** The header fields of a SET_IRQS call, after copy-in. */
export interface IrqSet {
  argsz: number;
  flags: number;
  index: number;
  start: number;
  count: number;
}

/**
 * vfio_set_irqs_validate_and_prepare, in its order: the header, the range against the index's count,
 * then the data type. Returns the bytes of data[] the call carries.
 */
export function validateIrqSet(h: IrqSet, numIrqs: number): number {
  if (h.argsz < IRQ_SET_MINSZ) throw new Errno(EINVAL, `argsz ${h.argsz}`);
  if (h.index >= NUM_IRQS) throw new Errno(EINVAL, `irq index ${h.index}`);
  if (h.count >= 0xffffffff - h.start) throw new Errno(EINVAL, `start ${h.start} + count ${h.count} overflows`);
  if (h.flags & ~(DATA_TYPES | ACTION_TYPES)) throw new Errno(EINVAL, `flags 0x${h.flags.toString(16)}`);
  if (h.start >= numIrqs || h.start + h.count > numIrqs) throw new Errno(EINVAL, `vectors ${h.start}+${h.count} of ${numIrqs}`);
  let size: number;
  switch (h.flags & DATA_TYPES) {
    case DATA_NONE:
      size = 0;
      break;
    case DATA_BOOL:
      size = 1;
      break;
    case DATA_EVENTFD:
      size = 4;
      break;
    default:
      throw new Errno(EINVAL, 'exactly one data type is needed');
  }
  if (size && h.argsz - IRQ_SET_MINSZ < h.count * size) throw new Errno(EINVAL, `argsz ${h.argsz} too small for ${h.count} entries`);
  return h.count * size;
}

/** eventfd_ctx_fdget on a wire entry: the sink for an attached eventfd, undefined to detach. */
function eventfd(entry: number, sink: IrqSink): IrqSink | undefined {
  if (entry < 0) return undefined;
  if (entry === IRQ_EVENTFD) return sink;
  if (entry === HANDLE_FOREIGN) throw new Errno(EINVAL, 'not an eventfd');
  if (entry === HANDLE_NONE) throw new Errno(EBADF, 'eventfd is not an open file');
  throw new Errno(EBADF, `unknown eventfd entry ${entry}`);
}

/** The interrupt mode vfio-pci has the function in (irq_type); none until a trigger is set. */
type Mode = typeof INTX | typeof MSI | typeof MSIX | undefined;

export class FunctionIrqs {
  private mode: Mode;
  private intxSink?: IrqSink;
  /** INTx is masked: by the user, or automasked when it fired. */
  private intxMasked = false;
  /** An INTx the device raised while masked; it fires on unmask. */
  private intxPending = false;
  /** MSI/MSI-X vectors allocated (the kernel's vectors; a slot may have no trigger). */
  private allocated = 0;
  private readonly vectors: (IrqSink | undefined)[] = [];
  private err?: IrqSink;
  private req?: IrqSink;

  /**
   * dynamicMsix: MSI-X vectors can be allocated while MSI-X is enabled (the platform's MSI domain can
   * do it); without it the vectors enabled first are all there is, and GET_IRQ_INFO says NORESIZE.
   */
  constructor(private readonly config: IrqConfig, readonly dynamicMsix = true) {}

  count(index: number): number {
    return this.config.irqCount(index);
  }

  info(index: number): { flags: number; count: number } | undefined {
    return irqInfo(this.config, index, this.dynamicMsix);
  }

  /** VFIO_DEVICE_SET_IRQS after validation: vfio_pci_set_irqs_ioctl's dispatch by index and action. */
  set(h: IrqSet, data: Buffer, sink: IrqSink): void {
    const action = h.flags & ACTION_TYPES;
    const dataType = h.flags & DATA_TYPES;
    switch (h.index) {
      case INTX:
        if (action === ACTION_MASK) return this.intxMask(h, dataType, data);
        if (action === ACTION_UNMASK) return this.intxUnmask(h, dataType, data);
        if (action === ACTION_TRIGGER) return this.intxTrigger(h, dataType, data, sink);
        break;
      case MSI:
      case MSIX:
        // vfio-pci has no MSI/MSI-X masking through SET_IRQS (the vector control bits do that).
        if (action === ACTION_TRIGGER) return this.msiTrigger(h, dataType, data, sink);
        break;
      case ERR:
        if (action === ACTION_TRIGGER && this.count(ERR)) return void (this.err = this.single(this.err, h, dataType, data, sink));
        break;
      case REQ:
        if (action === ACTION_TRIGGER) return void (this.req = this.single(this.req, h, dataType, data, sink));
        break;
    }
    throw new Errno(ENOTTY, `no action 0x${action.toString(16)} on irq index ${h.index}`);
  }

  /** An interrupt from the device model: INTx automasks (or stays pending while masked). */
  raise(index: number, vector = 0): void {
    if (index === INTX) {
      if (this.mode !== INTX) return;
      if (this.intxMasked) {
        this.intxPending = true;
        return;
      }
      this.intxMasked = true;
      this.intxSink?.signal(INTX, 0);
    } else if (index === MSI || index === MSIX) {
      const sink = this.mode === index ? this.vectors[vector] : undefined;
      if (sink) perf.irqs.count++;
      sink?.signal(index, vector);
    } else if (index === ERR) this.err?.signal(ERR, 0);
    else if (index === REQ) this.req?.signal(REQ, 0);
  }

  /** The state a view shows. */
  describe() {
    return {
      mode: this.mode === undefined ? 'none' : ['intx', 'msi', 'msix'][this.mode],
      intx: this.mode === INTX ? { masked: this.intxMasked, pending: this.intxPending, trigger: !!this.intxSink } : undefined,
      vectors: this.mode === MSI || this.mode === MSIX ? this.vectors.slice(0, this.allocated).map((v) => !!v) : undefined,
      err: !!this.err,
      req: !!this.req,
    };
  }

  /** A device file closed: its eventfds go with it. */
  detach(sink: IrqSink): void {
    if (this.intxSink === sink) this.intxSink = undefined;
    for (let i = 0; i < this.vectors.length; i++) if (this.vectors[i] === sink) this.vectors[i] = undefined;
    if (this.err === sink) this.err = undefined;
    if (this.req === sink) this.req = undefined;
  }

  /** Everything off, as the last close of the device (and, in tcefs, a reset) leaves it. */
  disableAll(): void {
    if (this.mode === INTX) this.intxDisable();
    else if (this.mode !== undefined) this.msiDisable();
    this.err = this.req = undefined;
  }

  private intxMask(h: IrqSet, dataType: number, data: Buffer): void {
    if (this.mode !== INTX || h.start !== 0 || h.count !== 1) throw new Errno(EINVAL, 'INTx is not enabled or the range is not 0+1');
    if (dataType === DATA_EVENTFD) throw new Errno(ENOTTY, 'INTx masking by eventfd');
    if (dataType === DATA_NONE || data[0]) this.intxMasked = true;
  }

  private intxUnmask(h: IrqSet, dataType: number, data: Buffer): void {
    if (this.mode !== INTX || h.start !== 0 || h.count !== 1) throw new Errno(EINVAL, 'INTx is not enabled or the range is not 0+1');
    // An unmask eventfd is written by the user and so must be watched where the eventfd lives, in the
    // client; the client library does not watch eventfds (docs/c-programs.md).
    if (dataType === DATA_EVENTFD) throw new Errno(ENOTTY, 'INTx unmask eventfds are not supported by tcefs');
    if (dataType === DATA_NONE || data[0]) this.intxUnmaskNow();
  }

  private intxUnmaskNow(): void {
    if (!this.intxMasked) return;
    if (this.intxPending) {
      // The line is still asserted: it fires at once and is automasked again.
      this.intxPending = false;
      this.intxSink?.signal(INTX, 0);
      return;
    }
    this.intxMasked = false;
  }

  private intxTrigger(h: IrqSet, dataType: number, data: Buffer, sink: IrqSink): void {
    if (this.mode === INTX && h.count === 0 && dataType === DATA_NONE) return this.intxDisable();
    if ((this.mode !== INTX && this.mode !== undefined) || h.start !== 0 || h.count !== 1) {
      throw new Errno(EINVAL, 'another interrupt mode is enabled, or the range is not 0+1');
    }
    if (dataType === DATA_EVENTFD) {
      const trigger = eventfd(data.readInt32LE(0), sink);
      if (this.mode !== INTX) {
        this.mode = INTX;
        this.intxMasked = this.intxPending = false;
      }
      this.intxSink = trigger;
      return;
    }
    if (this.mode !== INTX) throw new Errno(EINVAL, 'INTx is not enabled');
    // Loopback: signals whatever the mask state, as vfio-pci's does.
    if (dataType === DATA_NONE || data[0]) this.intxSink?.signal(INTX, 0);
  }

  private intxDisable(): void {
    this.mode = undefined;
    this.intxSink = undefined;
    this.intxMasked = this.intxPending = false;
  }

  private msiTrigger(h: IrqSet, dataType: number, data: Buffer, sink: IrqSink): void {
    const index = h.index as typeof MSI | typeof MSIX;
    if (this.mode === index && h.count === 0 && dataType === DATA_NONE) return this.msiDisable();
    if (this.mode !== index && this.mode !== undefined) throw new Errno(EINVAL, 'another interrupt mode is enabled');
    if (dataType === DATA_EVENTFD) {
      if (this.mode === index) return this.setBlock(h, data, sink);
      const nvec = h.start + h.count;
      if (nvec === 0) throw new Errno(EINVAL, 'no vectors to enable');
      this.mode = index;
      this.allocated = nvec;
      this.vectors.length = 0;
      if (index === MSI) this.config.setMsiEnabled(true, nvec);
      else this.config.setMsixEnabled(true);
      try {
        this.setBlock(h, data, sink);
      } catch (e) {
        this.msiDisable();
        throw e;
      }
      return;
    }
    if (this.mode !== index) throw new Errno(EINVAL, `irq index ${index} is not enabled`);
    for (let i = h.start; i < h.start + h.count; i++) {
      if (dataType === DATA_NONE || data[i - h.start]) this.vectors[i]?.signal(index, i);
    }
  }

  /** vfio_msi_set_block: vector by vector; a failure detaches the vectors this call had reached. */
  private setBlock(h: IrqSet, data: Buffer, sink: IrqSink): void {
    let j = h.start;
    try {
      for (let i = 0; i < h.count; i++, j++) this.setVector(h.index, j, data.readInt32LE(4 * i), sink);
    } catch (e) {
      for (let i = h.start; i <= j && i < h.start + h.count; i++) this.vectors[i] = undefined;
      throw e;
    }
  }

  private setVector(index: number, vector: number, entry: number, sink: IrqSink): void {
    this.vectors[vector] = undefined;
    if (entry < 0) return;
    if (vector >= this.allocated) {
      // Dynamic MSI-X allocates more vectors on demand; otherwise the count is fixed at enable.
      if (index !== MSIX || !this.dynamicMsix) throw new Errno(EINVAL, `vector ${vector} was not allocated`);
      this.allocated = vector + 1;
    }
    this.vectors[vector] = eventfd(entry, sink);
  }

  private msiDisable(): void {
    if (this.mode === MSI) this.config.setMsiEnabled(false, 0);
    else if (this.mode === MSIX) this.config.setMsixEnabled(false);
    this.mode = undefined;
    this.allocated = 0;
    this.vectors.length = 0;
  }

  /** vfio_pci_set_ctx_trigger_single: the ERR and REQ notifiers (one eventfd, loopback by NONE/BOOL). */
  private single(cur: IrqSink | undefined, h: IrqSet, dataType: number, data: Buffer, sink: IrqSink): IrqSink | undefined {
    if (h.start !== 0 || h.count > 1) throw new Errno(EINVAL, 'the range is not 0+1');
    if (dataType === DATA_NONE) {
      if (!cur) throw new Errno(EINVAL, 'no eventfd is attached');
      if (h.count) cur.signal(h.index, 0);
      return h.count ? cur : undefined;
    }
    if (!h.count) throw new Errno(EINVAL, 'count 0');
    if (dataType === DATA_BOOL) {
      if (data[0]) cur?.signal(h.index, 0);
      return cur;
    }
    const entry = data.readInt32LE(0);
    if (entry === -1) return undefined;
    if (entry < 0) return cur;
    return eventfd(entry, sink);
  }
}

/** VFIO_DEVICE_SET_IRQS as vfio_pci_core_ioctl_set_irqs runs it: header, validation, data, action. */
export function setIrqsCall(irqs: FunctionIrqs, sink: IrqSink, call: IoctlCall): void {
  call.copyIn(IRQ_SET_MINSZ);
  const h: IrqSet = { argsz: call.get('argsz'), flags: call.get('flags'), index: call.get('index'), start: call.get('start'), count: call.get('count') };
  const size = validateIrqSet(h, h.index < NUM_IRQS ? irqs.count(h.index) : 0);
  const data = size ? call.copyIn(IRQ_SET_MINSZ + size).subarray(IRQ_SET_MINSZ, IRQ_SET_MINSZ + size) : Buffer.alloc(0);
  irqs.set(h, data, sink);
}
