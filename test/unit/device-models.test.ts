// The device-model layer's pure parts: BAR routing (EEH freeze, ranges that are not the model's), the
// plain memory model, and the topology's "model" key.
import { describe, expect, it } from 'vitest';
import { barRead, barWrite, type BarOverlay, type BarTarget } from '../../src/devices/bars.ts';
import { MemoryModel } from '../../src/devices/memory-model.ts';
import { DEFAULT_TOPOLOGY_JSON, parseTopology } from '../../src/topology/topology.ts';
import { Harness } from '../helpers/direct.ts';

/** An overlay that answers 0xee and records what it was written, at its own offsets. */
function overlay(bar: number, offset: number, size: number) {
  const writes: [number, number[]][] = [];
  const o: BarOverlay = { bar, offset, size, read: (_off, len) => Buffer.alloc(len, 0xee), write: (off, d) => void writes.push([off, [...d]]) };
  return { o, writes };
}

describe('BAR routing', () => {
  it('sends the bytes of an overlay to it and the rest to the model, split at the edges', () => {
    const model = new MemoryModel();
    const { o, writes } = overlay(0, 0x10, 4);
    const t: BarTarget = { model, overlays: [o], mmioFrozen: false };
    barWrite(t, 0, 0x0e, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]));
    expect(writes).toEqual([[0, [3, 4, 5, 6]]]);
    expect([...barRead(t, 0, 0x0c, 12)]).toEqual([0, 0, 1, 2, 0xee, 0xee, 0xee, 0xee, 7, 8, 0, 0]);
    // The model never saw the overlay's bytes, and other BARs are untouched by it.
    expect([...model.read(0, 0x10, 4)]).toEqual([0, 0, 0, 0]);
    barWrite(t, 2, 0x10, Buffer.from([9]));
    expect([...barRead(t, 2, 0x10, 1)]).toEqual([9]);
  });

  it('reads all ones and drops writes while EEH has MMIO frozen', () => {
    const model = new MemoryModel();
    const t: BarTarget = { model, overlays: [], mmioFrozen: true };
    barWrite(t, 0, 0, Buffer.from([1]));
    expect(barRead(t, 0, 0, 3)).toEqual(Buffer.alloc(3, 0xff));
    expect(model.read(0, 0, 1)).toEqual(Buffer.alloc(1));
  });

  it('a device file reaches the model, and a frozen PE answers all ones through it', () => {
    const h = new Harness();
    const dev = h.open('/dev/vfio/devices/vfio0');
    expect(h.call(dev, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: h.open('/dev/iommu').handle }).result).toBe(0);
    h.enableMemory(dev);
    dev.regionWrite(0x10n, Buffer.from('abcd'));
    const fn = h.daemon.inventory.functions.get('0000:01:00.0')!;
    expect(fn.model.name).toBe('memory');
    expect(fn.model.read(0, 0x10, 4).toString()).toBe('abcd');
    fn.group.pe.eeh.freeze();
    expect(dev.regionRead(0x10n, 4)).toEqual(Buffer.alloc(4, 0xff));
    expect(h.call(dev, 'VFIO_DEVICE_RESET').result).toBe(0);
    fn.group.pe.eeh.op(2);
    h.enableMemory(dev); // the reset turned decoding off with the rest of the command register
    expect(dev.regionRead(0x10n, 4)).toEqual(Buffer.alloc(4)); // a function-level reset clears the BAR
  });
});

describe('the topology names a model per function', () => {
  const withModel = (model: unknown) => {
    const t = structuredClone(DEFAULT_TOPOLOGY_JSON) as any;
    t.phbs[0].pes[1].devices[0].model = model;
    return t;
  };
  it('defaults to plain memory and refuses names it does not know', () => {
    expect(parseTopology(DEFAULT_TOPOLOGY_JSON).phbs[0].pes[0].devices[0].model).toBeUndefined();
    expect(parseTopology(DEFAULT_TOPOLOGY_JSON).phbs[0].pes[1].devices[0].model).toBe('nvme');
    expect(parseTopology(withModel('copy-engine')).phbs[0].pes[1].devices[0].model).toBe('copy-engine');
    expect(() => parseTopology(withModel('disk'))).toThrow(/devices\[0\]\.model: unknown device model "disk" \(known: memory, copy-engine, nvme\)/);
    expect(() => parseTopology(withModel(7))).toThrow(/unknown device model 7/);
    expect(() => parseTopology(withModel('toString'))).toThrow(/unknown device model/);
  });
});
