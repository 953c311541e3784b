// Access objects' pin bookkeeping against an IOAS (src/objects/iommufd/access.ts, ioas.ts, pin-cover.ts):
// a page is pinned and charged once however many accesses and domains hold it, an unmap makes the
// accesses let go first, and the errors are the kernel's.
import { beforeEach, describe, expect, it } from 'vitest';
import { Daemon } from '../../src/daemon.ts';
import { EADDRINUSE, EDEADLK, EINVAL, ENODEV, ENOENT, EOPNOTSUPP, EOVERFLOW, EPERM, Errno } from '../../src/errno.ts';
import { IommufdAccess, type AccessOps } from '../../src/objects/iommufd/access.ts';
import { mapDmabuf, type DmaBuf, type DmabufMapping } from '../../src/objects/iommufd/dmabuf.ts';
import { Ioas, type AccessPin, type Area, type IoasDomain } from '../../src/objects/iommufd/ioas.ts';
import { PinCover } from '../../src/objects/iommufd/pin-cover.ts';
import { U64_MAX } from '../../src/objects/iommufd/ranges.ts';
import type { TceHost } from '../../src/tce/index.ts';
import { IOMMUFD } from '../../src/uapi/constants.ts';
import { defaultTopology } from '../../src/topology/topology.ts';

const { IOMMU_IOAS_MAP_FIXED_IOVA: FIXED, IOMMU_IOAS_MAP_READABLE: R, IOMMU_IOAS_MAP_WRITEABLE: W } = IOMMUFD;
const OWNER = 'pid:4242';

function errno(f: () => unknown): number {
  try {
    f();
  } catch (e) {
    if (e instanceof Errno) return e.errno;
    throw e;
  }
  return 0;
}

/** A domain that records what it maps, translating every IOVA. */
class FakeDomain implements IoasDomain {
  readonly mapped = new Set<bigint>();
  constructor(readonly minPageSize = 1n) {}
  apertures() {
    return [{ start: 0n, last: U64_MAX }];
  }
  map(a: Area) {
    this.mapped.add(a.start);
  }
  unmap(a: Area) {
    this.mapped.delete(a.start);
  }
}

/** The selftest driver's behaviour in small: pins are items, an unmap drops those it touches. */
class Driver implements AccessOps {
  items: { iova: bigint; last: bigint; pin: AccessPin }[] = [];
  unmaps: [bigint, bigint][] = [];
  access!: IommufdAccess;
  stubborn = false;
  constructor(readonly needsPinPages = true) {}
  unmap(iova: bigint, length: bigint) {
    this.unmaps.push([iova, length]);
    if (this.stubborn) return;
    const last = iova + length - 1n;
    this.items = this.items.filter((it) => {
      if (it.iova > last || it.last < iova) return true;
      this.access.unpin(it.pin);
      return false;
    });
  }
  pin(iova: bigint, length: bigint, write = false) {
    const pin = this.access.pin(iova, length, write);
    this.items.push({ iova, last: iova + length - 1n, pin });
    return pin;
  }
}

let host: TceHost;
let page: bigint;
let ioas: Ioas;
const pins = (ua: bigint) => host.memory.pinCount(OWNER, ua);
const locked = () => host.account(OWNER).locked;

function attach(driver = new Driver()): Driver {
  driver.access = new IommufdAccess(driver, page);
  driver.access.attach(ioas);
  return driver;
}

beforeEach(() => {
  host = new Daemon({ ...defaultTopology(), hostPageShift: 12 }).host;
  page = host.memory.pageSize;
  ioas = new Ioas(host);
});

describe('PinCover', () => {
  it('reports what goes from no holder to one and back, segment by segment', () => {
    const c = new PinCover();
    expect(c.add(0n, 10n)).toEqual([{ start: 0n, end: 10n }]);
    expect(c.add(5n, 15n)).toEqual([{ start: 10n, end: 15n }]);
    expect(c.gaps(0n, 20n)).toEqual([{ start: 15n, end: 20n }]);
    expect(c.remove(0n, 10n)).toEqual([{ start: 0n, end: 5n }]);
    expect(c.add(20n, 25n)).toEqual([{ start: 20n, end: 25n }]);
    expect(c.gaps(0n, 30n)).toEqual([{ start: 0n, end: 5n }, { start: 15n, end: 20n }, { start: 25n, end: 30n }]);
    expect(c.remove(5n, 15n)).toEqual([{ start: 5n, end: 15n }]);
    expect(c.remove(20n, 25n)).toEqual([{ start: 20n, end: 25n }]);
    expect(c.empty).toBe(true);
    expect(() => c.remove(0n, 1n)).toThrow();
  });
});

describe('access pins', () => {
  it('pin pages once however many accesses hold them, charge them once, and give both back', () => {
    ioas.map(0x100000n, 8n * page, 0x10000n, FIXED | R | W, OWNER);
    const a = attach();
    const b = attach();
    a.pin(0x10000n, 2n * page);
    expect([pins(0x100000n), pins(0x100000n + page), pins(0x100000n + 2n * page)]).toEqual([1, 1, 0]);
    expect(locked()).toBe(2n * page);
    b.pin(0x10000n + page, 2n * page);
    expect([pins(0x100000n), pins(0x100000n + page), pins(0x100000n + 2n * page)]).toEqual([1, 1, 1]);
    expect(locked()).toBe(3n * page);
    expect(ioas.chargedBytes(ioas.areas.valuesArray()[0])).toBe(3n * page);
    for (const d of [a, b]) for (const it of d.items.splice(0)) d.access.unpin(it.pin);
    expect(pins(0x100000n + page)).toBe(0);
    expect(locked()).toBe(0n);
  });

  it('share the pins of domains: a domain coming or going never pins a held page twice or drops it', () => {
    ioas.map(0x100000n, 4n * page, 0x10000n, FIXED | R | W, OWNER);
    const a = attach();
    a.pin(0x10000n + page, page);
    const d = new FakeDomain();
    ioas.addDomain(d);
    expect([0n, 1n, 2n, 3n].map((k) => pins(0x100000n + k * page))).toEqual([1, 1, 1, 1]);
    expect(locked()).toBe(4n * page);
    ioas.removeDomain(d);
    expect([0n, 1n, 2n, 3n].map((k) => pins(0x100000n + k * page))).toEqual([0, 1, 0, 0]);
    ioas.addDomain(d);
    a.access.unpin(a.items.pop()!.pin);
    expect(pins(0x100000n + page)).toBe(1);
    ioas.removeDomain(d);
    expect(pins(0x100000n + page)).toBe(0);
    expect(locked()).toBe(0n);
  });

  it('refuse what the kernel refuses, leaving nothing pinned', () => {
    ioas.map(0x100000n, 2n * page, 0x10000n, FIXED | R, OWNER);
    ioas.map(0x200000n, page, 0x10000n + 2n * page, FIXED | R | W, OWNER);
    const a = attach();
    expect(errno(() => a.pin(0x10000n, 3n * page, true))).toBe(EPERM);
    expect(errno(() => a.pin(0x10000n + 2n * page, page, true))).toBe(0);
    expect(errno(() => a.pin(0x10000n, 4n * page))).toBe(ENOENT);
    expect(errno(() => a.pin(0x10000n + 8n, 8n))).toBe(EINVAL); // not at the start of a page
    expect(errno(() => a.pin(0x10000n, 0n))).toBe(EINVAL);
    expect(errno(() => a.pin(U64_MAX, 2n))).toBe(EOVERFLOW);
    expect(locked()).toBe(page); // only the pin that succeeded
    expect(pins(0x100000n)).toBe(0);
    const rw = attach(new Driver(false));
    expect(errno(() => rw.access.pin(0x10000n, page, false))).toBe(EINVAL);
  });

  it('cross areas only at page ends', () => {
    ioas.map(0x100000n, page, 0x10000n, FIXED | R | W, OWNER);
    ioas.map(0x300000n, page, 0x10000n + page, FIXED | R | W, OWNER);
    const a = attach();
    a.pin(0x10000n, 2n * page);
    expect([pins(0x100000n), pins(0x300000n)]).toEqual([1, 1]);
  });
});

describe('unmap and the access lifetime', () => {
  it('an unmap has the accesses drop their pins in the range first; one that will not makes it EDEADLK', () => {
    ioas.map(0x100000n, 4n * page, 0x10000n, FIXED | R | W, OWNER);
    const a = attach();
    a.pin(0x10000n, page);
    expect(ioas.unmap(0x10000n, 4n * page)).toBe(4n * page);
    expect(a.unmaps).toEqual([[0x10000n, 4n * page]]);
    expect(a.items).toEqual([]);
    expect(locked()).toBe(0n);

    ioas.map(0x100000n, 4n * page, 0x10000n, FIXED | R | W, OWNER);
    a.pin(0x10000n, page);
    a.stubborn = true;
    expect(errno(() => ioas.unmap(0x10000n, 4n * page))).toBe(EDEADLK);
    expect(ioas.areas.size).toBe(1);
    expect(errno(() => ioas.cut(0x10000n + page - 1n))).toBe(EINVAL);
  });

  it('an access that pins needs page-aligned areas (EADDRINUSE) and makes the IOAS align to the page', () => {
    ioas.map(0x100000n + 0x800n, page, 0x10800n, FIXED | R | W, OWNER);
    expect(errno(() => attach())).toBe(EADDRINUSE);
    expect(ioas.users).toBe(1);
    const rw = attach(new Driver(false));
    expect(ioas.iovaAlignment).toBe(1n);
    ioas.unmapAll();
    const a = attach();
    expect(ioas.iovaAlignment).toBe(page);
    expect(errno(() => ioas.map(0x100000n, 0x800n, 0x10000n, FIXED | R | W, OWNER))).toBe(EINVAL);
    a.access.destroy();
    rw.access.destroy();
    expect(ioas.iovaAlignment).toBe(1n);
    expect(ioas.users).toBe(1);
  });

  it('replace drops every pin in the old IOAS and moves the IOAS references', () => {
    ioas.map(0x100000n, page, 0x10000n, FIXED | R | W, OWNER);
    const a = attach();
    a.pin(0x10000n, page);
    const other = new Ioas(host);
    expect(ioas.users).toBe(2);
    a.access.replace(other);
    expect(a.unmaps).toEqual([[0n, U64_MAX]]);
    expect([ioas.users, other.users, pins(0x100000n)]).toEqual([1, 2, 0]);
    expect(errno(() => a.access.pin(0x10000n, page, false))).toBe(ENOENT);
    a.access.destroy();
    expect(other.users).toBe(1);
    expect(errno(() => a.access.replace(ioas))).toBe(ENOENT);
  });

  it('reads and writes area by area, refusing holes and areas that do not allow it', () => {
    ioas.map(0x100000n, page, 0x10000n, FIXED | R, OWNER);
    ioas.map(0x300000n, page, 0x10000n + page, FIXED | R | W, OWNER);
    const a = attach(new Driver(false));
    const seen: [bigint, bigint, bigint][] = [];
    a.access.rw(0x10000n + page - 16n, 32n, false, (_area, ua, off, n) => seen.push([ua, off, n]));
    expect(seen).toEqual([[0x100000n + page - 16n, 0n, 16n], [0x300000n, 16n, 16n]]);
    expect(errno(() => a.access.rw(0x10000n, 8n, true, () => undefined))).toBe(EPERM);
    expect(errno(() => a.access.rw(0x10000n + page, 2n * page, false, () => undefined))).toBe(ENOENT);
  });
});

describe('dma-buf areas', () => {
  const buf = (): DmaBuf & { revoked: boolean } => ({ size: 4n * page, revoked: false, owner: 'dmabuf:1', imports: new Set<DmabufMapping>() });

  it('are neither pinned nor charged, leave the domains when revoked and refuse accesses', () => {
    const b = buf();
    const d = new FakeDomain();
    ioas.addDomain(d);
    expect(errno(() => mapDmabuf(ioas, b, page, 4n * page, 0x10000n, true, true))).toBe(EINVAL);
    const iova = mapDmabuf(ioas, b, 0n, 4n * page, 0x10000n, true, true);
    expect(host.memory.pinnedBytes()).toBe(0n);
    expect(d.mapped.has(iova)).toBe(true);
    const a = attach(new Driver(false));
    expect(errno(() => a.access.rw(iova, 8n, false, () => undefined))).toBe(EINVAL);
    expect(errno(() => ioas.cut(iova + page - 1n))).toBe(EOPNOTSUPP);
    b.revoked = true;
    for (const m of b.imports) m.revoke();
    expect(d.mapped.has(iova)).toBe(false);
    expect(errno(() => mapDmabuf(ioas, b, 0n, page, undefined, true, true))).toBe(ENODEV);
    b.revoked = false;
    const d2 = new FakeDomain();
    ioas.addDomain(d2);
    expect(d2.mapped.has(iova)).toBe(false); // revoked for good
    mapDmabuf(ioas, b, 0n, page, 0x100000n, true, true);
    expect(d2.mapped.has(0x100000n)).toBe(true);
    ioas.unmapAll();
    expect(b.imports.size).toBe(0);
  });
});
