// A shell session: files kept open under names, ioctls run on them by name, results remembered in
// $variables and checked against expectations (`=> EINVAL`). One interpreter serves `tcefs shell`
// (typed or scripted), `tcefs ioctl` (one open, one call) and `tcefs replay` (the requests of a
// transcript, run again). Every request to the daemon, and every open and close, is one transcript entry:
// the request as words that run it again, and the response as words (see docs/shell.md).
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { errnoByName, errnoName } from '../errno.ts';
import { ALL_CONSTANTS } from '../uapi/constants.ts';
import { ARG_VALUES, FIELD_VALUES, namedValues } from '../uapi/field-names.ts';
import { FILE_KIND_BIT, IOCTLS, ioctl, type FileKind, type IoctlDecl } from '../uapi/ioctls.ts';
import { vfio_region_info } from '../uapi/structs.ts';
import type { Value } from '../uapi/layout.ts';
import { Op } from '../transport/frame.ts';
import { CLAIM_DIR } from '../transport/paths.ts';
import { NodeFile, fsErrno } from './client.ts';
import {
  argLayout, decodeAnswer, encodeCall, fieldValue, formatArguments, formatPointerData, formatValue, parseHex, parseWord,
  UsageError, type Decoded, type EncodeContext, type Word,
} from './codec.ts';
import { renderDecoded } from './render.ts';
import { evaluate, formatNumber, hex, parseNumber, quoteWord, splitTop, splitWords } from './values.ts';

/** One transcript entry: the request as words, the response as words, and the text a `cat` read. */
export interface Entry {
  request: string;
  response: string;
  body?: string[];
}

export interface ShellFile {
  name: string;
  /** Path relative to the mount. */
  path: string;
  node: NodeFile;
  kind?: FileKind;
  handle?: number;
}

/** What a statement left behind, for `$variables`, `show` and expectations. */
export interface Remembered {
  result: bigint;
  /** The argument struct after the call (empty for calls without one). */
  fields: Record<string, Value | Value[]>;
  /** Other words of the response: out, data, le, new, kind. */
  extras: Map<string, string | bigint>;
  decoded?: Decoded;
  file?: string;
}

export interface SessionOptions {
  mount: string;
  /** Where results go (the shell prints them; replay and tcefs ioctl keep quiet). */
  print?: (line: string) => void;
  /** Called with every entry, in order, as it completes. */
  record?: (e: Entry) => Promise<void> | void;
  /** False for one-shot use (tcefs ioctl): no other file is open, so `@NAME` cannot name one. */
  handles?: boolean;
}

export interface LineOutcome {
  /** False when the line failed: a usage error, or a result its expectation (or, without one, success) did not allow. */
  ok: boolean;
  message?: string;
  /** Not ok only because a call failed on a line that expected nothing (a typed session already shows it). */
  failedCall?: boolean;
  /** The line's own entry, if it made a request. */
  entry?: Entry;
}

export const COMMANDS = ['open', 'close', 'cat', 'files', 'show', 'echo', 'help'] as const;
/** What a file name may be followed by besides ioctl names. */
export const FILE_VERBS = ['handle', 'read', 'write'] as const;

const NAME_RE = /^[A-Za-z_]\w*$/;

/** Kind of a node from where it lives in the tree (docs/protocol.md, Files and streams). */
export function kindOfPath(rel: string): FileKind | undefined {
  if (rel === 'dev/iommu') return 'iommufd';
  if (rel === 'dev/vfio/vfio') return 'container';
  if (/^dev\/vfio\/\d+$/.test(rel)) return 'group';
  if (/^dev\/vfio\/devices\/vfio\d+$/.test(rel)) return 'device';
  return undefined;
}

/** The kind of the file an fd-returning ioctl creates. */
const NEW_FILE_KIND: Record<string, FileKind> = { VFIO_GROUP_GET_DEVICE_FD: 'device', IOMMU_FAULT_QUEUE_ALLOC: 'fault', IOMMU_VEVENTQ_ALLOC: 'veventq' };

const KIND_BY_CODE = new Map(Object.entries(FILE_KIND_BIT).map(([k, v]) => [v, k as FileKind]));

/**
 * A node path as people give it: relative to the mount, or absolute. An absolute path inside the mount is
 * taken as it is; any other absolute path is read as if the mount were / (so /dev/iommu works).
 */
export function resolveNode(mount: string, node: string): { abs: string; rel: string } {
  const root = resolve(mount);
  let abs = isAbsolute(node) ? resolve(node) : resolve(root, node);
  if (isAbsolute(node) && abs !== root && !abs.startsWith(root + '/')) abs = join(root, node);
  const rel = relative(root, abs);
  if (rel.startsWith('..')) throw new UsageError(`${node} is outside the mount ${root}`);
  return { abs, rel };
}

function resultWord(r: bigint): string {
  return r < 0n ? errnoName(Number(-r)) : r.toString(10);
}

export class Session {
  readonly mount: string;
  readonly files = new Map<string, ShellFile>();
  readonly vars = new Map<string, Remembered>();
  private readonly print: (line: string) => void;
  private readonly record?: (e: Entry) => Promise<void> | void;
  private autoNames = 0;

  constructor(opts: SessionOptions) {
    this.mount = resolve(opts.mount);
    this.print = opts.print ?? (() => undefined);
    this.record = opts.record;
    if (opts.handles === false) this.encodeContext = { variable: this.variable };
  }

  private handleName = (h: number) => [...this.files.values()].find((f) => f.handle === h)?.name;

  private async entry(e: Entry): Promise<Entry> {
    await this.record?.(e);
    return e;
  }

  private file(name: string): ShellFile {
    const f = this.files.get(name);
    if (!f) throw new UsageError(`no open file named ${name} (open ${name} PATH first)`);
    return f;
  }

  private checkNewName(name: string) {
    if (!NAME_RE.test(name) || (COMMANDS as readonly string[]).includes(name)) throw new UsageError(`"${name}" cannot name a file (letters, digits, _; not a command)`);
    if (this.files.has(name)) throw new UsageError(`${name} is already open (close ${name} first)`);
  }

  // ---- the operations; each makes one entry ----

  async open(name: string, path: string): Promise<{ entry: Entry; result: bigint }> {
    this.checkNewName(name);
    const { abs, rel } = resolveNode(this.mount, path);
    let result = 0n;
    try {
      this.files.set(name, { name, path: rel, node: await NodeFile.open(abs), kind: kindOfPath(rel) });
    } catch (e) {
      result = -BigInt(errnoByName(fsErrno(e)) ?? 5);
    }
    return { entry: await this.entry({ request: `open ${name} ${quoteWord(rel)}`, response: resultWord(result) }), result };
  }

  async close(name: string): Promise<{ entry: Entry; result: bigint }> {
    const f = this.file(name);
    this.files.delete(name);
    let result = 0n;
    await f.node.close().catch((e) => (result = -BigInt(errnoByName(fsErrno(e)) ?? 5)));
    return { entry: await this.entry({ request: `close ${name}`, response: resultWord(result) }), result };
  }

  /** TCEFS_OP_HANDLE: the file's handle, for fd-valued fields of calls on other files. */
  async handle(name: string): Promise<{ entry: Entry; result: bigint }> {
    const f = this.file(name);
    const [a] = await f.node.exchange([{ op: Op.HANDLE }]);
    let response = resultWord(a.result);
    if (a.result > 0n) {
      f.handle = Number(a.result);
      f.kind = KIND_BY_CODE.get(a.handleField) ?? f.kind;
      response = `@${name} kind=${f.kind ?? a.handleField}`;
    }
    return { entry: await this.entry({ request: `${name} handle`, response }), result: a.result };
  }

  /** Make sure the files named by `@name` in these words have known handles (asking for them if not). */
  private async handlesFor(words: Word[]) {
    for (const w of words) {
      for (const m of w.value.matchAll(/@(\w+)/g)) {
        const f = this.files.get(m[1]);
        if (f && f.handle === undefined) {
          const { entry } = await this.handle(f.name);
          this.print(`${entry.response}  # handle of ${f.name}`);
        }
      }
    }
  }

  private variable = (ref: string): bigint | undefined => {
    const [name, ...rest] = ref.split('.');
    const r = this.vars.get(name);
    if (!r) return undefined;
    if (rest.length === 0) return r.result;
    const key = rest.join('.');
    if (key === 'result') return r.result;
    const v = r.fields[key] ?? r.extras.get(key);
    return typeof v === 'bigint' || typeof v === 'number' ? BigInt(v) : undefined;
  };

  private encodeContext: EncodeContext = {
    variable: this.variable,
    handle: (name: string) => {
      const f = this.file(name);
      if (f.handle === undefined) throw new UsageError(`the handle of ${name} is not known`);
      return f.handle;
    },
  };

  /** Run an ioctl by name on an open file. `newName` names the file an fd-returning ioctl creates. */
  async call(fileName: string, ioctlName: string, words: Word[], newName?: string): Promise<{ entry: Entry; remembered: Remembered }> {
    const f = this.file(fileName);
    const decl = this.resolveIoctl(ioctlName);
    await this.handlesFor(words);
    const call = encodeCall(decl, words, this.encodeContext);
    if (decl.returnsFd) {
      newName ??= this.autoName();
      this.checkNewName(newName);
    } else if (newName) throw new UsageError(`${decl.name} returns no file to name ${newName}`);
    const request = `${newName ? `${newName} = ` : ''}${fileName} ${decl.name}${formatArguments(call, this.handleName).map((w) => ' ' + w).join('')}`;
    const [a] = await f.node.exchange([{ op: Op.IOCTL, request: call.request, arg: call.arg, argData: call.argData, blobs: call.blobs }]);
    const d = decodeAnswer(call, a);
    const extras = new Map<string, string | bigint>([['out', BigInt(d.outLen)]]);
    if (d.newHandle && newName) {
      const claim = await this.claim(newName, d.newHandle, NEW_FILE_KIND[decl.name]);
      extras.set('new', claim);
    }
    const remembered: Remembered = { result: d.result, fields: d.fields, extras, decoded: d, file: fileName };
    return { entry: await this.entry({ request, response: this.responseWords(d, extras) }), remembered };
  }

  /** Open the file an ioctl created (docs/protocol.md, New files); it becomes an open file like any other. */
  private async claim(name: string, handle: number, kind?: FileKind): Promise<string> {
    const rel = join(CLAIM_DIR, handle.toString(16)).slice(1);
    try {
      this.files.set(name, { name, path: rel, node: await NodeFile.open(join(this.mount, rel)), kind, handle });
      return `@${name}`;
    } catch (e) {
      return `claim-failed:${fsErrno(e)}`;
    }
  }

  private autoName(): string {
    let n: string;
    do n = `fd${++this.autoNames}`;
    while (this.files.has(n));
    return n;
  }

  private resolveIoctl(name: string): IoctlDecl {
    try {
      return ioctl(name);
    } catch {
      const near = IOCTLS.filter((d) => d.name.includes(name.toUpperCase())).map((d) => d.name);
      throw new UsageError(`unknown ioctl ${name}${near.length ? ` (did you mean ${near.slice(0, 4).join(', ')}?)` : ''}`);
    }
  }

  private responseWords(d: Decoded, extras: Map<string, string | bigint>): string {
    const { decl, layout } = d.call;
    const words = [resultWord(d.result)];
    if (d.outLen) words.push(`out=${d.outLen}`);
    for (const name of d.changed) words.push(`${name}=${formatValue(decl, layout, name, d.fields[name], this.handleName)}`);
    for (const [field, data] of d.outData) words.push(`${field}=${layout ? formatPointerData(layout, field, data) : `hex:${data.toString('hex')}`}`);
    if (d.extra) words.push(`extra=hex:${d.extra.toString('hex')}`);
    if (extras.has('new')) words.push(`new=${extras.get('new')}`);
    return words.join(' ');
  }

  /** `R:OFFSET` (region index or name, as vfio-pci places region R at R << 40) or a plain offset. */
  private regionOffset(text: string): bigint {
    const colon = text.indexOf(':');
    const resolveTerm = (t: string) => this.term(t);
    if (colon < 0) return this.evaluate(text, resolveTerm);
    const names = namedValues(FIELD_VALUES.get(`${vfio_region_info.name}.index`)!);
    const r = text.slice(0, colon);
    const index = names.find((n) => n.short.toUpperCase() === r.toUpperCase())?.value ?? this.evaluate(r, resolveTerm);
    return (BigInt(index) << 40n) + this.evaluate(text.slice(colon + 1), resolveTerm);
  }

  private term(t: string): bigint | undefined {
    if (!t.startsWith('$')) return undefined;
    const v = this.variable(t.slice(1));
    if (v === undefined) throw new UsageError(`${t} is not set`);
    return v;
  }

  private evaluate(text: string, r: (t: string) => bigint | undefined): bigint {
    try {
      return evaluate(text, r);
    } catch (e) {
      if (e instanceof SyntaxError) throw new UsageError(`${text}: ${e.message}`);
      throw e;
    }
  }

  /** TCEFS_OP_REGION_READ: pread() of device region space. */
  async read(name: string, offsetText: string, lengthText: string): Promise<{ entry: Entry; remembered: Remembered }> {
    const f = this.file(name);
    const offset = this.regionOffset(offsetText);
    const length = Number(this.evaluate(lengthText, (t) => this.term(t)));
    const [a] = await f.node.exchange([{ op: Op.REGION_READ, request: length, arg: offset }]);
    const data = a.blobs[0]?.data ?? Buffer.alloc(0);
    const extras = new Map<string, string | bigint>();
    const words = [resultWord(a.result)];
    if (a.result >= 0n) {
      extras.set('data', `hex:${data.toString('hex')}`);
      words.push(`data=hex:${data.toString('hex')}`);
      // Register-sized reads are also shown as the little-endian value a driver would see.
      if ([1, 2, 4, 8].includes(data.length)) {
        const le = BigInt('0x' + Buffer.from(data).reverse().toString('hex'));
        extras.set('le', le);
        words.push(`le=${hex(le)}`);
      }
    }
    const entry = await this.entry({ request: `${name} read ${hex(offset)} ${length}`, response: words.join(' ') });
    return { entry, remembered: { result: a.result, fields: {}, extras, file: name } };
  }

  /** TCEFS_OP_REGION_WRITE: pwrite() of device region space. */
  async write(name: string, offsetText: string, dataText: string): Promise<{ entry: Entry; remembered: Remembered }> {
    const f = this.file(name);
    const offset = this.regionOffset(offsetText);
    const data = dataText.startsWith('hex:') ? parseHex(dataText) : (() => { throw new UsageError('write OFFSET hex:BYTES'); })();
    const [a] = await f.node.exchange([{ op: Op.REGION_WRITE, arg: offset, argData: data }]);
    const entry = await this.entry({ request: `${name} write ${hex(offset)} hex:${data.toString('hex')}`, response: resultWord(a.result) });
    return { entry, remembered: { result: a.result, fields: {}, extras: new Map(), file: name } };
  }

  /** Read a text file of the mount (the state views); its lines are part of the entry. */
  async cat(path: string): Promise<{ entry: Entry; result: bigint }> {
    const { abs, rel } = resolveNode(this.mount, path);
    let result = 0n;
    let body: string[] = [];
    try {
      // The views name memory owners by pid, which is new on every run; the session's own is written
      // pid:SELF so that a transcript replays from another process.
      const text = (await readFile(abs, 'utf8')).replace(new RegExp(`\\bpid:${process.pid}\\b`, 'g'), 'pid:SELF');
      body = text.split('\n');
      if (body[body.length - 1] === '') body.pop();
    } catch (e) {
      result = -BigInt(errnoByName(fsErrno(e)) ?? 5);
    }
    return { entry: await this.entry({ request: `cat ${quoteWord(rel)}`, response: resultWord(result), body }), result };
  }

  async closeAll(): Promise<void> {
    for (const name of [...this.files.keys()].reverse()) {
      const f = this.files.get(name)!;
      this.files.delete(name);
      await f.node.close().catch(() => undefined);
    }
  }

  // ---- lines ----

  /** Run one line of the shell language; prints what it shows and checks its expectation. */
  async runLine(line: string): Promise<LineOutcome> {
    try {
      return await this.statement(line);
    } catch (e) {
      if (e instanceof UsageError || e instanceof SyntaxError) return { ok: false, message: e.message };
      const code = (e as NodeJS.ErrnoException).code;
      if (code) return { ok: false, message: `${code}: ${(e as Error).message}` };
      throw e;
    }
  }

  private async statement(line: string): Promise<LineOutcome> {
    const all = splitWords(line);
    if (all.length === 0) return { ok: true };
    const arrow = all.indexOf('=>');
    const words = arrow < 0 ? all : all.slice(0, arrow);
    const expect = arrow < 0 ? undefined : all.slice(arrow + 1);
    if (expect && expect.length === 0) throw new UsageError('=> needs the expected result (0, a number or an errno name)');

    let target: string | undefined;
    let rest = words;
    if (words[1] === '=') {
      target = words[0];
      rest = words.slice(2);
      if (rest.length === 0) throw new UsageError(`nothing to assign to ${target}`);
    }
    const [cmd, ...args] = rest;

    if (target?.startsWith('$') && !(this.files.has(cmd) && args.length > 0)) {
      // `$x = 0x1000+64K`: a plain value.
      const name = target.slice(1);
      if (!NAME_RE.test(name)) throw new UsageError(`${target} is not a variable name`);
      const v = this.evaluate(rest.join(''), (t) => this.term(t) ?? this.constant(t));
      this.vars.set(name, { result: v, fields: {}, extras: new Map() });
      this.print(formatNumber(v));
      return { ok: true };
    }

    let entry: Entry | undefined;
    let r: Remembered | undefined;
    const simple = async (p: Promise<{ entry: Entry; result: bigint }>) => {
      const x = await p;
      entry = x.entry;
      r = { result: x.result, fields: {}, extras: new Map() };
    };
    switch (cmd) {
      case 'open':
        if (args.length !== 2) throw new UsageError('open NAME PATH');
        await simple(this.open(args[0], args[1]));
        break;
      case 'close':
        if (args.length !== 1) throw new UsageError('close NAME');
        await simple(this.close(args[0]));
        break;
      case 'cat':
        if (args.length !== 1) throw new UsageError('cat PATH');
        await simple(this.cat(args[0]));
        break;
      case 'files':
        for (const f of this.files.values()) this.print(`${f.name}  ${f.path}  ${f.kind ?? '?'}${f.handle ? `  handle ${hex(f.handle)}` : ''}`);
        return { ok: true };
      case 'echo':
        this.print(args.map((a) => (a.startsWith('$') ? formatNumber(this.evaluate(a, (t) => this.term(t))) : a)).join(' '));
        return { ok: true };
      case 'show': {
        const v = this.vars.get((args[0] ?? '$_').replace(/^\$/, ''));
        if (!v) throw new UsageError(`${args[0] ?? '$_'} is not set`);
        this.print(v.decoded ? renderDecoded(v.decoded, this.handleName, v.file && this.files.get(v.file)?.path).trimEnd() : formatNumber(v.result));
        return { ok: true };
      }
      case 'help':
        this.print(helpText(args[0]).trimEnd());
        return { ok: true };
      default: {
        if (cmd === undefined) throw new UsageError('nothing to run');
        if (!this.files.has(cmd)) throw new UsageError(`${cmd}: not a command or an open file (try help)`);
        const [verb, ...params] = args;
        if (verb === undefined) throw new UsageError(`${cmd} what? (an ioctl name, handle, read or write)`);
        const newName = target && !target.startsWith('$') ? target : undefined;
        if (verb === 'handle') await simple(this.handle(cmd));
        else if (verb === 'read' || verb === 'write') {
          if (params.length !== 2) throw new UsageError(`${cmd} ${verb} OFFSET ${verb === 'read' ? 'LENGTH' : 'hex:BYTES'}`);
          const x = verb === 'read' ? await this.read(cmd, params[0], params[1]) : await this.write(cmd, params[0], params[1]);
          entry = x.entry;
          r = x.remembered;
        } else {
          const x = await this.call(cmd, verb, params.map(parseWord), newName);
          entry = x.entry;
          r = x.remembered;
        }
      }
    }
    if (target?.startsWith('$')) this.vars.set(target.slice(1), r!);
    this.vars.set('_', r!);
    this.print(entry!.response);
    for (const b of entry!.body ?? []) this.print(b);
    if (!expect && r!.result < 0n) return { ok: false, message: `unexpected ${resultWord(r!.result)}`, failedCall: true, entry };
    const problem = expect && this.check(r!, expect);
    return problem ? { ok: false, message: problem, entry } : { ok: true, entry };
  }

  private constant(t: string): bigint | undefined {
    return t in ALL_CONSTANTS ? BigInt(ALL_CONSTANTS[t]) : undefined;
  }

  /** Check a result against `=> RESULT [field=value ...]`; a message when it does not match. */
  private check(r: Remembered, expect: string[]): string | undefined {
    const [want, ...fields] = expect;
    const got = resultWord(r.result);
    const wantNum = parseNumber(want);
    if (wantNum === undefined && errnoByName(want) === undefined) return `=> ${want}: not a number or an errno name`;
    if (wantNum !== undefined ? r.result !== wantNum : got !== want) return `expected ${want}, got ${got}`;
    const decl = r.decoded?.call.decl;
    const layout = r.decoded?.call.layout;
    for (const w of fields.map(parseWord)) {
      if (!w.key) return `=> ${w.value}: expected field=value`;
      const data = r.decoded?.outData.get(w.key);
      if (data && layout) {
        const actual = formatPointerData(layout, w.key, data);
        if (actual !== w.value.replace(/\s/g, '')) return `expected ${w.key}=${w.value}, got ${actual}`;
        continue;
      }
      const actual = r.fields[w.key] ?? r.extras.get(w.key);
      if (actual === undefined) return `=> ${w.key}: the result has no such field`;
      if (typeof actual === 'string') {
        if (actual !== w.value) return `expected ${w.key}=${w.value}, got ${actual}`;
        continue;
      }
      const show = decl ? formatValue(decl, layout, w.key, actual, this.handleName) : formatNumber(BigInt(actual as Value));
      if (Array.isArray(actual)) {
        const want = splitTop(w.value.replace(/^\[|\]$/g, ''), ',').map((t) => (decl ? fieldValue(decl, layout, w.key!, t, this.encodeContext) : this.evaluate(t, (x) => this.term(x))));
        if (want.length !== actual.length || want.some((x, i) => x !== BigInt(actual[i]))) return `expected ${w.key}=${w.value}, got ${show}`;
        continue;
      }
      const wantV = decl ? fieldValue(decl, layout, w.key, w.value, this.encodeContext) : this.evaluate(w.value, (x) => this.term(x));
      if (wantV !== BigInt(actual)) return `expected ${w.key}=${w.value}, got ${show}`;
    }
    return undefined;
  }
}

export function helpText(topic?: string): string {
  if (topic && topic !== 'help') {
    let decl: IoctlDecl | undefined;
    try {
      decl = ioctl(topic);
    } catch {
      return `no help for ${topic}: not an ioctl name (help alone lists the commands)\n`;
    }
    const layout = argLayout(decl);
    const lines = [`${decl.name}  nr 0x${decl.nr.toString(16)}  on ${decl.kinds.join(', ') || 'no tcefs file'}  argument: ${decl.arg}${layout ? ` (struct ${layout.name}, ${layout.size} bytes)` : ''}`];
    if (decl.arg === 'value') lines.push('  arg=N   the integer argument (also bare)');
    if (decl.arg === 'string') lines.push('  name=S  the string (also bare; quote it if it has blanks)');
    if (layout) {
      for (const f of layout.fields) {
        if (typeof f.type !== 'string' || f.count === 0) continue;
        const notes: string[] = [];
        const names = FIELD_VALUES.get(`${layout.name}.${f.name}`);
        if (names) notes.push(`${names.kind}: ${namedValues(names).map((n) => n.short).join(' ')}`);
        const p = decl.pointers?.find((x) => x.field === f.name);
        if (p) notes.push(p.dir === 'in' ? 'pointer to data you give: [..]' : `pointer the kernel writes through (sized by ${p.count ?? p.lengthField ?? `${p.bytes} bytes`})`);
        if (decl.fdFields?.includes(f.name) || decl.arg === 'fdptr') notes.push('a file: @NAME, NONE, FOREIGN or a number');
        lines.push(`  ${f.name.padEnd(28)} ${`${f.type}${f.count > 1 ? `[${f.count}]` : ''}`.padEnd(8)} ${notes.join('; ')}`.trimEnd());
      }
    }
    const argNames = ARG_VALUES.get(decl.name);
    if (argNames) lines.push(`  values: ${namedValues(argNames).map((n) => n.name).join(' ')}`);
    return lines.join('\n') + '\n';
  }
  return `commands:
  open NAME PATH                 open a node (dev/iommu, dev/vfio/vfio, dev/vfio/1) and keep it as NAME
  NAME IOCTL [field=value ...]   run an ioctl on it (help IOCTL lists its fields)
  NAME handle                    ask for its handle (done for you when a field says @NAME)
  NAME read OFFSET LENGTH        read device region space; OFFSET is a number or REGION:OFFSET (config:0)
  NAME write OFFSET hex:BYTES    write device region space
  close NAME                     close it (the daemon releases what it owned)
  cat PATH                       print a file of the mount (sys/kernel/debug/tcefs/groups/1/tce)
  files                          list open files
  $x = NAME IOCTL ...            remember the result: $x is the result, $x.field a field, $x.out the copy-back length
  $x = VALUE                     remember a value
  D = NAME IOCTL ...             name the file an fd-returning ioctl creates (VFIO_GROUP_GET_DEVICE_FD)
  show [$x]                      the full decoded struct of a result ($_ is the last one)
  echo WORDS                     print words, $variables expanded
  help [IOCTL]                   this, or an ioctl's fields and the names they take
  ... => RESULT [field=value]    expect a result: 0, a number or an errno name, and optionally fields
values: 42  0x1000  64K  4G  a+b  READ|WRITE (a field's named values)  $x.field  @NAME (a file's handle)
lists (data behind in-pointers): allowed_iovas=[0x1000-0x1fff,0x4000-0x7fff]; bytes: hex:0011ff
# starts a comment.
`;
}
