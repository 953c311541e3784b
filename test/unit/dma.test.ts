// Device DMA through the PE, in-process: a copy engine behind a SPAPR v2 container, an iommufd domain,
// BLOCKED and the bypass window, into the memory of a live process (test/c/dma_target.c). Faults
// freeze the PE, are on record in the views, and recovery through VFIO_EEH_PE_OP lets DMA run again.
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  COPY_ERR, COPY_REG, CTRL_IRQ, STATUS_BUSY, STATUS_CODE_SHIFT, STATUS_DONE, STATUS_ERROR,
} from '../../src/devices/copy-engine.ts';
import { runControl } from '../../src/control.ts';
import { FunctionDma } from '../../src/devices/dma.ts';
import { DmaError, RecordingIrqPort } from '../../src/devices/model.ts';
import type { OpenFile } from '../../src/dispatch/open-file.ts';
import { describePe, renderHostText, renderTceText } from '../../src/tce/index.ts';
import { HPA_BASE } from '../../src/tce/memory.ts';
import { IOMMUFD, VFIO } from '../../src/uapi/constants.ts';
import { Harness } from '../helpers/direct.ts';
import { pattern, startDmaTarget, type DmaTarget } from '../helpers/dma-target.ts';
import { seededRandom } from '../helpers/random.ts';

const TOPOLOGY = JSON.parse(readFileSync(new URL('../../topologies/copy-engine.json', import.meta.url), 'utf8'));
const BDF = '0000:03:00.0';
const GiB = 1n << 30n;
const RW = VFIO.VFIO_DMA_MAP_FLAG_READ | VFIO.VFIO_DMA_MAP_FLAG_WRITE;
const RO = VFIO.VFIO_DMA_MAP_FLAG_READ;
const EEH = { UNFREEZE_IO: 2, UNFREEZE_DMA: 3, GET_STATE: 4 };

let t: DmaTarget;
let h: Harness;
let pid: number;

beforeEach(async () => {
  t = await startDmaTarget();
  pid = t.pid;
  h = new Harness(TOPOLOGY);
});
afterEach(async () => {
  h.daemon.shutdown();
  await t.stop();
});

const fn = () => h.daemon.inventory.functions.get(BDF)!;
const pe = () => fn().group.pe;
const u32 = (v: number) => Buffer.from(new Uint32Array([v >>> 0]).buffer);
const u64 = (v: bigint) => Buffer.from(new BigUint64Array([v]).buffer);
const status = (dev: OpenFile) => (dev.regionRead(BigInt(COPY_REG.STATUS), 4) as Buffer).readUInt32LE();

/** Programs a copy through BAR 0 register writes and waits for the engine to leave BUSY. */
async function copy(dev: OpenFile, src: bigint, dst: bigint, len: number): Promise<number> {
  dev.regionWrite(BigInt(COPY_REG.STATUS), u32(STATUS_DONE | STATUS_ERROR));
  dev.regionWrite(BigInt(COPY_REG.SRC), u64(src));
  dev.regionWrite(BigInt(COPY_REG.DST), u64(dst));
  dev.regionWrite(BigInt(COPY_REG.LEN), u32(len));
  dev.regionWrite(BigInt(COPY_REG.CTRL), u32(CTRL_IRQ | (1 << 16)));
  dev.regionWrite(BigInt(COPY_REG.DOORBELL), u32(1));
  // All ones is a frozen PE, not a busy engine.
  for (let s = status(dev); s !== 0xffff_ffff && s & STATUS_BUSY; s = status(dev)) await new Promise((r) => setImmediate(r));
  return status(dev);
}

describe('DMA through a SPAPR v2 container', () => {
  let c: OpenFile;
  let g: OpenFile;
  let dev: OpenFile;
  const call = (f: OpenFile, name: string, fields = {}, o = {}) => h.call(f, name, fields, { pid, ...o });
  const eeh = (op: number) => call(c, 'VFIO_EEH_PE_OP', { op }).result;

  beforeEach(() => {
    c = h.open('/dev/vfio/vfio');
    g = h.open('/dev/vfio/2');
    expect(h.setContainer(g, c, pid)).toBe(0);
    expect(call(c, 'VFIO_SET_IOMMU', {}, { arg: VFIO.VFIO_SPAPR_TCE_v2_IOMMU }).result).toBe(0);
    expect(call(c, 'VFIO_IOMMU_SPAPR_REGISTER_MEMORY', { vaddr: t.addr, size: BigInt(t.size) }).result).toBe(0);
    expect(call(c, 'VFIO_IOMMU_SPAPR_TCE_REMOVE', { start_addr: 0n }).result).toBe(0);
    expect(call(c, 'VFIO_IOMMU_SPAPR_TCE_CREATE', { page_shift: 12, window_size: GiB, levels: 1 }).result).toBe(0);
    // IOVA 0x10000: 256K read-write; 0x80000: 64K read-only.
    expect(call(c, 'VFIO_IOMMU_MAP_DMA', { flags: RW, vaddr: t.addr, iova: 0x1_0000n, size: 0x4_0000n }).result).toBe(0);
    expect(call(c, 'VFIO_IOMMU_MAP_DMA', { flags: RO, vaddr: t.addr + 0x4_0000n, iova: 0x8_0000n, size: 0x1_0000n }).result).toBe(0);
    dev = h.getDeviceFd(g, BDF).file!;
    h.enableMemory(dev);
  });

  it('copies between IOVAs in the client memory and raises the MSI-X vector', async () => {
    const irq = (fn().irq = new RecordingIrqPort()); // watch the model's raises instead of delivering them
    expect(await copy(dev, 0x8_0000n, 0x1_0800n, 0x3000)).toBe(STATUS_DONE);
    expect(t.peek(t.addr + 0x800n, 0x3000)).toEqual(pattern(0x4_0000, 0x3000));
    expect(irq.raised).toEqual([{ index: VFIO.VFIO_PCI_MSIX_IRQ_INDEX, vector: 1 }]);
    expect(h.daemon.inventory.clientMemory.openHandles).toBe(1);
  });

  it('splits a transfer at IOMMU pages and merges what is contiguous in the process', () => {
    const dma = new FunctionDma(pe(), h.daemon.inventory.clientMemory, BDF);
    expect(dma.translate(0x1_0ff0n, 0x2020, 'write')).toEqual([{ pid, ua: t.addr + 0xff0n, length: 0x2020 }]);
    // Next in IOVA but elsewhere in the process: two spans.
    expect(call(c, 'VFIO_IOMMU_MAP_DMA', { flags: RW, vaddr: t.addr + 0x8_0000n, iova: 0x5_0000n, size: 0x1000n }).result).toBe(0);
    expect(dma.translate(0x4_fff8n, 16, 'read')).toEqual([{ pid, ua: t.addr + 0x3_fff8n, length: 8 }, { pid, ua: t.addr + 0x8_0000n, length: 8 }]);
    expect(dma.read(0x1_0000n, 16)).toEqual(pattern(0, 16));
  });

  it('a write through a read-only TCE freezes the PE, writes nothing, and MMIO reads all ones until recovery', async () => {
    const before = t.peek(t.addr + 0x4_0000n, 0x100);
    // The frozen PE answers all ones, STATUS included.
    expect(await copy(dev, 0x1_0000n, 0x8_0000n, 0x100)).toBe(0xffff_ffff);
    expect(t.peek(t.addr + 0x4_0000n, 0x100)).toEqual(before);
    expect(eeh(EEH.GET_STATE)).toBe(VFIO.VFIO_EEH_PE_STATE_STOPPED);
    expect(dev.regionRead(0n, 8)).toEqual(Buffer.alloc(8, 0xff));
    expect(describePe(pe()).eeh.dmaFaults).toEqual([
      expect.objectContaining({ iova: '0x0000000000080000', direction: 'write', reason: 'permission', device: BDF }),
    ]);
    expect(renderTceText(pe())).toMatch(/# dma fault 0000:03:00.0 write 0x0000000000080000 {2}permission/);
    expect(renderHostText(h.daemon.host)).toMatch(/domain0-pe3 .*eeh STOPPED.*\n(.*\n)*? {4}dma fault 0000:03:00.0 write 0x0000000000080000 {2}permission/);
    // While frozen DMA stops: the next copy fails without a new fault on record.
    dev.regionWrite(BigInt(COPY_REG.DOORBELL), u32(1)); // dropped: MMIO is frozen too
    expect(eeh(EEH.UNFREEZE_IO)).toBe(0);
    expect(eeh(EEH.GET_STATE)).toBe(VFIO.VFIO_EEH_PE_STATE_STOPPED_DMA);
    expect(status(dev)).toBe(STATUS_ERROR | (COPY_ERR.WRITE_FAULT << STATUS_CODE_SHIFT));
    expect((await copy(dev, 0x1_0000n, 0x1_1000n, 16)) >> STATUS_CODE_SHIFT).toBe(COPY_ERR.FROZEN);
    expect(pe().eeh.dmaFaults.length).toBe(1);
    expect(eeh(EEH.UNFREEZE_DMA)).toBe(0);
    expect(eeh(EEH.GET_STATE)).toBe(VFIO.VFIO_EEH_PE_STATE_NORMAL);
    expect(await copy(dev, 0x8_0000n, 0x1_1000n, 16)).toBe(STATUS_DONE);
    expect(t.peek(t.addr + 0x1000n, 16)).toEqual(pattern(0x4_0000, 16));
  });

  it('`eeh dma-fault` fails the next DMA once, through a good TCE: the PE freezes and the fault is on record', async () => {
    runControl(h.daemon, `eeh dma-fault ${fn().group.id}`);
    // Arming alone changes nothing the user sees.
    expect(eeh(EEH.GET_STATE)).toBe(VFIO.VFIO_EEH_PE_STATE_NORMAL);
    expect(await copy(dev, 0x1_0000n, 0x1_1000n, 16)).toBe(0xffff_ffff);
    expect(eeh(EEH.GET_STATE)).toBe(VFIO.VFIO_EEH_PE_STATE_STOPPED);
    expect(describePe(pe()).eeh.dmaFaults).toEqual([
      expect.objectContaining({ iova: '0x0000000000010000', direction: 'read', reason: 'injected', device: BDF }),
    ]);
    expect(eeh(EEH.UNFREEZE_IO) | eeh(EEH.UNFREEZE_DMA)).toBe(0);
    // Spent: the same copy now goes through.
    expect(await copy(dev, 0x1_0000n, 0x1_1000n, 16)).toBe(STATUS_DONE);
    expect(t.peek(t.addr + 0x1000n, 16)).toEqual(pattern(0, 16));
    expect(pe().eeh.dmaFaults.length).toBe(1);
    // The PE changing hands drops an armed fault nobody hit.
    runControl(h.daemon, `eeh dma-fault ${fn().group.id}`);
    pe().eeh.changeOwner();
    expect(pe().eeh.dmaFaultArmed).toBe(false);
    expect(() => runControl(h.daemon, 'eeh dma-fault')).toThrow(/bad control command/);
  });

  it('names the reason: no TCE, no window, wraparound; a huge LEN is a device error without a freeze', async () => {
    const reasons: string[] = [];
    for (const [src, dst] of [[0x1_0000n, 0x6_0000n], [0x1_0000n, 0x5000_0000n], [(1n << 64n) - 0x800n, 0x1_0000n]]) {
      const s = await copy(dev, src, dst, 0x1000);
      expect(s & STATUS_ERROR).toBe(STATUS_ERROR);
      reasons.push(pe().eeh.dmaFaults.at(-1)!.reason);
      expect(eeh(EEH.UNFREEZE_IO) | eeh(EEH.UNFREEZE_DMA)).toBe(0);
    }
    expect(reasons).toEqual(['no-tce', 'no-window', 'no-window']);
    const freezes = pe().eeh.freezes;
    expect((await copy(dev, 0x1_0000n, 0x1_1000n, 0xffff_ffff)) >> STATUS_CODE_SHIFT).toBe(COPY_ERR.LENGTH);
    expect(pe().eeh.freezes).toBe(freezes);
    expect(() => new FunctionDma(pe(), h.daemon.inventory.clientMemory, BDF).read(0x1_0000n, 64 << 20)).toThrow(DmaError);
  });

  it('takes random descriptors anywhere: no crash, only read-write mapped memory ever changes, recovery each time', async () => {
    const rnd = seededRandom(5);
    const big = (n: number) => BigInt(rnd(n));
    const iova = () =>
      [
        () => 0x1_0000n + big(0x4_0000), // read-write
        () => 0x8_0000n + big(0x1_0000), // read-only
        () => 0x6_0000n + big(0x1_0000), // in the window, no TCE
        () => big(1 << 30) << 4n, // anywhere in the low 16 GiB
        () => (1n << 64n) - big(0x2000), // about to wrap
        () => (1n << 59n) + big(0x1000), // where a 64-bit window would be
      ][rnd(6)]();
    const len = () => [0, 1, 7, 0x1000, 0xfff, 0x1_0001, 0x4_0000, 0xffff_ffff][rnd(8)];
    for (let k = 0; k < 150; k++) {
      const s = await copy(dev, iova(), iova(), len());
      expect(s === 0xffff_ffff || s === STATUS_DONE || (s & (STATUS_ERROR | STATUS_BUSY)) === STATUS_ERROR).toBe(true);
      if (pe().eeh.frozen) expect(eeh(EEH.UNFREEZE_IO) | eeh(EEH.UNFREEZE_DMA)).toBe(0);
    }
    // Beyond the read-write mapping the process's memory is as it was: the read-only page and the rest.
    expect(t.peek(t.addr + 0x4_0000n, t.size - 0x4_0000)).toEqual(pattern(0x4_0000, t.size - 0x4_0000));
    expect(await copy(dev, 0x8_0000n, 0x1_0000n, 64)).toBe(STATUS_DONE);
  });

  it('closes the /proc handle when the last pin goes, and a device reset abandons a copy in flight', async () => {
    expect(await copy(dev, 0x1_0000n, 0x2_0000n, 0x100)).toBe(STATUS_DONE);
    expect(h.daemon.describe().procHandles).toBe(1);
    dev.regionWrite(BigInt(COPY_REG.LEN), u32(0x1000));
    dev.regionWrite(BigInt(COPY_REG.DOORBELL), u32(1));
    expect(call(dev, 'VFIO_DEVICE_RESET').result).toBe(0);
    await new Promise((r) => setImmediate(r));
    h.enableMemory(dev);
    expect(status(dev)).toBe(0);
    h.close(dev);
    h.close(g);
    h.close(c);
    expect(h.daemon.host.stats().pinnedBytes).toBe(0n);
    expect(h.daemon.describe().procHandles).toBe(0);
  });
});

describe('DMA through iommufd, BLOCKED and the bypass window', () => {
  it('follows the attachment: a paging domain translates, BLOCKED faults every access', async () => {
    const i = h.open('/dev/iommu');
    const dev = h.open(`/dev/vfio/devices/vfio${fn().cdevIndex}`);
    const call = (f: OpenFile, name: string, fields = {}) => h.call(f, name, fields, { pid });
    expect(call(dev, 'VFIO_DEVICE_BIND_IOMMUFD', { iommufd: i.handle }).result).toBe(0);
    h.enableMemory(dev);
    const ioas = call(i, 'IOMMU_IOAS_ALLOC').out.out_ioas_id as number;
    expect(call(dev, 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', { pt_id: ioas }).result).toBe(0);
    const { IOMMU_IOAS_MAP_FIXED_IOVA: FIXED, IOMMU_IOAS_MAP_READABLE: R, IOMMU_IOAS_MAP_WRITEABLE: W } = IOMMUFD;
    expect(call(i, 'IOMMU_IOAS_MAP', { ioas_id: ioas, flags: FIXED | R | W, user_va: t.addr, length: 0x2_0000n, iova: 0x10_0000n }).result).toBe(0);
    expect(await copy(dev, 0x10_0000n, 0x11_0000n, 0x800)).toBe(STATUS_DONE);
    expect(t.peek(t.addr + 0x1_0000n, 0x800)).toEqual(pattern(0, 0x800));
    expect(call(dev, 'VFIO_DEVICE_DETACH_IOMMUFD_PT').result).toBe(0);
    expect(pe().blocked).toBe(true);
    expect((await copy(dev, 0x10_0000n, 0x11_0000n, 0x800)) & STATUS_ERROR).toBe(STATUS_ERROR);
    expect(pe().eeh.dmaFaults.at(-1)).toMatchObject({ reason: 'blocked', direction: 'read', iova: 0x10_0000n });
    h.close(dev);
    h.close(i);
    expect(h.daemon.describe().procHandles).toBe(0);
  });

  it('translates through the PowerNV bypass of a host-owned PE; past its end no window decodes', () => {
    expect(pe().bypass).toBe(true);
    const dma = new FunctionDma(pe(), h.daemon.inventory.clientMemory, BDF);
    // The bypass maps the host's DRAM (256 GiB here); the synthetic frame there is nobody's pinned page.
    expect(() => dma.read(pe().window64Start + HPA_BASE + 0x1000n, 4)).toThrow(/^no-memory/);
    pe().eeh.op(2);
    pe().eeh.op(3);
    expect(() => dma.read(pe().window64Start + pe().bypassSize(), 4)).toThrow(/^no-window/);
    expect(pe().eeh.dmaFaults.map((f) => f.reason)).toEqual(['no-memory', 'no-window']);
    expect(pe().eeh.frozen).toBe(true);
  });
});
