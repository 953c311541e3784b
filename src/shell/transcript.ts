// Transcripts: a readable, line-oriented record of a session's requests and responses that replays as a
// regression test (docs/shell.md has the format). Requests are written as shell words that run them again,
// and files as the names they were opened under, because handles are random on every run.
//
//   #! tcefs-transcript 1 tcefs 0.1.0
//   #! topology powernv 64K; PHB4 domain 0: group 0 = domain0-pe1 [...], group 1 = domain0-pe2 [...]
//   > open c dev/vfio/vfio
//   < 0
//   > c VFIO_CHECK_EXTENSION arg=VFIO_SPAPR_TCE_v2_IOMMU
//   < 1
//   > cat sys/kernel/debug/tcefs/groups/1/tce
//   < 0
//   <| # domain0-pe2 group 1
//   # anything else starting with # is a comment
import { open, readdir, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Entry } from './session.ts';

export const TRANSCRIPT_VERSION = 1;

let versionCache: string | undefined;
/** The tcefs version, from package.json. */
export async function tcefsVersion(): Promise<string> {
  versionCache ??= JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')).version as string;
  return versionCache;
}

interface HostJson {
  flavour?: string;
  hostPageShift?: number;
  phbs?: { domain?: number; model?: string; pes?: { name?: string; groupId?: number }[] }[];
}

const pageSize = (shift: number) => (shift >= 20 ? `${2 ** (shift - 20)}M` : `${2 ** (shift - 10)}K`);

/**
 * The topology a mount serves, in one line: what a transcript needs to match before its requests mean the
 * same thing again. Read from the host state view and the sysfs group directories.
 */
export async function describeTopology(mount: string): Promise<string> {
  let host: HostJson;
  try {
    host = JSON.parse(await readFile(join(mount, 'sys/kernel/debug/tcefs/host.json'), 'utf8'));
  } catch (e) {
    return `unknown (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
  const phbs: string[] = [];
  for (const phb of host.phbs ?? []) {
    const groups: string[] = [];
    for (const pe of phb.pes ?? []) {
      if (pe.groupId === undefined) continue;
      const devices = await readdir(join(mount, 'sys/kernel/iommu_groups', String(pe.groupId), 'devices')).catch(() => []);
      groups.push(`group ${pe.groupId} = ${pe.name} [${devices.sort().join(' ')}]`);
    }
    phbs.push(`${phb.model ?? 'PHB'} domain ${phb.domain ?? '?'}: ${groups.join(', ')}`);
  }
  const pages = host.hostPageShift ? ` ${pageSize(host.hostPageShift)}` : '';
  return `${host.flavour ?? 'unknown'}${pages}; ${phbs.join('; ')}`;
}

export async function transcriptHeader(mount: string): Promise<string[]> {
  return [`#! tcefs-transcript ${TRANSCRIPT_VERSION} tcefs ${await tcefsVersion()}`, `#! topology ${await describeTopology(mount)}`];
}

export function entryLines(e: Entry): string[] {
  return [`> ${e.request}`, `< ${e.response}`, ...(e.body ?? []).map((b) => `<| ${b}`)];
}

/** Writes a transcript as a session runs, entry by entry, so an interrupted session leaves what it did. */
export class TranscriptWriter {
  private constructor(private readonly fh: FileHandle) {}

  static async create(file: string, mount: string): Promise<TranscriptWriter> {
    const w = new TranscriptWriter(await open(file, 'w'));
    await w.fh.write((await transcriptHeader(mount)).join('\n') + '\n');
    return w;
  }

  readonly write = async (e: Entry) => {
    await this.fh.write(entryLines(e).join('\n') + '\n');
  };

  async close(): Promise<void> {
    await this.fh.close();
  }
}

export interface TranscriptEntry extends Entry {
  /** Line number of the request in the file (1-based). */
  line: number;
}

export interface Transcript {
  version?: number;
  tcefs?: string;
  topology?: string;
  entries: TranscriptEntry[];
}

export class TranscriptError extends Error {}

export function parseTranscript(text: string): Transcript {
  const t: Transcript = { entries: [] };
  // Say what the file is not before picking at its lines: a script given to replay by mistake is common.
  if (!/^#! tcefs-transcript /.test(text.trimStart())) throw new TranscriptError('no "#! tcefs-transcript N" header: not a tcefs transcript');
  let current: TranscriptEntry | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    const where = `line ${i + 1}`;
    if (line.startsWith('#! ')) {
      const head = /^#! tcefs-transcript (\d+)(?: tcefs (\S+))?/.exec(line);
      if (head) {
        t.version = Number(head[1]);
        t.tcefs = head[2];
      } else if (line.startsWith('#! topology ')) t.topology = line.slice('#! topology '.length);
      return;
    }
    if (line.trim() === '' || line.startsWith('#')) return;
    if (line.startsWith('> ')) {
      current = { line: i + 1, request: line.slice(2), response: '' };
      t.entries.push(current);
    } else if (line.startsWith('< ')) {
      if (!current || current.response !== '') throw new TranscriptError(`${where}: a response without its request`);
      current.response = line.slice(2);
    } else if (line.startsWith('<|')) {
      if (!current || current.response === '') throw new TranscriptError(`${where}: text without its request`);
      (current.body ??= []).push(line.startsWith('<| ') ? line.slice(3) : line.slice(2));
    } else throw new TranscriptError(`${where}: not a transcript line (> request, < response, <| text, # comment): ${line}`);
  });
  if (t.version !== TRANSCRIPT_VERSION) throw new TranscriptError(`transcript version ${t.version}; this tcefs reads version ${TRANSCRIPT_VERSION}`);
  const open = t.entries.find((e) => e.response === '');
  if (open) throw new TranscriptError(`line ${open.line}: request without a response`);
  return t;
}
