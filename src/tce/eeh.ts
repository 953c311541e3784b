// EEH (Enhanced Error Handling) state of one PE, as VFIO_EEH_PE_OP drives it (reference section 4).
// Simple model: an injected error freezes the PE at once; nothing is delivered to user space, which
// finds out through GET_STATE. IOMMU mappings are never touched by any of this.

import { EINVAL, EIO, ERANGE, fail } from '../errno.ts';
import type { Flavour } from './tce-entry.ts';

export const EEH_OP = {
  DISABLE: 0,
  ENABLE: 1,
  UNFREEZE_IO: 2,
  UNFREEZE_DMA: 3,
  GET_STATE: 4,
  RESET_DEACTIVATE: 5,
  RESET_HOT: 6,
  RESET_FUNDAMENTAL: 7,
  CONFIGURE: 8,
  INJECT_ERR: 9,
} as const;

/** GET_STATE answers. There is no 3. */
export const EEH_STATE = {
  NORMAL: 0,
  RESET: 1,
  STOPPED: 2,
  STOPPED_DMA: 4,
  UNAVAIL: 5,
} as const;

/** err.func codes 0..19: loads 0-5, stores 6-11, DMA reads 12-15, DMA writes 16-19. */
export const EEH_ERR_FUNC_MAX = 19;
/** err.type: 32-bit or 64-bit IOA bus error, the only ones the platforms accept. */
export const EEH_ERR_TYPE_32 = 0;
export const EEH_ERR_TYPE_64 = 1;
/** pSeries can only inject MMIO load/store address/data errors (ld mem addr/data, st mem addr/data). */
const PSERIES_INJECTABLE_FUNCS = new Set([0, 1, 6, 7]);

export interface EehErrorSpec {
  type: number;
  func: number;
  addr: bigint;
  mask: bigint;
}

const STATE_NAMES: Record<number, string> = {
  0: 'NORMAL', 1: 'RESET', 2: 'STOPPED', 4: 'STOPPED_DMA', 5: 'UNAVAIL',
};

export function eehStateName(state: number): string {
  return STATE_NAMES[state] ?? `STATE#${state}`;
}

/** A device DMA the PHB refused. `reason` says which check failed. */
export interface DmaFaultRecord {
  iova: bigint;
  direction: 'read' | 'write';
  reason: 'no-window' | 'no-tce' | 'permission' | 'blocked' | 'no-memory' | 'injected';
  device: string;
  detail: string;
}

/** DMA faults kept per PE for the state views. */
export const DMA_FAULTS_KEPT = 8;

export class EehPe {
  mmioEnabled = true;
  dmaEnabled = true;
  resetAsserted = false;
  /** Config space reads return all ones while set. */
  cfgBlocked = false;
  /** Set when the host itself is recovering a parent PE: GET_STATE then answers UNAVAIL. */
  parentRecovering = false;
  lastInjection: EehErrorSpec | null = null;
  freezes = 0;
  resets = 0;
  /** The last DMA faults, oldest first. They stay after recovery so the views can still explain a freeze. */
  readonly dmaFaults: DmaFaultRecord[] = [];
  /** The next device DMA fails as if its TCE had gone bad (`eeh dma-fault`); one DMA, then it is spent. */
  dmaFaultArmed = false;
  /** Told when a PE reset is asserted: the PE's devices go back to power-on state (their models reset). */
  onReset?: () => void;

  constructor(
    private readonly flavour: Flavour,
    /** eeh_enabled(): read at each call so the host switch can change at run time. */
    private readonly hostEnabled: () => boolean,
  ) {}

  /** Either MMIO or DMA is stopped. */
  get frozen(): boolean {
    return !this.mmioEnabled || !this.dmaEnabled;
  }

  /** Device DMA through the TCEs fails while this is true. */
  get dmaFrozen(): boolean {
    return !this.dmaEnabled;
  }

  /** MMIO and config reads return all ones while this is true. */
  get mmioFrozen(): boolean {
    return !this.mmioEnabled;
  }

  /** Freeze event, as when the hardware detects an error (also a test hook). */
  freeze(): void {
    this.mmioEnabled = false;
    this.dmaEnabled = false;
    this.freezes++;
  }

  /** A device DMA failed translation: as on POWER the PHB freezes the PE (MMIO and DMA). */
  dmaFault(fault: DmaFaultRecord): void {
    this.dmaFaults.push(fault);
    if (this.dmaFaults.length > DMA_FAULTS_KEPT) this.dmaFaults.shift();
    this.freeze();
  }

  /** The DMA port asks before each transfer: true once for the armed fault, unless DMA is stopped anyway. */
  takeArmedDmaFault(): boolean {
    if (!this.dmaFaultArmed || this.dmaFrozen) return false;
    this.dmaFaultArmed = false;
    return true;
  }

  state(): number {
    if (this.parentRecovering) return EEH_STATE.UNAVAIL;
    if (this.resetAsserted) return EEH_STATE.RESET;
    if (this.mmioEnabled && this.dmaEnabled) return EEH_STATE.NORMAL;
    if (!this.mmioEnabled && !this.dmaEnabled) return EEH_STATE.STOPPED;
    if (this.mmioEnabled) return EEH_STATE.STOPPED_DMA;
    return EEH_STATE.UNAVAIL;
  }

  /**
   * One VFIO_EEH_PE_OP on this PE. Returns the op's non-negative result (the state for GET_STATE, else 0)
   * or throws the errno the kernel returns. `err` stands for the 40-byte form INJECT_ERR needs.
   */
  op(op: number, err?: EehErrorSpec): number {
    switch (op) {
      case EEH_OP.DISABLE:
        return 0;
      case EEH_OP.ENABLE:
        if (!this.hostEnabled()) fail(EIO, 'EEH is disabled on the host');
        // Taking the PE over thaws a freeze nobody has handled yet.
        this.thaw();
        return 0;
      case EEH_OP.UNFREEZE_IO:
        this.mmioEnabled = true;
        return 0;
      case EEH_OP.UNFREEZE_DMA:
        this.dmaEnabled = true;
        return 0;
      case EEH_OP.GET_STATE:
        return this.state();
      case EEH_OP.RESET_DEACTIVATE:
        this.resetAsserted = false;
        this.cfgBlocked = false;
        this.thaw();
        return 0;
      case EEH_OP.RESET_HOT:
      case EEH_OP.RESET_FUNDAMENTAL:
        // MMIO is dropped for the whole reset: freeze first, then block config and assert.
        this.freeze();
        this.cfgBlocked = true;
        this.resetAsserted = true;
        this.resets++;
        this.onReset?.();
        return 0;
      case EEH_OP.CONFIGURE:
        return 0;
      case EEH_OP.INJECT_ERR:
        return this.inject(err);
      default:
        fail(EINVAL, `unknown EEH op ${op}`);
    }
  }

  private inject(err: EehErrorSpec | undefined): number {
    if (!err) fail(EINVAL, 'INJECT_ERR needs the 40-byte argument');
    if (!Number.isInteger(err.func) || err.func < 0 || err.func > EEH_ERR_FUNC_MAX) {
      fail(EINVAL, `error function ${err.func} not in 0..${EEH_ERR_FUNC_MAX}`);
    }
    const knownType = err.type === EEH_ERR_TYPE_32 || err.type === EEH_ERR_TYPE_64;
    if (this.flavour === 'powernv') {
      if (!knownType) fail(ERANGE, `error type ${err.type} not 0 or 1`);
    } else {
      if (!knownType) fail(EINVAL, `error type ${err.type} not 0 or 1`);
      if (!PSERIES_INJECTABLE_FUNCS.has(err.func)) fail(ERANGE, `pSeries cannot inject function ${err.func}`);
    }
    this.lastInjection = { ...err };
    this.freeze();
    return 0;
  }

  private thaw(): void {
    this.mmioEnabled = true;
    this.dmaEnabled = true;
  }

  /**
   * The PE changes hands (its last user closed it): the kernel's release path thaws a freeze nobody
   * handled and ends a reset left asserted, so the next user does not inherit them.
   */
  changeOwner(): void {
    // The next user does not see the last one's faults either.
    this.dmaFaults.length = 0;
    this.dmaFaultArmed = false;
    this.resetAsserted = false;
    this.cfgBlocked = false;
    this.thaw();
  }
}
