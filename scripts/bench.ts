// `npm run bench`: every benchmark, one run, one table. Speed is measured here, never asserted in tests.
import { benchTce } from './bench/tce.ts';

const rows = [...(await benchTce()).map((r) => ({ group: 'TCE table', ...r }))];
const w = Math.max(...rows.map((r) => r.name.length));
console.log(`tcefs benchmarks (${process.version}, ${process.platform}/${process.arch})\n`);
let group = '';
for (const r of rows) {
  if (r.group !== group) console.log(`${(group = r.group)}`);
  console.log(`  ${r.name.padEnd(w)}  ${r.value.toFixed(r.value < 10 ? 2 : 0).padStart(12)} ${r.unit}`);
}
