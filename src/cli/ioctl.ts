// `tcefs ioctl NODE NAME [field=value ...]`: one ioctl on one node, from the shell command line.
//
// One process, one open file, one frame. A handle lives only while its file is open, so fields that name
// another file (@NAME) cannot work here; `tcefs shell` keeps files open to combine them.
import type { Command } from 'commander';
import { UsageError, parseWord } from '../shell/codec.ts';
import { decodedJson, renderDecoded } from '../shell/render.ts';
import { Session } from '../shell/session.ts';
import { TranscriptWriter } from '../shell/transcript.ts';

interface IoctlOptions {
  mount: string;
  json?: boolean;
  record?: string;
}

export async function ioctlCommand(node: string, name: string, words: string[], opts: IoctlOptions): Promise<void> {
  const writer = opts.record ? await TranscriptWriter.create(opts.record, opts.mount) : undefined;
  const session = new Session({ mount: opts.mount, record: writer?.write, handles: false });
  let status = 0;
  try {
    const opened = await session.open('f', node);
    if (opened.result < 0n) {
      console.error(`tcefs: open ${node}: ${opened.entry.response}`);
      status = 1;
    } else {
      const { remembered } = await session.call('f', name, words.map(parseWord));
      const d = remembered.decoded!;
      const path = session.files.get('f')?.path;
      if (opts.json) process.stdout.write(JSON.stringify(decodedJson(d, undefined, path), null, 2) + '\n');
      else process.stdout.write(renderDecoded(d, undefined, path));
      if (d.result < 0n) status = 1;
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`tcefs: ${e.message}`);
    status = 2;
  } finally {
    await session.closeAll();
    await writer?.close();
  }
  process.exitCode = status;
}

export function registerIoctl(program: Command, defaultMount: string): void {
  program
    .command('ioctl')
    .description('run one ioctl on a node, its struct given by field names, and print the decoded result')
    .argument('<node>', 'node under the mount: dev/iommu, dev/vfio/vfio, dev/vfio/<group>, dev/vfio/devices/vfio<N>')
    .argument('<name>', 'ioctl name, e.g. VFIO_CHECK_EXTENSION (tcefs shell: help NAME lists its fields)')
    .argument('[fields...]', 'field=value ..., or the bare value of a value/string argument')
    .option('-m, --mount <dir>', 'the mount', defaultMount)
    .option('--json', 'machine-readable output')
    .option('--record <file>', 'write a transcript of the request and response (tcefs replay runs it again)')
    .addHelpText('after', `
Values: 42, 0x1000, 64K, 4G, a+b, flags by name (flags=READ|WRITE), constants (VFIO_SPAPR_TCE_v2_IOMMU),
in-pointer data as lists (allowed_iovas=[0x1000-0x1fff]). argsz/size default to the struct size.
Exit status: 0 if the ioctl succeeded, 1 if it failed (its errno is printed), 2 for usage errors.
Fields naming another open file (@NAME) need tcefs shell: a handle lives only while its file is open.`)
    .action(ioctlCommand);
}
