// Measure a kernel's <linux/iommufd.h> and <linux/vfio.h> with gcc against the ABI fixture.
//
//   node --import tsx scripts/uapi-headers.ts [--headers DIR] [--write FILE]
//
// DIR holds linux/iommufd.h and linux/vfio.h (an include/uapi directory). Without it, the headers of
// Debian's linux-source-7.3 are fetched with scripts/debian-fetch.sh. Every struct, field, ioctl and
// constant of test/fixtures/linux-uapi-layouts.json is measured again (sizeof, offsetof, values) and
// compared; what the headers have beyond the fixture is measured too and, with --write, written as an
// additions file (test/fixtures/linux-7.3-uapi-additions.json was made this way). Exit 1 on a mismatch.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIXTURE = join(ROOT, 'test/fixtures/linux-uapi-layouts.json');
const HEADERS = ['linux/iommufd.h', 'linux/vfio.h'];

interface MeasuredField { name: string; offset: number; size: number }
interface MeasuredStruct { size: number; align: number; fields: MeasuredField[] }

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

const work = mkdtempSync(join(tmpdir(), 'tcefs-uapi-'));
let source: Record<string, unknown>;
try {
  let dir = opt('--headers');
  if (dir) source = { headers: dir };
  else {
    const pkg = execFileSync(join(ROOT, 'scripts/debian-fetch.sh'), ['-a', 'all', '-s', 'trixie-backports', 'linux-source-7.3'], { encoding: 'utf8' }).trim();
    const version = readFileSync(join(pkg, '.done'), 'utf8').trim();
    const tarball = join(pkg, 'usr/src/linux-source-7.3.tar.xz');
    execFileSync('tar', ['-xJf', tarball, '-C', work, ...HEADERS.map((h) => `linux-source-7.3/include/uapi/${h}`)]);
    dir = join(work, 'linux-source-7.3/include/uapi');
    source = { package: 'linux-source-7.3', suite: 'trixie-backports', deb: version, path: 'include/uapi' };
  }
  const files: Record<string, { sha256: string; chars: number }> = {};
  const text = HEADERS.map((h) => {
    const t = readFileSync(join(dir!, h), 'utf8');
    files[h] = { sha256: createHash('sha256').update(t).digest('hex'), chars: t.length };
    return t;
  }).join('\n');
  source.files = files;

  const fixture = JSON.parse(readFileSync(FIXTURE, 'utf8'));
  const structNames = [...text.matchAll(/^struct (\w+) \{/gm)].map((m) => m[1]);
  const ioctlNames = [...text.matchAll(/^#define (\w+)\s+_IO\w*\(/gm)].map((m) => m[1]);
  const enumerators = [...text.matchAll(/^\s+([A-Z_][A-Za-z0-9_]*)\s*(?:=[^,\n]*)?,?\s*(?:\/\*.*)?$/gm)].map((m) => m[1]);
  const defines = [...text.matchAll(/^#define ([A-Za-z_]\w*)[ \t]+([^\n]+)$/gm)]
    .filter((m) => !/["]|_IO\w*\(|__attribute__/.test(m[2]) && !m[1].startsWith('_'))
    .map((m) => m[1]);
  const newStructs = structNames.filter((n) => !fixture.structs[n]);
  const newIoctls = ioctlNames.filter((n) => !fixture.ioctls[n]);
  const known = new Set([...Object.keys(fixture.constants), ...Object.keys(fixture.ioctls), ...Object.keys(fixture.skipped_macros ?? {})]);
  const newConstants = [...new Set([...enumerators, ...defines])].filter((n) => !known.has(n) && !newIoctls.includes(n));

  // Field names of the new structs, from their bodies (plain members only: a union or nested body stops it).
  const newFields = new Map<string, { name: string; flex: boolean }[]>();
  for (const n of newStructs) {
    const body = new RegExp(`^struct ${n} \\{\\n([^}]*)\\n\\};`, 'm').exec(text)?.[1];
    if (!body) throw new Error(`cannot read the body of struct ${n}`);
    newFields.set(n, body.split('\n').map((l) => {
      const m = /^\s*(?:__\w+|struct \w+)(?:\s+__user)?\s*\*?\s*(\w+)(\[\d*\])?;/.exec(l);
      if (!m) throw new Error(`struct ${n}: cannot read member "${l.trim()}"`);
      return { name: m[1], flex: m[2] === '[]' };
    }));
  }

  const lines: string[] = [];
  const measureStruct = (n: string, fields: { name: string; flex: boolean }[]) => {
    lines.push(`printf("S %s %zu %zu\\n", "${n}", sizeof(struct ${n}), _Alignof(struct ${n}));`);
    for (const f of fields) {
      const size = f.flex ? '(size_t)0' : `sizeof(((struct ${n} *)0)->${f.name})`;
      lines.push(`printf("F %s %s %zu %zu\\n", "${n}", "${f.name}", offsetof(struct ${n}, ${f.name}), ${size});`);
    }
  };
  for (const [n, s] of Object.entries<MeasuredStruct>(fixture.structs)) measureStruct(n, s.fields.map((f) => ({ name: f.name, flex: f.size === 0 })));
  for (const n of newStructs) measureStruct(n, newFields.get(n)!);
  for (const n of [...Object.keys(fixture.ioctls), ...newIoctls]) lines.push(`printf("I %s %lu\\n", "${n}", (unsigned long)${n});`);
  for (const n of [...Object.keys(fixture.constants), ...newConstants]) lines.push(`printf("C %s %lld\\n", "${n}", (long long)(${n}));`);
  const prelude = ['#include <stdio.h>', '#include <stddef.h>', '#include <linux/types.h>', '#define __counted_by(m)', '#define __user',
    ...HEADERS.map((h) => `#include <${h}>`)];
  writeFileSync(join(work, 'measure.c'), `${prelude.join('\n')}\nint main(void)\n{\n${lines.join('\n')}\nreturn 0;\n}\n`);
  const inc = join(work, 'inc');
  mkdirSync(join(inc, 'linux'), { recursive: true });
  for (const h of HEADERS) writeFileSync(join(inc, h), readFileSync(join(dir!, h)));
  const command = ['gcc', '-std=gnu11', '-O0', '-Wall', `-I${inc}`, '-o', join(work, 'measure'), join(work, 'measure.c')];
  execFileSync(command[0], command.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
  const out = execFileSync(join(work, 'measure'), { encoding: 'utf8' });

  const structs: Record<string, MeasuredStruct> = {};
  const ioctls: Record<string, number> = {};
  const constants: Record<string, number> = {};
  for (const l of out.trim().split('\n')) {
    const [k, ...v] = l.split(' ');
    if (k === 'S') structs[v[0]] = { size: +v[1], align: +v[2], fields: [] };
    else if (k === 'F') structs[v[0]].fields.push({ name: v[1], offset: +v[2], size: +v[3] });
    else if (k === 'I') ioctls[v[0]] = +v[1];
    else constants[v[0]] = +v[1];
  }

  const problems: string[] = [];
  for (const [n, s] of Object.entries<MeasuredStruct>(fixture.structs)) {
    const m = structs[n];
    if (m.size !== s.size || m.align !== s.align) problems.push(`struct ${n}: ${m.size}/${m.align}, fixture ${s.size}/${s.align}`);
    s.fields.forEach((f, i) => {
      const g = m.fields[i];
      if (g.offset !== f.offset || g.size !== f.size) problems.push(`${n}.${f.name}: @${g.offset}/${g.size}, fixture @${f.offset}/${f.size}`);
    });
  }
  for (const [n, v] of Object.entries<{ value: number }>(fixture.ioctls)) if (ioctls[n] !== v.value) problems.push(`${n}: ${ioctls[n]}, fixture ${v.value}`);
  for (const [n, v] of Object.entries<number>(fixture.constants)) if (constants[n] !== v) problems.push(`${n}: ${constants[n]}, fixture ${v}`);

  const pick = <T>(all: Record<string, T>, names: string[]) => Object.fromEntries(names.map((n) => [n, all[n]]));
  const additions = {
    source,
    build: {
      gcc_version: execFileSync('gcc', ['-dumpfullversion'], { encoding: 'utf8' }).trim(),
      target: execFileSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).trim(),
      command: 'gcc -std=gnu11 -O0 -Wall -I<uapi-include-dir> measure.c (scripts/uapi-headers.ts)',
      method: 'sizeof/offsetof/_Alignof and ioctl/constant values printed by the compiled program; nothing hand-computed',
    },
    note: 'What these headers define beyond test/fixtures/linux-uapi-layouts.json; everything the fixture has was measured equal.',
    structs: pick(structs, newStructs),
    ioctls: Object.fromEntries(newIoctls.map((n) => [n, { value: ioctls[n], hex: `0x${ioctls[n].toString(16)}` }])),
    constants: pick(constants, newConstants),
  };
  const json = JSON.stringify(additions, null, 2) + '\n';
  const target = opt('--write');
  if (target) writeFileSync(target, json);
  else process.stdout.write(json);
  if (problems.length) {
    console.error(`${problems.length} differences from the fixture:\n  ${problems.join('\n  ')}`);
    process.exitCode = 1;
  } else console.error('every fixture struct, field, ioctl and constant measures the same');
} finally {
  rmSync(work, { recursive: true, force: true });
}
