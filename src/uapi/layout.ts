// A small C struct layout engine and codec.
//
// Structs are declared field by field in C order; offsets, sizes and alignment are computed with the
// natural-alignment rules that x86_64 and powerpc64 share (LP64, 8-byte aligned u64), so a declaration
// reads like the header and a test can compare it with the layouts measured from the real headers.
// Values are numbers for fields up to 32 bits and bigints for 64-bit fields, so IOVAs never lose bits.

export type Scalar = 'u8' | 'u16' | 'u32' | 's32' | 'u64' | 's64';

const SCALAR_SIZE: Record<Scalar, number> = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8, s64: 8 };

export interface FieldSpec {
  name: string;
  /** A scalar type or a nested struct. */
  type: Scalar | StructLayout;
  /** Fixed array length (1 for a plain field). */
  count: number;
  /** Members of one anonymous union share the union's offset. */
  union?: string;
}

export interface Field {
  name: string;
  offset: number;
  size: number;
  align: number;
  type: Scalar | StructLayout;
  count: number;
  union?: string;
}

export interface StructLayout {
  name: string;
  size: number;
  align: number;
  /** Every field, including nested members flattened as `outer.inner` after their parent. */
  fields: Field[];
  byName: Map<string, Field>;
}

const alignUp = (n: number, a: number) => (n + a - 1) & ~(a - 1);

export function scalarSize(t: Scalar): number {
  return SCALAR_SIZE[t];
}

function typeSize(t: Scalar | StructLayout) {
  return typeof t === 'string' ? SCALAR_SIZE[t] : t.size;
}
function typeAlign(t: Scalar | StructLayout) {
  return typeof t === 'string' ? SCALAR_SIZE[t] : t.align;
}

/** Lay out a struct from its members in declaration order. */
export function struct(name: string, members: FieldSpec[]): StructLayout {
  const fields: Field[] = [];
  let offset = 0;
  let align = 1;
  let union: { tag: string; offset: number; end: number } | undefined;
  for (const m of members) {
    const a = typeAlign(m.type);
    const size = typeSize(m.type) * m.count;
    align = Math.max(align, a);
    let at: number;
    if (m.union && union?.tag === m.union) {
      at = union.offset;
      union.end = Math.max(union.end, at + size);
    } else {
      if (union) offset = union.end;
      union = undefined;
      at = alignUp(offset, a);
      if (m.union) union = { tag: m.union, offset: at, end: at + size };
      else offset = at + size;
    }
    fields.push({ name: m.name, offset: at, size, align: a, type: m.type, count: m.count, union: m.union });
    if (typeof m.type !== 'string' && m.count > 0) {
      for (const inner of m.type.fields) {
        fields.push({ ...inner, name: `${m.name}.${inner.name}`, offset: at + inner.offset });
      }
    }
  }
  if (union) offset = union.end;
  const size = alignUp(offset, align);
  return { name, size, align, fields, byName: new Map(fields.map((f) => [f.name, f])) };
}

// Member builders, so declarations read like the C header.
export const u8 = (name: string, count = 1): FieldSpec => ({ name, type: 'u8', count });
export const u16 = (name: string): FieldSpec => ({ name, type: 'u16', count: 1 });
export const u32 = (name: string, count = 1): FieldSpec => ({ name, type: 'u32', count });
export const s32 = (name: string): FieldSpec => ({ name, type: 's32', count: 1 });
export const u64 = (name: string, count = 1): FieldSpec => ({ name, type: 'u64', count });
export const s64 = (name: string): FieldSpec => ({ name, type: 's64', count: 1 });
export const nested = (name: string, layout: StructLayout): FieldSpec => ({ name, type: layout, count: 1 });
/** A C99 flexible array member: no size, but it aligns the struct and marks where variable data begins. */
export const flex = (name: string, type: Scalar | StructLayout): FieldSpec => ({ name, type, count: 0 });
export const inUnion = (tag: string, spec: FieldSpec): FieldSpec => ({ ...spec, union: tag });

/** offsetof(struct, field) + sizeof(field): the kernel's offsetofend, used for minimum sizes. */
export function offsetofend(layout: StructLayout, field: string): number {
  const f = field_(layout, field);
  return f.offset + f.size;
}

function field_(layout: StructLayout, name: string): Field {
  const f = layout.byName.get(name);
  if (!f) throw new Error(`${layout.name} has no field ${name}`);
  return f;
}

export type Value = number | bigint;

/** Read one scalar field (little-endian: x86_64 and ppc64le clients). */
export function readField(buf: Buffer, layout: StructLayout, name: string, base = 0): Value {
  const f = field_(layout, name);
  return readScalar(buf, f.type as Scalar, base + f.offset);
}

export function writeField(buf: Buffer, layout: StructLayout, name: string, value: Value, base = 0): void {
  const f = field_(layout, name);
  writeScalar(buf, f.type as Scalar, base + f.offset, value);
}

// 64-bit fields go through one 8-byte scratch word: a byte copy and a typed-array access cost less than
// Buffer's BigInt readers and writers, and storing into a BigUint64Array wraps like a C cast. The host's
// byte order is the wire's (little-endian); on a big-endian host the Buffer methods are used instead.
const scratch = new ArrayBuffer(8);
const scratchU64 = new BigUint64Array(scratch);
const scratchS64 = new BigInt64Array(scratch);
const scratchBytes = new Uint8Array(scratch);
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function loadScratch(buf: Buffer, at: number): void {
  if (at < 0 || at + 8 > buf.length) throw new RangeError(`8-byte read at ${at} outside a ${buf.length}-byte buffer`);
  for (let i = 0; i < 8; i++) scratchBytes[i] = buf[at + i];
}

function storeScratch(buf: Buffer, at: number): void {
  if (at < 0 || at + 8 > buf.length) throw new RangeError(`8-byte write at ${at} outside a ${buf.length}-byte buffer`);
  for (let i = 0; i < 8; i++) buf[at + i] = scratchBytes[i];
}

// Little-endian loads with one bounds check each, instead of Buffer's argument validation on every call.

/** A 32-bit load as a signed int. */
function load32(buf: Buffer, at: number): number {
  if (!(at >= 0 && at + 4 <= buf.length)) throw new RangeError(`4-byte read at ${at} outside a ${buf.length}-byte buffer`);
  return buf[at] | (buf[at + 1] << 8) | (buf[at + 2] << 16) | (buf[at + 3] << 24);
}

export function readU32(buf: Buffer, at: number): number {
  return load32(buf, at) >>> 0;
}

export function readU16(buf: Buffer, at: number): number {
  if (!(at >= 0 && at + 2 <= buf.length)) throw new RangeError(`2-byte read at ${at} outside a ${buf.length}-byte buffer`);
  return buf[at] | (buf[at + 1] << 8);
}

export function readU64(buf: Buffer, at: number): bigint {
  if (!LITTLE_ENDIAN_HOST) return buf.readBigUInt64LE(at);
  loadScratch(buf, at);
  return scratchU64[0];
}

export function readS64(buf: Buffer, at: number): bigint {
  if (!LITTLE_ENDIAN_HOST) return buf.readBigInt64LE(at);
  loadScratch(buf, at);
  return scratchS64[0];
}

/** Stores the value modulo 2^64 (either signedness). */
export function writeU64(buf: Buffer, at: number, value: bigint): void {
  if (!LITTLE_ENDIAN_HOST) return void buf.writeBigUInt64LE(BigInt.asUintN(64, value), at);
  scratchU64[0] = value;
  storeScratch(buf, at);
}

/** A 32-bit field's value modulo 2^32; numbers must be integers, as BigInt() would insist. */
function low32(value: Value): number {
  if (typeof value === 'bigint') return Number(BigInt.asUintN(32, value));
  if (!Number.isInteger(value)) throw new RangeError(`${value} is not an integer`);
  return value >>> 0;
}

export function readScalar(buf: Buffer, t: Scalar, at: number): Value {
  switch (t) {
    case 'u8': return buf.readUInt8(at);
    case 'u16': return readU16(buf, at);
    case 'u32': return readU32(buf, at);
    case 's32': return load32(buf, at);
    case 'u64': return readU64(buf, at);
    case 's64': return readS64(buf, at);
  }
}

export function writeScalar(buf: Buffer, t: Scalar, at: number, value: Value): void {
  switch (t) {
    case 'u8': buf.writeUInt8(Number(value) & 0xff, at); break;
    case 'u16': buf.writeUInt16LE(Number(value) & 0xffff, at); break;
    case 'u32': buf.writeUInt32LE(low32(value), at); break;
    case 's32': buf.writeInt32LE(low32(value) | 0, at); break;
    case 'u64':
    case 's64': writeU64(buf, at, typeof value === 'bigint' ? value : BigInt(value)); break;
  }
}

/** Decode every scalar field (arrays as arrays) into a plain object; nested members appear as `a.b`. */
export function decode(layout: StructLayout, buf: Buffer, base = 0): Record<string, Value | Value[]> {
  const out: Record<string, Value | Value[]> = {};
  for (const f of layout.fields) {
    if (typeof f.type !== 'string') continue;
    if (f.count === 1) out[f.name] = readScalar(buf, f.type, base + f.offset);
    else {
      const each = SCALAR_SIZE[f.type];
      out[f.name] = Array.from({ length: f.count }, (_, i) => readScalar(buf, f.type as Scalar, base + f.offset + i * each));
    }
  }
  return out;
}

/** Encode the named fields into a fresh zeroed buffer of the struct's size. */
export function encode(layout: StructLayout, values: Record<string, Value>): Buffer {
  const buf = Buffer.alloc(layout.size);
  for (const [name, v] of Object.entries(values)) writeField(buf, layout, name, v);
  return buf;
}
