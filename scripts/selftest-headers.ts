// Measure the kernel's drivers/iommu/iommufd/iommufd_test.h (the CONFIG_IOMMUFD_TEST uAPI) with gcc.
//
//   node --import tsx scripts/selftest-headers.ts [--source DIR] [--write FILE]
//
// DIR is an extracted kernel tree (it needs drivers/iommu/iommufd/iommufd_test.h and include/uapi/linux/
// iommufd.h). Without it, Debian's linux-source-7.3 is fetched with scripts/debian-fetch.sh. Every struct
// of the header is measured (sizeof, _Alignof, offsetof and sizeof of each member; the members of
// struct iommu_test_cmd's anonymous union also member by member, as `member.field`), with the value of
// IOMMU_TEST_CMD and of every enumerator and numeric #define. test/fixtures/linux-7.3-iommufd-test.json
// was written this way (--write); without --write the JSON goes to stdout.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TEST_H = 'drivers/iommu/iommufd/iommufd_test.h';
const UAPI = ['include/uapi/linux/iommufd.h'];

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

interface Member { name: string; flex: boolean; inner?: Member[] }

/** The members of a struct body: plain declarations, and `struct { ... } name;` blocks inside a union. */
function members(body: string): Member[] {
  const out: Member[] = [];
  const lines = body.split('\n').map((l) => l.replace(/\/\*.*?\*\//g, '').trim()).filter((l) => l && !l.startsWith('/*') && !l.startsWith('*') && !l.startsWith('#'));
  let inner: Member[] | undefined;
  for (const l of lines) {
    if (l === 'union {' || l === '};') continue;
    if (l === 'struct {') {
      inner = [];
      continue;
    }
    const close = /^\}\s*(\w+);$/.exec(l);
    if (close) {
      out.push({ name: close[1], flex: false, inner });
      inner = undefined;
      continue;
    }
    const m = /^(?:__\w+|struct \w+)\s+\*?(\w+)(\[\d*\])?;$/.exec(l);
    if (!m) throw new Error(`cannot read member "${l}"`);
    (inner ?? out).push({ name: m[1], flex: m[2] === '[]' });
  }
  return out;
}

const work = mkdtempSync(join(tmpdir(), 'tcefs-selftest-h-'));
try {
  let dir = opt('--source');
  let source: Record<string, unknown>;
  if (dir) source = { tree: dir };
  else {
    const pkg = execFileSync(join(ROOT, 'scripts/debian-fetch.sh'), ['-a', 'all', '-s', 'trixie-backports', 'linux-source-7.3'], { encoding: 'utf8' }).trim();
    const version = readFileSync(join(pkg, '.done'), 'utf8').trim();
    execFileSync('tar', ['-xJf', join(pkg, 'usr/src/linux-source-7.3.tar.xz'), '-C', work, ...[TEST_H, ...UAPI].map((f) => `linux-source-7.3/${f}`)]);
    dir = join(work, 'linux-source-7.3');
    source = { package: 'linux-source-7.3', suite: 'trixie-backports', deb: version };
  }
  const text = readFileSync(join(dir, TEST_H), 'utf8');
  source.files = { [TEST_H]: { sha256: createHash('sha256').update(text).digest('hex'), chars: text.length } };

  const structs = [...text.matchAll(/^struct (\w+) \{\n([\s\S]*?)\n\};/gm)].map((m) => ({ name: m[1], members: members(m[2]) }));
  const enumerators = [...text.matchAll(/^\s+([A-Z_][A-Za-z0-9_]*)\s*(?:=[^,\n]*)?,?\s*$/gm)].map((m) => m[1]);
  const defines = [...text.matchAll(/^#define ([A-Za-z_]\w*)[ \t]+([^\n]+)$/gm)]
    .filter((m) => !/_IO\w*\(|^_/.test(m[2]) && !m[1].startsWith('_') && m[1] !== 'IOMMU_TEST_CMD')
    .map((m) => m[1]);

  const lines: string[] = [];
  for (const s of structs) {
    lines.push(`printf("S %s %zu %zu\\n", "${s.name}", sizeof(struct ${s.name}), _Alignof(struct ${s.name}));`);
    const field = (path: string, flex: boolean) => {
      const size = flex ? '(size_t)0' : `sizeof(((struct ${s.name} *)0)->${path})`;
      lines.push(`printf("F %s %s %zu %zu\\n", "${s.name}", "${path}", offsetof(struct ${s.name}, ${path}), ${size});`);
    };
    for (const m of s.members) {
      field(m.name, m.flex);
      for (const i of m.inner ?? []) field(`${m.name}.${i.name}`, i.flex);
    }
  }
  lines.push('printf("I IOMMU_TEST_CMD %lu\\n", (unsigned long)IOMMU_TEST_CMD);');
  for (const n of [...new Set([...enumerators, ...defines])]) lines.push(`printf("C %s %lld\\n", "${n}", (long long)(${n}));`);
  const inc = join(work, 'inc');
  mkdirSync(join(inc, 'linux'), { recursive: true });
  for (const f of UAPI) writeFileSync(join(inc, 'linux', f.split('/').pop()!), readFileSync(join(dir, f)));
  writeFileSync(join(inc, 'iommufd_test.h'), text);
  const prelude = ['#include <stdio.h>', '#include <stddef.h>', '#include <linux/types.h>', '#define __counted_by(m)', '#define __user', '#include "iommufd_test.h"'];
  writeFileSync(join(work, 'measure.c'), `${prelude.join('\n')}\nint main(void)\n{\n${lines.join('\n')}\nreturn 0;\n}\n`);
  execFileSync('gcc', ['-std=gnu11', '-O0', '-Wall', `-I${inc}`, '-o', join(work, 'measure'), join(work, 'measure.c')], { stdio: ['ignore', 'ignore', 'inherit'] });
  const out = execFileSync(join(work, 'measure'), { encoding: 'utf8' });

  const measured: Record<string, { size: number; align: number; fields: { name: string; offset: number; size: number }[] }> = {};
  const ioctls: Record<string, { value: number; hex: string; struct: string }> = {};
  const constants: Record<string, number> = {};
  for (const l of out.trim().split('\n')) {
    const [k, ...v] = l.split(' ');
    if (k === 'S') measured[v[0]] = { size: +v[1], align: +v[2], fields: [] };
    else if (k === 'F') measured[v[0]].fields.push({ name: v[1], offset: +v[2], size: +v[3] });
    else if (k === 'I') ioctls[v[0]] = { value: +v[1], hex: `0x${(+v[1]).toString(16)}`, struct: 'iommu_test_cmd' };
    else constants[v[0]] = +v[1];
  }
  const result = {
    source,
    build: {
      gcc_version: execFileSync('gcc', ['-dumpfullversion'], { encoding: 'utf8' }).trim(),
      target: execFileSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).trim(),
      command: 'gcc -std=gnu11 -O0 -Wall -I<dir with linux/iommufd.h and iommufd_test.h> measure.c (scripts/selftest-headers.ts)',
      method: 'sizeof/offsetof/_Alignof and ioctl/constant values printed by the compiled program; nothing hand-computed',
    },
    note: 'The uAPI of CONFIG_IOMMUFD_TEST; union members of iommu_test_cmd appear whole and as member.field.',
    structs: measured,
    ioctls,
    constants,
  };
  const json = JSON.stringify(result, null, 2) + '\n';
  const target = opt('--write');
  if (target) writeFileSync(target, json);
  else process.stdout.write(json);
} finally {
  rmSync(work, { recursive: true, force: true });
}
