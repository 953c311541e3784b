// Unmap leases (docs/protocol.md, "Unmap leases"): after an unmap the daemon may tell the client that
// identical unmaps of a run of empty TCEs next to it would change nothing and answer 0, so the client
// answers them itself. A guest clearing its 1 GiB default window at boot makes 262,144 such calls, each
// otherwise a FUSE round trip.
//
// The client drops its lease on any call of its own. Everything else that could change the answer
// (another process's frame, a release, a control command, a sysfs write) goes through the FUSE ops,
// which revoke first: the daemon changes the first word of the lease file, which the client maps and
// compares before each answer. The file is unlinked at once and reached as /proc/<pid>/fd/<fd>, so a
// killed daemon leaves nothing behind (its clients see it die through a pidfd).
import { closeSync, ftruncateSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { TceTable } from '../tce/index.ts';
import { LEASE_FIELD, leaseRecord, type Blob } from './frame.ts';
import { writeField } from '../uapi/layout.ts';

export class LeaseBoard {
  private fd = -1;
  private epoch = 1n;
  /** Whether a lease on the current epoch went out; revoking costs a write only then. */
  private outstanding = false;
  /** The second word: the epoch posted-write grants name (src/transport/posted.ts), and the same flag. */
  private postEpoch = 1n;
  private postOutstanding = false;
  private failed = false;
  private readonly word = Buffer.alloc(16);

  /** Where a client opens the lease file, once a lease went out (the mount's LEASE_PATH links here). */
  get target(): string {
    return `/proc/${process.pid}/fd/${this.fd}`;
  }

  private open(): boolean {
    if (this.fd >= 0) return true;
    if (this.failed) return false;
    for (const dir of ['/dev/shm', tmpdir()]) {
      const path = join(dir, `tcefs-lease-${process.pid}-${randomBytes(6).toString('hex')}`);
      try {
        this.fd = openSync(path, 'wx+', 0o600);
      } catch {
        continue;
      }
      unlinkSync(path);
      ftruncateSync(this.fd, 4096);
      this.publish();
      return true;
    }
    this.failed = true;
    return false;
  }

  private publish(): void {
    this.word.writeBigUInt64LE(this.epoch);
    this.word.writeBigUInt64LE(this.postEpoch, 8);
    writeSync(this.fd, this.word, 0, 16, 0);
  }

  /** The epoch a posted-write grant names now (word 1 of the file); undefined when the file cannot be made. */
  grantPosts(): bigint | undefined {
    if (!this.open()) return undefined;
    this.postOutstanding = true;
    return this.postEpoch;
  }

  /** Before anything but a posted-kind write reaches the daemon: every grant out so far is void. */
  revokePosts(): void {
    if (!this.postOutstanding) return;
    this.postOutstanding = false;
    this.postEpoch++;
    this.publish();
  }

  /**
   * A lease blob for the run of entries [from, to) of `t`, which the caller has just seen empty; none
   * when the file cannot be made. The run ends at the next live TCE or the window's end.
   */
  grant(t: TceTable, from: bigint, end: bigint): Blob | undefined {
    if (!this.open()) return undefined;
    const to = t.nextLive(from, end);
    if (to <= from) return undefined;
    this.outstanding = true;
    const data = Buffer.alloc(leaseRecord.size);
    writeField(data, leaseRecord, 'start', from << t.shift);
    writeField(data, leaseRecord, 'end', to << t.shift);
    writeField(data, leaseRecord, 'epoch', this.epoch);
    writeField(data, leaseRecord, 'page_shift', t.pageShift);
    writeField(data, leaseRecord, 'daemon_pid', process.pid);
    return { fieldOffset: LEASE_FIELD, data };
  }

  /** Before anything that could change what a lease promised: every lease out so far is void. */
  revoke(): void {
    if (!this.outstanding) return;
    this.outstanding = false;
    this.epoch++;
    this.publish();
  }

  close(): void {
    if (this.fd < 0) return;
    this.outstanding = true;
    this.postOutstanding = true;
    this.postEpoch++;
    this.revoke();
    closeSync(this.fd);
    this.fd = -1;
  }
}
