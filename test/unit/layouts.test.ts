// The declared uAPI must equal what gcc measured from the real headers: test/fixtures holds the
// measurements (see test/fixtures/README.md for where they come from).
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ALL_CONSTANTS } from '../../src/uapi/constants.ts';
import { canonicalNr, IOCTLS, requestValue } from '../../src/uapi/ioctls.ts';
import { decode, encode, readField } from '../../src/uapi/layout.ts';
import { ALL_STRUCTS, vfio_iommu_spapr_tce_create } from '../../src/uapi/structs.ts';
import { ALL_SELFTEST_CONSTANTS, SELFTEST_STRUCTS } from '../../src/uapi/selftest.ts';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const measured = JSON.parse(readFileSync(fixture('linux-uapi-layouts.json'), 'utf8'));
const added = JSON.parse(readFileSync(fixture('linux-7.3-uapi-additions.json'), 'utf8'));
/** iommufd_test.h of 7.3 (CONFIG_IOMMUFD_TEST), measured by scripts/selftest-headers.ts. */
const selftest = JSON.parse(readFileSync(fixture('linux-7.3-iommufd-test.json'), 'utf8'));
// The copy the fixture was taken from, beside the project where the workspace has it (as CI does).
const sharedPath = fileURLToPath(new URL('../../../shared/abi/linux-uapi-layouts.json', import.meta.url));

/** The fixture and the Linux 7.3 additions as one set of facts. */
const abi = {
  structs: { ...measured.structs, ...added.structs },
  ioctls: { ...measured.ioctls, ...added.ioctls, ...selftest.ioctls },
  constants: { ...measured.constants, ...added.constants },
  collisions: measured.collisions,
};

describe('the ABI fixture', () => {
  it('says where it was measured, and is the copy the workspace carries where there is one', () => {
    expect(Object.keys(measured.source.commit).sort()).toEqual(['include/uapi/linux/iommufd.h', 'include/uapi/linux/vfio.h']);
    expect(measured.build.method).toMatch(/nothing hand-computed/);
    expect(measured.counts.structs).toBe(Object.keys(measured.structs).length);
    expect(measured.counts.ioctls).toBe(Object.keys(measured.ioctls).length);
    if (existsSync(sharedPath)) expect(measured).toEqual(JSON.parse(readFileSync(sharedPath, 'utf8')));
  });
  it('the 7.3 additions name their package and headers and overlap nothing measured before', () => {
    expect(added.source.package).toBe('linux-source-7.3');
    expect(Object.keys(added.source.files).sort()).toEqual(['linux/iommufd.h', 'linux/vfio.h']);
    for (const kind of ['structs', 'ioctls', 'constants'] as const) {
      for (const name of Object.keys(added[kind])) expect(measured[kind][name], `${name} is new in 7.3`).toBeUndefined();
    }
  });
});

describe('struct layouts equal the measured kernel headers', () => {
  for (const s of ALL_STRUCTS) {
    it(`struct ${s.name}`, () => {
      const measured = abi.structs[s.name];
      expect(measured, `${s.name} is measured`).toBeDefined();
      expect(s.size).toBe(measured.size);
      expect(s.align).toBe(measured.align);
      // Every measured top-level field exists with the same offset and size.
      for (const f of measured.fields) {
        const ours = s.byName.get(f.name);
        expect(ours, `${s.name}.${f.name}`).toBeDefined();
        expect([ours!.offset, ours!.size]).toEqual([f.offset, f.size]);
      }
      // And we declare nothing the header does not have (nested members are `outer.inner`).
      const top = s.fields.filter((f) => !f.name.includes('.')).map((f) => f.name);
      expect(top.sort()).toEqual(measured.fields.map((f: { name: string }) => f.name).sort());
    });
  }
});

describe('the selftest uAPI equals the measured iommufd_test.h', () => {
  it('names its header and declares every struct and constant measured there', () => {
    expect(Object.keys(selftest.source.files)).toEqual(['drivers/iommu/iommufd/iommufd_test.h']);
    expect(SELFTEST_STRUCTS.map((s) => s.name).sort()).toEqual(Object.keys(selftest.structs).sort());
    expect(ALL_SELFTEST_CONSTANTS).toEqual(selftest.constants);
  });
  for (const s of SELFTEST_STRUCTS) {
    it(`struct ${s.name}, union members field by field`, () => {
      const m = selftest.structs[s.name];
      expect([s.size, s.align]).toEqual([m.size, m.align]);
      const ours = s.fields.map((f) => ({ name: f.name, offset: f.offset, size: f.size }));
      expect(ours.sort((a, b) => a.name.localeCompare(b.name))).toEqual([...m.fields].sort((a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name)));
    });
  }
});

describe('ioctl numbers equal the measured kernel headers', () => {
  it('declares exactly the measured ioctls (Linux 7.3)', () => {
    expect(IOCTLS.map((d) => d.name).sort()).toEqual(Object.keys(abi.ioctls).sort());
  });
  for (const d of IOCTLS) {
    it(`${d.name} = ${abi.ioctls[d.name]?.hex}`, () => {
      const m = abi.ioctls[d.name];
      expect(requestValue(d.nr)).toBe(m.value);
      expect(requestValue(d.nr, 'powerpc')).toBe((0x20000000 | m.value) >>> 0);
      if (m.struct && d.struct) expect(d.struct.name).toBe(m.struct);
      if (d.struct && d.minsz !== undefined) expect(d.minsz).toBeLessThanOrEqual(d.struct.size);
    });
  }
  it('collision groups are the measured ones', () => {
    const byValue = new Map<number, string[]>();
    for (const d of IOCTLS) byValue.set(requestValue(d.nr), [...(byValue.get(requestValue(d.nr)) ?? []), d.name]);
    const ours = [...byValue.entries()].filter(([, n]) => n.length > 1).map(([v, n]) => [v, n.sort()]);
    const theirs = abi.collisions.map((c: { value: number; names: string[] }) => [c.value, [...c.names].sort()]);
    expect(ours.sort()).toEqual(theirs.sort());
  });
});

describe('constants equal the measured kernel headers', () => {
  for (const [name, value] of Object.entries(ALL_CONSTANTS)) {
    it(name, () => expect(abi.constants[name]).toBe(value));
  }
});

describe('request canonicalisation', () => {
  it('accepts the generic and powerpc encodings of _IO', () => {
    expect(canonicalNr(0x3b80)).toBe(0x80);
    expect(canonicalNr(0x20003b80)).toBe(0x80);
  });
  it('refuses encodings with direction or size bits, or another type', () => {
    expect(canonicalNr(0xc0283b77)).toBeUndefined(); // _IOWR with a size: the kernel matches the full value
    expect(canonicalNr(0x40003b77)).toBeUndefined();
    expect(canonicalNr(0x3c77)).toBeUndefined();
  });
});

describe('codec', () => {
  it('round-trips a struct with u64 fields exactly', () => {
    const b = encode(vfio_iommu_spapr_tce_create, {
      argsz: 40, page_shift: 16, window_size: 1n << 40n, levels: 2, start_addr: 0x0800_0000_0000_0000n,
    });
    expect(b.length).toBe(40);
    expect(b.readBigUInt64LE(32)).toBe(1n << 59n);
    const v = decode(vfio_iommu_spapr_tce_create, b);
    expect(v).toMatchObject({ argsz: 40, flags: 0, page_shift: 16, window_size: 1n << 40n, levels: 2, start_addr: 1n << 59n });
    expect(readField(b, vfio_iommu_spapr_tce_create, 'window_size')).toBe(1n << 40n);
  });
});
