// Read the kselftest harness's TAP output: one result per test, with the first failed assertion the
// harness printed while the test ran (`# file.c:LINE:test:Expected ...`).

export interface KselftestTest {
  name: string;
  status: 'pass' | 'fail' | 'skip' | 'xfail';
  /** The first `# file.c:line:...` line printed between the test's RUN line and its result. */
  assertion?: string;
  /** The text after `# SKIP` / `# XFAIL`, or the harness's last word on a failure. */
  reason?: string;
  /** A failure the known-failures file lists (set by the runner, not the reader). */
  known?: boolean;
}

export interface KselftestResult {
  /** From the `1..N` plan line; undefined if the binary died before printing it. */
  planned?: number;
  tests: KselftestTest[];
  /** The harness's `# Totals: ...` line, as printed. */
  totals?: string;
}

const RESULT = /^(not ok|ok) \d+ (\S+)(?: # (SKIP|XFAIL)\s*(.*))?$/;
const ASSERTION = /^# (?:\S*\/)?([\w.-]+\.[ch]:\d+:.*)$/;
const RUN = /^#\s+RUN\s+(\S+)/;

export function parseKselftest(output: string): KselftestResult {
  const result: KselftestResult = { tests: [] };
  let assertion: string | undefined;
  let last: string | undefined;
  for (const line of output.split('\n')) {
    const plan = /^1\.\.(\d+)$/.exec(line);
    if (plan) {
      result.planned = Number(plan[1]);
      continue;
    }
    if (RUN.test(line)) {
      assertion = last = undefined;
      continue;
    }
    const a = ASSERTION.exec(line);
    if (a) {
      assertion ??= a[1];
      continue;
    }
    const r = RESULT.exec(line);
    if (r) {
      const [, ok, name, directive, why] = r;
      const status = directive === 'SKIP' ? 'skip' : directive === 'XFAIL' ? 'xfail' : ok === 'ok' ? 'pass' : 'fail';
      const t: KselftestTest = { name, status };
      if (status === 'fail' && assertion) t.assertion = assertion;
      const reason = why || (status === 'fail' ? last : undefined);
      if (reason) t.reason = reason;
      result.tests.push(t);
      assertion = last = undefined;
      continue;
    }
    if (line.startsWith('# Totals:')) result.totals = line.slice(2);
    else if (line.startsWith('# ') && !/^#\s+(OK|FAIL|SKIP|XFAIL)\s/.test(line)) last = line.slice(2);
  }
  return result;
}
