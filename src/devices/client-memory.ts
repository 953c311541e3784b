// Device DMA lands in the client's own memory: the frame behind a TCE names the process whose pinned
// page it is (HostMemory.frameOwner), and the bytes move through /proc/<pid>/mem. One fd per process,
// opened on its first DMA and closed when its last pin goes, so a dead client leaves no handle open.
import { closeSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import type { HostMemory } from '../tce/memory.ts';
import { now, perf } from '../perf.ts';

/** One contiguous piece of a transfer in one process's address space. */
export interface ClientSpan {
  pid: number;
  ua: bigint;
  length: number;
}

/** What device DMA needs of client memory (ClientMemory; tests give a stand-in). */
export interface DmaMemory {
  resolve(hpa: bigint): { pid: number; ua: bigint } | undefined;
  read(span: ClientSpan, buf: Buffer, off: number): boolean;
  write(span: ClientSpan, buf: Buffer, off: number): boolean;
}

export class ClientMemory implements DmaMemory {
  private readonly fds = new Map<number, number>();
  /** Handles opened over the daemon's life (tests check they are also closed). */
  opened = 0;
  private readonly uid = process.getuid?.() ?? 0;

  constructor(readonly frames: HostMemory) {
    frames.onOwnerIdle = (owner) => {
      const pid = pidOf(owner);
      if (pid !== undefined) this.close(pid);
    };
  }

  /** The process and address behind host-physical `hpa`, or undefined when no pinned page is there. */
  resolve(hpa: bigint): { pid: number; ua: bigint } | undefined {
    let where;
    try {
      where = this.frames.frameOwner(hpa);
    } catch {
      return undefined;
    }
    const pid = pidOf(where.owner);
    return pid === undefined ? undefined : { pid, ua: where.ua };
  }

  /** Reads span into buf at off; false when the process or its page is gone. */
  read(span: ClientSpan, buf: Buffer, off: number): boolean {
    const t0 = now();
    const ok = this.io(span, (fd) => readSync(fd, buf, off, span.length, Number(span.ua)));
    perf.dmaRead.add(t0, ok ? span.length : 0);
    return ok;
  }

  write(span: ClientSpan, buf: Buffer, off: number): boolean {
    const t0 = now();
    const ok = this.io(span, (fd) => writeSync(fd, buf, off, span.length, Number(span.ua)));
    perf.dmaWrite.add(t0, ok ? span.length : 0);
    return ok;
  }

  /** Open /proc handles now (leak checks want 0 once every client is gone). */
  get openHandles(): number {
    return this.fds.size;
  }

  close(pid: number): void {
    const fd = this.fds.get(pid);
    if (fd === undefined) return;
    this.fds.delete(pid);
    try {
      closeSync(fd);
    } catch {
      // Already gone: nothing to give back.
    }
  }

  closeAll(): void {
    for (const pid of [...this.fds.keys()]) this.close(pid);
  }

  private io(span: ClientSpan, op: (fd: number) => number): boolean {
    let fd = this.fds.get(span.pid);
    try {
      if (fd === undefined) {
        // A frame's pid is the client's word. Only a process of the daemon's own user is written, so a
        // claimed pid reaches no further than that user's ptrace could (the node modes keep others out).
        if (statSync(`/proc/${span.pid}`).uid !== this.uid) return false;
        fd = openSync(`/proc/${span.pid}/mem`, 'r+');
        this.fds.set(span.pid, fd);
        this.opened++;
      }
      // A short transfer means the page is no longer mapped in the process.
      return op(fd) === span.length;
    } catch {
      return false;
    }
  }
}

function pidOf(owner: string): number | undefined {
  const m = /^pid:(\d+)$/.exec(owner);
  return m ? Number(m[1]) : undefined;
}
