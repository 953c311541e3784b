// The typed syntax of values, shared by `tcefs ioctl`, the shell, expectations and transcripts: numbers
// (decimal, 0x-hex, sizes such as 64K or 4G, `_` separators), sums (`$w.start_addr+64K`), ORs of flags,
// and a line split into words that keeps quoted strings and bracketed lists whole.

const SIZE_SHIFT: Record<string, bigint> = { k: 10n, m: 20n, g: 30n, t: 40n, p: 50n, e: 60n };

/** A number as people type it, or undefined if the text is not one. Sizes are binary (4K = 4096). */
export function parseNumber(text: string): bigint | undefined {
  const m = /^(-)?(0x[0-9a-f_]+|0b[01_]+|[0-9][0-9_]*)([kmgtpe](?:i?b)?)?$/i.exec(text.trim());
  if (!m || m[2].endsWith('_')) return undefined;
  let v = BigInt(m[2].replaceAll('_', ''));
  if (m[3]) v <<= SIZE_SHIFT[m[3][0].toLowerCase()];
  return m[1] ? -v : v;
}

/** Small numbers in decimal (ids, shifts, counts), larger ones in hex (addresses, sizes, masks). */
export function formatNumber(v: bigint | number): string {
  const b = BigInt(v);
  if (b < 0n) return b.toString(10);
  return b < 4096n ? b.toString(10) : `0x${b.toString(16)}`;
}

/** A size as people say it, when the number is an exact multiple of 1K (4G, 64K), else undefined. */
export function formatSize(v: bigint | number): string | undefined {
  const b = BigInt(v);
  if (b < 1024n) return undefined;
  // Only round sizes: 2G and 64K say something, 1050692K (a bitmask that happens to divide) does not.
  for (const [unit, shift] of Object.entries(SIZE_SHIFT).reverse()) {
    if (b >= 1n << shift && b % (1n << shift) === 0n) return b >> shift < 1024n ? `${b >> shift}${unit.toUpperCase()}` : undefined;
  }
  return undefined;
}

export function hex(v: bigint | number): string {
  const b = BigInt(v);
  return b < 0n ? `-0x${(-b).toString(16)}` : `0x${b.toString(16)}`;
}

/**
 * Split a line into words at blanks. "double quotes" keep blanks (and are removed), [brackets] and
 * {braces} keep everything up to their match, and `#` at the start of a word begins a comment.
 */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"' && depth === 0) {
      const close = line.indexOf('"', i + 1);
      if (close < 0) throw new SyntaxError('unterminated "');
      cur += line.slice(i + 1, close);
      inWord = true;
      i = close;
    } else if (c === '[' || c === '{') {
      depth++;
      cur += c;
      inWord = true;
    } else if ((c === ']' || c === '}') && depth > 0) {
      depth--;
      cur += c;
    } else if (/\s/.test(c) && depth === 0) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else if (c === '#' && !inWord && depth === 0) {
      break;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (depth > 0) throw new SyntaxError('unterminated [ or {');
  if (inWord) words.push(cur);
  return words;
}

/** Split at a separator outside brackets: list items at `,`, flag terms at `|`. */
export function splitTop(text: string, sep: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth--;
    else if (c === sep && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/** Resolves the words of an expression that are not numbers: constant names, `$variables`. */
export type TermResolver = (term: string) => bigint | undefined;

/**
 * Evaluate `a|b|c` where each part is `x+y+...` and each term a number or something `resolve` knows.
 * Only `+` and `|`: a `-` would be ambiguous with ranges (`0x1000-0x1fff`) and negative numbers.
 */
export function evaluate(text: string, resolve: TermResolver): bigint {
  if (text === '') throw new SyntaxError('empty value');
  let acc = 0n;
  for (const part of text.split('|')) {
    let sum = 0n;
    for (const term of part.split('+')) {
      const t = term.trim();
      const v = parseNumber(t) ?? resolve(t);
      if (v === undefined) throw new SyntaxError(`"${t}" is not a number or a known name`);
      sum += v;
    }
    acc |= sum;
  }
  return acc;
}

/** Shell-safe rendering of a string value for a command line (quoted when it holds blanks). */
export function quoteWord(s: string): string {
  return /[\s#"[\]{}]/.test(s) || s === '' ? `"${s}"` : s;
}
