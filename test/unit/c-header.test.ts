// The generated C headers: current with the declarations, warning-free, and laid out exactly like the
// TypeScript declarations (a C offsetof oracle compiled by gcc prints what the compiler sees).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { allHeaders } from '../../src/codegen/c-header.ts';
import { answerHeader, blobHeader, frameHeader, requestHeader } from '../../src/transport/frame.ts';
import { IOCTLS, requestValue } from '../../src/uapi/ioctls.ts';
import { ALL_STRUCTS, EXTENSION_STRUCTS } from '../../src/uapi/structs.ts';
import { SELFTEST_STRUCTS } from '../../src/uapi/selftest.ts';
import { ROOT } from '../helpers/daemon.ts';

const exec = promisify(execFile);

async function compileAndRun(source: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tcefs-hdr-'));
  await writeFile(join(dir, 'oracle.c'), source);
  await exec('gcc', ['-std=gnu11', '-Wall', '-Werror', `-I${join(ROOT, 'include')}`, join(dir, 'oracle.c'), '-o', join(dir, 'oracle')]);
  return (await exec(join(dir, 'oracle'))).stdout;
}

const structs = [...ALL_STRUCTS, ...EXTENSION_STRUCTS, ...SELFTEST_STRUCTS, frameHeader, requestHeader, answerHeader, blobHeader];

function oracleSource(prelude: string): string {
  const lines: string[] = [];
  for (const s of structs) {
    lines.push(`\tprintf("%s %zu\\n", "${s.name}", sizeof(struct ${s.name}));`);
    for (const f of s.fields) lines.push(`\tprintf("%s %zu\\n", "${s.name}.${f.name}", offsetof(struct ${s.name}, ${f.name}));`);
  }
  for (const d of IOCTLS) lines.push(`\tprintf("%s %lu\\n", "${d.name}", (unsigned long)${d.name});`);
  return `${prelude}\n#include <stddef.h>\n#include <stdio.h>\nint main(void)\n{\n${lines.join('\n')}\n\treturn 0;\n}\n`;
}

function expected(): string {
  const out: string[] = [];
  for (const s of structs) {
    out.push(`${s.name} ${s.size}`);
    for (const f of s.fields) out.push(`${s.name}.${f.name} ${f.offset}`);
  }
  for (const d of IOCTLS) out.push(`${d.name} ${requestValue(d.nr)}`);
  return out.join('\n') + '\n';
}

describe('generated C headers', () => {
  it('are current (run `npm run gen` after changing a declaration)', async () => {
    for (const [name, text] of Object.entries(allHeaders())) {
      expect(await readFile(join(ROOT, 'include', name), 'utf8'), name).toBe(text);
    }
  });

  it('standalone: gcc -Wall -Werror sees every struct, offset and ioctl value the declarations have', async () => {
    const out = await compileAndRun(oracleSource('#include <tcefs/uapi.h>\n#include <tcefs/protocol.h>\n#include <tcefs/selftest.h>'));
    expect(out).toBe(expected());
  });

  it('beside the system <linux/vfio.h>: only the missing calls are added, and everything compiles warning-free', async () => {
    const prelude = '#include <linux/vfio.h>\n#include <linux/iommufd.h>\n#include <tcefs/protocol.h>\n#include <tcefs/tcefs.h>';
    const src = `${prelude}\n#include <stdio.h>\nint main(void)\n{\n\tprintf("%zu %zu %zu %lu\\n", sizeof(struct vfio_device_bind_iommufd), sizeof(struct iommu_ioas_map), sizeof(struct vfio_iommu_spapr_tce_create), (unsigned long)VFIO_DEVICE_DETACH_IOMMUFD_PT);\n\treturn 0;\n}\n`;
    expect(await compileAndRun(src)).toBe(`24 40 40 ${requestValue(0x78)}\n`);
  });

  it('libtcefs compiles warning-free', async () => {
    await exec('gcc', ['-Wall', '-Werror', '-Wextra', '-Wno-unused-parameter', '-c', `-I${join(ROOT, 'include')}`, join(ROOT, 'c', 'libtcefs.c'), '-o', join(await mkdtemp(join(tmpdir(), 'tcefs-lib-')), 'libtcefs.o')]);
  });
});
