// Posted region writes (docs/protocol.md, "Posted writes"). A PCI memory write is posted: the CPU does not
// wait for the device. Through FUSE every pwrite of a doorbell is a round trip the writer waits out, four
// wake-ups on a two-CPU machine. A client may instead send such writes down a stream socket and go on; the
// daemon's event loop is woken once, by the data.
//
// What keeps this exact: (1) only writes that cannot fail are posted, inside the windows the file names
// (OpenFile.postWindows) and while word 1 of the lease file still reads the epoch of the grant. Every
// FUSE request other than such a write bumps that word before it runs (TcefsFs), so a client that changed
// anything (config space, a reset, an unbind) or was overtaken by anyone else who did asks again before
// posting. (2) Order: before any other request on the same open file is served, whatever that file's
// clients posted is read and run first (drain), as a read pushes posted writes ahead of it on PCI.
//
// The socket has an abstract name (no file is left behind by a killed daemon); a connection is bound to
// an open file by a one-use token from the POST answer, which only a holder of the file can ask for.
import { readSync, writeSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import createDebug from 'debug';
import { EINVAL, EOPNOTSUPP, Errno } from '../errno.ts';
import type { EventSink } from '../objects/vfio/irq-events.ts';
import { writeField, readU32, readU64 } from '../uapi/layout.ts';
import { POST_FIELD, POST_MAX_DATA, POST_WINDOWS, PostRole, postGrant, postWrite, type Blob } from './frame.ts';
import type { LeaseBoard } from './leases.ts';
import { now, perf } from '../perf.ts';

const trace = createDebug('tcefs:posted');

/** What a posted write lands on: an open device file, and its interrupt event stream. */
export interface PostTarget {
  postWindows(): [bigint, bigint][];
  regionWrite(offset: bigint, data: Buffer): number;
  readonly events?: { stream(sink: EventSink): void; unstream(sink: EventSink): void };
}

const TOKEN = 16;
const HEADER = postWrite.size;
const OFFSET = postWrite.byName.get('offset')!.offset;
const LENGTH = postWrite.byName.get('length')!.offset;
const pad8 = (n: number) => Math.ceil(n / 8) * 8;

/**
 * Polling after an interrupt, as KVM halt-polls: a driver that waits for each completion rings the next
 * doorbell a few hundred microseconds after its interrupt, and on a machine where waking a sleeping CPU
 * costs about a hundred, catching that write by reading the socket beats sleeping in the event loop.
 * The window grows while the next write comes within the most a poll may last, and halves each time a
 * poll finds nothing, down to none: a client that goes quiet costs no CPU.
 */
export const POLL_MAX_NS = 400_000;
const POLL_START_NS = 50_000;

interface Link {
  sock: Socket;
  fd: number;
  target?: PostTarget;
  role?: PostRole;
  sink?: EventSink;
  /** Bytes of a record (or of the token) that came without the rest. */
  carry: Buffer;
  closed: boolean;
}

export class PostServer {
  private server?: Server;
  private failed = false;
  private readonly nonce = randomBytes(8).readBigUInt64BE();
  /** Tokens handed out and not yet used, by hex. */
  private readonly tokens = new Map<string, { target: PostTarget; role: PostRole }>();
  private readonly links = new Map<PostTarget, Set<Link>>();
  private readonly scratch = Buffer.alloc(64 * 1024);
  /** Per target: how long to poll for the next posted write after an interrupt (ns), and when it went. */
  private readonly polls = new Map<PostTarget, { window: number; raised: number; armed: boolean }>();

  /** @param pollNs the most a poll after an interrupt may last; 0 never polls */
  constructor(private readonly board: LeaseBoard, private readonly pollNs = POLL_MAX_NS) {}

  private get name(): string {
    return `\0tcefs-post-${process.pid}-${this.nonce.toString(16).padStart(16, '0')}`;
  }

  private listen(): boolean {
    if (this.server) return true;
    if (this.failed) return false;
    try {
      // A pipe server binds and listens within listen(): a client may connect as soon as it returns.
      const server = createServer({ pauseOnConnect: false }, (sock) => this.accept(sock));
      server.on('error', (e) => trace('post server: %s', e.message));
      server.listen(this.name);
      this.server = server;
      return true;
    } catch (e) {
      trace('post server: %s', (e as Error).message);
      this.failed = true;
      return false;
    }
  }

  /**
   * POST: the grant blob for `target`, or throws Errno. For writes, a target with a connection keeps it
   * (token 0); an event stream always gets a new one, which replaces the old.
   */
  grant(target: PostTarget, role: number): Blob {
    if (role !== PostRole.WRITES && (role !== PostRole.EVENTS || !target.events)) throw new Errno(EINVAL, `POST role ${role}`);
    const windows = role === PostRole.WRITES ? target.postWindows() : [];
    if (!this.listen()) throw new Errno(EOPNOTSUPP, 'no socket for posted writes');
    const epoch = this.board.grantPosts();
    if (epoch === undefined) throw new Errno(EOPNOTSUPP, 'no lease file for posted writes');
    const data = Buffer.alloc(postGrant.size);
    if (role === PostRole.EVENTS || !this.writeLinks(target).length) {
      const token = randomBytes(TOKEN);
      this.tokens.set(token.toString('hex'), { target, role });
      token.copy(data, postGrant.byName.get('token')!.offset);
    }
    writeField(data, postGrant, 'nonce', this.nonce);
    writeField(data, postGrant, 'epoch', epoch);
    writeField(data, postGrant, 'daemon_pid', process.pid);
    const n = Math.min(windows.length, POST_WINDOWS);
    writeField(data, postGrant, 'nwin', n);
    const starts = postGrant.byName.get('win_start')!.offset;
    const ends = postGrant.byName.get('win_end')!.offset;
    for (let i = 0; i < n; i++) {
      data.writeBigUInt64LE(windows[i][0], starts + 8 * i);
      data.writeBigUInt64LE(windows[i][1], ends + 8 * i);
    }
    return { fieldOffset: POST_FIELD, data };
  }

  private accept(sock: Socket): void {
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return void sock.destroy();
    const link: Link = { sock, fd, carry: Buffer.alloc(0), closed: false };
    sock.on('data', (d: Buffer) => this.feed(link, d));
    sock.on('error', () => this.unlink(link));
    sock.on('close', () => this.unlink(link));
  }

  /**
   * Records to the client at once: a write(2) on the socket from here costs a few microseconds, a stream
   * write tens. Only what the socket did not take, or anything behind it, goes through the stream.
   */
  private send(link: Link, b: Buffer): void {
    if (link.closed) return;
    if (!link.sock.writableLength) {
      let n = 0;
      try {
        n = writeSync(link.fd, b);
      } catch {
        // EAGAIN (the client is behind) or EPIPE (it is gone, and the stream will say so)
      }
      if (n === b.length) return;
      b = b.subarray(n);
    }
    link.sock.write(b);
  }

  private unlink(link: Link): void {
    if (link.closed) return;
    link.closed = true;
    if (link.target) this.links.get(link.target)?.delete(link);
    if (link.sink) link.target?.events?.unstream(link.sink);
    link.sock.destroy();
  }

  /** Whatever came in on `link`: first the token, then records, each run as it completes. */
  private feed(link: Link, d: Buffer, polled = false): void {
    // A write that came by waking the loop, soon enough after an interrupt that a poll would have had it.
    const st = !polled && link.role === PostRole.WRITES && link.target ? this.polls.get(link.target) : undefined;
    const gap = st ? now() - st.raised : Infinity;
    if (st && gap < this.pollNs) st.window = Math.min(this.pollNs, Math.max(POLL_START_NS, st.window * 2, gap * 1.25));
    let buf = link.carry.length ? Buffer.concat([link.carry, d]) : d;
    let at = 0;
    if (!link.target) {
      if (buf.length < TOKEN) return void (link.carry = Buffer.from(buf));
      const key = buf.subarray(0, TOKEN).toString('hex');
      const grant = this.tokens.get(key);
      if (!grant) {
        trace('post link with an unknown token');
        return this.unlink(link);
      }
      this.tokens.delete(key);
      link.target = grant.target;
      link.role = grant.role;
      let set = this.links.get(grant.target);
      if (!set) this.links.set(grant.target, (set = new Set()));
      set.add(link);
      link.sock.write(Buffer.from('k'));
      at = TOKEN;
      if (grant.role === PostRole.EVENTS) {
        // The client only reads this one: records go out as the device raises them.
        const sink: EventSink = { push: (b) => { this.send(link, b); this.afterInterrupt(grant.target); }, end: () => this.unlink(link) };
        link.sink = sink;
        grant.target.events!.stream(sink);
      }
    }
    if (link.role === PostRole.EVENTS) {
      if (buf.length > at) {
        trace('event link sent data');
        this.unlink(link);
      }
      return;
    }
    while (buf.length - at >= HEADER) {
      const length = readU32(buf, at + LENGTH);
      if (length === 0 || length > POST_MAX_DATA) {
        trace('post link sent a record of %d bytes', length);
        return this.unlink(link);
      }
      const end = at + HEADER + pad8(length);
      if (end > buf.length) break;
      this.run(link.target!, readU64(buf, at + OFFSET), buf.subarray(at + HEADER, at + HEADER + length));
      at = end;
    }
    link.carry = at < buf.length ? Buffer.from(buf.subarray(at)) : Buffer.alloc(0);
  }

  private run(target: PostTarget, offset: bigint, data: Buffer): void {
    const t0 = now();
    let r: number;
    try {
      r = target.regionWrite(offset, data);
    } catch (e) {
      if (!(e instanceof Errno)) throw e;
      r = -e.errno;
    }
    perf.mmioWrite.add(t0, data.length);
    perf.posted.add(t0, data.length);
    // The client's grant was older than the change that made this fail: it asks again before its next.
    if (r !== data.length) this.board.revokePosts();
  }

  private afterInterrupt(target: PostTarget): void {
    if (!this.pollNs) return;
    let st = this.polls.get(target);
    if (!st) this.polls.set(target, (st = { window: 0, raised: 0, armed: false }));
    st.raised = now();
    if (st.window <= 0 || st.armed) return;
    st.armed = true;
    // After what the current turn still has to do.
    setImmediate(() => {
      st.armed = false;
      this.poll(target, st);
    });
  }

  private poll(target: PostTarget, st: { window: number; raised: number }): void {
    const links = this.writeLinks(target);
    if (!links.length) return;
    const deadline = st.raised + st.window;
    for (;;) {
      for (const link of links) {
        if (this.readOnce(link) > 0) return;
      }
      if (now() >= deadline) break;
    }
    st.window = st.window / 2 < POLL_START_NS / 4 ? 0 : st.window / 2;
  }

  /** One read of a posted-write connection: bytes fed, 0 when nothing was there. */
  private readOnce(link: Link): number {
    let n: number;
    try {
      n = readSync(link.fd, this.scratch, 0, this.scratch.length, null);
    } catch {
      return 0; // EAGAIN: nothing more has been sent
    }
    if (n > 0) this.feed(link, this.scratch.subarray(0, n), true);
    return n;
  }

  /** The connections `target`'s clients post writes down. */
  private writeLinks(target: PostTarget): Link[] {
    const set = this.links.get(target);
    return set?.size ? [...set].filter((l) => l.role === PostRole.WRITES && !l.closed) : [];
  }

  /** Before another request on `target` runs: what its clients posted runs first. */
  drain(target: PostTarget): void {
    for (const link of this.writeLinks(target)) while (this.readOnce(link) > 0);
  }

  /** The file was released: what was posted runs, and its connections and tokens end. */
  drop(target: PostTarget): void {
    this.drain(target);
    for (const link of [...(this.links.get(target) ?? [])]) this.unlink(link);
    this.links.delete(target);
    this.polls.delete(target);
    for (const [k, t] of this.tokens) if (t.target === target) this.tokens.delete(k);
  }

  /** Connections open now (leak checks). */
  get connections(): number {
    let n = 0;
    for (const s of this.links.values()) n += s.size;
    return n;
  }

  close(): void {
    for (const t of [...this.links.keys()]) this.drop(t);
    this.polls.clear();
    this.tokens.clear();
    this.server?.close();
    this.server = undefined;
  }
}
