// Driver data from user space as the IOMMU core copies it (include/linux/iommu.h's helpers, in words):
// one struct behind a pointer (HWPT or vIOMMU data: the type must match, the length lie between the
// struct's first version and its current size, shorter reads as zero), and arrays of entries of a
// caller-chosen entry_len (HWPT_INVALIDATE), read entry by entry from the caller's memory.
import { E2BIG, EINVAL, Errno } from '../../errno.ts';
import type { HwptData } from './backend.ts';
import { readUserMemory } from './user-memory.ts';

/** iommu_copy_struct_from_user: `size` bytes (zero-filled), from data of `type` at least `minLen` long. */
export function copyDriverData(data: HwptData, type: number, size: number, minLen: number): Buffer {
  if (data.type !== type) throw new Errno(EINVAL, `data_type 0x${data.type.toString(16)}, not 0x${type.toString(16)}`);
  const len = data.length ?? data.read().length;
  if (len < minLen || len > size) throw new Errno(EINVAL, `${len} bytes of driver data, ${minLen} to ${size} taken`);
  const out = Buffer.alloc(size);
  data.read().copy(out, 0, 0, len);
  return out;
}

/** copy_struct_from_user of one `size`-byte struct from `src`: shorter reads as zero, longer must be zero past it. */
export function copyStruct(src: Buffer, size: number): Buffer {
  if (src.length > size && src.subarray(size).some((b) => b !== 0)) throw new Errno(E2BIG, `non-zero bytes past ${size}`);
  const out = Buffer.alloc(size);
  src.copy(out, 0, 0, Math.min(size, src.length));
  return out;
}

/** Reads `length` bytes of the caller's memory at `addr` (copy_from_user: all or EFAULT). */
export type UserReader = (addr: bigint, length: number) => Buffer;

/** The reader of process `pid`'s memory (/proc/<pid>/mem). */
export const processReader = (pid: number): UserReader => (addr, length) => readUserMemory(pid, addr, length);

/** struct iommu_user_data_array: entry_num entries of entry_len bytes at uptr in the caller's memory. */
export class UserDataArray {
  constructor(
    readonly type: number,
    readonly uptr: bigint,
    readonly entryLen: number,
    readonly entryNum: number,
    private readonly read: UserReader,
  ) {}

  /** The raw bytes of entry `i` (EFAULT when they cannot be read). */
  raw(i: number): Buffer {
    return this.read(this.uptr + BigInt(i) * BigInt(this.entryLen), this.entryLen);
  }

  /**
   * iommu_copy_struct_from_user_array: entry `i` as a `size`-byte struct whose first version ends at
   * `minLen`; the type must match and entry_len lie between the two.
   */
  entry(i: number, type: number, size: number, minLen: number): Buffer {
    if (i >= this.entryNum) throw new Errno(EINVAL, `entry ${i} of ${this.entryNum}`);
    const bytes = this.raw(i);
    return copyDriverData({ type: this.type, read: () => bytes }, type, size, minLen);
  }

  /**
   * iommu_copy_struct_from_full_user_array: every entry as a `size`-byte struct (copy_struct_from_user's
   * rules per entry when entry_len differs). EINVAL for another type or an empty array.
   */
  all(type: number, size: number): Buffer[] {
    if (this.type !== type) throw new Errno(EINVAL, `data_type 0x${this.type.toString(16)}`);
    if (!this.entryNum) throw new Errno(EINVAL, 'no entries');
    const out: Buffer[] = [];
    for (let i = 0; i < this.entryNum; i++) out.push(copyStruct(this.raw(i), size));
    return out;
  }
}

/** What a driver's invalidation did: entries handled before it stopped, and why it stopped. */
export interface InvalidateResult {
  done: number;
  error?: Errno;
}
