// Tab completion for the shell, as a pure function of the line and what the session knows, so that it
// can be tested without a terminal. Returns what node:readline's completer returns: the candidates for
// the word under the cursor, and that word.
import { errnoName } from '../errno.ts';
import { IOCTLS, ioctl, type FileKind, type IoctlDecl } from '../uapi/ioctls.ts';
import { namedValues } from '../uapi/field-names.ts';
import { argLayout, argumentKeys, bareKey, valueNames } from './codec.ts';
import { COMMANDS, FILE_VERBS } from './session.ts';

export interface CompletionState {
  /** Open files and their kinds (undefined if not known). */
  files: ReadonlyMap<string, FileKind | undefined>;
  /** Remembered variables and the fields each has. */
  vars: ReadonlyMap<string, readonly string[]>;
  /** Paths under the mount worth offering to open and cat. */
  paths: readonly string[];
}

/** errno names the kernel returns, for `=> E...`. */
const ERRNOS = [...new Set(Array.from({ length: 134 }, (_, i) => errnoName(i + 1)).filter((n) => !n.startsWith('E#')))].sort();

function ioctlsFor(kind: FileKind | undefined): string[] {
  return IOCTLS.filter((d) => !kind || d.kinds.includes(kind)).map((d) => d.name);
}

function decl(name: string): IoctlDecl | undefined {
  try {
    return ioctl(name);
  } catch {
    return undefined;
  }
}

const pick = (words: readonly string[], prefix: string) => words.filter((w) => w.startsWith(prefix)).sort();

function variables(state: CompletionState, prefix: string): string[] {
  const out: string[] = [];
  for (const [name, fields] of state.vars) {
    out.push(`$${name}`);
    for (const f of ['result', ...fields]) out.push(`$${name}.${f}`);
  }
  return pick(out, prefix);
}

/** Values for `field=` after `=` (and after each `|` of a flags value). */
function values(d: IoctlDecl, field: string, state: CompletionState, typed: string): string[] {
  const bar = typed.lastIndexOf('|');
  const head = typed.slice(0, bar + 1);
  const tail = typed.slice(bar + 1);
  if (tail.startsWith('$')) return variables(state, tail).map((v) => head + v);
  const layout = argLayout(d);
  const names = valueNames(layout, field, d);
  const have = new Set(head.split('|'));
  const out = names ? namedValues(names).map((n) => n.short).filter((n) => !have.has(n)) : [];
  if (d.arg === 'fdptr' || d.fdFields?.includes(field)) out.push(...[...state.files.keys()].map((f) => `@${f}`), 'NONE', 'FOREIGN');
  return pick(out, tail).map((v) => head + v);
}

/**
 * Candidates for the word under the cursor. A candidate that is a whole word ends with a blank, so that
 * accepting it moves on to the next word; `field=` and flag names, which are usually continued, do not.
 */
export function complete(line: string, state: CompletionState): [string[], string] {
  const [candidates, word, open] = candidatesFor(line, state);
  return [open ? candidates : candidates.map((c) => (c.endsWith('=') ? c : c + ' ')), word];
}

/** Candidates, the word, and whether the word usually goes on (a flags value: READ|WRITE). */
function candidatesFor(line: string, state: CompletionState): [string[], string, boolean?] {
  const words = line.split(/\s+/).filter((w, i, all) => w !== '' || i === all.length - 1);
  if (words.length === 0) words.push('');
  const current = words[words.length - 1];
  let before = words.slice(0, -1);
  // `NAME = ...` and `$x = ...` complete like what follows the `=`.
  if (before[1] === '=') before = before.slice(2);
  const files = [...state.files.keys()];

  const arrow = before.indexOf('=>');
  if (arrow >= 0) {
    if (before.length === arrow + 1) return [pick(['0', ...ERRNOS], current), current];
    before = before.slice(0, arrow);
  }

  if (before.length === 0) {
    if (current.startsWith('$')) return [variables(state, current), current];
    return [pick([...COMMANDS, ...files], current), current];
  }
  const [cmd] = before;
  switch (cmd) {
    case 'open':
      return [before.length === 2 ? pick(state.paths.filter((p) => p.startsWith('dev/')), current) : [], current];
    case 'cat':
      return [before.length === 1 ? pick(state.paths, current) : [], current];
    case 'close':
      return [before.length === 1 ? pick(files, current) : [], current];
    case 'show':
      return [variables(state, current), current];
    case 'help':
      return [pick(IOCTLS.map((d) => d.name), current), current];
  }
  if (!state.files.has(cmd)) return [[], current];
  const kind = state.files.get(cmd);
  if (before.length === 1) {
    const verbs = kind === 'device' || kind === undefined ? [...FILE_VERBS] : ['handle'];
    // Case-insensitive on what was typed, since ioctl names are long and upper case.
    const all = [...ioctlsFor(kind), ...verbs];
    return [all.filter((n) => n.toUpperCase().startsWith(current.toUpperCase())).sort(), current];
  }
  const d = decl(before[1]);
  if (!d) return [[], current];
  const eq = current.indexOf('=');
  if (eq >= 0) {
    const field = current.slice(0, eq);
    const flags = valueNames(argLayout(d), field, d)?.kind === 'flags';
    return [values(d, field, state, current.slice(eq + 1)).map((v) => `${field}=${v}`), current, flags];
  }
  if (current.startsWith('$')) return [variables(state, current), current];
  const used = new Set(before.slice(2).map((w) => w.split('=')[0]));
  const keys = argumentKeys(d).filter((k) => !used.has(k)).map((k) => `${k}=`);
  // A bare value may stand alone for the one-value arguments, so offer its names too.
  const bare = bareKey(d) && before.length === 2 ? values(d, bareKey(d)!, state, current) : [];
  return [[...pick(keys, current), ...bare], current];
}
