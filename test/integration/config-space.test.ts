// Config space of the default functions as an unmodified C program reads it through the device fd under
// the preload shim (test/c/config_walk.c): the capability lists, MSI-X placement against the region
// info, interrupt counts, and vfio-pci's errnos for accesses at odd offsets, sizes and past the ends.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kv } from '../helpers/c.ts';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.ts';
import { buildShim, runUnderShim } from '../helpers/shim.ts';

let d: RunningDaemon;
beforeAll(async () => {
  [d] = await Promise.all([startDaemon(), buildShim()]);
});
afterAll(async () => {
  await d?.stop();
});

async function walk(bdf: string): Promise<Record<string, string>> {
  const r = await runUnderShim('config_walk', [bdf], { mnt: d.mnt });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return kv(r.stdout);
}

/** What every default function answers to the bounds probes. */
const BOUNDS = {
  config_info: '0', config_size: '4096', config_cap_offset: '0', config_read_all: '4096', odd_reads_agree: '1',
  config_read_last_byte: '1', config_read_across_end: '-EFAULT', config_read_at_end: '-EFAULT', config_write_across_end: '-EFAULT',
  config_write_vendor: '2', vendor_unchanged: '1',
  msix_table_in_bar: '1', msix_pba_in_bar: '1', msix_apart: '1', msix_count_matches_irq_info: '1', msix_table_read: '4', msix_table_word: '0xffffffff',
  intx_count_matches_pin: '1',
  bar0_sizing: '1', bar0_read_decode_off: '-EIO', bar0_read: '4', bar0_read_at_end: '-EINVAL', bar0_read_across_end: '3', bar0_write_across_end: '5',
  bar1_read: '-EINVAL', rom_info: '0', vga_read: '-EINVAL', region9_read: '-EINVAL',
};

describe('config space through the device fd', () => {
  it('ConnectX-5 function 0: its capability chain, extended list without the hidden Secondary PCIe, MSI-X in BAR 0, a 1 MiB ROM', async () => {
    expect(await walk('0000:01:00.0')).toEqual({
      ...BOUNDS,
      ids: '15b3:1017', subsystem: '15b3:0007',
      caps: '01@40,03@48,10@60,11@9c,09@c0',
      ext_caps: '0001@100,000e@148,0010@150,000d@1bc',
      link_speed_code: '3', link_width: '16',
      msix_vectors: '64', msix_table: '0:0x2000', msix_pba: '0:0x3000',
      irq_counts: '1,0,64,1,1',
      rom_size: String(1 << 20), rom_flags: '1', rom_read: '2', rom_signature: '0xaa55', rom_write: '-EINVAL', rom_sizing: '1',
    });
  });

  it('Samsung NVMe: PM, MSI, PCIe x4, MSI-X 33 with the PBA below the table; no ROM', async () => {
    expect(await walk('0000:02:00.0')).toEqual({
      ...BOUNDS,
      ids: '144d:a808', subsystem: '144d:a801',
      caps: '01@40,05@50,10@70,11@b0',
      ext_caps: '0001@100,0003@148,0004@154,0018@178',
      link_speed_code: '3', link_width: '4',
      msix_vectors: '33', msix_table: '0:0x3000', msix_pba: '0:0x2000',
      irq_counts: '1,32,33,1,1',
      rom_size: '0', rom_flags: '0', rom_read: '-EINVAL',
    });
  });
});
