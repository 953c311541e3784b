// NVMe base specification 1.4 numbers the controller model uses: register offsets, opcodes, status
// codes. Only what src/devices/nvme implements or answers for is named here.

/** Controller registers in BAR 0 (NVMe 1.4, 3.1). */
export const REG = {
  CAP: 0x00,
  VS: 0x08,
  INTMS: 0x0c,
  INTMC: 0x10,
  CC: 0x14,
  CSTS: 0x1c,
  NSSR: 0x20,
  AQA: 0x24,
  ASQ: 0x28,
  ACQ: 0x30,
  /** End of the register file the model keeps; [END, DOORBELLS) reads zero (CMB, boot partitions absent). */
  END: 0x40,
  /** SQ y tail doorbell at DOORBELLS + 8y, CQ y head doorbell at DOORBELLS + 8y + 4 (CAP.DSTRD = 0). */
  DOORBELLS: 0x1000,
  /** The doorbell page ends where the default topology's MSI-X PBA begins; the rest of the BAR is inert. */
  DOORBELLS_END: 0x2000,
} as const;

export const CC = {
  EN: 1 << 0,
  CSS_SHIFT: 4,
  MPS_SHIFT: 7,
  AMS_SHIFT: 11,
  SHN_SHIFT: 14,
  IOSQES_SHIFT: 16,
  IOCQES_SHIFT: 20,
} as const;

export const CSTS = {
  RDY: 1 << 0,
  CFS: 1 << 1,
  SHST_SHIFT: 2,
  SHST_COMPLETE: 2 << 2,
} as const;

export const ADMIN = {
  DELETE_SQ: 0x00,
  CREATE_SQ: 0x01,
  GET_LOG_PAGE: 0x02,
  DELETE_CQ: 0x04,
  CREATE_CQ: 0x05,
  IDENTIFY: 0x06,
  ABORT: 0x08,
  SET_FEATURES: 0x09,
  GET_FEATURES: 0x0a,
  ASYNC_EVENT: 0x0c,
  KEEP_ALIVE: 0x18,
  DOORBELL_BUFFER_CONFIG: 0x7c,
} as const;

export const IO = {
  FLUSH: 0x00,
  WRITE: 0x01,
  READ: 0x02,
  WRITE_ZEROES: 0x08,
  DSM: 0x09,
} as const;

export const FEAT = {
  ARBITRATION: 0x01,
  POWER_MGMT: 0x02,
  TEMP_THRESH: 0x04,
  ERR_RECOVERY: 0x05,
  VOLATILE_WC: 0x06,
  NUM_QUEUES: 0x07,
  IRQ_COALESCE: 0x08,
  IRQ_CONFIG: 0x09,
  WRITE_ATOMIC: 0x0a,
  ASYNC_EVENT: 0x0b,
  AUTO_PST: 0x0c,
  HOST_MEM_BUF: 0x0d,
  KATO: 0x0f,
} as const;

/** Status: (status code type << 8) | status code; the CQE carries it in bits 17-27 of DW3. */
export const SC = {
  SUCCESS: 0x000,
  INVALID_OPCODE: 0x001,
  INVALID_FIELD: 0x002,
  DATA_XFER_ERROR: 0x004,
  INTERNAL: 0x006,
  ABORT_REQ: 0x007,
  INVALID_NS: 0x00b,
  PRP_OFFSET_INVALID: 0x013,
  LBA_RANGE: 0x080,
  // Command specific (type 1).
  CQ_INVALID: 0x100,
  QID_INVALID: 0x101,
  QUEUE_SIZE: 0x102,
  AER_LIMIT: 0x105,
  INVALID_VECTOR: 0x108,
  INVALID_LOG_PAGE: 0x109,
  INVALID_QUEUE_DELETION: 0x10c,
  FEAT_NOT_SAVEABLE: 0x10d,
} as const;

/** Do Not Retry: set on every error status the model returns (retrying gets the same answer). */
export const DNR = 1 << 31;

/** Asynchronous event (completion DW0): error status type, and the causes the model reports. */
export const AEN = {
  TYPE_ERROR: 0,
  INVALID_DOORBELL: 0x00,
  INVALID_DOORBELL_VALUE: 0x01,
  LOG_ERROR: 0x01,
} as const;

export const LOG = {
  ERROR: 0x01,
  SMART: 0x02,
  FW_SLOT: 0x03,
} as const;

export const SQE_BYTES = 64;
export const CQE_BYTES = 16;
