// Write the generated C headers to include/ (run by `npm run gen`; test/unit/c-header.test.ts checks they are current).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { allHeaders } from '../src/codegen/c-header.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'include');
for (const [name, text] of Object.entries(allHeaders())) {
  const path = join(root, name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  console.log(`wrote include/${name}`);
}
