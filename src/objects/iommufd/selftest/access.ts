// Test ops of the selftest's access driver: CREATE_ACCESS makes an access object (access.ts) attached to
// an IOAS and hands the client a file that stands for it; the other ops name that file by the client's
// fd in `id` (EBADFD for anything else). ACCESS_PAGES pins a range and records it as an item the client
// can DESTROY_ACCESS_PAGES; an unmap of the IOAS drops the items it touches, as the driver's unmap
// callback does; ACCESS_RW copies between the client's buffer and the memory behind the IOAS. Closing
// the file drops every item and destroys the access.
import { CommandTable } from '../../../dispatch/table.ts';
import { OpenFile } from '../../../dispatch/open-file.ts';
import { EBADFD, EFAULT, ENOENT, ENOMEM, EOPNOTSUPP, Errno } from '../../../errno.ts';
import { backingOf, readMaps } from '../../../devices/process-maps.ts';
import { SELFTEST } from '../../../uapi/selftest.ts';
import { IommufdAccess, type AccessOps } from '../access.ts';
import type { IommufdFile } from '../context.ts';
import type { AccessPin, Ioas } from '../ioas.ts';
import { U64_MAX } from '../ranges.ts';
import { clientFile } from '../../client-fd.ts';
import type { TestCall, TestOps } from './test-cmd.ts';
import { ownerMemIo, procMemIo } from './user-memory.ts';

/** The driver refuses larger pins and copies before it allocates for them (ENOMEM). */
const MAX_ACCESS_LENGTH = 16n << 20n;
const EBADE = 52;

const PAGES_FLAGS = SELFTEST.MOCK_FLAGS_ACCESS_WRITE | SELFTEST.MOCK_FLAGS_ACCESS_SYZ;
const RW_FLAGS = SELFTEST.MOCK_ACCESS_RW_WRITE | SELFTEST.MOCK_ACCESS_RW_SLOW_PATH | SELFTEST.MOCK_FLAGS_ACCESS_SYZ;

interface Item {
  id: number;
  iova: bigint;
  length: bigint;
  pin: AccessPin;
}

const NO_COMMANDS = new CommandTable<SelftestAccessFile>('access', {});

/** The file CREATE_ACCESS returns ("[iommufd_test_staccess]"): it owns the access and its items. */
export class SelftestAccessFile extends OpenFile implements AccessOps {
  readonly kind = 'access';
  access?: IommufdAccess;
  private readonly items: Item[] = [];
  private nextId = 0;
  private released = false;

  /** The file holds the context, as the access holds a reference to it. */
  constructor(readonly ctx: IommufdFile, readonly needsPinPages: boolean) {
    super(`${ctx.path}:access`);
    ctx.holdForQueue();
  }

  commands(): CommandTable<SelftestAccessFile> {
    return NO_COMMANDS;
  }

  /** The driver's unmap callback: every item touching the range goes. */
  unmap(iova: bigint, length: bigint): void {
    const end = iova + length - 1n;
    const last = end > U64_MAX ? U64_MAX : end;
    for (let i = this.items.length - 1; i >= 0; i--) {
      const it = this.items[i];
      if (iova > it.iova + it.length - 1n || last < it.iova) continue;
      this.items.splice(i, 1);
      this.access!.unpin(it.pin);
    }
  }

  addItem(iova: bigint, length: bigint, pin: AccessPin): number {
    const id = this.nextId;
    this.nextId = (this.nextId + 1) >>> 0;
    this.items.push({ id, iova, length, pin });
    return id;
  }

  removeItem(id: number): void {
    const at = this.items.findIndex((it) => it.id === id);
    if (at < 0) throw new Errno(ENOENT, `no access pages ${id}`);
    const [it] = this.items.splice(at, 1);
    this.access!.unpin(it.pin);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    const access = this.access;
    if (access) {
      this.unmap(0n, U64_MAX);
      this.access = undefined;
      access.users--;
      this.ctx.objects.remove(access);
    }
    this.ctx.queueFileClosed();
  }
}

/** The access behind the client's fd `fd` (EBADFD when it is no access file, as fget-and-check fails). */
function accessFile(f: IommufdFile, cmd: TestCall, fd: number): SelftestAccessFile {
  const file = clientFile(f.daemon.files, cmd.pid, fd);
  if (!(file instanceof SelftestAccessFile) || !file.access) throw new Errno(EBADFD, `fd ${fd} is not an access`);
  return file;
}

/**
 * MOCK_FLAGS_ACCESS_SYZ (for syzkaller, which cannot know IOVAs): the IOVA field holds the index of an
 * area of the access's IOAS (low word) and an offset into it (high word); 0 when there is no such area.
 */
function syzIova(ioas: Ioas | undefined, iova: bigint): bigint {
  if (!ioas) return 0n;
  let nth = Number(iova & 0xffffffffn);
  for (const a of ioas.areas.valuesArray()) if (nth-- === 0) return a.start + (iova >> 32n);
  return 0n;
}

function createAccess(f: IommufdFile, cmd: TestCall): void {
  const flags = cmd.get('flags');
  if (flags & ~SELFTEST.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES) throw new Errno(EOPNOTSUPP, `flags 0x${flags.toString(16)}`);
  const file = new SelftestAccessFile(f, !!(flags & SELFTEST.MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES));
  try {
    const access = f.objects.insert(new IommufdAccess(file, f.daemon.host.memory.pageSize));
    try {
      access.attach(f.ioas(cmd.id));
      cmd.set('out_access_fd', 0);
      cmd.respond();
    } catch (e) {
      access.users--;
      f.objects.remove(access);
      throw e;
    }
    file.access = access;
  } catch (e) {
    file.release();
    throw e;
  }
  // libtcefs claims the file and stores its fd in out_access_fd.
  cmd.call.newHandle = f.daemon.files.addPending(file, f.handle);
  cmd.call.handleField = cmd.call.struct.byName.get('create_access.out_access_fd')!.offset;
}

/** The pages pinned must be the ones the client sees at `uptr` (iommufd_test_check_pages). */
function checkPages(f: IommufdFile, cmd: TestCall, pin: AccessPin, uptr: bigint): void {
  const page = f.daemon.host.memory.pageSize;
  const maps = readMaps(cmd.pid);
  let ua = uptr;
  for (const p of pin.pieces) {
    for (let at = p.start; at < p.end; at += page, ua += page) {
      const b = backingOf(maps, cmd.pid, ua);
      if (!b) throw new Errno(EFAULT, `0x${ua.toString(16)} is not mapped`);
      if (b.owner !== p.area.owner || b.addr !== at) throw new Errno(EBADE, `0x${ua.toString(16)} is not the page pinned`);
    }
  }
}

function accessPages(f: IommufdFile, cmd: TestCall): void {
  const length = cmd.get64('length');
  if (length > MAX_ACCESS_LENGTH) throw new Errno(ENOMEM, `length ${length}`);
  const flags = cmd.get('flags');
  if (flags & ~PAGES_FLAGS) throw new Errno(EOPNOTSUPP, `flags 0x${flags.toString(16)}`);
  const file = accessFile(f, cmd, cmd.id);
  if (!file.needsPinPages) throw new Errno(EOPNOTSUPP, 'the access was not made to pin pages');
  const access = file.access!;
  let iova = cmd.get64('iova');
  if (flags & SELFTEST.MOCK_FLAGS_ACCESS_SYZ) iova = syzIova(access.ioas, iova);
  const pin = access.pin(iova, length, !!(flags & SELFTEST.MOCK_FLAGS_ACCESS_WRITE));
  try {
    // syzkaller passes no uptr to skip the check; the client's view starts at iova's page.
    const uptr = cmd.get64('uptr');
    if (uptr) checkPages(f, cmd, pin, uptr - (iova & (f.daemon.host.memory.pageSize - 1n)));
    cmd.set('out_access_pages_id', file.addItem(iova, length, pin));
    cmd.respond();
  } catch (e) {
    access.unpin(pin);
    throw e;
  }
}

function accessRw(f: IommufdFile, cmd: TestCall): void {
  const length = cmd.get64('length');
  if (length > MAX_ACCESS_LENGTH) throw new Errno(ENOMEM, `length ${length}`);
  const flags = cmd.get('flags');
  if (flags & ~RW_FLAGS) throw new Errno(EOPNOTSUPP, `flags 0x${flags.toString(16)}`);
  const access = accessFile(f, cmd, cmd.id).access!;
  const write = !!(flags & SELFTEST.MOCK_ACCESS_RW_WRITE);
  const ubuf = cmd.get64('uptr');
  const tmp = Buffer.alloc(Number(length));
  if (write && !procMemIo(cmd.pid, ubuf, tmp, false)) throw new Errno(EFAULT, 'the client buffer is not readable');
  let iova = cmd.get64('iova');
  if (flags & SELFTEST.MOCK_FLAGS_ACCESS_SYZ) iova = syzIova(access.ioas, iova);
  const shared = f.daemon.selftest?.shared;
  access.rw(iova, length, write, (area, addr, offset, bytes) => {
    const piece = tmp.subarray(Number(offset), Number(offset + bytes));
    if (!ownerMemIo(area.owner, addr, piece, write, cmd.pid, shared)) throw new Errno(EFAULT, `the memory behind 0x${(iova + offset).toString(16)} is gone`);
  });
  if (!write && !procMemIo(cmd.pid, ubuf, tmp, true)) throw new Errno(EFAULT, 'the client buffer is not writeable');
}

export const accessOps: TestOps = {
  IOMMU_TEST_OP_CREATE_ACCESS: { member: 'create_access', handler: createAccess },
  IOMMU_TEST_OP_ACCESS_PAGES: { member: 'access_pages', handler: accessPages },
  IOMMU_TEST_OP_DESTROY_ACCESS_PAGES: {
    member: 'destroy_access_pages',
    handler: (f, cmd) => accessFile(f, cmd, cmd.id).removeItem(cmd.get('access_pages_id')),
  },
  IOMMU_TEST_OP_ACCESS_RW: { member: 'access_rw', handler: accessRw },
  IOMMU_TEST_OP_ACCESS_REPLACE_IOAS: {
    member: 'access_replace_ioas',
    handler: (f, cmd) => {
      const file = accessFile(f, cmd, cmd.id);
      const access = file.access!;
      if (!access.ioas) throw new Errno(ENOENT, 'the access is not attached');
      // IDs are the access's own context's, which need not be the one the call came through.
      access.replace(file.ctx.ioas(cmd.get('ioas_id')));
    },
  },
};
