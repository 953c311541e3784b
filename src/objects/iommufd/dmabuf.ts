// iommufd as a dma-buf importer: IOMMU_IOAS_MAP_FILE of a dma-buf fd maps the exporter's memory instead of
// pinned pages (no pin, no locked-memory charge). Each mapping is attached to its dma-buf; when the
// exporter revokes the buffer, every attached mapping leaves its domains for good, though its IOVA stays
// allocated until it is unmapped. The exporter is the selftest's (selftest/dmabuf.ts); a revoked buffer
// refuses new mappings (ENODEV).
import { EINVAL, ENODEV, Errno } from '../../errno.ts';
import type { Area, DmabufImport, Ioas } from './ioas.ts';

/** What an exporter offers iommufd. */
export interface DmaBuf {
  /** Bytes of memory behind it. */
  readonly size: bigint;
  /** The exporter has taken the memory away (new mappings fail). */
  readonly revoked: boolean;
  /** Names its memory the way pinned memory is named, for the domains' page tables. */
  readonly owner: string;
  /** Live mappings; the exporter revokes through them. */
  readonly imports: Set<DmabufMapping>;
}

export class DmabufMapping implements DmabufImport {
  revoked = false;
  area?: Area;

  constructor(readonly buf: DmaBuf, readonly ioas: Ioas) {}

  /** The exporter's invalidation: the mapping leaves the domains and stays revoked. */
  revoke(): void {
    if (this.revoked || !this.area) return;
    this.ioas.revokeArea(this.area);
    this.revoked = true;
  }

  detach(): void {
    this.buf.imports.delete(this);
    this.area = undefined;
  }
}

/** iopt_map_file_pages for a dma-buf: [start, start + length) must lie inside it. Returns the IOVA. */
export function mapDmabuf(ioas: Ioas, buf: DmaBuf, start: bigint, length: bigint, fixedIova: bigint | undefined, readable: boolean, writeable: boolean): bigint {
  if (buf.size <= start + length - 1n) throw new Errno(EINVAL, `[0x${start.toString(16)}, +0x${length.toString(16)}) is beyond the dma-buf`);
  if (buf.revoked) throw new Errno(ENODEV, 'the dma-buf is revoked');
  const at = ioas.place(length, start, fixedIova);
  const m = new DmabufMapping(buf, ioas);
  const area: Area = { start: at, last: at + length - 1n, userVa: start, owner: buf.owner, readable, writeable, dmabuf: m };
  ioas.insert(area);
  m.area = area;
  buf.imports.add(m);
  return at;
}
