// The calling process's memory behind a pointer the frame did not carry, reached as the kernel's
// copy_from_user/copy_to_user would: through /proc/<pid>/mem. Used where the length of the pointed data
// follows from arithmetic no pointer declaration can express (a dirty bitmap's bits per page, an
// invalidation array's entry_len x entry_num). Only a process of the daemon's own user is touched, so a
// claimed pid reaches no further than that user's ptrace could.
import { closeSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { EFAULT, Errno } from '../../errno.ts';

const uid = process.getuid?.() ?? 0;
/** File positions are JavaScript numbers: no user address reaches past 2^53 on the machines tcefs runs on. */
const USER_END = 1n << 53n;

function withMem<T>(pid: number, what: string, op: (fd: number) => T): T {
  let fd: number;
  try {
    if (!pid || statSync(`/proc/${pid}`).uid !== uid) throw new Error('not ours');
    fd = openSync(`/proc/${pid}/mem`, 'r+');
  } catch {
    throw new Errno(EFAULT, `${what}: the memory of process ${pid} cannot be reached`);
  }
  try {
    return op(fd);
  } finally {
    closeSync(fd);
  }
}

/** copy_from_user: `length` bytes at `addr`, all or EFAULT. */
export function readUserMemory(pid: number, addr: bigint, length: number): Buffer {
  const buf = Buffer.alloc(length);
  if (length === 0) return buf;
  if (addr === 0n || addr + BigInt(length) > USER_END) throw new Errno(EFAULT, `0x${addr.toString(16)} is not a user address`);
  return withMem(pid, 'read', (fd) => {
    let done = 0;
    try {
      while (done < length) {
        const n = readSync(fd, buf, done, length - done, Number(addr) + done);
        if (n <= 0) break;
        done += n;
      }
    } catch {
      // An unmapped page ends the copy like a short read.
    }
    if (done !== length) throw new Errno(EFAULT, `only ${done} of ${length} bytes at 0x${addr.toString(16)} are readable`);
    return buf;
  });
}

/** copy_to_user: all of `data` at `addr`, or EFAULT. */
export function writeUserMemory(pid: number, addr: bigint, data: Buffer): void {
  if (data.length === 0) return;
  if (addr === 0n || addr + BigInt(data.length) > USER_END) throw new Errno(EFAULT, `0x${addr.toString(16)} is not a user address`);
  withMem(pid, 'write', (fd) => {
    let done = 0;
    try {
      while (done < data.length) {
        const n = writeSync(fd, data, done, data.length - done, Number(addr) + done);
        if (n <= 0) break;
        done += n;
      }
    } catch {
      // As for reads.
    }
    if (done !== data.length) throw new Errno(EFAULT, `only ${done} of ${data.length} bytes at 0x${addr.toString(16)} are writable`);
  });
}
