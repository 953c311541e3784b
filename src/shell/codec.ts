// Named ioctl calls to request records and answers back to named fields, from the one declaration of
// each ioctl (src/uapi/ioctls.ts), its struct (structs.ts) and the names its fields take (field-names.ts).
//
// A call is written as words: `field=value` for struct fields, and for the arguments that are not structs
// `arg=` (integer argument), `name=` (string), `fd=` (int * holding an fd) or `value=` (u32 *), which may
// also be given bare. The encoder fills in what a careful C caller would: argsz/size = sizeof, the count
// of the data given behind an in-pointer, and a non-NULL address for out-pointers (their data comes back
// in the reply; see docs/protocol.md). The same words, printed by formatRequest(), encode the same bytes
// again, which is what makes a transcript replayable.
import { ALL_CONSTANTS } from '../uapi/constants.ts';
import { ARG_VALUES, FIELD_VALUES, namedValues, POINTER_ELEMENTS, type ValueNames } from '../uapi/field-names.ts';
import { requestValue, type IoctlDecl, type PointerDecl } from '../uapi/ioctls.ts';
import { decode, s32, struct, u32, writeScalar, type Field, type Scalar, type StructLayout, type Value } from '../uapi/layout.ts';
import { HANDLE_FOREIGN, HANDLE_NONE, type Answer, type Blob } from '../transport/frame.ts';
import { evaluate, formatNumber, hex, quoteWord, splitTop } from './values.ts';

/** The int an fd-pointer ioctl reads (VFIO_GROUP_SET_CONTAINER), as a one-field struct. */
const FD_ARG = struct('int', [s32('fd')]);
/** The u32 a u32-pointer ioctl reads. */
const U32_ARG = struct('__u32', [u32('value')]);

/** Where out-pointers point: any non-NULL address does, since the reply carries the data, not memory. */
export const OUT_BUFFER_BASE = 0x7ffe_0000_0000n;
/** Where in-pointers with data point; the pointer itself is not interpreted, only the blob is. */
export const IN_BUFFER_BASE = 0x7ffd_0000_0000n;

/** Largest argument the encoder sends for a large argsz/size; beyond it, the rest is memory that faults. */
export const MAX_ARGUMENT = 64 * 1024;

export class UsageError extends Error {}

/** A word of a call: `key=value`, or a bare value. */
export interface Word {
  key?: string;
  value: string;
}

export function parseWord(w: string): Word {
  const m = /^([A-Za-z_][\w.]*)=(.*)$/s.exec(w);
  return m ? { key: m[1], value: m[2] } : { value: w };
}

/** What the encoder needs from its surroundings: `$variables` and the handles of open files (`@name`). */
export interface EncodeContext {
  variable?(ref: string): bigint | undefined;
  handle?(name: string): number;
}

export interface EncodedCall {
  decl: IoctlDecl;
  /** The struct the argument bytes hold, if they hold one. */
  layout?: StructLayout;
  request: number;
  arg: bigint;
  argData: Buffer;
  blobs: Blob[];
  /** The string of a string-argument ioctl. */
  text?: string;
  /** Data sent behind in-pointer fields, by field. */
  inData: Map<string, Buffer>;
  /** The argument was given as raw bytes (`raw=hex:...`), not as fields. */
  raw: boolean;
}

/** The struct behind an ioctl's argument, synthesised for the non-struct pointer arguments. */
export function argLayout(decl: IoctlDecl): StructLayout | undefined {
  switch (decl.arg) {
    case 'fdptr': return FD_ARG;
    case 'u32ptr': return U32_ARG;
    case 'argsz': case 'size': return decl.struct ?? struct(`${decl.name.toLowerCase()}_header`, [u32(decl.arg)]);
    default: return undefined;
  }
}

/** The field a bare word sets, for arguments that have exactly one. */
export function bareKey(decl: IoctlDecl): string | undefined {
  return { value: 'arg', string: 'name', fdptr: 'fd', u32ptr: 'value' }[decl.arg as string];
}

/** Fields one can set: the scalar ones (nested members as `outer.inner`, never the flexible arrays). */
export function settableFields(layout: StructLayout): Field[] {
  return layout.fields.filter((f) => typeof f.type === 'string' && f.count > 0);
}

/** Every word an ioctl takes on the left of `=`, for help and completion. */
export function argumentKeys(decl: IoctlDecl): string[] {
  const layout = argLayout(decl);
  if (layout) return settableFields(layout).map((f) => f.name);
  const k = bareKey(decl);
  return k ? [k] : [];
}

export function valueNames(layout: StructLayout | undefined, field: string, decl?: IoctlDecl): ValueNames | undefined {
  if (decl?.arg === 'value') return ARG_VALUES.get(decl.name);
  return layout ? FIELD_VALUES.get(`${layout.name}.${field}`) : undefined;
}

function isFdField(decl: IoctlDecl, field: string): boolean {
  return decl.arg === 'fdptr' || (decl.fdFields?.includes(field) ?? false);
}

function sizeField(decl: IoctlDecl): string | undefined {
  return decl.arg === 'argsz' || decl.arg === 'size' ? decl.arg : undefined;
}

function outPointerAddress(layout: StructLayout, field: string): bigint {
  return OUT_BUFFER_BASE + BigInt(layout.byName.get(field)!.offset) * 0x1_0000n;
}

/** The value a field holds when the words do not set it. */
function defaultValue(decl: IoctlDecl, layout: StructLayout, field: string): bigint {
  const p = decl.pointers?.find((x) => x.field === field);
  return p?.dir === 'out' ? outPointerAddress(layout, field) : 0n;
}

/** Resolve one term of a value: a name the field takes, any uAPI constant, `$var`, or `@file` for fds. */
function termResolver(decl: IoctlDecl, layout: StructLayout | undefined, field: string, ctx: EncodeContext) {
  const names = valueNames(layout, field, decl);
  const known = names ? namedValues(names) : [];
  return (term: string): bigint | undefined => {
    const upper = term.toUpperCase();
    const hit = known.find((n) => n.name === term || n.short.toUpperCase() === upper);
    if (hit) return BigInt(hit.value);
    if (term in ALL_CONSTANTS) return BigInt(ALL_CONSTANTS[term]);
    if (term.startsWith('$')) {
      const v = ctx.variable?.(term.slice(1));
      if (v === undefined) throw new UsageError(`${term} is not set`);
      return v;
    }
    if (isFdField(decl, field)) {
      if (term.startsWith('@')) {
        if (!ctx.handle) throw new UsageError(`${field}=${term}: a handle lives only while its file is open, so @name works in the shell (tcefs shell), not across commands`);
        return BigInt(ctx.handle(term.slice(1)));
      }
      if (upper === 'NONE') return BigInt(HANDLE_NONE);
      if (upper === 'FOREIGN') return BigInt(HANDLE_FOREIGN);
    }
    return undefined;
  };
}

/** Evaluate the text of one value for a field (see values.ts for the grammar). */
export function fieldValue(decl: IoctlDecl, layout: StructLayout | undefined, field: string, text: string, ctx: EncodeContext = {}): bigint {
  try {
    return evaluate(text, termResolver(decl, layout, field, ctx));
  } catch (e) {
    if (e instanceof SyntaxError) throw new UsageError(`${field}=${text}: ${e.message}`);
    throw e;
  }
}

const BITS: Record<Scalar, number> = { u8: 8, u16: 16, u32: 32, s32: 32, u64: 64, s64: 64 };

function checkFits(field: Field, v: bigint) {
  const bits = BigInt(BITS[field.type as Scalar]);
  // Unsigned fields take negative numbers too (-1 for all ones), signed ones take their unsigned spelling.
  if (v < -(1n << (bits - 1n)) || v >= 1n << bits) throw new UsageError(`${field.name}=${v} does not fit in ${bits} bits`);
}

/** `hex:00ff...` to bytes. */
export function parseHex(text: string): Buffer {
  const h = text.slice(4).replace(/[\s:_]/g, '');
  if (!/^([0-9a-f]{2})*$/i.test(h)) throw new UsageError(`${text}: hex: wants an even number of hex digits`);
  return Buffer.from(h, 'hex');
}

function listItems(text: string): string[] {
  if (!text.startsWith('[') || !text.endsWith(']')) throw new UsageError(`${text}: a list is written [a,b,...]`);
  const inner = text.slice(1, -1).trim();
  return inner === '' ? [] : splitTop(inner, ',').map((s) => s.trim());
}

/** Elements of pointed data: `[a-b,...]` ranges or `{f=v,...}` for two-field structs, bytes otherwise. */
function encodeElements(decl: IoctlDecl, layout: StructLayout, p: PointerDecl, text: string, ctx: EncodeContext): { data: Buffer; count: number } {
  const elem = POINTER_ELEMENTS.get(`${layout.name}.${p.field}`);
  if (!elem) {
    const bytes = text.startsWith('hex:') ? parseHex(text) : Buffer.from(listItems(text).map((t) => Number(fieldValue(decl, undefined, p.field, t, ctx)) & 0xff));
    return { data: bytes, count: bytes.length };
  }
  const members = settableFields(elem);
  const items = listItems(text);
  const data = Buffer.alloc(items.length * elem.size);
  items.forEach((item, i) => {
    const values = new Map<string, bigint>();
    if (item.startsWith('{')) {
      for (const part of splitTop(item.slice(1, -1), ',')) {
        const w = parseWord(part.trim());
        if (!w.key || !elem.byName.has(w.key)) throw new UsageError(`${p.field}: ${part} is not one of ${members.map((m) => m.name).join(', ')}`);
        values.set(w.key, fieldValue(decl, undefined, w.key, w.value, ctx));
      }
    } else {
      // A range `first-last`: the dash that is not a leading minus sign.
      const dash = item.indexOf('-', 1);
      if (members.length !== 2 || dash < 0) throw new UsageError(`${p.field}: ${item}: write {${members.map((m) => `${m.name}=...`).join(',')}}`);
      values.set(members[0].name, fieldValue(decl, undefined, members[0].name, item.slice(0, dash), ctx));
      values.set(members[1].name, fieldValue(decl, undefined, members[1].name, item.slice(dash + 1), ctx));
    }
    for (const m of members) {
      const v = values.get(m.name) ?? 0n;
      checkFits(m, v);
      writeScalar(data, m.type as Scalar, i * elem.size + m.offset, v);
    }
  });
  return { data, count: items.length };
}

/** Encode a call of `decl` from its words. Throws UsageError for words it cannot take. */
export function encodeCall(decl: IoctlDecl, words: Word[], ctx: EncodeContext = {}): EncodedCall {
  const call: EncodedCall = { decl, request: requestValue(decl.nr), arg: 0n, argData: Buffer.alloc(0), blobs: [], inData: new Map(), raw: false };
  const bare = bareKey(decl);
  const keyed = words.map((w) => {
    if (w.key) return w as Required<Word>;
    if (!bare) throw new UsageError(`${decl.name}: "${w.value}" needs a field name (field=value)`);
    return { key: bare, value: w.value };
  });
  if (decl.arg === 'none') {
    if (keyed.length) throw new UsageError(`${decl.name} takes no argument`);
    return call;
  }
  if (decl.arg === 'value' || decl.arg === 'string') {
    for (const w of keyed) if (w.key !== bare) throw new UsageError(`${decl.name} takes ${bare}=..., not ${w.key}=`);
    if (keyed.length > 1) throw new UsageError(`${decl.name} takes one ${bare}`);
    const text = keyed[0]?.value;
    if (decl.arg === 'value') call.arg = BigInt.asUintN(64, text === undefined ? 0n : fieldValue(decl, undefined, 'arg', text, ctx));
    else if (text !== undefined) {
      call.text = text;
      call.argData = Buffer.from(text + '\0', 'latin1');
    }
    return call;
  }

  const layout = argLayout(decl)!;
  call.layout = layout;
  const values = new Map<string, bigint | bigint[]>();
  for (const w of keyed) {
    if (w.key === 'raw') {
      if (!w.value.startsWith('hex:')) throw new UsageError('raw=hex:... gives the argument bytes');
      call.argData = parseHex(w.value);
      call.raw = true;
      continue;
    }
    const p = decl.pointers?.find((x) => x.field === w.key);
    if (p && (w.value.startsWith('[') || w.value.startsWith('hex:'))) {
      if (p.dir === 'out') throw new UsageError(`${w.key} is written by the kernel; set ${p.count ?? p.lengthField ?? 'its length'} to size its buffer`);
      const { data, count } = encodeElements(decl, layout, p, w.value, ctx);
      call.inData.set(p.field, data);
      values.set(p.field, IN_BUFFER_BASE + BigInt(layout.byName.get(p.field)!.offset) * 0x1_0000n);
      // The count says how much data the kernel reads; set it from the data unless the words say otherwise.
      const countField = p.count ?? p.lengthField;
      if (countField && !keyed.some((x) => x.key === countField)) values.set(countField, BigInt(p.count ? count : data.length));
      continue;
    }
    const f = layout.byName.get(w.key);
    if (!f || typeof f.type !== 'string' || f.count === 0) {
      throw new UsageError(`${decl.name} has no field ${w.key} (fields: ${argumentKeys(decl).join(' ')})`);
    }
    if (f.count > 1) {
      if (!w.value.startsWith('[')) throw new UsageError(`${f.name} holds ${f.count} values: write ${f.name}=[a,b,...]`);
      values.set(f.name, listItems(w.value).map((t) => fieldValue(decl, layout, f.name, t, ctx)));
    }
    else values.set(f.name, fieldValue(decl, layout, f.name, w.value, ctx));
  }
  if (call.raw) {
    if (values.size) throw new UsageError('raw= replaces the whole argument; give no fields with it');
    return call;
  }

  const size = sizeField(decl);
  const declared = size ? (decl.struct ? layout.size : decl.minsz ?? layout.size) : layout.size;
  if (size && !values.has(size)) values.set(size, BigInt(declared));
  const asked = size ? Number(values.get(size) as bigint) : 0;
  // Send what a caller with an argsz/size-byte buffer has, within reason; past that, memory that faults.
  const length = asked > declared && asked <= MAX_ARGUMENT ? asked : declared;
  const buf = Buffer.alloc(Math.max(length, layout.size));
  for (const f of settableFields(layout)) {
    const v = values.get(f.name) ?? defaultValue(decl, layout, f.name);
    const list = Array.isArray(v) ? v : [v];
    if (list.length > f.count) throw new UsageError(`${f.name} holds ${f.count} values, ${list.length} given`);
    const each = f.size / f.count;
    list.forEach((x, i) => {
      checkFits(f, x);
      writeScalar(buf, f.type as Scalar, f.offset + i * each, x);
    });
  }
  call.argData = buf.subarray(0, length);
  for (const [field, data] of call.inData) call.blobs.push({ fieldOffset: layout.byName.get(field)!.offset, data });
  return call;
}

// ---- answers ----

export interface Decoded {
  call: EncodedCall;
  /** The return value, or -errno. */
  result: bigint;
  /** Bytes the kernel copied back into the argument. */
  outLen: number;
  /** The argument struct after the copy-back, as the caller's memory now holds it. */
  fields: Record<string, Value | Value[]>;
  /** Fields the copy-back changed, in struct order. */
  changed: string[];
  /** Data the kernel wrote through out-pointers, by field. */
  outData: Map<string, Buffer>;
  /** Copy-back past the declared struct (capability chains). */
  extra?: Buffer;
  newHandle: number;
  handleField: number;
}

export function decodeAnswer(call: EncodedCall, a: Answer): Decoded {
  const d: Decoded = {
    call, result: a.result, outLen: a.out.length, fields: {}, changed: [], outData: new Map(),
    newHandle: a.newHandle, handleField: a.handleField,
  };
  const layout = call.layout;
  if (!layout) {
    if (a.out.length) d.extra = a.out;
    return d;
  }
  const sent = Buffer.alloc(Math.max(layout.size, call.argData.length, a.out.length));
  call.argData.copy(sent);
  const now = Buffer.from(sent);
  a.out.copy(now);
  d.fields = decode(layout, now);
  const before = decode(layout, sent);
  d.changed = settableFields(layout).map((f) => f.name).filter((n) => String(before[n]) !== String(d.fields[n]));
  if (a.out.length > layout.size) d.extra = a.out.subarray(layout.size);
  for (const b of a.blobs) {
    const f = layout.fields.find((x) => x.offset === b.fieldOffset && call.decl.pointers?.some((p) => p.field === x.name));
    d.outData.set(f?.name ?? `pointer@${b.fieldOffset}`, b.data);
  }
  return d;
}

// ---- words back from values ----

/** Names of open files by handle, so fd fields print as `@name`. */
export type HandleNames = (handle: number) => string | undefined;

function formatNamed(names: ValueNames, v: bigint): string {
  const known = namedValues(names);
  if (names.kind === 'enum') return known.find((n) => BigInt(n.value) === v)?.short ?? formatNumber(v);
  if (v === 0n) return '0';
  const parts: string[] = [];
  let rest = v;
  for (const n of known) {
    const bits = BigInt(n.value);
    if (bits !== 0n && (rest & bits) === bits) {
      parts.push(n.short);
      rest &= ~bits;
    }
  }
  if (rest) parts.push(hex(rest));
  return parts.join('|');
}

/** A field's value as words would give it: names for flags and enums, @name for handles. */
export function formatValue(decl: IoctlDecl, layout: StructLayout | undefined, field: string, v: Value | Value[], handles?: HandleNames): string {
  if (Array.isArray(v)) return `[${v.map((x) => formatValue(decl, layout, field, x, handles)).join(',')}]`;
  const b = BigInt(v);
  if (isFdField(decl, field)) {
    const n = handles?.(Number(b));
    if (n) return `@${n}`;
    if (b === BigInt(HANDLE_NONE)) return 'NONE';
    if (b === BigInt(HANDLE_FOREIGN)) return 'FOREIGN';
    return b.toString(10);
  }
  const names = valueNames(layout, field, decl);
  return names ? formatNamed(names, b) : formatNumber(b);
}

/** Pointed data as words give it: `[first-last,...]` or `[{a=1,b=2},...]` for structs, hex: for bytes. */
export function formatPointerData(layout: StructLayout, field: string, data: Buffer): string {
  const elem = POINTER_ELEMENTS.get(`${layout.name}.${field}`);
  if (!elem) return `hex:${data.toString('hex')}`;
  const members = settableFields(elem);
  const items: string[] = [];
  for (let at = 0; at + elem.size <= data.length; at += elem.size) {
    const v = decode(elem, data, at);
    items.push(members.length === 2 ? `${hex(v[members[0].name] as Value)}-${hex(v[members[1].name] as Value)}` : `{${members.map((m) => `${m.name}=${formatNumber(v[m.name] as Value)}`).join(',')}}`);
  }
  return `[${items.join(',')}]`;
}

/** The words that encode this call again: the size field always, then every field not at its default. */
export function formatArguments(call: EncodedCall, handles?: HandleNames): string[] {
  const { decl, layout } = call;
  if (decl.arg === 'value') return [`arg=${formatValue(decl, undefined, 'arg', call.arg, handles)}`];
  if (decl.arg === 'string') return call.text === undefined ? [] : [`name=${quoteWord(call.text)}`];
  if (!layout) return [];
  if (call.raw) return [`raw=hex:${call.argData.toString('hex')}`];
  const image = Buffer.alloc(Math.max(layout.size, call.argData.length));
  call.argData.copy(image);
  const v = decode(layout, image);
  const size = sizeField(decl);
  const words: string[] = [];
  for (const f of settableFields(layout)) {
    const data = call.inData.get(f.name);
    if (data) {
      words.push(`${f.name}=${formatPointerData(layout, f.name, data)}`);
      continue;
    }
    const x = v[f.name];
    const atDefault = Array.isArray(x) ? x.every((e) => BigInt(e) === 0n) : BigInt(x) === defaultValue(decl, layout, f.name);
    if (f.name === size || !atDefault) words.push(`${f.name}=${formatValue(decl, layout, f.name, x, handles)}`);
  }
  return words;
}
