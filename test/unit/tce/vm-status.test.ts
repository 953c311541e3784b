import { describe, expect, it } from 'vitest';
import { ProcessVm, renderVmCharge } from '../../../src/tce/index.ts';

describe('ProcessVm', () => {
  it('counts pinned bytes always and locked bytes only for per-process accounting', () => {
    const vm = new ProcessVm();
    vm.charge('pid:1', 0x10000n, false);
    vm.charge('pid:1', 0x20000n, true);
    expect(vm.of('pid:1')).toEqual({ pinned: 0x30000n, locked: 0x20000n });
    expect(vm.of('pid:2')).toEqual({ pinned: 0n, locked: 0n });
    vm.uncharge('pid:1', 0x20000n, true);
    expect(vm.of('pid:1')).toEqual({ pinned: 0x10000n, locked: 0n });
  });

  it('never goes below zero, and forgets an owner left with nothing', () => {
    const vm = new ProcessVm();
    vm.charge('pid:1', 0x10000n, true);
    vm.uncharge('pid:1', 0x40000n, true);
    expect(vm.of('pid:1')).toEqual({ pinned: 0n, locked: 0n });
    vm.uncharge('pid:3', 0x10000n, false);
    expect(vm.of('pid:3')).toEqual({ pinned: 0n, locked: 0n });
    vm.charge('pid:1', 0x10000n, false);
    expect(vm.of('pid:1')).toEqual({ pinned: 0x10000n, locked: 0n });
  });

  it('renders whole kB, one line per value', () => {
    expect(renderVmCharge({ pinned: 0x110000n, locked: 0x10000n + 1023n })).toBe('VmPin 1088\nVmLck 64\n');
  });
});
