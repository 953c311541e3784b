// The data structures the controller returns: Identify (controller, namespace, lists, descriptors) and
// log pages. Little-endian, offsets from NVMe 1.4 figures 247 (controller) and 249 (namespace).
import { createHash } from 'node:crypto';

export const MODEL_NUMBER = 'tcefs NVMe controller';
export const FIRMWARE = '1.0';
/** Log2 of the largest transfer in minimum pages (CAP.MPSMIN = 4 KiB): 512 KiB. */
export const MDTS = 7;
export const MAX_IO_QUEUES = 32;
/** 0-based: up to 4 outstanding Asynchronous Event Requests, 4 Aborts. */
export const AERL = 3;
export const ACL = 3;
export const ERROR_LOG_ENTRIES = 64;
/** Warning and critical composite temperatures, kelvin. */
export const WCTEMP = 343;
export const CCTEMP = 358;
export const COMPOSITE_TEMP = 313;

function ascii(b: Buffer, at: number, len: number, s: string): void {
  b.fill(0x20, at, at + len);
  b.write(s.slice(0, len), at, 'ascii');
}

/** Stable identifiers of one function: the same BDF (and backing) gives the same serial and NGUID. */
export function identity(bdf: string, backing?: string): { serial: string; nguid: Buffer; uuid: Buffer; eui64: Buffer } {
  const h = createHash('sha256').update(`${bdf}|${backing ?? ''}`).digest();
  const uuid = Buffer.from(h.subarray(16, 32));
  uuid[6] = (uuid[6] & 0x0f) | 0x40;
  uuid[8] = (uuid[8] & 0x3f) | 0x80;
  return { serial: `TCEFS${h.readUInt32BE(0).toString(16).padStart(8, '0').toUpperCase()}`, nguid: Buffer.from(h.subarray(0, 16)), uuid, eui64: Buffer.from(h.subarray(24, 32)) };
}

export interface ControllerFacts {
  vendor: number;
  subsystemVendor: number;
  serial: string;
  subnqn: string;
  vectors: number;
}

export function identifyController(f: ControllerFacts): Buffer {
  const b = Buffer.alloc(4096);
  b.writeUInt16LE(f.vendor, 0);
  b.writeUInt16LE(f.subsystemVendor, 2);
  ascii(b, 4, 20, f.serial);
  ascii(b, 24, 40, MODEL_NUMBER);
  ascii(b, 64, 8, FIRMWARE);
  b[72] = 6; // RAB
  b.set([0x38, 0x25, 0x00], 73); // IEEE OUI, least significant byte first
  b[77] = MDTS;
  b.writeUInt16LE(1, 78); // CNTLID
  b.writeUInt32LE(0x00010400, 80); // VER
  b[111] = 1; // CNTRLTYPE: I/O controller
  b.writeUInt16LE(1 << 8, 256); // OACS: Doorbell Buffer Config, no other optional admin command
  b[258] = ACL;
  b[259] = AERL;
  b[260] = 0x03; // FRMW: one slot, read-only
  b[261] = 0x00; // LPA
  b[262] = ERROR_LOG_ENTRIES - 1; // ELPE
  b[263] = 0; // NPSS: one power state
  b.writeUInt16LE(WCTEMP, 266);
  b.writeUInt16LE(CCTEMP, 268);
  b.writeUInt16LE(1, 320); // KAS: 100 ms granularity
  b[512] = 0x66; // SQES: 64 bytes
  b[513] = 0x44; // CQES: 16 bytes
  b.writeUInt32LE(1, 516); // NN
  b.writeUInt16LE((1 << 2) | (1 << 3), 520); // ONCS: Dataset Management, Write Zeroes
  b[525] = 1; // VWC present
  b.writeUInt32LE(0, 536); // SGLS: PRPs only
  b.write(f.subnqn.slice(0, 255), 768, 'ascii');
  // Power state 0: 9.00 W, operational.
  b.writeUInt16LE(900, 2048);
  return b;
}

export const LBA_SHIFT = 9;

export function identifyNamespace(blocks: bigint, ids: { nguid: Buffer; eui64: Buffer }, deallocateZeroes: boolean): Buffer {
  const b = Buffer.alloc(4096);
  b.writeBigUInt64LE(blocks, 0); // NSZE
  b.writeBigUInt64LE(blocks, 8); // NCAP
  b.writeBigUInt64LE(blocks, 16); // NUSE
  b[24] = 0; // NSFEAT
  b[25] = 0; // NLBAF: one format
  b[26] = 0; // FLBAS: format 0, no metadata
  // DLFEAT: deallocated blocks read zeroes (or unspecified), Write Zeroes may deallocate.
  b[32] = (deallocateZeroes ? 1 : 0) | (1 << 3);
  ids.nguid.copy(b, 104);
  ids.eui64.copy(b, 120);
  b.writeUInt32LE(LBA_SHIFT << 16, 128); // LBAF0: 512-byte blocks, no metadata
  return b;
}

export function namespaceList(after: number): Buffer {
  const b = Buffer.alloc(4096);
  if (after < 1) b.writeUInt32LE(1, 0);
  return b;
}

export function namespaceDescriptors(ids: { nguid: Buffer; uuid: Buffer; eui64: Buffer }): Buffer {
  const b = Buffer.alloc(4096);
  let at = 0;
  for (const [type, id] of [[1, ids.eui64], [2, ids.nguid], [3, ids.uuid]] as const) {
    b[at] = type;
    b[at + 1] = id.length;
    id.copy(b, at + 4);
    at += 4 + id.length;
  }
  return b;
}

export interface HealthCounters {
  unitsRead: bigint;
  unitsWritten: bigint;
  reads: bigint;
  writes: bigint;
  errors: bigint;
}

function u128(b: Buffer, at: number, v: bigint): void {
  b.writeBigUInt64LE(v & 0xffff_ffff_ffff_ffffn, at);
  b.writeBigUInt64LE(v >> 64n, at + 8);
}

export function smartLog(c: HealthCounters): Buffer {
  const b = Buffer.alloc(512);
  b.writeUInt16LE(COMPOSITE_TEMP, 1);
  b[3] = 100; // available spare
  b[4] = 10; // threshold
  u128(b, 32, c.unitsRead);
  u128(b, 48, c.unitsWritten);
  u128(b, 64, c.reads);
  u128(b, 80, c.writes);
  u128(b, 112, 1n); // power cycles
  u128(b, 176, c.errors);
  return b;
}

export function firmwareLog(): Buffer {
  const b = Buffer.alloc(512);
  b[0] = 1; // slot 1 active
  ascii(b, 8, 8, FIRMWARE);
  return b;
}
