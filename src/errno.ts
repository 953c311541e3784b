// Linux errno numbers (asm-generic/errno-base.h and errno.h; identical on x86_64 and powerpc64).
// Handlers throw `Errno`; the dispatcher turns it into a negative result, as the kernel returns -errno.

export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const E2BIG = 7;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const EFBIG = 27;
export const ENOSPC = 28;
export const ESPIPE = 29;
export const ERANGE = 34;
export const EDEADLK = 35;
export const ENOTTY = 25;
export const ENOSYS = 38;
export const EPROTO = 71;
export const EBADMSG = 74;
export const EOVERFLOW = 75;
export const EBADFD = 77;
export const EMSGSIZE = 90;
export const EPROTONOSUPPORT = 93;
export const EOPNOTSUPP = 95;
export const EADDRINUSE = 98;
export const ENOTCONN = 107;
export const ETIMEDOUT = 110;

const NAMES: Record<number, string> = {
  [EPERM]: 'EPERM', [ENOENT]: 'ENOENT', [EINTR]: 'EINTR', [EIO]: 'EIO', [ENXIO]: 'ENXIO',
  [E2BIG]: 'E2BIG', [EBADF]: 'EBADF', [EAGAIN]: 'EAGAIN', [ENOMEM]: 'ENOMEM', [EACCES]: 'EACCES',
  [EFAULT]: 'EFAULT', [EBUSY]: 'EBUSY', [EEXIST]: 'EEXIST', [ENODEV]: 'ENODEV', [ENOTDIR]: 'ENOTDIR', [EISDIR]: 'EISDIR', [EINVAL]: 'EINVAL',
  [EFBIG]: 'EFBIG', [ENOSPC]: 'ENOSPC', [ESPIPE]: 'ESPIPE', [ERANGE]: 'ERANGE', [EDEADLK]: 'EDEADLK', [ENOTTY]: 'ENOTTY', [ENOSYS]: 'ENOSYS',
  [EPROTO]: 'EPROTO', [EBADMSG]: 'EBADMSG', [EOVERFLOW]: 'EOVERFLOW', [EBADFD]: 'EBADFD',
  [EMSGSIZE]: 'EMSGSIZE', [EPROTONOSUPPORT]: 'EPROTONOSUPPORT', [EOPNOTSUPP]: 'EOPNOTSUPP',
  [EADDRINUSE]: 'EADDRINUSE', [ENOTCONN]: 'ENOTCONN', [ETIMEDOUT]: 'ETIMEDOUT',
};

export function errnoName(errno: number): string {
  return NAMES[Math.abs(errno)] ?? `E#${Math.abs(errno)}`;
}

export function errnoByName(name: string): number | undefined {
  for (const [num, n] of Object.entries(NAMES)) if (n === name) return Number(num);
  return undefined;
}

/** A kernel-style failure: the request fails with -errno and no state changed beyond what the kernel would leave. */
export class Errno extends Error {
  constructor(readonly errno: number, detail?: string) {
    super(detail ? `${errnoName(errno)}: ${detail}` : errnoName(errno));
  }
}

/** Throw helper for one-line checks: `if (bad) fail(EINVAL, 'why')`. */
export function fail(errno: number, detail?: string): never {
  throw new Errno(errno, detail);
}
