// Replay a transcript against a mount: run each recorded request again in a fresh session and compare
// what comes back with what was recorded, stopping at the first difference.
import { describeTopology, parseTranscript, tcefsVersion, type TranscriptEntry } from './transcript.ts';
import { Session, type Entry } from './session.ts';

export interface ReplayResult {
  ok: boolean;
  /** Requests that ran and matched. */
  matched: number;
  /** What to tell people: notes, and at a difference the expected and actual lines. */
  report: string[];
}

function differs(want: TranscriptEntry, got: Entry): { expected: string; actual: string } | undefined {
  if (want.response !== got.response) return { expected: `< ${want.response}`, actual: `< ${got.response}` };
  const a = want.body ?? [];
  const b = got.body ?? [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return { expected: a[i] === undefined ? '(no more text)' : `<| ${a[i]}`, actual: b[i] === undefined ? '(no more text)' : `<| ${b[i]}` };
  }
  return undefined;
}

export async function replayTranscript(text: string, mount: string, file = 'transcript'): Promise<ReplayResult> {
  const t = parseTranscript(text);
  const report: string[] = [];
  const version = await tcefsVersion();
  if (t.tcefs && t.tcefs !== version) report.push(`note: recorded with tcefs ${t.tcefs}, replaying with ${version}`);
  const topology = await describeTopology(mount);
  if (t.topology !== undefined && t.topology !== topology) {
    report.push(`${file}: recorded on another topology`, `  expected: ${t.topology}`, `  actual:   ${topology}`);
    return { ok: false, matched: 0, report };
  }
  const session = new Session({ mount });
  let matched = 0;
  try {
    for (const want of t.entries) {
      const out = await session.runLine(want.request);
      // A recorded failure is a result like any other; only a line that could not run at all is a problem.
      if (!out.entry) {
        report.push(`${file}:${want.line}: cannot run: ${want.request}`, `  ${out.message ?? 'made no request'}`);
        return { ok: false, matched, report };
      }
      const diff = differs(want, out.entry);
      if (diff) {
        report.push(`${file}:${want.line}: > ${want.request}`, `  expected: ${diff.expected}`, `  actual:   ${diff.actual}`);
        return { ok: false, matched, report };
      }
      matched++;
    }
  } finally {
    await session.closeAll();
  }
  report.push(`${file}: ${matched} requests replayed, all as recorded`);
  return { ok: true, matched, report };
}
