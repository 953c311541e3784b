// One ioctl as a handler sees it: the user's argument memory as the frame carried it, and the kernel's
// primitives over it (copy in with EFAULT, the argsz/size rules, copy back, pointed data in and out).
//
// The "user image" starts as the argument bytes the client sent; copy-backs write into it, and the
// answer returns the image up to the furthest byte written, so bytes the kernel would not touch come
// back unchanged. Memory the client did not send is, to the handler, memory that faults.
import { E2BIG, EFAULT, EINVAL, Errno } from '../errno.ts';
import { pointerLength, type IoctlDecl, type PointerDecl } from '../uapi/ioctls.ts';
import { readField, readU32, writeField, type StructLayout, type Value } from '../uapi/layout.ts';
import { Op, type Blob, type Request } from '../transport/frame.ts';

/**
 * The name pinned memory and locked-memory accounts know a client process by. The last one is kept:
 * frames come in runs from one process, and a string made anew must be hashed again by every Map.
 */
let lastPid = -1;
let lastOwner = '';
export function ownerName(pid: number): string {
  if (pid !== lastPid) {
    lastOwner = `pid:${pid}`;
    lastPid = pid;
  }
  return lastOwner;
}

const NO_BLOBS = Object.freeze([]) as unknown as Blob[];

/** Before anything is copied in; a zero-length buffer cannot be written, so every call can share it. */
const NOTHING = Buffer.alloc(0);

export class IoctlCall {
  readonly arg: bigint;
  /** The client process that sent the frame (0 if it did not say). */
  readonly pid: number;
  /** The kernel's copy of the argument struct, once a handler or the dispatcher has copied it in. */
  kbuf: Buffer = NOTHING;
  /**
   * The user image. It starts as the request's own bytes and is copied on the first copy-back, so the
   * request is never written and calls that copy nothing back (most VFIO calls) copy nothing at all.
   */
  private user: Buffer;
  private userOwned = false;
  private userDirtyEnd = 0;
  /** The user image is kbuf itself, until either is written again. */
  private userIsKbuf = false;
  /** Data written through pointer fields; most calls write none and share the empty list. */
  outBlobs: Blob[] = NO_BLOBS;
  /** Handle of a file this call created for the client (ioctls that return an fd). */
  newHandle = 0;
  handleField = 0;

  constructor(
    readonly decl: IoctlDecl,
    private readonly req: Request,
    pid: number,
  ) {
    this.arg = req.arg;
    this.pid = pid;
    this.user = req.argData;
  }

  /** The client asked for an unmap lease with its answer (Op.IOCTL_LEASE), where the call can give one. */
  get wantsLease(): boolean {
    return this.req.op === Op.IOCTL_LEASE;
  }

  /** The client process as the owner of the memory its calls pin. */
  get owner(): string {
    return ownerName(this.pid);
  }

  get struct(): StructLayout {
    if (!this.decl.struct) throw new Error(`${this.decl.name} has no declared struct`);
    return this.decl.struct;
  }

  /** Bytes of the argument the client sent (what is readable). */
  get userBytes(): number {
    return this.user.length;
  }

  /** The leading u32 (argsz or size) as get_user() reads it. */
  userSize(): number {
    if (this.user.length < 4) throw new Errno(EFAULT, 'argument not readable');
    return readU32(this.user, 0);
  }

  /** copy_from_user(kbuf, arg, len): the first len bytes of the struct; the rest of kbuf is zero. */
  copyIn(len: number): Buffer {
    if (this.user.length < len) throw new Errno(EFAULT, `argument has ${this.user.length} readable bytes, ${len} needed`);
    const size = Math.max(len, this.decl.struct?.size ?? len);
    // From the pool rather than a zeroed allocation of its own: the copied bytes, then zeros to the end.
    const k = Buffer.allocUnsafe(size);
    // Whole-buffer set() is several times cheaper than a ranged copy for structs this small.
    k.set(len === this.user.length ? this.user : this.user.subarray(0, len));
    if (len < size) k.fill(0, len);
    this.kbuf = k;
    return k;
  }

  /** The VFIO pattern: copy minsz bytes, then fail EINVAL if argsz < minsz. */
  vfioCopyIn(minsz = this.decl.minsz ?? this.struct.size): Buffer {
    this.copyIn(minsz);
    if (this.get('argsz') < minsz) throw new Errno(EINVAL, `argsz ${this.get('argsz')} < ${minsz}`);
    return this.kbuf;
  }

  /**
   * The iommufd pattern (copy_struct_from_user): size >= minsz, bytes past the kernel's struct must be
   * zero (E2BIG), bytes the user did not provide read as zero.
   */
  extensibleCopyIn(): void {
    const size = this.userSize();
    const minsz = this.decl.minsz ?? this.struct.size;
    if (size < minsz) throw new Errno(EINVAL, `size ${size} < ${minsz}`);
    const ksize = this.struct.size;
    if (size > ksize) {
      if (this.user.length < size) throw new Errno(EFAULT, `size ${size} but ${this.user.length} bytes readable`);
      for (let i = ksize; i < size; i++) if (this.user[i] !== 0) throw new Errno(E2BIG, `non-zero byte at ${i}`);
    }
    this.copyIn(Math.min(size, ksize));
  }

  get(field: string): number {
    return Number(readField(this.kbuf, this.struct, field));
  }
  get64(field: string): bigint {
    const v = readField(this.kbuf, this.struct, field);
    return typeof v === 'bigint' ? v : BigInt(v);
  }
  set(field: string, value: Value): void {
    if (this.userIsKbuf) this.separateUser();
    writeField(this.kbuf, this.struct, field, value);
  }

  /** copy_to_user(arg + offset, bytes). */
  writeUser(offset: number, bytes: Buffer): void {
    this.copyBack(offset, bytes, 0, bytes.length);
  }

  /** copy_to_user(arg + offset, src[from, to)). */
  private copyBack(offset: number, src: Buffer, from: number, to: number): void {
    const end = offset + to - from;
    if (end > this.user.length) throw new Errno(EFAULT, `copy-back past the ${this.user.length}-byte argument`);
    if (this.userIsKbuf) this.separateUser();
    if (src === this.kbuf && offset === 0 && from === 0 && to === src.length && to === this.user.length) {
      // The whole struct over the whole argument (the usual iommufd reply): the image is the struct.
      this.user = this.kbuf;
      this.userOwned = this.userIsKbuf = true;
      this.userDirtyEnd = to;
      return;
    }
    if (!this.userOwned) {
      const own = Buffer.allocUnsafe(this.user.length);
      // Only the bytes the copy-back leaves alone come from the request.
      if (offset > 0) this.user.copy(own, 0, 0, offset);
      if (end < this.user.length) this.user.copy(own, end, end);
      this.user = own;
      this.userOwned = true;
    }
    if (from === 0 && to === src.length) this.user.set(src, offset);
    else src.copy(this.user, offset, from, to);
    if (end > this.userDirtyEnd) this.userDirtyEnd = end;
  }

  /** kbuf or the user image is about to change on its own: give the image its own bytes. */
  private separateUser(): void {
    this.user = Buffer.from(this.user);
    this.userIsKbuf = false;
  }

  /** Copy the first len bytes of the kernel struct back to the user. */
  copyOut(len: number): void {
    this.copyBack(0, this.kbuf, 0, len);
  }

  /** Copy back one field only (e.g. IOMMU_OPTION writes val64 alone). */
  copyOutField(field: string): void {
    const f = this.struct.byName.get(field)!;
    this.copyBack(f.offset, this.kbuf, f.offset, f.offset + f.size);
  }

  /** The iommufd reply: the whole kernel struct truncated to the user's size. */
  respond(): void {
    this.copyOut(Math.min(this.userSize(), this.struct.size));
  }

  private pointer(field: string): PointerDecl {
    const p = this.decl.pointers?.find((x) => x.field === field);
    if (!p) throw new Error(`${this.decl.name} declares no pointer ${field}`);
    return p;
  }

  /** Data the kernel reads through a pointer field; EFAULT when the client sent none or too little. */
  readPointer(field: string, length?: number): Buffer {
    const p = this.pointer(field);
    const want = length ?? pointerLength(p, (f) => readField(this.kbuf, this.struct, f));
    if (want === 0) return Buffer.alloc(0);
    if (this.get64(field) === 0n) throw new Errno(EFAULT, `${field} is NULL`);
    const off = this.struct.byName.get(field)!.offset;
    const blob = this.req.blobs.find((b) => b.fieldOffset === off);
    if (!blob || blob.data.length < want) throw new Errno(EFAULT, `${field}: ${blob?.data.length ?? 0} of ${want} bytes sent`);
    return blob.data.subarray(0, want);
  }

  /** Data the kernel writes through a pointer field; the client copies it to its own memory. */
  writePointer(field: string, data: Buffer): void {
    if (data.length === 0) return;
    if (this.get64(field) === 0n) throw new Errno(EFAULT, `${field} is NULL`);
    const off = this.struct.byName.get(field)!.offset;
    if (this.outBlobs === NO_BLOBS) this.outBlobs = [];
    this.outBlobs.push({ fieldOffset: off, data: Buffer.from(data) });
  }

  /** The bytes to copy back into the client's argument: the call's own copy, never the request's bytes. */
  userOut(): Buffer {
    if (this.userDirtyEnd === 0) return NOTHING;
    return this.userDirtyEnd === this.user.length ? this.user : this.user.subarray(0, this.userDirtyEnd);
  }
}
