// One open tcefs node, spoken to in request frames with asynchronous fs calls only: the daemon may be
// this very process in a test, and a synchronous call into a mount served by the caller's own event loop
// would never return.
import { open, type FileHandle } from 'node:fs/promises';
import { encodeRequestFrame, parseReplyFrame, type Answer, type ClientRequest } from '../transport/frame.ts';

/** An fs error as an errno name (ENOENT, EBUSY, ...), for results that come from open() or write(). */
export function fsErrno(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code) return code;
  throw e;
}

export class NodeFile {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
  ) {}

  /** open(path, O_RDWR), as a VFIO or iommufd client opens its nodes. Rejects with the fs error. */
  static async open(path: string): Promise<NodeFile> {
    return new NodeFile(path, await open(path, 'r+'));
  }

  /**
   * Write one frame and read its reply. The frame's pid is this process's, on every frame, because the
   * SPAPR container binds to the pid it first sees and accounts pinned memory to it.
   */
  async exchange(requests: ClientRequest[]): Promise<Answer[]> {
    const frame = encodeRequestFrame(requests, process.pid);
    await this.fh.write(frame, 0, frame.length, 0);
    const chunks: Buffer[] = [];
    for (;;) {
      const b = Buffer.alloc(128 * 1024);
      const { bytesRead } = await this.fh.read(b, 0, b.length, 0);
      if (bytesRead === 0) break;
      chunks.push(b.subarray(0, bytesRead));
    }
    return parseReplyFrame(Buffer.concat(chunks));
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
