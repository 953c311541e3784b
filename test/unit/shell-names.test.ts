// The named values of uAPI fields (src/uapi/field-names.ts) must point at real fields and constants,
// so that a renamed field or constant fails here rather than silently losing its names in the shell.
import { describe, expect, it } from 'vitest';
import { ARG_VALUES, FIELD_VALUES, namedValues, POINTER_ELEMENTS } from '../../src/uapi/field-names.ts';
import { IOCTLS, ioctl } from '../../src/uapi/ioctls.ts';
import { ALL_STRUCTS } from '../../src/uapi/structs.ts';

const structs = new Map(ALL_STRUCTS.map((s) => [s.name, s]));

describe('field names', () => {
  for (const [key, names] of FIELD_VALUES) {
    it(`${key} is a scalar field and takes at least one constant`, () => {
      const [struct, ...rest] = key.split('.');
      const f = structs.get(struct)?.byName.get(rest.join('.'));
      expect(f, key).toBeDefined();
      expect(typeof f!.type).toBe('string');
      const values = namedValues(names);
      expect(values.length).toBeGreaterThan(0);
      // Short names must be unambiguous, or a typed name could mean two things.
      expect(new Set(values.map((v) => v.short.toUpperCase())).size).toBe(values.length);
      if (names.kind === 'flags') for (const v of values) expect(v.value, v.name).toBeGreaterThan(0);
    });
  }

  it('gives the example names of the shell docs', () => {
    const dma = namedValues(FIELD_VALUES.get('vfio_iommu_type1_dma_map.flags')!);
    expect(dma.map((v) => v.short)).toEqual(['READ', 'WRITE', 'VADDR']);
    const eeh = namedValues(FIELD_VALUES.get('vfio_eeh_pe_op.op')!).map((v) => v.short);
    expect(eeh).toContain('GET_STATE');
    expect(eeh.some((s) => s.startsWith('STATE_'))).toBe(false);
    expect(namedValues(FIELD_VALUES.get('vfio_region_info.index')!).map((v) => v.short)).toEqual(['BAR0', 'ROM', 'CONFIG', 'VGA']);
  });

  for (const [name, names] of ARG_VALUES) {
    it(`${name} takes an integer argument with names`, () => {
      expect(ioctl(name).arg).toBe('value');
      expect(namedValues(names).map((v) => v.name)).toContain('VFIO_SPAPR_TCE_v2_IOMMU');
    });
  }

  for (const [key, elem] of POINTER_ELEMENTS) {
    it(`${key} points at ${elem.name} as its declaration says`, () => {
      const [struct, field] = key.split('.');
      const p = IOCTLS.flatMap((d) => (d.struct?.name === struct ? d.pointers ?? [] : [])).find((x) => x.field === field);
      expect(p, key).toBeDefined();
      expect(p!.elem).toBe(elem.size);
    });
  }
});
