// A decoded call for people (a table: every field in hex and decimal with its names, marked where the
// kernel wrote it, then the data it wrote through pointers) and for scripts (JSON).
import { errnoName } from '../errno.ts';
import { POINTER_ELEMENTS } from '../uapi/field-names.ts';
import { decode, type Scalar, type Value } from '../uapi/layout.ts';
import { formatArguments, formatValue, settableFields, type Decoded, type HandleNames } from './codec.ts';
import { formatSize, hex } from './values.ts';

function resultText(r: bigint): string {
  return r < 0n ? `${errnoName(Number(-r))} (${r})` : r.toString(10);
}

/** `VFIO_CHECK_EXTENSION arg=VFIO_SPAPR_TCE_v2_IOMMU on dev/vfio/vfio: 1`, the line every rendering starts with. */
export function summaryLine(d: Decoded, handles?: HandleNames, path?: string): string {
  const args = d.call.decl.arg === 'value' || d.call.decl.arg === 'string' ? formatArguments(d.call, handles).join(' ') : '';
  const where = path ? ` on ${path}` : '';
  const copied = d.call.layout ? `, ${d.outLen} bytes copied back` : '';
  return `${d.call.decl.name}${args ? ' ' + args : ''}${where}: ${resultText(d.result)}${copied}`;
}

function hexdump(data: Buffer, indent = '  '): string[] {
  const lines: string[] = [];
  for (let at = 0; at < data.length; at += 16) {
    const chunk = data.subarray(at, at + 16);
    lines.push(`${indent}${at.toString(16).padStart(4, '0')}  ${[...chunk].map((b) => b.toString(16).padStart(2, '0')).join(' ')}`);
  }
  return lines;
}

export function renderDecoded(d: Decoded, handles?: HandleNames, path?: string): string {
  const lines = [summaryLine(d, handles, path)];
  const { decl, layout } = d.call;
  if (layout) {
    const rows: string[][] = [['', 'field', 'hex', 'decimal', '']];
    for (const f of settableFields(layout)) {
      const v = d.fields[f.name];
      const mark = d.changed.includes(f.name) ? '*' : '';
      if (Array.isArray(v)) {
        rows.push([mark, f.name, `[${v.map((x) => hex(x)).join(',')}]`, '', '']);
        continue;
      }
      const named = formatValue(decl, layout, f.name, v, handles);
      const signed = (f.type as Scalar).startsWith('s');
      // A size reads better as 4G, but an address as 127T says nothing; go by what the field is called.
      const sizeLike = /size|length|len$/.test(f.name);
      const note = /^[0-9]/.test(named) ? (sizeLike ? formatSize(v) ?? '' : '') : named;
      rows.push([mark, f.name, signed && BigInt(v) < 0n ? String(v) : hex(v), BigInt(v).toString(10), note]);
    }
    const width = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of rows) lines.push(r.map((c, i) => c.padEnd(width[i])).join('  ').trimEnd());
    if (d.changed.length) lines.push('(* written by the kernel)');
  }
  for (const [field, data] of d.outData) {
    const elem = layout && POINTER_ELEMENTS.get(`${layout.name}.${field}`);
    if (elem) {
      lines.push(`${field}: ${data.length / elem.size} x struct ${elem.name}`);
      for (let i = 0; i * elem.size < data.length; i++) {
        const v = decode(elem, data, i * elem.size);
        lines.push(`  [${i}] ${Object.entries(v).map(([k, x]) => `${k}=${hex(x as Value)}`).join(' ')}`);
      }
    } else {
      lines.push(`${field}: ${data.length} bytes`);
      lines.push(...hexdump(data));
    }
  }
  if (d.extra) {
    lines.push(`past the struct: ${d.extra.length} bytes`);
    lines.push(...hexdump(d.extra));
  }
  if (d.newHandle) lines.push(`new file: handle ${hex(d.newHandle)} (.tcefs/fd/${d.newHandle.toString(16)})`);
  return lines.join('\n') + '\n';
}

/** 64-bit values as "0x..." strings (JSON numbers lose bits past 2^53), smaller ones as numbers. */
function jsonValue(v: Value | Value[]): unknown {
  if (Array.isArray(v)) return v.map(jsonValue);
  return typeof v === 'bigint' ? hex(v) : v;
}

export function decodedJson(d: Decoded, handles?: HandleNames, path?: string): object {
  const { decl, layout } = d.call;
  const out: Record<string, unknown> = {
    node: path,
    ioctl: decl.name,
    request: hex(d.call.request),
    args: formatArguments(d.call, handles),
    result: Number(d.result),
    errno: d.result < 0n ? errnoName(Number(-d.result)) : null,
  };
  if (decl.arg === 'value') out.arg = hex(d.call.arg);
  if (layout) {
    out.out_len = d.outLen;
    out.fields = Object.fromEntries(settableFields(layout).map((f) => [f.name, jsonValue(d.fields[f.name])]));
    out.names = Object.fromEntries(settableFields(layout).map((f) => [f.name, formatValue(decl, layout, f.name, d.fields[f.name], handles)]));
    out.changed = d.changed;
  }
  if (d.outData.size) {
    out.pointers = Object.fromEntries([...d.outData].map(([field, data]) => {
      const elem = layout && POINTER_ELEMENTS.get(`${layout.name}.${field}`);
      if (!elem) return [field, data.toString('hex')];
      const items = [];
      for (let at = 0; at + elem.size <= data.length; at += elem.size) items.push(Object.fromEntries(Object.entries(decode(elem, data, at)).map(([k, x]) => [k, jsonValue(x)])));
      return [field, items];
    }));
  }
  if (d.extra) out.extra = d.extra.toString('hex');
  if (d.newHandle) out.new_handle = hex(d.newHandle);
  return out;
}
